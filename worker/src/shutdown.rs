//! Stopping: the signal that stops the worker process, and the pause every
//! loop takes between rounds, cut short when the worker is stopping.

use std::time::Duration;

use tokio::sync::watch;

/// Sleeps, or returns `true` early when the worker is stopping.
pub(crate) async fn pause(stopping: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    if *stopping.borrow() {
        return true;
    }
    let stopped = tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = stopping.wait_for(|s| *s) => true,
    };
    stopped || *stopping.borrow()
}

/// Completes on SIGTERM or Ctrl-C.
pub(crate) async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
