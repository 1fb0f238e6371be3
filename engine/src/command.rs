//! Typed requests, parsed from the raw arguments the same way by the module
//! and (in Lua) by the functions library, so both refuse the same input with
//! the same error.

use std::collections::HashSet;

use crate::error::message;
use crate::ids::{is_valid_sale_id, is_valid_user_id};
use crate::keys;
use crate::number::parse_int;
use crate::EngineError;

pub const MAX_STOCK: u64 = 1_000_000_000;
pub const MAX_TIME_MS: u64 = 999_999_999_999_999;
pub const MAX_HOLD_TTL_MS: u64 = 86_400_000;
pub const MAX_RATE: u64 = 1_000_000;
pub const MAX_QUEUE: u64 = 1_000_000_000;
pub const MAX_GRANT: u64 = 10_000;
pub const MAX_AMOUNT: u64 = 999_999_999_999_999;
/// The highest order number: 15 digits, like every number in the sale
/// record, so it is exact in a Lua double. Order numbers come from the clock
/// (`rules::ORDERS_PER_MS` per ms), which reaches it in the year 2286.
pub const MAX_ORDER_NUMBER: u64 = 999_999_999_999_999;
/// Most orders one RESTORE call records, so that one call stays short.
pub const MAX_RESTORE_ORDERS: u64 = 10_000;
/// The longest pre-queue window: a day before the start.
pub const MAX_PREQUEUE_MS: u64 = 86_400_000;
/// A lottery seed: 32 bytes as lowercase hex.
pub const SEED_HEX_LEN: usize = 64;
/// SETUP's option setting the sale's pause mark: `PAUSED 1` or `PAUSED 0`.
pub const PAUSED: &str = "PAUSED";
/// DRAW's page when no offset and count are given, and its largest page.
pub const DRAW_PAGE: u64 = 100;
pub const MAX_DRAW_PAGE: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandName {
    Setup,
    Enqueue,
    Grant,
    Confirm,
    Release,
    Status,
    Restore,
    Pause,
    Resume,
    Draw,
}

impl CommandName {
    pub const ALL: [CommandName; 10] = [
        CommandName::Setup,
        CommandName::Enqueue,
        CommandName::Grant,
        CommandName::Confirm,
        CommandName::Release,
        CommandName::Status,
        CommandName::Restore,
        CommandName::Pause,
        CommandName::Resume,
        CommandName::Draw,
    ];

    /// Everything about a command's name and registration, one row each.
    const fn spec(self) -> Spec {
        const WRITE: Flags = Flags {
            writes: true,
            deny_oom: true,
            fast: false,
        };
        match self {
            CommandName::Setup => Spec {
                word: "setup",
                module_command: "FLASHSALE.SETUP",
                function_name: "flashsale_setup",
                flags: WRITE,
            },
            CommandName::Enqueue => Spec {
                word: "enqueue",
                module_command: "FLASHSALE.ENQUEUE",
                function_name: "flashsale_enqueue",
                flags: Flags {
                    fast: true,
                    ..WRITE
                },
            },
            CommandName::Grant => Spec {
                word: "grant",
                module_command: "FLASHSALE.GRANT",
                function_name: "flashsale_grant",
                flags: WRITE,
            },
            CommandName::Confirm => Spec {
                word: "confirm",
                module_command: "FLASHSALE.CONFIRM",
                function_name: "flashsale_confirm",
                flags: WRITE,
            },
            // Giving a unit back must work even when Redis is over maxmemory.
            CommandName::Release => Spec {
                word: "release",
                module_command: "FLASHSALE.RELEASE",
                function_name: "flashsale_release",
                flags: Flags {
                    deny_oom: false,
                    ..WRITE
                },
            },
            CommandName::Status => Spec {
                word: "status",
                module_command: "FLASHSALE.STATUS",
                function_name: "flashsale_status",
                flags: Flags {
                    writes: false,
                    deny_oom: false,
                    fast: true,
                },
            },
            CommandName::Restore => Spec {
                word: "restore",
                module_command: "FLASHSALE.RESTORE",
                function_name: "flashsale_restore",
                flags: WRITE,
            },
            // The emergency brake must work when Redis is over maxmemory
            // (an incident is when it is pulled); both only rewrite the sale
            // record, which stays the same size or shrinks.
            CommandName::Pause => Spec {
                word: "pause",
                module_command: "FLASHSALE.PAUSE",
                function_name: "flashsale_pause",
                flags: Flags {
                    deny_oom: false,
                    ..WRITE
                },
            },
            CommandName::Resume => Spec {
                word: "resume",
                module_command: "FLASHSALE.RESUME",
                function_name: "flashsale_resume",
                flags: Flags {
                    deny_oom: false,
                    ..WRITE
                },
            },
            // Reads the published draw, a page at a time; never draws (the
            // first write command at the start does).
            CommandName::Draw => Spec {
                word: "draw",
                module_command: "FLASHSALE.DRAW",
                function_name: "flashsale_draw",
                flags: Flags {
                    writes: false,
                    deny_oom: false,
                    fast: false,
                },
            },
        }
    }

