//! Who was handed a person's buyer token in a sale. A token is handed out
//! once per person and sale, to the buy that took their place: the claim is
//! an `HSETNX` of the identity in a per-sale Redis hash (in the sale's slot)
//! holding the digest of that buy's client key, so a buy whose answer was
//! lost gets the token again by repeating its key.
//!
//! A new buyer's buy makes one round trip: ENQUEUE and the claim travel in
//! one pipeline. The claim then runs whatever ENQUEUE answers, so a claim
//! won by a buy that took no place (not started, holding, bought, refused)
//! is taken back at once — else whoever sent an address before the start
//! would own its token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flashsale::EnqueueReply;
use redis::Value;

use crate::buyer_token::ClientKey;
use crate::domain::{Email, SaleId};
use crate::error::ApiError;
use crate::state::AppState;

/// The Redis hash of a sale's claims. It expires with the tokens.
fn claims_key(sale: &SaleId) -> String {
    format!("flashsale-api:{{{sale}}}:buyer-tokens")
}

/// Whether ENQUEUE's answer means a place was taken — or is a repeat of
/// one, which the claim tells apart.
pub(crate) fn takes_a_place(reply: &EnqueueReply) -> bool {
    matches!(
        reply,
        EnqueueReply::Queued { .. } | EnqueueReply::Registered { .. }
    )
}

/// How long after a refused buy the buys of a sale skip the claim.
const REFUSING_FOR: Duration = Duration::from_millis(500);

/// Sales whose ENQUEUE took no place a moment ago (sold out, ended, paused,
/// not started, queue full). Their buys go the careful way for a moment —
/// one round trip and no write for a refusal, instead of the claim and its
/// undoing — since at the end of a busy sale nearly every buy is refused.
/// Only a hint: either way gives the same answers.
#[derive(Clone, Default)]
pub struct RefusingSales(Arc<Mutex<HashMap<String, Instant>>>);

impl RefusingSales {
    fn refused(&self, sale: &SaleId) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() > 10_000 {
                map.retain(|_, at| at.elapsed() < REFUSING_FOR);
            }
            map.insert(sale.as_str().to_string(), Instant::now());
        }
    }

    fn refusing(&self, sale: &SaleId) -> bool {
        self.0.lock().is_ok_and(|map| {
            map.get(sale.as_str())
                .is_some_and(|at| at.elapsed() < REFUSING_FOR)
        })
    }
}

/// Whether ENQUEUE refused the buy (not started, ended, sold out, paused,
/// queue full) rather than answering with the buyer's place, hold or order.
fn refuses(reply: &EnqueueReply) -> bool {
    !takes_a_place(reply)
        && !matches!(
            reply,
            EnqueueReply::Holding { .. } | EnqueueReply::Purchased { .. }
        )
}

/// The claim's commands: `HSETNX` of the identity with the client key's
/// digest (empty without one), the hash's expiry, and — with a client key —
/// the stored digest, to recognise a repeated buy.
fn claim_commands(
    sale: &SaleId,
    identity: &Email,
    digest: &str,
    expires_at: u64,
    read_back: bool,
) -> Vec<redis::Cmd> {
    let key = claims_key(sale);
    let mut commands = vec![
        redis::cmd("HSETNX")
            .arg(&key)
            .arg(identity.as_str())
            .arg(digest)
            .to_owned(),
        redis::cmd("EXPIREAT").arg(&key).arg(expires_at).to_owned(),
    ];
    if read_back {
        commands.push(
            redis::cmd("HGET")
                .arg(&key)
                .arg(identity.as_str())
                .to_owned(),
        );
    }
    commands
}

