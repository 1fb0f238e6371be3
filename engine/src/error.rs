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
    /// The price cannot change now: buyers hold units at the current price.
    Locked,
    /// CONFIRM without an amount, of a sale set up without a PRICE.
    NoPrice,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::Err,
        ErrorCode::NoSale,
        ErrorCode::Conflict,
        ErrorCode::WrongType,
        ErrorCode::Locked,
        ErrorCode::NoPrice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Err => "ERR",
            ErrorCode::NoSale => "NOSALE",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::WrongType => "WRONGTYPE",
            ErrorCode::Locked => "LOCKED",
            ErrorCode::NoPrice => "NOPRICE",
        }
    }
}

/// The texts of error replies after the code word, declared once for the
/// engine and (generated into `lua/flashsale.lua`) the Functions library.
/// The functions build the texts that carry a value; the Lua library gets
/// each as a function of the same parameters.
pub mod message {
    use std::fmt::Display;

    pub const SYNTAX: &str = "syntax error";
    pub const INVALID_SALE_ID: &str = "invalid sale id";
    pub const INVALID_USER_ID: &str = "invalid user id";
    /// CONFIRM's `CONTACT`: the charset and length of a user id.
    pub const INVALID_CONTACT: &str = "invalid contact";
    pub const ENDS_BEFORE_START: &str = "ends_at must be after starts_at";
    pub const NO_SUCH_SALE: &str = "no such sale";
    /// Redis's own text, so a WRONGTYPE reads the same from every backend.
    pub const WRONG_TYPE: &str = "Operation against a key holding the wrong kind of value";
    pub const CORRUPT_SALE: &str = "corrupt sale record";
    pub const INVALID_TEST_CLOCK: &str = "invalid test clock";
    pub const INVALID_ORDER_ID: &str = "invalid order id";
    pub const USER_TWICE: &str = "a user is given twice";
    pub const ORDER_ID_TWICE: &str = "an order id is given twice";
    /// The clock is past `MAX_ORDER_NUMBER / ORDERS_PER_MS` (the year 2286),
    /// or the sale's last order number is `MAX_ORDER_NUMBER`.
    pub const ORDER_NUMBERS_EXHAUSTED: &str = "order numbers exhausted";
    pub const NO_PRICE: &str = "the sale has no price; give the amount";
    /// SETUP's `SEED`: what the API generates, 32 random bytes in hex.
    pub const INVALID_SEED: &str = "SEED must be 64 lowercase hex digits";
    /// The draw or DRAW found no seed key (deleted by hand).
    pub const SEED_MISSING: &str = "the sale's lottery seed is missing";
    /// SETUP with a pre-queue window but no seed, given or kept.
    pub const PREQUEUE_NEEDS_SEED: &str = "PREQUEUE needs a SEED";
    /// SETUP changing PREQUEUE or SEED once registrations may exist: the
    /// commitment published before the window must stay the seed drawn with.
    pub const LOTTERY_LOCKED: &str =
        "the pre-queue window has opened or the sale has started; PREQUEUE and SEED are fixed";

    pub fn wrong_arity(command: impl Display) -> String {
        format!("wrong number of arguments for '{command}'")
    }

    pub fn out_of_range(name: impl Display, min: impl Display, max: impl Display) -> String {
        format!("{name} must be an integer from {min} to {max}")
    }

    pub fn stock_below_committed(committed: impl Display) -> String {
        format!("stock cannot go below sold plus held ({committed})")
    }

    /// SETUP: a new PRICE while units are held at the current one.
    pub fn price_locked(held: impl Display) -> String {
        format!("the price cannot change while {held} units are held")
    }

    pub fn too_many_orders(max: impl Display) -> String {
        format!("at most {max} orders per call")
    }

    /// RESTORE: the user has another order in the sale already.
    pub fn has_other_order(user: impl Display, order_id: impl Display) -> String {
        format!("{user} already has order {order_id}")
    }

    /// RESTORE: another user has this order id.
    pub fn order_id_taken(order_id: impl Display) -> String {
        format!("{order_id} is another user's order")
    }

    /// PAUSE of a sale that is not live: `state` is its STATUS state
    /// (`upcoming`, `sold_out` or `ended`).
    pub fn not_live(state: impl Display) -> String {
        format!("only a live sale can be paused; it is {state}")
    }

    /// RESTORE into a sale: the orders would not fit its stock.
    pub fn orders_exceed_stock(committed: impl Display) -> String {
        format!("sold plus held would exceed stock ({committed})")
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
        Self::new(ErrorCode::NoSale, message::NO_SUCH_SALE)
    }

    pub fn wrong_type() -> Self {
        Self::new(ErrorCode::WrongType, message::WRONG_TYPE)
    }

    pub fn corrupt_sale() -> Self {
        Self::err(message::CORRUPT_SALE)
    }

    /// Parses a rendered error (`CODE message`) back, as a client receives it.
    pub fn from_reply(text: &str) -> Self {
        let (code, message) = text.split_once(' ').unwrap_or((text, ""));
        let code = ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == code)
            .unwrap_or(ErrorCode::Err);
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