    /// `enqueue`: the name the Lua library's rules go by.
    pub fn word(self) -> &'static str {
        self.spec().word
    }

    /// `FLASHSALE.ENQUEUE`: the module command.
    pub fn module_command(self) -> &'static str {
        self.spec().module_command
    }

    /// `flashsale_enqueue`: the Redis function.
    pub fn function_name(self) -> &'static str {
        self.spec().function_name
    }

    /// How the command is registered, by the module and by the library.
    pub fn flags(self) -> Flags {
        self.spec().flags
    }

    pub fn is_read_only(self) -> bool {
        !self.flags().writes
    }

    /// The keys of a sale this command may write without having read them,
    /// by suffix, in [`keys::TYPES`] order: `Store::check_key_types` checks
    /// these and no others, so a key the command never touches cannot make
    /// it fail. The per-user hold keys are not among them (SET and DEL take
    /// a key of any type); the other commands read each key they write.
    pub fn written_keys(self) -> &'static [&'static str] {
        use keys::{DRAW, HOLDS, LAPSED, ORDERS, OUTBOX, QUEUE, REGISTERED, SALE};
        match self {
            CommandName::Enqueue | CommandName::Grant => {
                &[SALE, QUEUE, HOLDS, LAPSED, REGISTERED, DRAW]
            }
            CommandName::Confirm => &[SALE, HOLDS, ORDERS, OUTBOX],
            CommandName::Restore => &[SALE, QUEUE, HOLDS, ORDERS, LAPSED, REGISTERED],
            CommandName::Setup
            | CommandName::Release
            | CommandName::Status
            | CommandName::Pause
            | CommandName::Resume
            | CommandName::Draw => &[],
        }
    }
}

struct Spec {
    word: &'static str,
    module_command: &'static str,
    function_name: &'static str,
    flags: Flags,
}

/// What Redis is told about a command when it is registered: the module's
/// `RedisModule_CreateCommand` flags and the library's
/// `redis.register_function` flags both come from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// Writes keys (`write`); otherwise `readonly` / `no-writes`.
    pub writes: bool,
    /// Refused while Redis is over maxmemory (`deny-oom`). A function that
    /// writes is refused then unless it says `allow-oom`; a read-only one
    /// never is.
    pub deny_oom: bool,
    /// `fast` (module commands only; functions have no such flag).
    pub fast: bool,
}

impl Flags {
    /// The flags string of `RedisModule_CreateCommand`: `write deny-oom fast`.
    pub fn module_flags(self) -> String {
        let mut flags = vec![if self.writes { "write" } else { "readonly" }];
        if self.deny_oom {
            flags.push("deny-oom");
        }
        if self.fast {
            flags.push("fast");
        }
        flags.join(" ")
    }

    /// The `flags` of `redis.register_function`.
    pub fn function_flags(self) -> &'static [&'static str] {
        match (self.writes, self.deny_oom) {
            (false, _) => &["no-writes"],
            (true, false) => &["allow-oom"],
            (true, true) => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupParams {
    pub stock: u64,
    pub starts_at: u64,
    pub ends_at: u64,
    pub hold_ttl_ms: u64,
    /// Holds per second over all callers of GRANT; 0 = unlimited.
    pub rate: u64,
    /// Longest queue; 0 = unlimited.
    pub max_queue: u64,
    /// The price of a unit in minor units, which CONFIRM charges. `None`
    /// keeps the sale's price (a new sale then has none, and CONFIRM
    /// records the amount it is given).
    pub price: Option<u64>,
}

/// SETUP's pre-queue lottery options, apart from [`SetupParams`] so that a
/// SETUP without them is built exactly as before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LotteryParams {
    /// `PREQUEUE`: the pre-queue window in ms before the start (0: none).
    /// `None` keeps the sale's.
    pub prequeue_ms: Option<u64>,
    /// `SEED`: the lottery seed ([`SEED_HEX_LEN`] lowercase hex). `None`
    /// keeps the sale's.
    pub seed: Option<String>,
}

/// One order RESTORE records: `order_id` is `<sale>-<number>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredOrder {
    pub user: String,
    pub order_id: String,
    /// The number in `order_id`, 1 to [`MAX_ORDER_NUMBER`].
    pub number: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Setup {
        sale: String,
        params: SetupParams,
        lottery: LotteryParams,
        /// `PAUSED 1|0`: the sale's pause mark, set or cleared in the same
        /// command (a sale set up again after a loss comes back paused
        /// with no moment in between). `None` keeps the sale's.
        paused: Option<bool>,
    },
    Enqueue {
        sale: String,
        user: String,
    },
    Grant {
        sale: String,
        max: u64,
    },
    Confirm {
        sale: String,
        user: String,
        /// What the buyer expects to pay: must be the sale's price when it
        /// has one. `None`: the sale's price.
        amount: Option<u64>,
        /// The buyer's address as typed (`CONTACT`), kept in the order's
        /// outbox entry: `user` may be a normalised identity
        /// (`bob+tag@x.com` → `bob@x.com`). `None`: the order's contact is
        /// `user`.
        contact: Option<String>,
    },
    Release {
        sale: String,
        user: String,
    },
    Status {
        sale: String,
        user: Option<String>,
    },
    Restore {
        sale: String,
        /// No user and no order id twice.
        orders: Vec<RestoredOrder>,
    },
    Pause {
        sale: String,
    },
    Resume {
        sale: String,
    },
    Draw {
        sale: String,
        offset: u64,
        count: u64,
    },
}

