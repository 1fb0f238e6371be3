//! The worker's loops, one task each: [`sales_refresh`] keeps the list of
//! known sales that the others go over — [`admission`], [`quantity`],
//! [`outbox_copy`], [`reconcile`] and [`retention`]. Each returns when the worker is
//! stopping.

use std::sync::Arc;

use tokio::sync::RwLock;

use crate::sales::KnownSale;

pub(crate) mod admission;
pub(crate) mod outbox_copy;
pub(crate) mod quantity;
pub(crate) mod reconcile;
pub(crate) mod retention;
pub(crate) mod sales_refresh;

/// The sales in MongoDB, as last read by [`sales_refresh`].
pub(crate) type KnownSales = Arc<RwLock<Vec<KnownSale>>>;
