//! The constants of the Lua library, generated from their Rust declarations
//! into the marked blocks of `lua/flashsale.lua`: limits, the sale record's
//! fields, the key layout and key types, command names and registration
//! flags, error texts, the outbox entry's fields. The rules stay ported by
//! hand; what they are made of comes from here.
//!
//! `cargo test -p engine` fails while the file's blocks differ from what
//! this renders; `UPDATE_EXPECT=1 cargo test -p engine` rewrites them.

use std::fmt::Write as _;
use std::path::Path;

use crate::command::{
    CommandName, CONTACT, DRAW_PAGE, MAX_AMOUNT, MAX_DRAW_PAGE, MAX_GRANT, MAX_HOLD_TTL_MS,
    MAX_ORDER_NUMBER, MAX_PREQUEUE_MS, MAX_QUEUE, MAX_RATE, MAX_RESTORE_ORDERS, MAX_STOCK,
    MAX_TIME_MS, PAUSED, SEED_HEX_LEN,
};
use crate::error::{message, ErrorCode};
use crate::ids::{MAX_SALE_ID_LEN, MAX_USER_ID_LEN};
use crate::keys;
use crate::number::MAX_DIGITS;
use crate::rules::{CREDIT_PER_HOLD, MAX_ORDER_CLOCK_MS, ORDERS_PER_MS};
use crate::store::{field, outbox_field};

const GENERATOR: &str = "engine/src/lua_constants.rs";

/// A Lua string literal.
fn lua_str(text: &str) -> String {
    let mut out = String::from("'");
    for c in text.chars() {
        match c {
            '\'' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                let mut bytes = [0; 4];
                for byte in c.encode_utf8(&mut bytes).bytes() {
                    let _ = write!(out, "\\{byte:03}");
                }
            }
        }
    }
    out.push('\'');
    out
}