impl Command {
    pub fn sale(&self) -> &str {
        match self {
            Command::Setup { sale, .. }
            | Command::Enqueue { sale, .. }
            | Command::Grant { sale, .. }
            | Command::Confirm { sale, .. }
            | Command::Release { sale, .. }
            | Command::Status { sale, .. }
            | Command::Restore { sale, .. }
            | Command::Pause { sale }
            | Command::Resume { sale }
            | Command::Draw { sale, .. } => sale,
        }
    }

    pub fn name(&self) -> CommandName {
        match self {
            Command::Setup { .. } => CommandName::Setup,
            Command::Enqueue { .. } => CommandName::Enqueue,
            Command::Grant { .. } => CommandName::Grant,
            Command::Confirm { .. } => CommandName::Confirm,
            Command::Release { .. } => CommandName::Release,
            Command::Status { .. } => CommandName::Status,
            Command::Restore { .. } => CommandName::Restore,
            Command::Pause { .. } => CommandName::Pause,
            Command::Resume { .. } => CommandName::Resume,
            Command::Draw { .. } => CommandName::Draw,
        }
    }

    /// The arguments after the command name, as a client sends them.
    pub fn to_args(&self) -> Vec<String> {
        match self {
            Command::Setup {
                sale,
                params,
                lottery,
                paused,
            } => {
                let mut args = vec![
                    sale.clone(),
                    params.stock.to_string(),
                    params.starts_at.to_string(),
                    params.ends_at.to_string(),
                    params.hold_ttl_ms.to_string(),
                ];
                if params.rate > 0 {
                    args.extend(["RATE".to_string(), params.rate.to_string()]);
                }
                if params.max_queue > 0 {
                    args.extend(["MAXQUEUE".to_string(), params.max_queue.to_string()]);
                }
                if let Some(price) = params.price {
                    args.extend(["PRICE".to_string(), price.to_string()]);
                }
                if let Some(ms) = lottery.prequeue_ms {
                    args.extend(["PREQUEUE".to_string(), ms.to_string()]);
                }
                if let Some(seed) = &lottery.seed {
                    args.extend(["SEED".to_string(), seed.clone()]);
                }
                if let Some(paused) = paused {
                    args.extend([PAUSED.to_string(), u64::from(*paused).to_string()]);
                }
                args
            }
            Command::Enqueue { sale, user } | Command::Release { sale, user } => {
                vec![sale.clone(), user.clone()]
            }
            Command::Grant { sale, max } => vec![sale.clone(), max.to_string()],
            Command::Confirm {
                sale,
                user,
                amount,
                contact,
            } => {
                let mut args = vec![sale.clone(), user.clone()];
                args.extend(amount.map(|a| a.to_string()));
                if let Some(contact) = contact {
                    args.extend([CONTACT.to_string(), contact.clone()]);
                }
                args
            }
            Command::Status { sale, user } => {
                let mut args = vec![sale.clone()];
                args.extend(user.clone());
                args
            }
            Command::Restore { sale, orders } => {
                let mut args = vec![sale.clone()];
                for order in orders {
                    args.extend([order.user.clone(), order.order_id.clone()]);
                }
                args
            }
            Command::Pause { sale } | Command::Resume { sale } => vec![sale.clone()],
            Command::Draw {
                sale,
                offset,
                count,
            } => vec![sale.clone(), offset.to_string(), count.to_string()],
        }
    }
}

/// The number of `order_id` if it is an order id of `sale` the engine can
/// have issued: `<sale>-<n>`, `n` from 1 to [`MAX_ORDER_NUMBER`] without
/// leading zeros.
pub fn restorable_order_number(sale: &str, order_id: &str) -> Option<u64> {
    crate::keys::order_number(sale, order_id).filter(|n| (1..=MAX_ORDER_NUMBER).contains(n))
}

