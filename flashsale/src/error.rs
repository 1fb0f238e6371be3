use engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the command with this error reply; nothing changed.
    #[error("{0}")]
    Server(String),
    /// Connection or protocol trouble; the command may or may not have run.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A node cannot run the engine that was asked for (the module is not
    /// loaded on it): a deployment mistake, not a passing fault.
    #[error("{0}")]
    EngineMissing(String),
    /// The server answered something that is not a flashsale reply.
    #[error("unexpected reply: {0}")]
    Reply(String),
}

impl ClientError {
    /// The engine's error (code and message) when the server refused.
    pub fn engine_error(&self) -> Option<EngineError> {
        match self {
            ClientError::Server(text) => Some(EngineError::from_reply(text)),
            _ => None,
        }
    }

    /// Redis cannot serve right now but will (not reachable, still loading
    /// its data, a cluster slot without a primary during a failover, a
    /// timeout): retry later. Such a command may or may not have run.
    pub fn is_unavailable(&self) -> bool {
        match self {
            ClientError::Server(text) => {
                let code = text.split(' ').next().unwrap_or_default();
                UNAVAILABLE_CODES.contains(&code)
            }
            ClientError::Redis(error) => redis_unavailable(error),
            ClientError::EngineMissing(_) | ClientError::Reply(_) => false,
        }
    }

    /// The Functions library is not on the node that served the command
    /// (Redis restarted without its data, or a primary joined the cluster
    /// since the start): load it again and retry.
    pub fn is_missing_library(&self) -> bool {
        matches!(self, ClientError::Server(text)
            if text.to_ascii_lowercase().contains("function not found"))
    }

    pub(crate) fn from_redis(error: redis::RedisError) -> Self {
        match (error.is_io_error(), error.code()) {
            (false, Some(code)) => ClientError::Server(match error.detail() {
                Some(detail) => format!("{code} {detail}"),
                None => code.to_string(),
            }),
            _ => ClientError::Redis(error),
        }
    }
}

/// Error codes after which the same command may succeed once the server
/// has loaded its data or the cluster has settled (a redirection that
/// reaches the caller means the slot is moving).
const UNAVAILABLE_CODES: [&str; 8] = [
    "MOVED",
    "ASK",
    "LOADING",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "MASTERDOWN",
    "READONLY",
    "BUSY",
];

/// The connection failed or the node (or cluster) cannot serve yet.
pub(crate) fn redis_unavailable(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error
            .code()
            .is_some_and(|code| UNAVAILABLE_CODES.contains(&code))
        || matches!(error.kind(), redis::ErrorKind::ClusterConnectionNotFound)
}
