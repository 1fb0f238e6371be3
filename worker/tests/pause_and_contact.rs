//! Issue 13: the worker on a paused sale (it admits nobody and keeps
//! asking, so admission resumes at once), and an order confirmed with the
//! buyer's address as typed (CONFIRM ... CONTACT): MongoDB's `userEmail`
//! is the address, `buyerId` the engine's identity, which reconciliation
//! gives back to the engine.

mod common;

use std::time::Duration;

use common::{Platform, RunningWorker};
use flashsale::{ConfirmReply, GrantReply, PauseReply, ResumeReply};
use tests::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_sale_admits_nobody_until_it_is_resumed() {
    let mut p = Platform::start().await;
    p.sale("brake", 10, 600_000, 0).await;
    let users: Vec<String> = (0..5).map(|i| format!("b{i}@example.com")).collect();
    p.queue("brake", &users).await;
    let mut client = p.client.clone();
    assert_eq!(
        client.pause("brake").await.expect("PAUSE"),
        PauseReply::Paused
    );
    let worker = RunningWorker::spawn(p.config()).await;
    // Many poll rounds: nobody is admitted, the queue stays as it was.
    for _ in 0..30 {
        let status = client.status("brake", None).await.expect("STATUS");
        assert_eq!((status.sale.held, status.sale.queued), (0, 5), "{status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        client.resume("brake").await.expect("RESUME"),
        ResumeReply::Resumed
    );
    // The worker was not backing off an error: admission follows at once,
    // from the head of the same queue.
    wait_for("5 holds after the resume", Duration::from_secs(5), || {
        let mut client = client.clone();
        async move {
            let status = client.status("brake", None).await.ok()?;
            (status.sale.held == 5).then_some(())
        }
    })
    .await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_keeps_the_address_as_typed() {
    let mut p = Platform::start().await;
    p.sale("typed", 5, 600_000, 0).await;
    let identity = "bob@example.com";
    let typed = "Bob+Shoes@example.com";
    p.queue("typed", &[identity.to_string()]).await;
    let mut client = p.client.clone();
    let admitted = match client.grant("typed", 1).await.expect("GRANT") {
        GrantReply::Granted { users, .. } => users,
        other => panic!("{other:?}"),
    };
    assert_eq!(admitted, vec![identity.to_string()]);
    let order_id = match client
        .confirm_with_contact("typed", identity, 1999, Some(typed))
        .await
        .expect("CONFIRM")
    {
        ConfirmReply::Confirmed { order_id, .. } => order_id,
        other => panic!("{other:?}"),
    };
    let worker = RunningWorker::spawn(p.config()).await;
    p.wait_for_orders("typed", 1, Duration::from_secs(30)).await;
    worker.stop().await;
    let docs = p.orders_in_mongo("typed").await;
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].get_str("_id"), Ok(order_id.as_str()));
    assert_eq!(docs[0].get_str("userEmail"), Ok(typed));
    assert_eq!(docs[0].get_str("buyerId"), Ok(identity));

    // Redis loses the sale's orders: reconciliation gives the engine back
    // the identity's order, not the typed address's.
    let mut conn = p.conn.clone();
    let _: () = redis::cmd("DEL")
        .arg(flashsale::keys::orders("typed"))
        .query_async(&mut conn)
        .await
        .expect("DEL orders");
    let report = worker::reconcile_once(&p.config())
        .await
        .expect("reconcile");
    let status = client
        .status("typed", Some(identity))
        .await
        .expect("STATUS");
    assert_eq!(
        status.user,
        Some(flashsale::UserStatus::Purchased { order_id }),
        "{report}"
    );
    let typed_status = client.status("typed", Some(typed)).await.expect("STATUS");
    assert_eq!(typed_status.user, Some(flashsale::UserStatus::None));
}