fn wrong_arity(name: CommandName) -> EngineError {
    EngineError::err(message::wrong_arity(name.module_command()))
}

fn sale_id(raw: &[u8]) -> Result<String, EngineError> {
    if !is_valid_sale_id(raw) {
        return Err(EngineError::err(message::INVALID_SALE_ID));
    }
    // Valid ids are ASCII, so UTF-8: no lossy pass needed.
    String::from_utf8(raw.to_vec()).map_err(|_| EngineError::err(message::INVALID_SALE_ID))
}

/// A lottery seed: exactly [`SEED_HEX_LEN`] of `0-9a-f`, so the engine
/// and the Lua library hash the same bytes.
fn seed_hex(raw: &[u8]) -> Result<String, EngineError> {
    if raw.len() != SEED_HEX_LEN || !raw.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(EngineError::err(message::INVALID_SEED));
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// CONFIRM's option naming the buyer's address as typed.
pub const CONTACT: &str = "CONTACT";

fn user_id(raw: &[u8]) -> Result<String, EngineError> {
    if !is_valid_user_id(raw) {
        return Err(EngineError::err(message::INVALID_USER_ID));
    }
    String::from_utf8(raw.to_vec()).map_err(|_| EngineError::err(message::INVALID_USER_ID))
}

/// Parses the arguments that follow the command name (the sale id first).
/// Checks run in a fixed order — arity, sale id, then each argument left to
/// right — so every backend reports the same first problem.
pub fn parse<A: AsRef<[u8]>>(name: CommandName, args: &[A]) -> Result<Command, EngineError> {
    let arg = |i: usize| args[i].as_ref();
    let arity_ok = match name {
        CommandName::Setup => args.len() >= 5,
        CommandName::Enqueue | CommandName::Grant | CommandName::Release => args.len() == 2,
        // The user, then an optional amount and an optional CONTACT <address>.
        CommandName::Confirm => (2..=5).contains(&args.len()),
        CommandName::Status => args.len() == 1 || args.len() == 2,
        CommandName::Pause | CommandName::Resume => args.len() == 1,
        // The sale, then optionally an offset and a count.
        CommandName::Draw => args.len() == 1 || args.len() == 3,
        // The sale, then user/order id pairs.
        CommandName::Restore => args.len() >= 3 && args.len() % 2 == 1,
    };
    if !arity_ok {
        return Err(wrong_arity(name));
    }
    let sale = sale_id(arg(0))?;
    Ok(match name {
        CommandName::Setup => {
            let stock = parse_int(arg(1), "stock", 0, MAX_STOCK)?;
            let starts_at = parse_int(arg(2), "starts_at", 0, MAX_TIME_MS)?;
            let ends_at = parse_int(arg(3), "ends_at", 0, MAX_TIME_MS)?;
            let hold_ttl_ms = parse_int(arg(4), "hold_ttl_ms", 1, MAX_HOLD_TTL_MS)?;
            let (mut rate, mut max_queue, mut price) = (None, None, None);
            let (mut prequeue_ms, mut seed, mut paused) = (None, None, None);
            let mut i = 5;
            while i < args.len() {
                let option = arg(i).to_ascii_uppercase();
                // SEED's value is text, not a number.
                if option == b"SEED" {
                    if seed.is_some() || i + 1 >= args.len() {
                        return Err(EngineError::err(message::SYNTAX));
                    }
                    seed = Some(seed_hex(arg(i + 1))?);
                    i += 2;
                    continue;
                }
                let (slot, name, min, max) = match option.as_slice() {
                    b"RATE" => (&mut rate, "RATE", 1, MAX_RATE),
                    b"MAXQUEUE" => (&mut max_queue, "MAXQUEUE", 1, MAX_QUEUE),
                    b"PRICE" => (&mut price, "PRICE", 0, MAX_AMOUNT),
                    b"PREQUEUE" => (&mut prequeue_ms, "PREQUEUE", 0, MAX_PREQUEUE_MS),
                    // 1 sets the pause mark, 0 clears it.
                    b"PAUSED" => (&mut paused, PAUSED, 0, 1),
                    _ => return Err(EngineError::err(message::SYNTAX)),
                };
                if slot.is_some() || i + 1 >= args.len() {
                    return Err(EngineError::err(message::SYNTAX));
                }
                *slot = Some(parse_int(arg(i + 1), name, min, max)?);
                i += 2;
            }
            if ends_at <= starts_at {
                return Err(EngineError::err(message::ENDS_BEFORE_START));
            }
            Command::Setup {
                sale,
                params: SetupParams {
                    stock,
                    starts_at,
                    ends_at,
                    hold_ttl_ms,
                    rate: rate.unwrap_or(0),
                    max_queue: max_queue.unwrap_or(0),
                    price,
                },
                lottery: LotteryParams { prequeue_ms, seed },
                paused: paused.map(|flag| flag == 1),
            }
        }
        CommandName::Enqueue => Command::Enqueue {
            sale,
            user: user_id(arg(1))?,
        },
        CommandName::Grant => Command::Grant {
            sale,
            max: parse_int(arg(1), "max", 1, MAX_GRANT)?,
        },
        CommandName::Confirm => {
            let user = user_id(arg(1))?;
            let is_contact = |i: usize| arg(i).eq_ignore_ascii_case(CONTACT.as_bytes());
            // An amount is digits, so it is never the option's name.
            let mut i = 2;
            let mut amount = None;
            if i < args.len() && !is_contact(i) {
                amount = Some(parse_int(arg(i), "amount", 0, MAX_AMOUNT)?);
                i += 1;
            }
            let mut contact = None;
            if i < args.len() {
                // Only CONTACT, once, with its value, may follow.
                if !is_contact(i) || i + 2 != args.len() {
                    return Err(EngineError::err(message::SYNTAX));
                }
                if !is_valid_user_id(arg(i + 1)) {
                    return Err(EngineError::err(message::INVALID_CONTACT));
                }
                contact = Some(String::from_utf8_lossy(arg(i + 1)).into_owned());
            }
            Command::Confirm {
                sale,
                user,
                amount,
                contact,
            }
        }
        CommandName::Release => Command::Release {
            sale,
            user: user_id(arg(1))?,
        },
        CommandName::Status => Command::Status {
            sale,
            user: match args.get(1) {
                Some(raw) => Some(user_id(raw.as_ref())?),
                None => None,
            },
        },
        CommandName::Restore => {
            let count = (args.len() - 1) / 2;
            if count as u64 > MAX_RESTORE_ORDERS {
                return Err(EngineError::err(message::too_many_orders(
                    MAX_RESTORE_ORDERS,
                )));
            }
            let mut orders: Vec<RestoredOrder> = Vec::with_capacity(count);
            let (mut users, mut numbers) = (HashSet::new(), HashSet::new());
            for pair in args[1..].chunks(2) {
                let user = user_id(pair[0].as_ref())?;
                if !users.insert(user.clone()) {
                    return Err(EngineError::err(message::USER_TWICE));
                }
                let order_id = String::from_utf8_lossy(pair[1].as_ref()).into_owned();
                let number = restorable_order_number(&sale, &order_id)
                    .ok_or_else(|| EngineError::err(message::INVALID_ORDER_ID))?;
                if !numbers.insert(number) {
                    return Err(EngineError::err(message::ORDER_ID_TWICE));
                }
                orders.push(RestoredOrder {
                    user,
                    order_id,
                    number,
                });
            }
            Command::Restore { sale, orders }
        }
        CommandName::Pause => Command::Pause { sale },
        CommandName::Resume => Command::Resume { sale },
        CommandName::Draw => {
            let (offset, count) = if args.len() == 3 {
                (
                    parse_int(arg(1), "offset", 0, MAX_QUEUE)?,
                    parse_int(arg(2), "count", 1, MAX_DRAW_PAGE)?,
                )
            } else {
                (0, DRAW_PAGE)
            };
            Command::Draw {
                sale,
                offset,
                count,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: CommandName, args: &[&str]) -> Result<Command, String> {
        parse(name, args).map_err(|e| e.to_string())
    }

    #[test]
    fn setup_with_options_in_any_case_and_order() {
        let cmd = p(
            CommandName::Setup,
            &[
                "s", "10", "100", "200", "5000", "maxqueue", "7", "Rate", "3", "price", "0",
            ],
        );
        assert_eq!(
            cmd,
            Ok(Command::Setup {
                sale: "s".into(),
                params: SetupParams {
                    stock: 10,
                    starts_at: 100,
                    ends_at: 200,
                    hold_ttl_ms: 5000,
                    rate: 3,
                    max_queue: 7,
                    price: Some(0),
                },
                lottery: LotteryParams::default(),
                paused: None,
            })
        );
    }

    #[test]
    fn setup_with_a_prequeue_window_and_a_seed() {
        let seed = "0123456789abcdef".repeat(4);
        let cmd = p(
            CommandName::Setup,
            &[
                "s", "10", "100", "200", "5000", "seed", &seed, "PreQueue", "60000",
            ],
        );
        let Ok(Command::Setup { lottery, .. }) = cmd else {
            panic!("{cmd:?}");
        };
        assert_eq!(lottery.prequeue_ms, Some(60_000));
        assert_eq!(lottery.seed.as_deref(), Some(seed.as_str()));
        let err = |args: &[&str]| p(CommandName::Setup, args).expect_err("must fail");
        let base = ["s", "1", "1", "5", "4"];
        fn with<'a>(base: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
            [base, tail].concat()
        }
        assert_eq!(
            err(&with(&base, &["PREQUEUE", "86400001"])),
            "ERR PREQUEUE must be an integer from 0 to 86400000"
        );
        let upper = seed.to_ascii_uppercase();
        let short = &seed[1..];
        let long = format!("{seed}0");
        for bad in [upper.as_str(), short, long.as_str(), "", "xyz"] {
            assert_eq!(
                err(&with(&base, &["SEED", bad])),
                "ERR SEED must be 64 lowercase hex digits",
                "{bad}"
            );
        }
        assert_eq!(err(&with(&base, &["SEED"])), "ERR syntax error");
        assert_eq!(
            err(&with(&base, &["SEED", &seed, "SEED", &seed])),
            "ERR syntax error"
        );
    }

    #[test]
    fn setup_with_the_pause_mark() {
        let paused = |args: &[&str]| match p(CommandName::Setup, args) {
            Ok(Command::Setup { paused, .. }) => Ok(paused),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let base = ["s", "1", "1", "5", "4"];
        let with = |tail: &[&str]| paused(&[&base[..], tail].concat());
        assert_eq!(with(&[]), Ok(None));
        assert_eq!(with(&["PAUSED", "1"]), Ok(Some(true)));
        assert_eq!(with(&["paused", "0", "PRICE", "5"]), Ok(Some(false)));
        // An integer like any other: leading zeros are fine.
        assert_eq!(with(&["Paused", "01"]), Ok(Some(true)));
        for bad in ["2", "-1", "yes", "true", ""] {
            assert_eq!(
                with(&["PAUSED", bad]),
                Err("ERR PAUSED must be an integer from 0 to 1".to_string()),
                "{bad}"
            );
        }
        assert_eq!(with(&["PAUSED"]), Err("ERR syntax error".to_string()));
        assert_eq!(
            with(&["PAUSED", "1", "PAUSED", "1"]),
            Err("ERR syntax error".to_string())
        );
        // Options before the window.
        assert_eq!(
            paused(&["s", "1", "9", "5", "4", "PAUSED", "2"]),
            Err("ERR PAUSED must be an integer from 0 to 1".to_string())
        );
    }

    #[test]
    fn draw_takes_an_optional_page() {
        assert_eq!(
            p(CommandName::Draw, &["s"]),
            Ok(Command::Draw {
                sale: "s".into(),
                offset: 0,
                count: 100
            })
        );
        assert_eq!(
            p(CommandName::Draw, &["s", "5", "1000"]),
            Ok(Command::Draw {
                sale: "s".into(),
                offset: 5,
                count: 1000
            })
        );
        assert_eq!(
            p(CommandName::Draw, &["s", "5"]).expect_err("arity"),
            "ERR wrong number of arguments for 'FLASHSALE.DRAW'"
        );
        assert_eq!(
            p(CommandName::Draw, &["s", "0", "0"]).expect_err("count"),
            "ERR count must be an integer from 1 to 1000"
        );
    }

    #[test]
    fn setup_errors_in_a_fixed_order() {
        use CommandName::Setup;
        let err = |args: &[&str]| p(Setup, args).expect_err("must fail");
        assert_eq!(
            err(&["s", "1", "2", "3"]),
            "ERR wrong number of arguments for 'FLASHSALE.SETUP'"
        );
        assert_eq!(err(&["s{", "x", "2", "3", "4"]), "ERR invalid sale id");
        assert_eq!(
            err(&["s", "-1", "2", "3", "4"]),
            "ERR stock must be an integer from 0 to 1000000000"
        );
        assert_eq!(
            err(&["s", "1", "5", "5", "4"]),
            "ERR ends_at must be after starts_at"
        );
        assert_eq!(
            err(&["s", "1", "1", "5", "0"]),
            "ERR hold_ttl_ms must be an integer from 1 to 86400000"
        );
        assert_eq!(err(&["s", "1", "1", "5", "4", "RATE"]), "ERR syntax error");
        assert_eq!(
            err(&["s", "1", "1", "5", "4", "RATE", "1", "RATE", "2"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["s", "1", "1", "5", "4", "SPEED", "1"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["s", "1", "1", "5", "4", "RATE", "0"]),
            "ERR RATE must be an integer from 1 to 1000000"
        );
        assert_eq!(
            err(&["s", "1", "1", "5", "4", "PRICE", "-1"]),
            "ERR PRICE must be an integer from 0 to 999999999999999"
        );
        assert_eq!(
            err(&["s", "1", "1", "5", "4", "PRICE", "1", "PRICE", "1"]),
            "ERR syntax error"
        );
        // Options are checked before the window.
        assert_eq!(
            err(&["s", "1", "9", "5", "4", "X", "1"]),
            "ERR syntax error"
        );
    }

    #[test]
    fn other_commands() {
        assert_eq!(
            p(CommandName::Confirm, &["s", "u@x.io"]),
            Ok(Command::Confirm {
                sale: "s".into(),
                user: "u@x.io".into(),
                amount: None,
                contact: None,
            })
        );
        assert_eq!(
            p(CommandName::Grant, &["s", "0"]).expect_err("max 0"),
            "ERR max must be an integer from 1 to 10000"
        );
        assert_eq!(
            p(CommandName::Enqueue, &["s", "a b"]).expect_err("bad user"),
            "ERR invalid user id"
        );
        assert_eq!(
            p(CommandName::Status, &["s", "u", "x"]).expect_err("arity"),
            "ERR wrong number of arguments for 'FLASHSALE.STATUS'"
        );
        assert_eq!(
            p(CommandName::Status, &["s"]),
            Ok(Command::Status {
                sale: "s".into(),
                user: None
            })
        );
    }

    #[test]
    fn registration_flags() {
        let module: Vec<String> = CommandName::ALL
            .iter()
            .map(|name| name.flags().module_flags())
            .collect();
        assert_eq!(
            module,
            [
                "write deny-oom",
                "write deny-oom fast",
                "write deny-oom",
                "write deny-oom",
                "write",
                "readonly fast",
                "write deny-oom",
                "write",
                "write",
                "readonly",
            ]
        );
        let functions: Vec<&[&str]> = CommandName::ALL
            .iter()
            .map(|name| name.flags().function_flags())
            .collect();
        let none: &[&str] = &[];
        assert_eq!(
            functions,
            [
                none,
                none,
                none,
                none,
                &["allow-oom"],
                &["no-writes"],
                none,
                &["allow-oom"],
                &["allow-oom"],
                &["no-writes"]
            ]
        );
        for name in CommandName::ALL {
            assert_eq!(name.function_name(), format!("flashsale_{}", name.word()));
            assert_eq!(
                name.module_command(),
                format!("FLASHSALE.{}", name.word().to_ascii_uppercase())
            );
            // A read-only command cannot be told apart by deny-oom in Lua.
            assert!(name.flags().writes || !name.flags().deny_oom);
        }
    }

    #[test]
    fn to_args_round_trips() {
        for cmd in [
            Command::Setup {
                sale: "s".into(),
                params: SetupParams {
                    stock: 1,
                    starts_at: 2,
                    ends_at: 3,
                    hold_ttl_ms: 4,
                    rate: 5,
                    max_queue: 6,
                    price: Some(8),
                },
                lottery: LotteryParams::default(),
                paused: Some(true),
            },
            Command::Setup {
                sale: "s".into(),
                params: SetupParams {
                    stock: 1,
                    starts_at: 2,
                    ends_at: 3,
                    hold_ttl_ms: 4,
                    rate: 0,
                    max_queue: 0,
                    price: None,
                },
                lottery: LotteryParams {
                    prequeue_ms: Some(0),
                    seed: Some("a".repeat(64)),
                },
                paused: Some(false),
            },
            Command::Setup {
                sale: "s".into(),
                params: SetupParams {
                    stock: 1,
                    starts_at: 2,
                    ends_at: 3,
                    hold_ttl_ms: 4,
                    rate: 0,
                    max_queue: 0,
                    price: None,
                },
                lottery: LotteryParams::default(),
                paused: None,
            },
            Command::Draw {
                sale: "s".into(),
                offset: 3,
                count: 4,
            },
            Command::Confirm {
                sale: "s".into(),
                user: "u".into(),
                amount: Some(7),
                contact: None,
            },
            Command::Confirm {
                sale: "s".into(),
                user: "u".into(),
                amount: None,
                contact: None,
            },
            Command::Confirm {
                sale: "s".into(),
                user: "bob@x.com".into(),
                amount: Some(7),
                contact: Some("Bob+tag@x.com".into()),
            },
            Command::Confirm {
                sale: "s".into(),
                user: "u".into(),
                amount: None,
                contact: Some("u".into()),
            },
            Command::Pause { sale: "s".into() },
            Command::Resume { sale: "s".into() },
            Command::Status {
                sale: "s".into(),
                user: Some("u".into()),
            },
            Command::Restore {
                sale: "s-1".into(),
                orders: vec![
                    RestoredOrder {
                        user: "u".into(),
                        order_id: "s-1-180000000000000".into(),
                        number: 180_000_000_000_000,
                    },
                    RestoredOrder {
                        user: "v@x.io".into(),
                        order_id: "s-1-7".into(),
                        number: 7,
                    },
                ],
            },
        ] {
            assert_eq!(parse(cmd.name(), &cmd.to_args()), Ok(cmd));
        }
    }

    #[test]
    fn confirm_with_a_contact() {
        let confirm = |args: &[&str]| p(CommandName::Confirm, args);
        assert_eq!(
            confirm(&["s", "bob@x.com", "contact", "Bob+1@x.com"]),
            Ok(Command::Confirm {
                sale: "s".into(),
                user: "bob@x.com".into(),
                amount: None,
                contact: Some("Bob+1@x.com".into()),
            })
        );
        let err = |args: &[&str]| confirm(args).expect_err("must fail");
        // Arguments left to right: user, amount, then the option.
        assert_eq!(
            err(&["s", "a b", "x", "CONTACT", "c"]),
            "ERR invalid user id"
        );
        assert_eq!(
            err(&["s", "u", "x", "CONTACT", "c d"]),
            "ERR amount must be an integer from 0 to 999999999999999"
        );
        assert_eq!(err(&["s", "u", "CONTACT"]), "ERR syntax error");
        assert_eq!(err(&["s", "u", "1", "CONTACT"]), "ERR syntax error");
        assert_eq!(err(&["s", "u", "1", "2"]), "ERR syntax error");
        assert_eq!(
            err(&["s", "u", "CONTACT", "c", "CONTACT"]),
            "ERR syntax error"
        );
        assert_eq!(err(&["s", "u", "CONTACT", "c", "1"]), "ERR syntax error");
        assert_eq!(
            err(&["s", "u", "1", "CONTACT", "c:d"]),
            "ERR invalid contact"
        );
        let long = "a".repeat(129);
        assert_eq!(err(&["s", "u", "CONTACT", &long]), "ERR invalid contact");
        assert_eq!(
            err(&["s", "u", "1", "CONTACT", "c", "x"]),
            "ERR wrong number of arguments for 'FLASHSALE.CONFIRM'"
        );
    }

    #[test]
    fn pause_and_resume_take_the_sale_only() {
        assert_eq!(
            p(CommandName::Pause, &["s"]),
            Ok(Command::Pause { sale: "s".into() })
        );
        assert_eq!(
            p(CommandName::Resume, &["s", "x"]).expect_err("arity"),
            "ERR wrong number of arguments for 'FLASHSALE.RESUME'"
        );
        assert_eq!(
            p(CommandName::Pause, &["s{"]).expect_err("sale id"),
            "ERR invalid sale id"
        );
    }

    #[test]
    fn restore_errors_in_a_fixed_order() {
        let err = |args: &[&str]| p(CommandName::Restore, args).expect_err("must fail");
        let arity = "ERR wrong number of arguments for 'FLASHSALE.RESTORE'";
        assert_eq!(err(&["s"]), arity);
        assert_eq!(err(&["s", "u"]), arity);
        assert_eq!(err(&["s", "u", "s-1", "v"]), arity);
        assert_eq!(err(&["s{", "u", "x"]), "ERR invalid sale id");
        // Every pair left to right: user, repeated user, order id, repeated
        // order id.
        assert_eq!(err(&["s", "u", "s-1", "a b", "x"]), "ERR invalid user id");
        assert_eq!(
            err(&["s", "u", "s-1", "u", "x"]),
            "ERR a user is given twice"
        );
        for bad in [
            "x",
            "s-",
            "s-0",
            "s-01",
            "s--1",
            "s-+1",
            "s-1 ",
            "t-1",
            "s-1000000000000000",
            "s-99999999999999999999999",
        ] {
            assert_eq!(
                err(&["s", "u", bad, "a b", "s-2"]),
                "ERR invalid order id",
                "{bad}"
            );
        }
        assert_eq!(
            err(&["s", "u", "s-1", "v", "s-1", "a b", "x"]),
            "ERR an order id is given twice"
        );
        let mut many = vec!["s".to_string()];
        for i in 0..=MAX_RESTORE_ORDERS {
            many.extend([format!("u{i}"), format!("s-{}", i + 1)]);
        }
        assert_eq!(
            parse(CommandName::Restore, &many).map_err(|e| e.to_string()),
            Err("ERR at most 10000 orders per call".to_string())
        );
        many.truncate(many.len() - 2);
        assert!(parse(CommandName::Restore, &many).is_ok());
        // The highest order number.
        let top = p(CommandName::Restore, &["s", "u", "s-999999999999999"]);
        assert!(
            matches!(&top, Ok(Command::Restore { orders, .. }) if orders[0].number == MAX_ORDER_NUMBER),
            "{top:?}"
        );
    }
}
