//! `orders`, written by the worker from the engine's outbox (`_id` = the
//! engine's order id, `userEmail`, `flashSaleId`, `paymentStatus`,
//! `totalAmount` in Int64 cents, `createdAt`, `updatedAt`). The API only
//! reads them, and reads leniently: a field of an unexpected type is shown
//! as missing rather than failing the request.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::action::Action;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::options::Hint;
use mongodb::Collection;
use records::order::{self, field};

use crate::domain::{Email, Money, SaleId};

#[derive(Debug, Clone, PartialEq)]
pub struct OrderRecord {
    pub order_id: String,
    pub user_email: String,
    pub flash_sale_id: String,
    pub payment_status: String,
    pub total_amount: Option<Money>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl OrderRecord {
    pub fn from_document(doc: &Document) -> OrderRecord {
        let text = |key: &str| match doc.get(key) {
            Some(Bson::String(s)) => s.clone(),
            Some(Bson::ObjectId(id)) => id.to_hex(),
            _ => String::new(),
        };
        OrderRecord {
            order_id: text(field::ID),
            user_email: text(field::USER_EMAIL),
            flash_sale_id: text(field::SALE_ID),
            payment_status: text(field::PAYMENT_STATUS),
            total_amount: doc.get(field::TOTAL_AMOUNT).and_then(money),
            created_at: doc.get(field::CREATED_AT).and_then(time),
            updated_at: doc.get(field::UPDATED_AT).and_then(time),
        }
    }
}

/// Integers are cents; a string or a double (seed-era data) is a decimal.
fn money(value: &Bson) -> Option<Money> {
    match value {
        Bson::Int32(n) => u64::try_from(*n)
            .ok()
            .and_then(|n| Money::from_minor_units(n).ok()),
        Bson::Int64(n) => u64::try_from(*n)
            .ok()
            .and_then(|n| Money::from_minor_units(n).ok()),
        Bson::Double(f) if f.is_finite() => Money::parse_decimal(&format!("{f}")).ok(),
        Bson::String(s) => Money::parse_decimal(s.trim()).ok(),
        Bson::Decimal128(d) => Money::parse_decimal(&d.to_string()).ok(),
        _ => None,
    }
}

fn time(value: &Bson) -> Option<DateTime<Utc>> {
    match value {
        Bson::DateTime(t) => DateTime::from_timestamp_millis(t.timestamp_millis()),
        Bson::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Bson::Int64(ms) => DateTime::from_timestamp_millis(*ms),
        _ => None,
    }
}

/// The order of the buyer whose identity (the engine's user id) is
/// `email`: `buyerId`, or for orders written before it existed, `userEmail`
/// (which was the user id then; it is now the address as typed).
pub async fn find_for_user(
    orders: &Collection<Document>,
    sale: &SaleId,
    email: &Email,
) -> mongodb::error::Result<Option<OrderRecord>> {
    let found = orders
        .find_one(doc! {
            field::SALE_ID: sale.as_str(),
            "$or": [
                { field::BUYER_ID: email.as_str() },
                { field::BUYER_ID: { "$exists": false }, field::USER_EMAIL: email.as_str() },
            ],
        })
        .await?;
    Ok(found.as_ref().map(OrderRecord::from_document))
}

/// How many orders of `sale` MongoDB holds: a range count on the sale's
/// index, not a scan of its documents.
pub async fn count_for_sale(
    orders: &Collection<Document>,
    sale: &SaleId,
) -> mongodb::error::Result<u64> {
    let filter = doc! { field::SALE_ID: sale.as_str() };
    with_index_or_without(Some(order::BY_SALE_NEWEST_FIRST), |hint| {
        orders
            .count_documents(filter.clone())
            .optional(hint, |c, h| c.hint(h))
    })
    .await
}

/// One page of orders (newest first), optionally of one sale, and the total.
/// A sale's page and total read through the index that has the list's
/// order (named in `hint`), so they cost the page's documents and a range
/// count however many orders there are. Without a sale it is a sort of
/// every order: no index for it, as no reader asks for that at scale and
/// every index costs the worker's inserts.
pub async fn list(
    orders: &Collection<Document>,
    sale: Option<&SaleId>,
    skip: u64,
    limit: i64,
) -> mongodb::error::Result<(Vec<OrderRecord>, u64)> {
    let (filter, index) = match sale {
        Some(sale) => (
            doc! { field::SALE_ID: sale.as_str() },
            Some(order::BY_SALE_NEWEST_FIRST),
        ),
        None => (doc! {}, None),
    };
    let total = with_index_or_without(index, |hint| {
        orders
            .count_documents(filter.clone())
            .optional(hint, |c, h| c.hint(h))
    })
    .await?;
    let docs: Vec<Document> = with_index_or_without(index, |hint| async {
        orders
            .find(filter.clone())
            .sort(doc! { field::CREATED_AT: -1, field::ID: 1 })
            .skip(skip)
            .limit(limit)
            .optional(hint, |f, h| f.hint(h))
            .await?
            .try_collect()
            .await
    })
    .await?;
    Ok((docs.iter().map(OrderRecord::from_document).collect(), total))
}

/// MongoDB's answer to a hint naming an index it does not have.
const BAD_VALUE: i32 = 2;

/// Runs `query` with a hint naming `index`, and again without one when the
/// index is not there (yet: the API creates it in the background at
/// startup), so the answer is only slower, never an error.
async fn with_index_or_without<T, F, Fut>(
    index: Option<&str>,
    query: F,
) -> mongodb::error::Result<T>
where
    F: Fn(Option<Hint>) -> Fut,
    Fut: std::future::IntoFuture<Output = mongodb::error::Result<T>>,
{
    let Some(index) = index else {
        return query(None).await;
    };
    match query(Some(Hint::Name(index.to_string()))).await {
        Err(e) if is_bad_hint(&e) => {
            tracing::warn!(index, error = %e, "orders index missing; reading without it");
            query(None).await
        }
        other => other,
    }
}

fn is_bad_hint(error: &mongodb::error::Error) -> bool {
    matches!(&*error.kind, ErrorKind::Command(e)
        if e.code == BAD_VALUE && e.message.to_ascii_lowercase().contains("hint"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::DateTime as BsonDateTime;

    #[test]
    fn reads_leniently() {
        let record = OrderRecord::from_document(&doc! {
            "_id": "s-1", "userEmail": "a@b.co", "flashSaleId": "s",
            "paymentStatus": "paid", "totalAmount": 4999_i64,
            "createdAt": BsonDateTime::from_millis(1_000), "updatedAt": "nonsense",
        });
        assert_eq!(record.order_id, "s-1");
        assert_eq!(record.total_amount.map(Money::minor_units), Some(4999));
        assert_eq!(record.created_at.map(|t| t.timestamp_millis()), Some(1_000));
        assert_eq!(record.updated_at, None);
        assert_eq!(
            money(&Bson::Double(49.99)).map(Money::minor_units),
            Some(4999)
        );
        assert_eq!(
            money(&Bson::String("1.5".into())).map(Money::minor_units),
            Some(150)
        );
        assert_eq!(money(&Bson::Int32(-1)), None);
        assert_eq!(money(&Bson::Boolean(true)), None);
    }
}
