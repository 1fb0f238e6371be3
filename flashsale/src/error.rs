use engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the command with this error reply; nothing changed.
    #[error("{0}")]
    Server(String),
    /// Connection or protocol trouble; the command may or may not have run.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
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
