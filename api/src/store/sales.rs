//! `flash_sales` as the API reads and writes it; the document itself is
//! [`records::sale::SaleDoc`].

use futures::TryStreamExt;
use mongodb::bson::{self, doc, DateTime};
use mongodb::options::FindOptions;
use mongodb::Collection;
use records::sale::{field, id_filter};

pub use records::sale::SaleDoc;

use crate::domain::SaleId;

pub async fn insert(sales: &Collection<SaleDoc>, sale: &SaleDoc) -> mongodb::error::Result<()> {
    sales.insert_one(sale).await.map(|_| ())
}

pub async fn find(
    sales: &Collection<SaleDoc>,
    id: &SaleId,
) -> mongodb::error::Result<Option<SaleDoc>> {
    sales.find_one(id_filter(id.as_str())).await
}

/// Writes every field but `_id` (whatever its type) and `currentQuantity`
/// (the worker's to keep), and leaves fields the API does not know alone;
/// false if the sale no longer exists.
pub async fn update(sales: &Collection<SaleDoc>, sale: &SaleDoc) -> mongodb::error::Result<bool> {
    let mut fields = bson::to_document(sale)?;
    fields.remove(field::ID);
    fields.remove(field::CURRENT_QUANTITY);
    let result = sales
        .update_one(id_filter(&sale.id), doc! { "$set": fields })
        .await?;
    Ok(result.matched_count == 1)
}

pub async fn delete(sales: &Collection<SaleDoc>, id: &SaleId) -> mongodb::error::Result<bool> {
    let result = sales.delete_one(id_filter(id.as_str())).await?;
    Ok(result.deleted_count == 1)
}

/// One page of sales, newest start first, and the total count.
pub async fn list(
    sales: &Collection<SaleDoc>,
    skip: u64,
    limit: i64,
) -> mongodb::error::Result<(Vec<SaleDoc>, u64)> {
    let total = sales.count_documents(doc! {}).await?;
    let options = FindOptions::builder()
        .sort(doc! { field::STARTS_AT: -1, field::ID: 1 })
        .skip(skip)
        .limit(limit)
        .build();
    let page = sales
        .find(doc! {})
        .with_options(options)
        .await?
        .try_collect()
        .await?;
    Ok((page, total))
}

/// Sales that have not ended before `since` (for the metrics gauges).
pub async fn list_recent(
    sales: &Collection<SaleDoc>,
    since: DateTime,
    limit: i64,
) -> mongodb::error::Result<Vec<SaleDoc>> {
    let options = FindOptions::builder()
        .sort(doc! { field::ENDS_AT: -1 })
        .limit(limit)
        .build();
    sales
        .find(doc! { field::ENDS_AT: { "$gte": since } })
        .with_options(options)
        .await?
        .try_collect()
        .await
}

/// Sales that have not ended at `now`, soonest start first (the public list
/// on the customer page).
pub async fn list_open(
    sales: &Collection<SaleDoc>,
    now: DateTime,
    limit: i64,
) -> mongodb::error::Result<Vec<SaleDoc>> {
    let options = FindOptions::builder()
        .sort(doc! { field::STARTS_AT: 1, field::ID: 1 })
        .limit(limit)
        .build();
    sales
        .find(doc! { field::ENDS_AT: { "$gt": now } })
        .with_options(options)
        .await?
        .try_collect()
        .await
}