/// `{ 'a', 'b' }`
fn lua_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(lua_str).collect();
    if items.is_empty() {
        "{}".to_string()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

/// A Lua function returning the text `render` builds from its parameters:
/// `render` is called with a marker per parameter, and the text is cut at
/// the markers.
fn lua_template(name: &str, params: &[&str], render: impl Fn(&[&str]) -> String) -> String {
    const MARKERS: [&str; 3] = ["\u{1}", "\u{2}", "\u{3}"];
    let markers = &MARKERS[..params.len()];
    let mut text = render(markers);
    let mut parts = Vec::new();
    while let Some((at, param)) = markers
        .iter()
        .zip(params)
        .filter_map(|(marker, param)| text.find(marker).map(|at| (at, *param)))
        .min()
    {
        if at > 0 {
            parts.push(lua_str(&text[..at]));
        }
        parts.push(param.to_string());
        text = text[at + 1..].to_string();
    }
    if !text.is_empty() {
        parts.push(lua_str(&text));
    }
    format!(
        "local function {name}({})\n    return {}\nend\n",
        params.join(", "),
        parts.join(" .. ")
    )
}

/// The constants block, after `local TEST_CLOCK = false`.
fn constants() -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line("-- Limits (command.rs, number.rs, ids.rs, rules.rs).".into());
    for (name, value, comment) in [
        ("MAX_STOCK", MAX_STOCK, ""),
        ("MAX_TIME_MS", MAX_TIME_MS, ""),
        ("MAX_HOLD_TTL_MS", MAX_HOLD_TTL_MS, ""),
        ("MAX_RATE", MAX_RATE, ""),
        ("MAX_QUEUE", MAX_QUEUE, ""),
        ("MAX_GRANT", MAX_GRANT, ""),
        ("MAX_AMOUNT", MAX_AMOUNT, ""),
        (
            "MAX_DIGITS",
            MAX_DIGITS as u64,
            "so every value is exact in a Lua double",
        ),
        ("MAX_SALE_ID_LEN", MAX_SALE_ID_LEN as u64, ""),
        ("MAX_USER_ID_LEN", MAX_USER_ID_LEN as u64, ""),
        (
            "CREDIT_PER_HOLD",
            CREDIT_PER_HOLD,
            "rate credit is kept in thousandths of a hold",
        ),
        ("MAX_ORDER_NUMBER", MAX_ORDER_NUMBER, ""),
        (
            "ORDERS_PER_MS",
            ORDERS_PER_MS,
            "an order number is at least now * ORDERS_PER_MS",
        ),
        (
            "MAX_ORDER_CLOCK_MS",
            MAX_ORDER_CLOCK_MS,
            "MAX_ORDER_NUMBER / ORDERS_PER_MS",
        ),
        ("MAX_RESTORE_ORDERS", MAX_RESTORE_ORDERS, ""),
        ("MAX_PREQUEUE_MS", MAX_PREQUEUE_MS, ""),
        ("SEED_HEX_LEN", SEED_HEX_LEN as u64, ""),
        ("DRAW_PAGE", DRAW_PAGE, "DRAW without offset and count"),
        ("MAX_DRAW_PAGE", MAX_DRAW_PAGE, ""),
    ] {
        if comment.is_empty() {
            line(format!("local {name} = {value}"));
        } else {
            line(format!("local {name} = {value} -- {comment}"));
        }
    }
    line(String::new());
    line("-- The sale record's fields, in their order in the record (store.rs).".into());
    line(format!("local FIELDS = {}", lua_list(field::ALL)));
    line(
        "-- A record written before order_seq existed ends after this many (order_seq = sold)."
            .into(),
    );
    line(format!("local LEGACY_FIELDS = {}", field::LEGACY_COUNT));
    line(
        "-- Fields from this one on are each left out when the sale has none (price, paused_at, prequeue_ms, drawn_at)."
            .into(),
    );
    line(format!(
        "local OPTIONAL_FIELDS_FROM = {}",
        field::OPTIONAL_FROM + 1
    ));
    line(String::new());
    line("-- Keys (keys.rs): fs:{<sale>}:<suffix>, each with its TYPE.".into());
    for (name, value) in [
        ("KEY_OPEN", keys::OPEN),
        ("KEY_CLOSE", keys::CLOSE),
        ("KEY_SALE", keys::SALE),
        ("KEY_QUEUE", keys::QUEUE),
        ("KEY_HOLDS", keys::HOLDS),
        ("KEY_HOLD", keys::HOLD),
        ("KEY_ORDERS", keys::ORDERS),
        ("KEY_LAPSED", keys::LAPSED),
        ("KEY_OUTBOX", keys::OUTBOX),
        ("KEY_REGISTERED", keys::REGISTERED),
        ("KEY_SEED", keys::SEED),
        ("KEY_DRAW", keys::DRAW),
        ("TEST_CLOCK_KEY", keys::TEST_CLOCK),
        ("ORDER_ID_SEPARATOR", keys::ORDER_ID_SEPARATOR),
        ("OUTBOX_ENTRY_ID_PREFIX", keys::OUTBOX_ENTRY_ID_PREFIX),
    ] {
        line(format!("local {name} = {}", lua_str(value)));
    }
    line("local KEY_TYPES = {".into());
    for (suffix, kind) in keys::TYPES {
        line(format!("    {},", lua_list([suffix, kind.type_name()])));
    }
    line("}".into());
    line(String::new());
    line("-- The outbox entry's fields, in their order in the stream (store.rs).".into());
    line(format!(
        "local OUTBOX_FIELDS = {}",
        lua_list(outbox_field::ALL)
    ));
    line(String::new());
    line("-- Commands (command.rs).".into());
    line(format!("local OPTION_CONTACT = {}", lua_str(CONTACT)));
    line(format!("local OPTION_PAUSED = {}", lua_str(PAUSED)));
    line("local MODULE_COMMAND = {".into());
    for name in CommandName::ALL {
        line(format!(
            "    {} = {},",
            name.word(),
            lua_str(name.module_command())
        ));
    }
    line("}".into());
    line("-- The keys of a sale each command may write unread (CommandName::written_keys):".into());
    line("-- store.check_key_types checks these and no others.".into());
    line("local WRITES = {".into());
    for name in CommandName::ALL {
        let written = name.written_keys();
        if !written.is_empty() {
            line(format!(
                "    {} = {},",
                name.word(),
                lua_list(written.iter().copied())
            ));
        }
    }
    line("}".into());
    line(String::new());
    line("-- Errors (error.rs): `<code> <message>`.".into());
    for code in ErrorCode::ALL {
        line(format!(
            "local CODE_{} = {}",
            code.as_str(),
            lua_str(code.as_str())
        ));
    }
    for (name, text) in [
        ("SYNTAX", message::SYNTAX),
        ("INVALID_SALE_ID", message::INVALID_SALE_ID),
        ("INVALID_USER_ID", message::INVALID_USER_ID),
        ("INVALID_CONTACT", message::INVALID_CONTACT),
        ("ENDS_BEFORE_START", message::ENDS_BEFORE_START),
        ("NO_SUCH_SALE", message::NO_SUCH_SALE),
        ("WRONG_TYPE", message::WRONG_TYPE),
        ("CORRUPT_SALE", message::CORRUPT_SALE),
        ("INVALID_TEST_CLOCK", message::INVALID_TEST_CLOCK),
        ("INVALID_ORDER_ID", message::INVALID_ORDER_ID),
        ("USER_TWICE", message::USER_TWICE),
        ("ORDER_ID_TWICE", message::ORDER_ID_TWICE),
        ("ORDER_NUMBERS_EXHAUSTED", message::ORDER_NUMBERS_EXHAUSTED),
        ("NO_PRICE", message::NO_PRICE),
        ("INVALID_SEED", message::INVALID_SEED),
        ("PREQUEUE_NEEDS_SEED", message::PREQUEUE_NEEDS_SEED),
        ("LOTTERY_LOCKED", message::LOTTERY_LOCKED),
        ("SEED_MISSING", message::SEED_MISSING),
    ] {
        line(format!("local MSG_{name} = {}", lua_str(text)));
    }
    out.push_str(&lua_template("msg_wrong_arity", &["command"], |p| {
        message::wrong_arity(p[0])
    }));
    out.push_str(&lua_template(
        "msg_out_of_range",
        &["name", "min", "max"],
        |p| message::out_of_range(p[0], p[1], p[2]),
    ));
    out.push_str(&lua_template(
        "msg_stock_below_committed",
        &["committed"],
        |p| message::stock_below_committed(p[0]),
    ));
    out.push_str(&lua_template("msg_price_locked", &["held"], |p| {
        message::price_locked(p[0])
    }));
    out.push_str(&lua_template("msg_too_many_orders", &["max"], |p| {
        message::too_many_orders(p[0])
    }));
    out.push_str(&lua_template(
        "msg_has_other_order",
        &["user", "order_id"],
        |p| message::has_other_order(p[0], p[1]),
    ));
    out.push_str(&lua_template("msg_order_id_taken", &["order_id"], |p| {
        message::order_id_taken(p[0])
    }));
    out.push_str(&lua_template("msg_not_live", &["state"], |p| {
        message::not_live(p[0])
    }));
    out.push_str(&lua_template(
        "msg_orders_exceed_stock",
        &["committed"],
        |p| message::orders_exceed_stock(p[0]),
    ));
    out
}