/// The buy of someone without a token: ENQUEUE, and the token when this buy
/// took the place (or repeats the client key of the buy that did).
pub(crate) async fn enqueue_and_claim(
    state: &AppState,
    sale: &SaleId,
    identity: &Email,
    client_key: Option<&ClientKey>,
) -> Result<(EnqueueReply, Option<String>), ApiError> {
    let tokens = &state.buyer_tokens;
    // The token's expiry needs the sale's end; the first buy after a start
    // of the API learns it the careful way.
    let ends_at = match tokens.cached_end(sale) {
        Some(end) if !state.live.refusing.refusing(sale) => end,
        // The rarer ways are boxed, so that the buy's future (made and
        // moved on every buy) is the size of the usual way's.
        _ => return Box::pin(enqueue_then_claim(state, sale, identity, client_key)).await,
    };
    let expires_at = tokens.expiry_for(ends_at);
    let digest = client_key.map(ClientKey::digest).unwrap_or_default();
    let commands = claim_commands(sale, identity, &digest, expires_at, client_key.is_some());
    let (reply, replies) = state.live.enqueue_then(sale, identity, &commands).await?;
    let won = matches!(replies.first(), Some(Value::Int(1)));
    let Some(reply) = reply else {
        // An error: the careful way, which recovers a lost sale.
        if won {
            Box::pin(unclaim(state, sale, identity)).await?;
        }
        return Box::pin(enqueue_then_claim(state, sale, identity, client_key)).await;
    };
    let new_place = takes_a_place(&reply);
    if won && !new_place {
        Box::pin(unclaim(state, sale, identity)).await?;
    }
    if refuses(&reply) {
        state.live.refusing.refused(sale);
    }
    // A claim this buy won earns the token for a place taken; otherwise
    // only repeating the first buy's client key does.
    let token = if won {
        new_place
    } else {
        repeats(client_key, stored_digest(replies.get(2)))
    };
    Ok((
        reply,
        token.then(|| tokens.sign(sale, identity, expires_at)),
    ))
}

/// ENQUEUE, then the claim (two round trips, with [`LiveSales::run`]'s
/// recoveries).
///
/// [`LiveSales::run`]: crate::live_sales::LiveSales
async fn enqueue_then_claim(
    state: &AppState,
    sale: &SaleId,
    identity: &Email,
    client_key: Option<&ClientKey>,
) -> Result<(EnqueueReply, Option<String>), ApiError> {
    let reply = state.live.enqueue(sale, identity).await?;
    let new_place = takes_a_place(&reply);
    if refuses(&reply) {
        state.live.refusing.refused(sale);
    }

    let token = claim(state, sale, identity, client_key, new_place).await?;
    Ok((reply, token))
}

/// A token for `identity`: when `new_place` (a place just taken) and none
/// was handed out for them in this sale before — atomically: of two buys
/// racing for one address, one wins — or when the buy repeats the first
/// one's client key.
pub(crate) async fn claim(
    state: &AppState,
    sale: &SaleId,
    identity: &Email,
    client_key: Option<&ClientKey>,
    new_place: bool,
) -> Result<Option<String>, ApiError> {
    if !new_place && client_key.is_none() {
        return Ok(None);
    }
    let tokens = &state.buyer_tokens;
    let ends_at = match tokens.cached_end(sale) {
        Some(end) => end,
        None => {
            let live = state.live.status(sale, None).await?.sale;
            tokens.remember_end(sale, live.ends_at);
            live.ends_at
        }
    };
    let expires_at = tokens.expiry_for(ends_at);
    let digest = client_key.map(ClientKey::digest).unwrap_or_default();
    let mut pipe = redis::pipe();
    if new_place {
        for cmd in claim_commands(sale, identity, &digest, expires_at, false) {
            pipe.add_command(cmd);
        }
        pipe.ignore();
    }
    pipe.cmd("HGET")
        .arg(claims_key(sale))
        .arg(identity.as_str());
    let mut redis = state.redis.clone();
    let (won, stored) = if new_place {
        pipe.query_async::<(bool, Option<String>)>(&mut redis)
            .await?
    } else {
        (
            false,
            pipe.query_async::<(Option<String>,)>(&mut redis).await?.0,
        )
    };
    let token = won || repeats(client_key, stored.as_deref());
    Ok(token.then(|| tokens.sign(sale, identity, expires_at)))
}

/// Takes back a claim this buy just won for a place it did not take.
async fn unclaim(state: &AppState, sale: &SaleId, identity: &Email) -> Result<(), ApiError> {
    redis::cmd("HDEL")
        .arg(claims_key(sale))
        .arg(identity.as_str())
        .query_async::<()>(&mut state.redis.clone())
        .await?;
    Ok(())
}

fn stored_digest(reply: Option<&Value>) -> Option<&str> {
    match reply {
        Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok(),
        _ => None,
    }
}

/// Whether the buy repeats the client key of the buy that took the place.
fn repeats(client_key: Option<&ClientKey>, stored: Option<&str>) -> bool {
    client_key.is_some_and(|k| stored.is_some_and(|s| k.matches(s)))
}
