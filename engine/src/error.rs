use std::fmt;

/// Why a command was refused. Rendered as a Redis error reply `CODE message`;
/// an error always means the command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Bad arguments: arity, ids, numbers, syntax.
    Err,
    /// The sale does not exist.
    NoSale,
    /// The change would break an invariant (e.g. stock below sold + held).
    Conflict,
    /// A key of the sale holds another type (someone wrote it by hand).
    WrongType,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Err => "ERR",
            ErrorCode::NoSale => "NOSALE",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::WrongType => "WRONGTYPE",
        }
    }
}

impl EngineError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        EngineError {
            code,
            message: message.into(),
        }
    }

    pub fn err(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Err, message)
    }

    pub fn no_sale() -> Self {
        Self::new(ErrorCode::NoSale, "no such sale")
    }

    pub fn wrong_type() -> Self {
        Self::new(
            ErrorCode::WrongType,
            "Operation against a key holding the wrong kind of value",
        )
    }

    pub fn corrupt_sale() -> Self {
        Self::err("corrupt sale record")
    }

    /// Parses a rendered error (`CODE message`) back, as a client receives it.
    pub fn from_reply(text: &str) -> Self {
        let (code, message) = text.split_once(' ').unwrap_or((text, ""));
        let code = match code {
            "NOSALE" => ErrorCode::NoSale,
            "CONFLICT" => ErrorCode::Conflict,
            "WRONGTYPE" => ErrorCode::WrongType,
            _ => ErrorCode::Err,
        };
        let message = if code == ErrorCode::Err && !text.starts_with("ERR") {
            text.to_string()
        } else {
            message.to_string()
        };
        EngineError { code, message }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for EngineError {}
