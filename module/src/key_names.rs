//! A sale's key names as Redis strings, kept from one command to the next:
//! opening a key takes its name as a `RedisModuleString`, and making five
//! of them per command (and freeing them after) cost about a tenth of an
//! ENQUEUE. The names of the last [`KEPT_SALES`] sales are kept; Redis runs
//! every module command on its main thread.

use std::cell::RefCell;

use engine::keys::{HOLDS, LAPSED, ORDERS, QUEUE, SALE};

use crate::raw_key::{KeptString, KeyName};

/// How many sales' names are kept (the Lua library keeps as many).
const KEPT_SALES: usize = 64;

/// The names of the sale's keys the store opens as handles.
pub struct SaleKeyNames {
    sale: String,
    pub sale_key: KeptString,
    pub queue: KeptString,
    pub holds: KeptString,
    pub orders: KeptString,
    pub lapsed: KeptString,
}

thread_local! {
    static KEPT: RefCell<Vec<SaleKeyNames>> = const { RefCell::new(Vec::new()) };
}

/// The names of `sale`'s keys, taken out of the kept ones (or made): the
/// running command owns them until it gives them back ([`give_back`]).
pub fn take(sale: &str) -> SaleKeyNames {
    let kept = KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let at = kept.iter().position(|names| names.sale == sale)?;
        Some(kept.swap_remove(at))
    });
    kept.unwrap_or_else(|| {
        let name = |suffix| KeptString::new(KeyName::new(sale, suffix, "").as_bytes());
        SaleKeyNames {
            sale: sale.to_string(),
            sale_key: name(SALE),
            queue: name(QUEUE),
            holds: name(HOLDS),
            orders: name(ORDERS),
            lapsed: name(LAPSED),
        }
    })
}

/// Keeps `names` for the sale's next command; past [`KEPT_SALES`] the
/// oldest kept are freed.
pub fn give_back(names: SaleKeyNames) {
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.len() >= KEPT_SALES {
            kept.remove(0);
        }
        kept.push(names);
    });
}
