//! The API's own value types: each one validates on construction, so a
//! value of the type is known good wherever it travels.

pub mod email;
pub mod money;
pub mod sale_id;
pub mod whole;

pub use email::Email;
pub use money::Money;
pub use sale_id::SaleId;