/// The registration block, last in the file: every function with its
/// flags. Spelled out, since while a library loads Redis 7.0 exposes only a
/// few globals (no ipairs, no pairs).
fn registration() -> String {
    let mut out = String::new();
    for name in CommandName::ALL {
        let _ = writeln!(out, "redis.register_function{{");
        let _ = writeln!(
            out,
            "    function_name = {},",
            lua_str(name.function_name())
        );
        let _ = writeln!(out, "    callback = entry_point({}),", lua_str(name.word()));
        let flags = name.flags().function_flags();
        if !flags.is_empty() {
            let _ = writeln!(out, "    flags = {},", lua_list(flags.iter().copied()));
        }
        let _ = writeln!(out, "}}");
    }
    out
}

/// `text` with the block `block` replaced by `body`; `None` unless the
/// block is there exactly once.
fn replace_block(text: &str, block: &str, body: &str) -> Option<String> {
    let begin = format!(
        "-- BEGIN GENERATED {block} by {GENERATOR} (cargo test -p engine; UPDATE_EXPECT=1 to rewrite)\n"
    );
    let end = format!("-- END GENERATED {block}\n");
    if text.matches(&begin).count() != 1 || text.matches(&end).count() != 1 {
        return None;
    }
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    Some(format!("{}{body}{}", &text[..start], &text[stop..]))
}

#[test]
fn the_lua_library_has_the_current_constants() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua/flashsale.lua");
    let current = std::fs::read_to_string(&path).expect("read lua/flashsale.lua");
    let expected = replace_block(&current, "constants", &constants())
        .and_then(|text| replace_block(&text, "registration", &registration()))
        .expect("lua/flashsale.lua has each generated block once, with its markers");
    if current == expected {
        return;
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &expected).expect("write lua/flashsale.lua");
        return;
    }
    let (line, (was, wanted)) = current
        .lines()
        .zip(expected.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .unwrap_or((0, ("", "")));
    panic!(
        "lua/flashsale.lua is stale (line {}: {was:?}, expected {wanted:?}); \
         run `UPDATE_EXPECT=1 cargo test -p engine` to regenerate it",
        line + 1
    );
}

#[test]
fn templates_cut_at_their_parameters() {
    assert_eq!(
        lua_template("f", &["a", "b"], |p| format!("{}x'{}", p[1], p[0])),
        "local function f(a, b)\n    return b .. 'x\\'' .. a\nend\n"
    );
    assert_eq!(lua_str("a\\b\n"), "'a\\\\b\\010'");
}
