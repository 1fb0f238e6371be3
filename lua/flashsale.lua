#!lua name=flashsale
--[[
flashsale: the Redis Functions port of the Rust engine (engine/src/).

This file follows engine/src/{command,number,ids,keys,store,rules,reply}.rs
line by line; a differential test runs it next to the Rust module with a
controlled clock and compares replies, errors and keys byte for byte. When
the Rust changes, change this file the same way. The constants and the
function registrations are generated from the Rust declarations into the
marked blocks (engine/src/lua_constants.rs): edit the Rust, then run
`UPDATE_EXPECT=1 cargo test -p engine`.

Every function is called as

    FCALL flashsale_<cmd> 1 <sale> <args...>

so KEYS[1] is the sale id and ARGV the remaining arguments; the Rust
`parse(name, args)` sees {KEYS[1], ARGV...}.

Speed: a call pays for every Redis command it runs (0.3 to 1 µs each
through redis.pcall, several times what a small command itself takes), so
the Lua around them is kept cheap. The store's methods are made once, when
the library loads, not per call; a sale's key names are made once and kept;
the sale record is decoded with one pattern match, and not at all when its
text is the one last read or written; CONFIRM writes the record by putting
its two new numbers into the rest of the text, kept from the record's
first CONFIRM (record_frame); before its first write a command checks the
type only of the keys it may write and has not read yet, with a read
cheaper than TYPE (CONFIRM not even that: see `confirm`). A number is
formatted once per call (the order number's text serves the order id, the
outbox entry's id and the record), CONFIRM's amount, nearly always the
sale's price, once for many buyers (parse_amount, amount_str); a reply's
text becomes a number through arithmetic, which converts it once, not
through tonumber, which converts it twice.
]]

-- The test harness loads a copy with this line set to true (non-cluster only).
local TEST_CLOCK = false

---------------------------------------------------------------------------
-- Constants, generated from their Rust declarations: limits (command.rs,
-- number.rs, ids.rs, rules.rs), the record's fields and the outbox entry's
-- (store.rs), the key layout (keys.rs), command names (command.rs), error
-- texts (error.rs).
---------------------------------------------------------------------------

-- BEGIN GENERATED constants by engine/src/lua_constants.rs (cargo test -p engine; UPDATE_EXPECT=1 to rewrite)
-- Limits (command.rs, number.rs, ids.rs, rules.rs).
local MAX_STOCK = 1000000000
local MAX_TIME_MS = 999999999999999
local MAX_HOLD_TTL_MS = 86400000
local MAX_RATE = 1000000
local MAX_QUEUE = 1000000000
local MAX_GRANT = 10000
local MAX_AMOUNT = 999999999999999
local MAX_DIGITS = 15 -- so every value is exact in a Lua double
local MAX_SALE_ID_LEN = 64
local MAX_USER_ID_LEN = 128
local CREDIT_PER_HOLD = 1000 -- rate credit is kept in thousandths of a hold
local MAX_ORDER_NUMBER = 999999999999999
local ORDERS_PER_MS = 100 -- an order number is at least now * ORDERS_PER_MS
local MAX_ORDER_CLOCK_MS = 9999999999999 -- MAX_ORDER_NUMBER / ORDERS_PER_MS
local MAX_RESTORE_ORDERS = 10000
local MAX_PREQUEUE_MS = 86400000
local SEED_HEX_LEN = 64
local DRAW_PAGE = 100 -- DRAW without offset and count
local MAX_DRAW_PAGE = 1000

-- The sale record's fields, in their order in the record (store.rs).
local FIELDS = { 'stock', 'sold', 'starts_at', 'ends_at', 'hold_ttl_ms', 'rate', 'max_queue', 'rate_credit', 'rate_at', 'order_seq', 'price', 'paused_at', 'prequeue_ms', 'drawn_at' }
-- A record written before order_seq existed ends after this many (order_seq = sold).
local LEGACY_FIELDS = 9
-- Fields from this one on are each left out when the sale has none (price, paused_at, prequeue_ms, drawn_at).
local OPTIONAL_FIELDS_FROM = 11

-- Keys (keys.rs): fs:{<sale>}:<suffix>, each with its TYPE.
local KEY_OPEN = 'fs:{'
local KEY_CLOSE = '}:'
local KEY_SALE = 'sale'
local KEY_QUEUE = 'queue'
local KEY_HOLDS = 'holds'
local KEY_HOLD = 'hold:'
local KEY_ORDERS = 'orders'
local KEY_LAPSED = 'lapsed'
local KEY_OUTBOX = 'outbox'
local KEY_REGISTERED = 'registered'
local KEY_SEED = 'seed'
local KEY_DRAW = 'draw'
local TEST_CLOCK_KEY = 'flashsale:test-clock'
local ORDER_ID_SEPARATOR = '-'
local OUTBOX_ENTRY_ID_PREFIX = '0-'
local KEY_TYPES = {
    { 'sale', 'string' },
    { 'queue', 'zset' },
    { 'holds', 'zset' },
    { 'orders', 'hash' },
    { 'lapsed', 'zset' },
    { 'outbox', 'stream' },
    { 'registered', 'zset' },
    { 'seed', 'string' },
    { 'draw', 'list' },
}

-- The outbox entry's fields, in their order in the stream (store.rs).
local OUTBOX_FIELDS = { 'order_id', 'sale_id', 'user_id', 'amount', 'confirmed_at', 'contact' }

-- Commands (command.rs).
local OPTION_CONTACT = 'CONTACT'
local OPTION_PAUSED = 'PAUSED'
local MODULE_COMMAND = {
    setup = 'FLASHSALE.SETUP',
    enqueue = 'FLASHSALE.ENQUEUE',
    grant = 'FLASHSALE.GRANT',
    confirm = 'FLASHSALE.CONFIRM',
    release = 'FLASHSALE.RELEASE',
    status = 'FLASHSALE.STATUS',
    restore = 'FLASHSALE.RESTORE',
    pause = 'FLASHSALE.PAUSE',
    resume = 'FLASHSALE.RESUME',
    draw = 'FLASHSALE.DRAW',
}
-- The keys of a sale each command may write unread (CommandName::written_keys):
-- store.check_key_types checks these and no others.
local WRITES = {
    enqueue = { 'sale', 'queue', 'holds', 'lapsed', 'registered', 'draw' },
    grant = { 'sale', 'queue', 'holds', 'lapsed', 'registered', 'draw' },
    confirm = { 'sale', 'holds', 'orders', 'outbox' },
    restore = { 'sale', 'queue', 'holds', 'orders', 'lapsed', 'registered' },
}

-- Errors (error.rs): `<code> <message>`.
local CODE_ERR = 'ERR'
local CODE_NOSALE = 'NOSALE'
local CODE_CONFLICT = 'CONFLICT'
local CODE_WRONGTYPE = 'WRONGTYPE'
local CODE_LOCKED = 'LOCKED'
local CODE_NOPRICE = 'NOPRICE'
local MSG_SYNTAX = 'syntax error'
local MSG_INVALID_SALE_ID = 'invalid sale id'
local MSG_INVALID_USER_ID = 'invalid user id'
local MSG_INVALID_CONTACT = 'invalid contact'
local MSG_ENDS_BEFORE_START = 'ends_at must be after starts_at'
local MSG_NO_SUCH_SALE = 'no such sale'
local MSG_WRONG_TYPE = 'Operation against a key holding the wrong kind of value'
local MSG_CORRUPT_SALE = 'corrupt sale record'
local MSG_INVALID_TEST_CLOCK = 'invalid test clock'
local MSG_INVALID_ORDER_ID = 'invalid order id'
local MSG_USER_TWICE = 'a user is given twice'
local MSG_ORDER_ID_TWICE = 'an order id is given twice'
local MSG_ORDER_NUMBERS_EXHAUSTED = 'order numbers exhausted'
local MSG_NO_PRICE = 'the sale has no price; give the amount'
local MSG_INVALID_SEED = 'SEED must be 64 lowercase hex digits'
local MSG_PREQUEUE_NEEDS_SEED = 'PREQUEUE needs a SEED'
local MSG_LOTTERY_LOCKED = 'the pre-queue window has opened or the sale has started; PREQUEUE and SEED are fixed'
local MSG_SEED_MISSING = 'the sale\'s lottery seed is missing'
local function msg_wrong_arity(command)
    return 'wrong number of arguments for \'' .. command .. '\''
end
local function msg_out_of_range(name, min, max)
    return name .. ' must be an integer from ' .. min .. ' to ' .. max
end
local function msg_stock_below_committed(committed)
    return 'stock cannot go below sold plus held (' .. committed .. ')'
end
local function msg_price_locked(held)
    return 'the price cannot change while ' .. held .. ' units are held'
end
local function msg_too_many_orders(max)
    return 'at most ' .. max .. ' orders per call'
end
local function msg_has_other_order(user, order_id)
    return user .. ' already has order ' .. order_id
end
local function msg_order_id_taken(order_id)
    return order_id .. ' is another user\'s order'
end
local function msg_not_live(state)
    return 'only a live sale can be paused; it is ' .. state
end
local function msg_orders_exceed_stock(committed)
    return 'sold plus held would exceed stock (' .. committed .. ')'
end
-- END GENERATED constants

---------------------------------------------------------------------------
-- Errors (error.rs)
--
-- Rust returns `Err(EngineError)` and bubbles it up with `?`; here a failure
-- is thrown and caught once, in `entry_point`, which turns it into a clean
-- error reply. The thrown value is a table WITHOUT an `err` field: Redis 7.0
-- rewrites a caught `{err = ...}` into a bare string, and `error('...')` or a
-- failing `redis.call` would reach the client with " script: ..., on
-- @user_function:N." appended.
---------------------------------------------------------------------------

local Failure = {}

local function fail(reply_text)
    error(setmetatable({ text = reply_text }, Failure))
end

local function err(message)
    fail(CODE_ERR .. ' ' .. message)
end

local function no_sale()
    fail(CODE_NOSALE .. ' ' .. MSG_NO_SUCH_SALE)
end

local function conflict(message)
    fail(CODE_CONFLICT .. ' ' .. message)
end

-- redis.pcall hands errors back as a table instead of raising them, so the
-- server's own text (e.g. "WRONGTYPE Operation against a key holding the
-- wrong kind of value") reaches the client unchanged.
--
-- It runs for every Redis command, so it keeps redis.pcall and type in
-- locals, bound when a call starts (`bind_globals`, from entry_point):
-- Redis 7.0 looks a global up through a metatable at every use, and while
-- the library loads there are no globals to bind but a bare `redis`.
-- The same goes for string.format and math.floor, used on every call.
local redis_pcall, type_of, format, floor = nil, nil, nil, nil

local function bind_globals()
    redis_pcall, type_of, format, floor = redis.pcall, type, string.format, math.floor
end

local function call(...)
    local reply = redis_pcall(...)
    if type_of(reply) == 'table' and reply.err then
        fail(reply.err)
    end
    return reply
end

-- The store methods on the paths of ENQUEUE, CONFIRM and a GRANT's holds
-- do what `call` does in line: a Lua function call costs about a tenth of
-- a Redis command, and those paths make nine to fifteen. A command whose
-- reply is never a table on success checks only for a table:
--
--     local reply = redis_pcall(...)
--     if type_of(reply) == 'table' then fail(reply.err) end

---------------------------------------------------------------------------
-- Numbers (number.rs)
---------------------------------------------------------------------------

-- Lua numbers are doubles; every value here is an integer below 2^53, and
-- '%d' prints it without ".0" or an exponent, as Rust's u64::to_string does.
local function int_str(n)
    return format('%d', n)
end

-- 1..15 ASCII digits. [0-9], not %d: character classes follow the C locale.
local function is_digits(raw)
    return #raw >= 1 and #raw <= MAX_DIGITS and raw:find('^[0-9]+$') ~= nil
end

local function parse_int(raw, name, min, max)
    local value = is_digits(raw) and tonumber(raw, 10) or nil
    if value == nil or value < min or value > max then
        err(msg_out_of_range(name, int_str(min), int_str(max)))
    end
    return value
end

local function min(a, b)
    if a < b then return a end
    return b
end

local function max(a, b)
    if a > b then return a end
    return b
end

-- u64::saturating_sub
local function saturating_sub(a, b)
    if a > b then return a - b end
    return 0
end

---------------------------------------------------------------------------
-- Ids (ids.rs): explicit ASCII ranges, since %w/%a depend on the locale.
---------------------------------------------------------------------------

-- [A-Za-z0-9_.-]{1,64}
local function is_valid_sale_id(id)
    return #id >= 1 and #id <= MAX_SALE_ID_LEN
        and id:find('^[A-Za-z0-9_.%-]+$') ~= nil
end

-- [A-Za-z0-9_.@+-]{1,128}
local function is_valid_user_id(id)
    return #id >= 1 and #id <= MAX_USER_ID_LEN
        and id:find('^[A-Za-z0-9_.@+%-]+$') ~= nil
end

---------------------------------------------------------------------------
-- Keys (keys.rs)
---------------------------------------------------------------------------

-- A sale's key names, made on the sale's first call and kept for the next
-- ones (for KEY_CACHE_SIZE sales at most; then the cache starts over). A
-- user's hold key is made when it is used: `k.hold .. user`.
local KEY_CACHE_SIZE = 64
local key_cache, key_cache_count = {}, 0

local function sale_keys(sale)
    local k = key_cache[sale]
    if k ~= nil then
        return k
    end
    if key_cache_count >= KEY_CACHE_SIZE then
        key_cache, key_cache_count = {}, 0
    end
    local prefix = KEY_OPEN .. sale .. KEY_CLOSE
    k = {
        sale = prefix .. KEY_SALE,
        queue = prefix .. KEY_QUEUE,
        holds = prefix .. KEY_HOLDS,
        orders = prefix .. KEY_ORDERS,
        lapsed = prefix .. KEY_LAPSED,
        outbox = prefix .. KEY_OUTBOX,
        registered = prefix .. KEY_REGISTERED,
        seed = prefix .. KEY_SEED,
        draw = prefix .. KEY_DRAW,
        -- Followed by the user id.
        hold = prefix .. KEY_HOLD,
        -- By suffix: the key's name and its type (store.check_key_types).
        typed = {},
        -- The sale record as last read or written (store.sale), and its
        -- text; record_raw is unset while the record changes, so that the
        -- two match whenever record_raw is set.
        record = nil,
        record_raw = nil,
        -- The record's frame, { record = , head = , middle = , tail = }
        -- (record_frame), or nil.
        frame = nil,
    }
    for i = 1, #KEY_TYPES do
        local suffix, type_name = KEY_TYPES[i][1], KEY_TYPES[i][2]
        k.typed[suffix] = { suffix = suffix, name = prefix .. suffix, type = type_name }
    end
    key_cache[sale] = k
    key_cache_count = key_cache_count + 1
    return k
end

-- `<sale>-<n>`, from n's text (int_str(n)).
local function order_id(sale, n_text)
    return sale .. ORDER_ID_SEPARATOR .. n_text
end

-- command::restorable_order_number: the number of `id` if it is
-- `<sale>-<n>`, n from 1 to MAX_ORDER_NUMBER without leading zeros; nil
-- otherwise.
local function restorable_order_number(sale, id)
    local prefix = sale .. ORDER_ID_SEPARATOR
    if id:sub(1, #prefix) ~= prefix then
        return nil
    end
    local digits = id:sub(#prefix + 1)
    -- 1..15 digits, not starting with 0, is exactly 1..MAX_ORDER_NUMBER.
    if not is_digits(digits) or digits:sub(1, 1) == '0' then
        return nil
    end
    return tonumber(digits, 10)
end

---------------------------------------------------------------------------
-- Command parsing (command.rs)
--
-- Checks run in a fixed order — arity, sale id, then each argument left to
-- right — so the module and this library report the same first problem.
-- `argv[i]` is Rust's `args[i]` (args[0] is the sale id, KEYS[1]), and `n`
-- is Rust's `args.len()`. Each parser returns the command's values.
---------------------------------------------------------------------------

local function wrong_arity(name)
    err(msg_wrong_arity(MODULE_COMMAND[name]))
end

local function sale_id(raw)
    -- A sale with cached keys (sale_keys) had its id checked already: the
    -- pattern costs about as much as a Redis command.
    if key_cache[raw] == nil and not is_valid_sale_id(raw) then
        err(MSG_INVALID_SALE_ID)
    end
    return raw
end

local function user_id(raw)
    if not is_valid_user_id(raw) then
        err(MSG_INVALID_USER_ID)
    end
    return raw
end

-- [u8]::to_ascii_uppercase: only a-z change, whatever the locale.
local function upper_letter(c)
    return string.char(c:byte() - 32)
end

local function ascii_upper(s)
    return (s:gsub('[a-z]', upper_letter))
end

-- Whether argv[i] is CONFIRM's option CONTACT, in any case. Only a word of
-- its length can be, so an amount is not upper-cased to find out.
local function is_contact(argv, i)
    return #argv[i] == #OPTION_CONTACT and ascii_upper(argv[i]) == OPTION_CONTACT
end

-- A lottery seed: exactly SEED_HEX_LEN of 0-9a-f.
local function seed_hex(raw)
    if #raw ~= SEED_HEX_LEN or raw:find('^[0-9a-f]+$') == nil then
        err(MSG_INVALID_SEED)
    end
    return raw
end

local function parse_setup(sale, argv, n)
    if n < 5 then
        wrong_arity('setup')
    end
    sale_id(sale)
    local params = {}
    params.stock = parse_int(argv[1], 'stock', 0, MAX_STOCK)
    params.starts_at = parse_int(argv[2], 'starts_at', 0, MAX_TIME_MS)
    params.ends_at = parse_int(argv[3], 'ends_at', 0, MAX_TIME_MS)
    params.hold_ttl_ms = parse_int(argv[4], 'hold_ttl_ms', 1, MAX_HOLD_TTL_MS)
    local rate, max_queue, price = nil, nil, nil
    local prequeue_ms, seed, paused = nil, nil, nil
    local i = 5
    while i < n do
        local option = ascii_upper(argv[i])
        if option == 'SEED' then
            -- SEED's value is text, not a number.
            if seed ~= nil or i + 1 >= n then
                err(MSG_SYNTAX)
            end
            seed = seed_hex(argv[i + 1])
        else
            if option ~= 'RATE' and option ~= 'MAXQUEUE' and option ~= 'PRICE'
                and option ~= 'PREQUEUE' and option ~= OPTION_PAUSED then
                err(MSG_SYNTAX)
            end
            local already = (option == 'RATE' and rate) or (option == 'MAXQUEUE' and max_queue)
                or (option == 'PRICE' and price) or (option == 'PREQUEUE' and prequeue_ms)
                or (option == OPTION_PAUSED and paused ~= nil)
            -- A repeated option or one without a value.
            if already or i + 1 >= n then
                err(MSG_SYNTAX)
            end
            if option == 'RATE' then
                rate = parse_int(argv[i + 1], 'RATE', 1, MAX_RATE)
            elseif option == 'MAXQUEUE' then
                max_queue = parse_int(argv[i + 1], 'MAXQUEUE', 1, MAX_QUEUE)
            elseif option == 'PREQUEUE' then
                prequeue_ms = parse_int(argv[i + 1], 'PREQUEUE', 0, MAX_PREQUEUE_MS)
            elseif option == OPTION_PAUSED then
                -- 1 sets the pause mark, 0 clears it.
                paused = parse_int(argv[i + 1], OPTION_PAUSED, 0, 1) == 1
            else
                price = parse_int(argv[i + 1], 'PRICE', 0, MAX_AMOUNT)
            end
        end
        i = i + 2
    end
    -- The window is checked after the options, as in Rust.
    if params.ends_at <= params.starts_at then
        err(MSG_ENDS_BEFORE_START)
    end
    params.rate = rate or 0
    params.max_queue = max_queue or 0
    -- nil keeps the sale's price; likewise the lottery's window and seed.
    params.price = price
    params.prequeue_ms = prequeue_ms
    params.seed = seed
    -- nil keeps the pause mark; true sets it, false clears it.
    params.paused = paused
    return params
end

-- ENQUEUE and RELEASE: the user.
local function parse_user_command(name, sale, argv, n)
    if n ~= 2 then
        wrong_arity(name)
    end
    sale_id(sale)
    return user_id(argv[1])
end

-- The most users to admit.
local function parse_grant(sale, argv, n)
    if n ~= 2 then
        wrong_arity('grant')
    end
    sale_id(sale)
    return parse_int(argv[1], 'max', 1, MAX_GRANT)
end

-- CONFIRM's amount is nearly always the sale's price, the same text from
-- one buyer to the next: so the last amount text parsed is kept with its
-- value, and the last amount written to the outbox with its text, and
-- neither the parse nor the formatting is redone for the next buyer.
local parsed_raw, parsed_amount = nil, nil
local outbox_amount, outbox_amount_text = nil, nil

-- parse_int(raw, 'amount', 0, MAX_AMOUNT) (a text that fails is not kept)
local function parse_amount(raw)
    if raw ~= parsed_raw then
        parsed_amount = parse_int(raw, 'amount', 0, MAX_AMOUNT)
        parsed_raw = raw
    end
    return parsed_amount
end

-- int_str(amount)
local function amount_str(amount)
    if amount ~= outbox_amount then
        outbox_amount_text = int_str(amount)
        outbox_amount = amount
    end
    return outbox_amount_text
end

-- The user, the amount (nil: the sale's price) and the contact (nil: none
-- given): <user> [amount] [CONTACT <address>].
local function parse_confirm(sale, argv, n)
    -- The user, then an optional amount and an optional CONTACT <address>.
    if n < 2 or n > 5 then
        wrong_arity('confirm')
    end
    sale_id(sale)
    local user = user_id(argv[1])
    -- An amount is digits, so it is never the option's name.
    local i = 2
    local amount, contact = nil, nil
    if i < n and not is_contact(argv, i) then
        amount = parse_amount(argv[i])
        i = i + 1
    end
    if i < n then
        -- Only CONTACT, once, with its value, may follow.
        if not is_contact(argv, i) or i + 2 ~= n then
            err(MSG_SYNTAX)
        end
        if not is_valid_user_id(argv[i + 1]) then
            err(MSG_INVALID_CONTACT)
        end
        contact = argv[i + 1]
    end
    return user, amount, contact
end

-- DRAW: the page, (offset, count).
local function parse_draw(sale, argv, n)
    if n ~= 1 and n ~= 3 then
        wrong_arity('draw')
    end
    sale_id(sale)
    if n == 1 then
        return 0, DRAW_PAGE
    end
    return parse_int(argv[1], 'offset', 0, MAX_QUEUE), parse_int(argv[2], 'count', 1, MAX_DRAW_PAGE)
end

-- PAUSE and RESUME: the sale alone.
local function parse_sale_only(name, sale, n)
    if n ~= 1 then
        wrong_arity(name)
    end
    sale_id(sale)
end

-- The user, or nil.
local function parse_status(sale, argv, n)
    if n ~= 1 and n ~= 2 then
        wrong_arity('status')
    end
    sale_id(sale)
    if argv[1] ~= nil then
        return user_id(argv[1])
    end
    return nil
end

-- The orders: { user = , order_id = , number = } each.
local function parse_restore(sale, argv, n)
    -- The sale, then user/order id pairs.
    if not (n >= 3 and n % 2 == 1) then
        wrong_arity('restore')
    end
    sale_id(sale)
    if (n - 1) / 2 > MAX_RESTORE_ORDERS then
        err(msg_too_many_orders(int_str(MAX_RESTORE_ORDERS)))
    end
    local orders, users, numbers = {}, {}, {}
    for i = 1, n - 1, 2 do
        local user = user_id(argv[i])
        if users[user] then
            err(MSG_USER_TWICE)
        end
        users[user] = true
        local number = restorable_order_number(sale, argv[i + 1])
        if number == nil then
            err(MSG_INVALID_ORDER_ID)
        end
        if numbers[number] then
            err(MSG_ORDER_ID_TWICE)
        end
        numbers[number] = true
        orders[#orders + 1] = { user = user, order_id = argv[i + 1], number = number }
    end
    return orders
end

---------------------------------------------------------------------------
-- The sale record (store.rs)
---------------------------------------------------------------------------

-- `name=(digits)` for FIELDS[from..to], a space before each but the
-- record's first; a Lua pattern, built while the library loads (when no
-- string library exists). The field names hold no pattern character.
local function record_pattern(from, to)
    local pattern = ''
    for i = from, to do
        if i > 1 then
            pattern = pattern .. ' '
        end
        pattern = pattern .. FIELDS[i] .. '=([0-9]+)'
    end
    return pattern
end

-- The fields every record has, then the position after them; then each
-- later field alone, from that position on ('^' anchors a match at the
-- position it starts from), followed by the position after it.
local RECORD_START = '^' .. record_pattern(1, LEGACY_FIELDS) .. '()'
local RECORD_ORDER_SEQ = '^' .. record_pattern(LEGACY_FIELDS + 1, LEGACY_FIELDS + 1) .. '()'
local RECORD_PRICE = '^' .. record_pattern(OPTIONAL_FIELDS_FROM, OPTIONAL_FIELDS_FROM) .. '()'
local RECORD_PAUSED_AT = '^' .. record_pattern(OPTIONAL_FIELDS_FROM + 1, OPTIONAL_FIELDS_FROM + 1) .. '()'
local RECORD_PREQUEUE_MS = '^' .. record_pattern(OPTIONAL_FIELDS_FROM + 2, OPTIONAL_FIELDS_FROM + 2) .. '()'
local RECORD_DRAWN_AT = '^' .. record_pattern(OPTIONAL_FIELDS_FROM + 3, OPTIONAL_FIELDS_FROM + 3) .. '()'

-- One field's digits as a number: at most MAX_DIGITS of them.
local function record_number(digits)
    if #digits > MAX_DIGITS then
        err(MSG_CORRUPT_SALE)
    end
    return tonumber(digits, 10)
end

-- SaleRecord::decode: exactly `name=<1..15 digits>` for every field, in
-- order, single spaces between; each optional field may be left out
-- (price: none; paused_at: not paused), and a legacy record ends after the
-- first LEGACY_FIELDS (order_seq = sold); anything else is a corrupt record.
local function decode_sale(raw)
    local stock, sold, starts_at, ends_at, hold_ttl_ms, rate, max_queue,
        rate_credit, rate_at, pos = raw:match(RECORD_START)
    if stock == nil then
        err(MSG_CORRUPT_SALE)
    end
    local order_seq, price, paused_at, prequeue_ms, drawn_at = nil, nil, nil, nil, nil
    if pos <= #raw then
        order_seq, pos = raw:match(RECORD_ORDER_SEQ, pos)
        if order_seq == nil then
            err(MSG_CORRUPT_SALE)
        end
        -- Each optional field in its turn, if it is next.
        local value, after = raw:match(RECORD_PRICE, pos)
        if value ~= nil then
            price, pos = value, after
        end
        value, after = raw:match(RECORD_PAUSED_AT, pos)
        if value ~= nil then
            paused_at, pos = value, after
        end
        value, after = raw:match(RECORD_PREQUEUE_MS, pos)
        if value ~= nil then
            prequeue_ms, pos = value, after
        end
        value, after = raw:match(RECORD_DRAWN_AT, pos)
        if value ~= nil then
            drawn_at, pos = value, after
        end
        if pos <= #raw then
            err(MSG_CORRUPT_SALE)
        end
    end
    sold = record_number(sold)
    return {
        stock = record_number(stock),
        sold = sold,
        starts_at = record_number(starts_at),
        ends_at = record_number(ends_at),
        hold_ttl_ms = record_number(hold_ttl_ms),
        rate = record_number(rate),
        max_queue = record_number(max_queue),
        rate_credit = record_number(rate_credit),
        rate_at = record_number(rate_at),
        order_seq = order_seq and record_number(order_seq) or sold,
        price = price and record_number(price),
        paused_at = paused_at and record_number(paused_at),
        prequeue_ms = prequeue_ms and record_number(prequeue_ms),
        drawn_at = drawn_at and record_number(drawn_at),
    }
end

local MAX_RECORD_VALUE = 10 ^ MAX_DIGITS - 1

-- Whether no field of the record has more than MAX_DIGITS digits, as
-- decode_sale reads them. (Every value is a whole number from 0 up.)
local function record_fits(r)
    return math.max(r.stock, r.sold, r.starts_at, r.ends_at, r.hold_ttl_ms,
        r.rate, r.max_queue, r.rate_credit, r.rate_at, r.order_seq,
        r.price or 0, r.paused_at or 0, r.prequeue_ms or 0, r.drawn_at or 0) <= MAX_RECORD_VALUE
end

-- `name=%d` for FIELDS[from..to], single spaces between: a format for
-- string.format, built while the library loads.
local function record_format(from, to)
    local layout = ''
    for i = from, to do
        if i > from then
            layout = layout .. ' '
        end
        layout = layout .. FIELDS[i] .. '=%d'
    end
    return layout
end

-- The fields every record has; then each optional field, or none.
local RECORD_FORMAT_REQUIRED = record_format(1, OPTIONAL_FIELDS_FROM - 1)
local RECORD_FORMAT_PRICE = RECORD_FORMAT_REQUIRED .. ' ' .. FIELDS[OPTIONAL_FIELDS_FROM] .. '=%d'
local RECORD_SUFFIX_PRICE = ' ' .. FIELDS[OPTIONAL_FIELDS_FROM] .. '='
local RECORD_SUFFIX_PAUSED_AT = ' ' .. FIELDS[OPTIONAL_FIELDS_FROM + 1] .. '='
local RECORD_SUFFIX_PREQUEUE_MS = ' ' .. FIELDS[OPTIONAL_FIELDS_FROM + 2] .. '='
local RECORD_SUFFIX_DRAWN_AT = ' ' .. FIELDS[OPTIONAL_FIELDS_FROM + 3] .. '='

-- SaleRecord::encode ('%d' prints as u64::to_string does; see int_str).
-- Only the optional fields, price and paused_at, can be nil; each is
-- left out on its own.
local function encode_sale(r)
    local layout = RECORD_FORMAT_PRICE
    if r.price == nil then
        layout = RECORD_FORMAT_REQUIRED
    end
    local raw = format(layout, r.stock, r.sold, r.starts_at, r.ends_at,
        r.hold_ttl_ms, r.rate, r.max_queue, r.rate_credit, r.rate_at,
        r.order_seq, r.price)
    if r.paused_at ~= nil then
        raw = raw .. RECORD_SUFFIX_PAUSED_AT .. int_str(r.paused_at)
    end
    if r.prequeue_ms ~= nil then
        raw = raw .. RECORD_SUFFIX_PREQUEUE_MS .. int_str(r.prequeue_ms)
    end
    if r.drawn_at ~= nil then
        raw = raw .. RECORD_SUFFIX_DRAWN_AT .. int_str(r.drawn_at)
    end
    return raw
end

-- A CONFIRM changes two fields of the record, sold and order_seq (the
-- 2nd and the LEGACY_FIELDS + 1st), and the text around them stays the
-- same from one order to the next. So the record's text is also
--
--     <head> <sold> <middle> <order_seq> <tail>
--
-- head, middle and tail (the record's frame) coming from the other
-- fields alone. A frame is made once for a record and kept with it
-- (store.write_sale_order): then a CONFIRM formats the two numbers and
-- joins five strings, where encode_sale formats all the fields.
local FRAME_HEAD = FIELDS[1] .. '=%d ' .. FIELDS[2] .. '='
local FRAME_MIDDLE = ' ' .. record_format(3, LEGACY_FIELDS) .. ' ' .. FIELDS[LEGACY_FIELDS + 1] .. '='

-- The frame of record r: head .. sold .. middle .. order_seq .. tail is
-- encode_sale(r).
local function record_frame(r)
    local tail = ''
    if r.price ~= nil then
        tail = RECORD_SUFFIX_PRICE .. int_str(r.price)
    end
    if r.paused_at ~= nil then
        tail = tail .. RECORD_SUFFIX_PAUSED_AT .. int_str(r.paused_at)
    end
    if r.prequeue_ms ~= nil then
        tail = tail .. RECORD_SUFFIX_PREQUEUE_MS .. int_str(r.prequeue_ms)
    end
    if r.drawn_at ~= nil then
        tail = tail .. RECORD_SUFFIX_DRAWN_AT .. int_str(r.drawn_at)
    end
    return {
        record = r,
        head = format(FRAME_HEAD, r.stock),
        middle = format(FRAME_MIDDLE, r.starts_at, r.ends_at, r.hold_ttl_ms, r.rate,
            r.max_queue, r.rate_credit, r.rate_at),
        tail = tail,
    }
end

---------------------------------------------------------------------------
-- Store (store.rs): one method per Redis operation on one sale's keys, the
-- commands documented on each `Store` method. (The module reaches some of
-- them through the key API instead; the data left behind is the same.)
--
-- The methods are made once, when the library loads, and work on the keys
-- of the sale given to `open_store` by the running call.
---------------------------------------------------------------------------

local store = {}

-- The running call's keys (sale_keys).
local K = nil
-- Each call gets a new call_id; verified[suffix] == call_id once the call
-- has read that key without an error, so the key is absent or of its type.
local call_id = 0
local verified = {}

local NO_WRITES = {}
-- The running command's entry of WRITES.
local writes = NO_WRITES

local function open_store(sale, command)
    K = sale_keys(sale)
    writes = WRITES[command] or NO_WRITES
    call_id = call_id + 1
    return store
end

-- GET fs:{s}:sale, decoded; nil when the sale does not exist. Decoding
-- depends on nothing but the text, so the sale's last record is kept with
-- its keys (K.record, its text K.record_raw), and a text read again
-- unchanged is not decoded again (Lua strings are interned: comparing two
-- is comparing pointers). So a record read is shared: only
-- write_sale_changed and write_sale_order change it.
function store.sale()
    local raw = redis_pcall('GET', K.sale)
    if type_of(raw) == 'table' then fail(raw.err) end
    verified[KEY_SALE] = call_id
    if not raw then
        return nil
    end
    if K.record_raw ~= raw then
        K.record_raw = nil
        K.record = decode_sale(raw)
        K.record_raw = raw
    end
    return K.record
end

-- SET fs:{s}:sale <encoded record>. The record is kept as the sale's last
-- one, since decoding the text written gives it back (unless a field
-- outgrew MAX_DIGITS: a test clock far ahead).
function store.write_sale(record)
    local raw = encode_sale(record)
    call('SET', K.sale, raw)
    if record_fits(record) then
        K.record, K.record_raw = record, raw
    end
end

-- store.write_sale of the record `sale` read by store.sale, with two fields
-- changed: Rust's `write_sale(&SaleRecord { field1: value1, field2: value2,
-- ..sale })`. The record is changed in place rather than copied; its text
-- is forgotten first, so that no failure leaves it paired with a text it
-- no longer matches, and so is its frame, which may no longer fit it. A
-- record kept fits (decoded, or checked when written), so only the new
-- values need checking.
function store.write_sale_changed(sale, field1, value1, field2, value2)
    K.record_raw = nil
    K.frame = nil
    sale[field1] = value1
    sale[field2] = value2
    local raw = encode_sale(sale)
    local reply = redis_pcall('SET', K.sale, raw)
    if reply.err then fail(reply.err) end
    if value1 <= MAX_RECORD_VALUE and value2 <= MAX_RECORD_VALUE then
        K.record, K.record_raw = sale, raw
    end
end

-- store.write_sale_changed(sale, 'sold', sold, 'order_seq', order_seq),
-- for CONFIRM: the text is joined from the record's frame (record_frame),
-- which stays the record's since only sold and order_seq change. The frame
-- is made on the record's first CONFIRM. order_seq_text is
-- int_str(order_seq), which CONFIRM has made for the order id already.
function store.write_sale_order(sale, sold, order_seq, order_seq_text)
    local frame = K.frame
    if frame == nil or frame.record ~= sale then
        frame = record_frame(sale)
        K.frame = frame
    end
    K.record_raw = nil
    sale.sold = sold
    sale.order_seq = order_seq
    local raw = frame.head .. int_str(sold) .. frame.middle .. order_seq_text .. frame.tail
    local reply = redis_pcall('SET', K.sale, raw)
    if reply.err then fail(reply.err) end
    if sold <= MAX_RECORD_VALUE and order_seq <= MAX_RECORD_VALUE then
        K.record, K.record_raw = sale, raw
    end
end

-- HGET fs:{s}:orders user
function store.order_of(user)
    local order = redis_pcall('HGET', K.orders, user)
    if type_of(order) == 'table' then fail(order.err) end
    verified[KEY_ORDERS] = call_id
    if order then return order end
    return nil
end

-- HSET fs:{s}:orders user order_id
function store.record_order(user, order)
    local reply = redis_pcall('HSET', K.orders, user, order)
    if type_of(reply) == 'table' then fail(reply.err) end
end

-- HLEN fs:{s}:orders
function store.orders_count()
    local count = call('HLEN', K.orders)
    verified[KEY_ORDERS] = call_id
    return count
end

-- HVALS fs:{s}:orders: every order id, in no particular order.
function store.order_ids()
    local ids = call('HVALS', K.orders)
    verified[KEY_ORDERS] = call_id
    return ids
end

-- ZSCORE fs:{s}:holds user: when the user's hold expires (ms). (`score + 0`
-- is tonumber(score) converting once: Lua 5.1's tonumber converts a string
-- twice, each time with strtod.)
function store.hold_expiry(user)
    local score = redis_pcall('ZSCORE', K.holds, user)
    if type_of(score) == 'table' then fail(score.err) end
    verified[KEY_HOLDS] = call_id
    if score then return score + 0 end
    return nil
end

-- ZCOUNT fs:{s}:holds (now +inf: holds still live at `now`.
function store.live_holds(now)
    local count = call('ZCOUNT', K.holds, '(' .. int_str(now), '+inf')
    verified[KEY_HOLDS] = call_id
    return count
end

-- ZRANGEBYSCORE fs:{s}:holds -inf now: holds that lapsed by `now`.
function store.expired_holds(now)
    local users = call('ZRANGEBYSCORE', K.holds, '-inf', int_str(now))
    verified[KEY_HOLDS] = call_id
    return users
end

-- ZADD fs:{s}:holds expires_at user, then
-- SET fs:{s}:hold:user expires_at PXAT expires_at.
function store.add_hold(user, expires_at)
    local at = int_str(expires_at)
    local reply = redis_pcall('ZADD', K.holds, at, user)
    if type_of(reply) == 'table' then fail(reply.err) end
    reply = redis_pcall('SET', K.hold .. user, at, 'PXAT', at)
    if reply.err then fail(reply.err) end
end

-- ZREM fs:{s}:holds user, then DEL fs:{s}:hold:user.
function store.remove_hold(user)
    local reply = redis_pcall('ZREM', K.holds, user)
    if type_of(reply) == 'table' then fail(reply.err) end
    reply = redis_pcall('DEL', K.hold .. user)
    if type_of(reply) == 'table' then fail(reply.err) end
end

-- ZRANK fs:{s}:queue user (0-based).
function store.queue_rank(user)
    local rank = redis_pcall('ZRANK', K.queue, user)
    if type_of(rank) == 'table' then fail(rank.err) end
    verified[KEY_QUEUE] = call_id
    if rank then return rank end
    return nil
end

-- ZCARD fs:{s}:queue
function store.queue_len()
    local length = redis_pcall('ZCARD', K.queue)
    if type_of(length) == 'table' then fail(length.err) end
    verified[KEY_QUEUE] = call_id
    return length
end

-- ZRANGE fs:{s}:queue -1 -1 WITHSCORES: the newest arrival's ticket.
function store.queue_last_ticket()
    local last = redis_pcall('ZRANGE', K.queue, '-1', '-1', 'WITHSCORES')
    if last.err then fail(last.err) end
    verified[KEY_QUEUE] = call_id
    if #last == 0 then
        return nil
    end
    -- tonumber, converting once (see store.hold_expiry).
    return last[2] + 0
end

-- ZADD fs:{s}:queue ticket user
function store.queue_push(user, ticket)
    local reply = redis_pcall('ZADD', K.queue, int_str(ticket), user)
    if type_of(reply) == 'table' then fail(reply.err) end
end

-- ZREM fs:{s}:queue user
function store.queue_remove(user)
    call('ZREM', K.queue, user)
end

-- ZPOPMIN fs:{s}:queue n: the n oldest users, oldest first. The reply
-- alternates member and score; keep the members.
function store.queue_pop(n)
    local flat = call('ZPOPMIN', K.queue, int_str(n))
    local users = {}
    for i = 1, #flat, 2 do
        users[#users + 1] = flat[i]
    end
    return users
end

-- DEL fs:{s}:queue
function store.queue_clear()
    call('DEL', K.queue)
end

-- ZSCORE fs:{s}:lapsed user: the user's hold expired and was reclaimed,
-- and the user has not queued again since. (A zset, scored by when the
-- hold was reclaimed, because the module's key API handles zsets.)
function store.is_lapsed(user)
    local score = redis_pcall('ZSCORE', K.lapsed, user)
    if type_of(score) == 'table' then fail(score.err) end
    verified[KEY_LAPSED] = call_id
    return score ~= false
end

-- ZADD fs:{s}:lapsed reclaimed_at user
function store.add_lapsed(user, reclaimed_at)
    call('ZADD', K.lapsed, int_str(reclaimed_at), user)
end

-- ZREM fs:{s}:lapsed user
function store.remove_lapsed(user)
    call('ZREM', K.lapsed, user)
end

-- ZSCORE fs:{s}:registered user: registered for the pre-queue draw.
function store.is_registered(user)
    local score = call('ZSCORE', K.registered, user)
    verified[KEY_REGISTERED] = call_id
    return score ~= false
end

-- ZADD fs:{s}:registered at user
function store.register(user, at)
    call('ZADD', K.registered, int_str(at), user)
end

-- ZREM fs:{s}:registered user
function store.unregister(user)
    call('ZREM', K.registered, user)
end

-- ZCARD fs:{s}:registered
function store.registered_count()
    local count = call('ZCARD', K.registered)
    verified[KEY_REGISTERED] = call_id
    return count
end

-- ZRANGE fs:{s}:registered 0 -1: every registered user.
function store.registered_users()
    local users = call('ZRANGE', K.registered, '0', '-1')
    verified[KEY_REGISTERED] = call_id
    return users
end

-- DEL fs:{s}:registered
function store.clear_registered()
    call('DEL', K.registered)
end

-- GET fs:{s}:seed; nil when there is none.
function store.seed()
    local seed = call('GET', K.seed)
    verified[KEY_SEED] = call_id
    if seed then return seed end
    return nil
end

-- SET fs:{s}:seed seed
function store.write_seed(seed)
    call('SET', K.seed, seed)
end

-- RPUSH fs:{s}:draw h1 h2 ..., in slices (unpack has a limit on how many
-- values it spreads); nothing when `entries` is empty.
local DRAW_PUSH_SLICE = 1000
function store.draw_push(entries)
    for first = 1, #entries, DRAW_PUSH_SLICE do
        local last = min(first + DRAW_PUSH_SLICE - 1, #entries)
        call('RPUSH', K.draw, unpack(entries, first, last))
    end
end

-- LLEN fs:{s}:draw
function store.draw_len()
    local length = call('LLEN', K.draw)
    verified[KEY_DRAW] = call_id
    return length
end

-- LRANGE fs:{s}:draw offset offset+count-1
function store.draw_range(offset, count)
    local page = call('LRANGE', K.draw, int_str(offset), int_str(offset + count - 1))
    verified[KEY_DRAW] = call_id
    return page
end

-- For each type, a read that fails with WRONGTYPE unless its key is absent
-- or of that type: cheaper than TYPE, whose status reply becomes a table.
local TYPE_PROBES = {
    string = 'STRLEN',
    list = 'LLEN',
    set = 'SCARD',
    zset = 'ZCARD',
    hash = 'HLEN',
    stream = 'XLEN',
}
local WRONGTYPE_PREFIX = CODE_WRONGTYPE .. ' '

-- Whether the key (an entry of K.typed) is absent or of its type.
local function has_its_type(key)
    local probe = TYPE_PROBES[key.type]
    if probe == nil then
        local found = call('TYPE', key.name).ok
        return found == 'none' or found == key.type
    end
    local reply = redis_pcall(probe, key.name)
    if type_of(reply) ~= 'table' then
        return true
    end
    if reply.err:sub(1, #WRONGTYPE_PREFIX) ~= WRONGTYPE_PREFIX then
        fail(reply.err)
    end
    return false
end

-- WRONGTYPE unless each key the command may write (WRITES) is absent or
-- of its own type. Commands that write keys they have not read call it
-- before their first write, so that a wrong type refuses the call before
-- anything changed. A key the call has read already is absent or of its
-- type (reading a key of another type fails), so it is not asked; the
-- others are asked with their type's probe.
function store.check_key_types()
    local typed = K.typed
    for i = 1, #writes do
        local suffix = writes[i]
        if verified[suffix] ~= call_id and not has_its_type(typed[suffix]) then
            fail(CODE_WRONGTYPE .. ' ' .. MSG_WRONG_TYPE)
        end
    end
end

-- OutboxEntry::fields: the field names in their order.
local OUTBOX_ORDER_ID, OUTBOX_SALE_ID, OUTBOX_USER_ID, OUTBOX_AMOUNT, OUTBOX_CONFIRMED_AT,
    OUTBOX_CONTACT =
    OUTBOX_FIELDS[1], OUTBOX_FIELDS[2], OUTBOX_FIELDS[3], OUTBOX_FIELDS[4], OUTBOX_FIELDS[5],
    OUTBOX_FIELDS[6]

-- XADD fs:{s}:outbox 0-n order_id .. sale_id .. user_id .. amount ..
-- confirmed_at .. [contact ..]  (the id is fixed so replicas and AOF
-- rebuild it). The OutboxEntry comes as its fields, in their order, the
-- numbers as text (n_text, amount_text, confirmed_at_text: int_str of
-- each); the contact only when CONFIRM was given one.
function store.append_outbox(n_text, order_id, sale_id, user_id, amount_text,
                             confirmed_at_text, contact)
    local reply
    if contact == nil then
        reply = redis_pcall('XADD', K.outbox, OUTBOX_ENTRY_ID_PREFIX .. n_text,
            OUTBOX_ORDER_ID, order_id,
            OUTBOX_SALE_ID, sale_id,
            OUTBOX_USER_ID, user_id,
            OUTBOX_AMOUNT, amount_text,
            OUTBOX_CONFIRMED_AT, confirmed_at_text)
    else
        reply = redis_pcall('XADD', K.outbox, OUTBOX_ENTRY_ID_PREFIX .. n_text,
            OUTBOX_ORDER_ID, order_id,
            OUTBOX_SALE_ID, sale_id,
            OUTBOX_USER_ID, user_id,
            OUTBOX_AMOUNT, amount_text,
            OUTBOX_CONFIRMED_AT, confirmed_at_text,
            OUTBOX_CONTACT, contact)
    end
    if type_of(reply) == 'table' then fail(reply.err) end
end

---------------------------------------------------------------------------
-- Clock
---------------------------------------------------------------------------

-- The server clock in ms; read once per call. The test variant lets the
-- harness pin it through a plain key.
local function now_ms()
    if TEST_CLOCK then
        local fake = call('GET', TEST_CLOCK_KEY)
        if fake then
            -- As the module's `str::parse::<u64>()`: optional '+', digits.
            local value = fake:find('^%+?[0-9]+$') and tonumber((fake:gsub('^%+', '')), 10)
            if not value or value >= 2 ^ 64 then
                err(MSG_INVALID_TEST_CLOCK)
            end
            return value
        end
    end
    local time = redis_pcall('TIME')
    if time.err then fail(time.err) end
    -- Seconds and microseconds, as text: arithmetic converts each once
    -- (see store.hold_expiry).
    return time[1] * 1000 + floor(time[2] / 1000)
end

---------------------------------------------------------------------------
-- Rules (rules.rs). Each rule reads everything it needs, decides, and only
-- then writes. Replies are built directly in their RESP shape (reply.rs):
-- strings become bulk strings, numbers integers.
---------------------------------------------------------------------------

-- Appends a, then b and c unless nil, to `list`.
local function append(list, a, b, c)
    list[#list + 1] = a
    if b ~= nil then
        list[#list + 1] = b
    end
    if c ~= nil then
        list[#list + 1] = c
    end
end

local function existing_sale(store)
    local sale = store.sale()
    if sale == nil then
        no_sale()
    end
    return sale
end

-- SaleRecord::window_opens_at: starts_at - prequeue_ms, or nil without a
-- window.
local function window_opens_at(sale)
    if sale.prequeue_ms == nil or sale.prequeue_ms == 0 then
        return nil
    end
    return saturating_sub(sale.starts_at, sale.prequeue_ms)
end

-- SaleRecord::draw_pending: a window, and no draw yet.
local function draw_pending(sale)
    return window_opens_at(sale) ~= nil and sale.drawn_at == nil
end

-- Rust's `SaleRecord { name: value, ..sale }`: a copy, since the record
-- read is shared (store.sale).
local function with_field(sale, name, value)
    local copy = {}
    for field, v in pairs(sale) do
        copy[field] = v
    end
    copy[name] = value
    return copy
end

local function setup(store, now, sale_id_, params)
    local existing = store.sale()
    local kept_seed = store.seed()
    local kept = existing
    if not existing then
        -- A new sale starts with an empty rate bucket that fills from now,
        -- and takes over the orders its keys hold already (RESTORE records
        -- them before the sale exists).
        local sold = store.orders_count()
        local order_seq = 0
        if sold > 0 then
            for _, id in ipairs(store.order_ids()) do
                local n = restorable_order_number(sale_id_, id)
                if n ~= nil then
                    order_seq = max(order_seq, n)
                end
            end
        end
        kept = { sold = sold, rate_credit = 0, rate_at = now, order_seq = order_seq }
    end
    local held = store.live_holds(now)
    local committed = kept.sold + held
    if params.stock < committed then
        conflict(msg_stock_below_committed(int_str(committed)))
    end
    -- A holder pays the price they were admitted at (rules.rs).
    local price = params.price
    if price == nil then
        price = kept.price
    end
    if kept.price ~= nil and price ~= kept.price and held > 0 then
        fail(CODE_LOCKED .. ' ' .. msg_price_locked(int_str(held)))
    end
    -- The pre-queue lottery: PREQUEUE 0 removes the window; omitted, both
    -- are kept.
    local prequeue_ms = params.prequeue_ms
    if prequeue_ms == nil then
        prequeue_ms = kept.prequeue_ms
    elseif prequeue_ms == 0 then
        prequeue_ms = nil
    end
    local seed = params.seed
    if seed == nil then
        seed = kept_seed
    end
    if prequeue_ms ~= nil and seed == nil then
        err(MSG_PREQUEUE_NEEDS_SEED)
    end
    -- Once the window has opened (or the sale started, or the draw ran),
    -- PREQUEUE and SEED are fixed (rules.rs).
    if existing and (prequeue_ms ~= kept.prequeue_ms or seed ~= kept_seed) then
        local opens = window_opens_at(kept)
        if opens == nil then
            opens = kept.starts_at
        end
        if now >= opens or kept.drawn_at ~= nil then
            fail(CODE_LOCKED .. ' ' .. MSG_LOTTERY_LOCKED)
        end
    end
    -- The pause mark (rules.rs): PAUSED 1 keeps an existing mark's time and
    -- sets one at now otherwise, whatever the state; PAUSED 0 clears it.
    local paused_at = kept.paused_at
    if params.paused == true then
        if paused_at == nil then
            paused_at = now
        end
    elseif params.paused == false then
        paused_at = nil
    end
    if seed ~= kept_seed and seed ~= nil then
        store.write_seed(seed)
    end
    store.write_sale({
        stock = params.stock,
        sold = kept.sold,
        starts_at = params.starts_at,
        ends_at = params.ends_at,
        hold_ttl_ms = params.hold_ttl_ms,
        rate = params.rate,
        max_queue = params.max_queue,
        rate_credit = kept.rate_credit,
        rate_at = kept.rate_at,
        order_seq = kept.order_seq,
        price = price,
        paused_at = paused_at,
        prequeue_ms = prequeue_ms,
        drawn_at = kept.drawn_at,
    })
    if existing then
        return { 'updated' }
    end
    return { 'created' }
end

-- ENQUEUE in the pre-queue window: registered for the draw (rules.rs).
local function register(store, sale, now, user)
    if store.is_registered(user) then
        return { 'registered', store.registered_count() }
    end
    if sale.sold >= sale.stock then
        return { 'sold_out' }
    end
    local count = store.registered_count()
    if sale.max_queue > 0 and count >= sale.max_queue then
        return { 'queue_full', count }
    end
    store.register(user, now)
    return { 'registered', count + 1 }
end

-- lottery.rs: registrants ordered by SHA1(seed ":" SHA1(user)), ties by
-- SHA1(user). (Equal-length lowercase hex compares the same in any
-- collation.)
local function draw_order_less(a, b)
    if a.key ~= b.key then
        return a.key < b.key
    end
    return a.entry < b.entry
end

-- The pre-queue draw (rules.rs run_draw): reads everything, then gives the
-- registrants queue tickets in draw order, publishes the order and notes
-- drawn_at. Returns the record as written.
local function run_draw(store, sale, now)
    store.check_key_types()
    local seed = store.seed()
    if seed == nil then
        err(MSG_SEED_MISSING)
    end
    local users = store.registered_users()
    local ticket = store.queue_last_ticket() or 0
    local sha1hex = redis.sha1hex
    local drawn = {}
    for i = 1, #users do
        local entry = sha1hex(users[i])
        drawn[i] = { key = sha1hex(seed .. ':' .. entry), entry = entry, user = users[i] }
    end
    table.sort(drawn, draw_order_less)
    local entries = {}
    for i = 1, #drawn do
        ticket = ticket + 1
        store.queue_push(drawn[i].user, ticket)
        entries[i] = drawn[i].entry
    end
    store.draw_push(entries)
    store.clear_registered()
    local updated = with_field(sale, 'drawn_at', now)
    store.write_sale(updated)
    return updated
end

local function enqueue(store, now, user)
    local sale = existing_sale(store)
    local order = store.order_of(user)
    if order then
        return { 'purchased', order }
    end
    if now >= sale.ends_at then
        return { 'ended' }
    end
    local hold = store.hold_expiry(user)
    if hold ~= nil and hold > now then
        return { 'holding', hold - now }
    end
    if now < sale.starts_at then
        local opens = window_opens_at(sale)
        if opens ~= nil and now >= opens then
            return register(store, sale, now, user)
        end
        return { 'not_started', sale.starts_at - now }
    end
    if draw_pending(sale) then
        sale = run_draw(store, sale, now)
    end
    if sale.sold >= sale.stock then
        return { 'sold_out' }
    end
    local length = store.queue_len()
    local rank = store.queue_rank(user)
    if rank ~= nil then
        return { 'queued', rank + 1, length }
    end
    -- Those queued keep their place (above); nobody new joins.
    if sale.paused_at ~= nil then
        return { 'paused' }
    end
    if sale.max_queue > 0 and length >= sale.max_queue then
        return { 'queue_full', length }
    end
    local lapsed = store.is_lapsed(user)
    -- Tickets grow with arrival, so the queue (ordered by ticket) is FIFO.
    local last = store.queue_last_ticket()
    local ticket = 1
    if last ~= nil then
        ticket = last + 1
    end
    -- A user whose hold lapsed may queue again, at the back.
    if hold ~= nil then
        store.remove_hold(user)
    end
    if lapsed then
        store.remove_lapsed(user)
    end
    store.queue_push(user, ticket)
    return { 'queued', length + 1, length + 1 }
end

-- Token bucket: RATE holds per second, a burst of at most one second's worth.
-- Returns (holds allowed now, credit after topping up); without RATE the
-- allowance is unbounded (Rust: u64::MAX).
local function rate_allowance(sale, now)
    if sale.rate == 0 then
        return math.huge, 0
    end
    local capacity = sale.rate * CREDIT_PER_HOLD
    -- At most a second counts, so the product stays far below 2^53.
    local elapsed = min(saturating_sub(now, sale.rate_at), 1000)
    local credit = min(sale.rate_credit + elapsed * sale.rate, capacity)
    return math.floor(credit / CREDIT_PER_HOLD), credit
end

-- Frees lapsed holds, then admits up to `max` users from the head of the
-- queue — no more than the units neither sold nor held, and no faster than
-- RATE.
local function grant(store, now, max_users)
    local sale = existing_sale(store)
    store.check_key_types()
    if now >= sale.starts_at and draw_pending(sale) then
        sale = run_draw(store, sale, now)
    end
    local expired = store.expired_holds(now)
    local queued = store.queue_len()
    local outcome, admit, credit
    if now >= sale.ends_at then
        outcome = 'ended'
    elseif now < sale.starts_at then
        outcome = 'not_started'
    elseif sale.paused_at ~= nil then
        -- Nobody is admitted and the rate bucket is left alone.
        outcome = 'paused'
    else
        local held = store.live_holds(now)
        local available = saturating_sub(sale.stock, sale.sold + held)
        local allowance
        allowance, credit = rate_allowance(sale, now)
        admit = min(min(min(max_users, queued), available), allowance)
        outcome = 'admit'
    end

    for _, user in ipairs(expired) do
        store.remove_hold(user)
        store.add_lapsed(user, now)
    end
    local released = #expired

    if outcome == 'ended' then
        if queued > 0 then
            store.queue_clear()
        end
        return { 'ended', queued }
    elseif outcome == 'not_started' then
        return { 'not_started', sale.starts_at - now }
    elseif outcome == 'paused' then
        return { 'paused', released }
    end
    local users = {}
    if admit > 0 then
        users = store.queue_pop(admit)
    end
    local expires_at = now + sale.hold_ttl_ms
    for _, user in ipairs(users) do
        store.add_hold(user, expires_at)
    end
    if sale.rate > 0 then
        local spent = #users * CREDIT_PER_HOLD
        store.write_sale_changed(sale,
            'rate_credit', saturating_sub(credit, spent),
            'rate_at', max(now, sale.rate_at))
    end
    return { 'granted', released, users }
end

-- The number of the next order after `order_seq`: above it, and at least
-- now * ORDERS_PER_MS; nil once the clock is past MAX_ORDER_CLOCK_MS or
-- order_seq is MAX_ORDER_NUMBER. (Checked before multiplying, so the
-- product stays exact.)
local function next_order_number(order_seq, now)
    if now > MAX_ORDER_CLOCK_MS or order_seq >= MAX_ORDER_NUMBER then
        return nil
    end
    return max(order_seq + 1, now * ORDERS_PER_MS)
end

local function confirm(store, now, sale_id_, user, amount, contact)
    local sale = existing_sale(store)
    local order = store.order_of(user)
    if order then
        return { 'purchased', order }
    end
    if now >= sale.ends_at then
        return { 'ended' }
    end
    local expires_at = store.hold_expiry(user)
    if expires_at ~= nil then
        if expires_at <= now then
            return { 'expired' }
        end
    elseif store.is_lapsed(user) then
        -- The hold lapsed and GRANT already reclaimed it.
        return { 'expired' }
    else
        return { 'no_hold' }
    end
    if sale.sold >= sale.stock then
        return { 'sold_out' }
    end
    if amount ~= nil and sale.price ~= nil and amount ~= sale.price then
        return { 'amount_mismatch', sale.price }
    end
    if amount == nil then
        if sale.price == nil then
            fail(CODE_NOPRICE .. ' ' .. MSG_NO_PRICE)
        end
        amount = sale.price
    end
    local n = next_order_number(sale.order_seq, now)
    if n == nil then
        err(MSG_ORDER_NUMBERS_EXHAUSTED)
    end
    -- No store.check_key_types() here, though CONFIRM writes keys: of the
    -- keys in WRITES.confirm it would ask only about the outbox, since the
    -- sale, holds and orders were read above, and XADD asks that itself.
    -- It is the first write, and on a key of another type it fails with
    -- the reply the check gives, "WRONGTYPE Operation against a key holding
    -- the wrong kind of value", before anything was written. The check
    -- would cost a Redis command (XLEN) on every CONFIRM.

    local n_text = int_str(n)
    local id = order_id(sale_id_, n_text)
    -- The outbox first: XADD is the one write that can still be refused (a
    -- hand-made entry with a higher id, or the wrong type), and then
    -- nothing else is written.
    -- OutboxEntry { order_id, sale_id, user_id, amount, confirmed_at, contact }
    store.append_outbox(n_text, id, sale_id_, user, amount_str(amount), int_str(now), contact)
    store.write_sale_order(sale, sale.sold + 1, n, n_text)
    store.record_order(user, id)
    store.remove_hold(user)
    return { 'confirmed', id, amount }
end

-- Records orders the durable record has, for a sale Redis lost or rolled
-- back. A user with another order, or an order id another user has,
-- refuses the whole call. Into the existing sale: each new order sold,
-- order_seq raised to its number; without the sale record only the orders,
-- for the SETUP that creates the sale to take over. A restored user leaves
-- the queue, their hold and the lapsed set; nothing is added to the outbox.
local function restore(store, now, orders)
    local sale = store.sale()
    store.check_key_types()
    local recorded = store.orders_count()
    -- The sale's order ids, read once if an order turns out to be new.
    local taken = nil
    local new = {}
    local highest = 0
    for _, order in ipairs(orders) do
        highest = max(highest, order.number)
        local existing = store.order_of(order.user)
        if existing ~= nil and existing ~= order.order_id then
            conflict(msg_has_other_order(order.user, existing))
        end
        if existing == nil then
            if recorded > 0 then
                if taken == nil then
                    taken = {}
                    for _, id in ipairs(store.order_ids()) do
                        taken[id] = true
                    end
                end
                if taken[order.order_id] then
                    conflict(msg_order_id_taken(order.order_id))
                end
            end
            new[#new + 1] = {
                order = order,
                queued = store.queue_rank(order.user) ~= nil,
                hold = store.hold_expiry(order.user),
                lapsed = store.is_lapsed(order.user),
                registered = store.is_registered(order.user),
            }
        end
    end
    local added = #new
    if sale ~= nil then
        -- Restored users give up their holds: only the others' still count.
        local freed = 0
        for _, n in ipairs(new) do
            if n.hold ~= nil and n.hold > now then
                freed = freed + 1
            end
        end
        local committed = sale.sold + added + store.live_holds(now) - freed
        if committed > sale.stock then
            conflict(msg_orders_exceed_stock(int_str(committed)))
        end
    end

    for _, n in ipairs(new) do
        local user = n.order.user
        if n.queued then
            store.queue_remove(user)
        end
        if n.hold ~= nil then
            store.remove_hold(user)
        end
        if n.lapsed then
            store.remove_lapsed(user)
        end
        if n.registered then
            store.unregister(user)
        end
        store.record_order(user, n.order.order_id)
    end
    if sale ~= nil then
        local order_seq = max(sale.order_seq, highest)
        if added > 0 or order_seq ~= sale.order_seq then
            store.write_sale_changed(sale, 'sold', sale.sold + added, 'order_seq', order_seq)
        end
    end
    return { 'restored', added, recorded + added }
end

local function release(store, user)
    local sale = existing_sale(store)
    local order = store.order_of(user)
    if order then
        return { 'purchased', order }
    end
    if store.queue_rank(user) ~= nil then
        store.queue_remove(user)
        return { 'left_queue' }
    end
    if store.hold_expiry(user) ~= nil then
        store.remove_hold(user)
        return { 'released' }
    end
    -- A registration before the draw is a place in the line too.
    if draw_pending(sale) and store.is_registered(user) then
        store.unregister(user)
        return { 'left_queue' }
    end
    return { 'none' }
end

-- The sale's state at `now`, as STATUS reports it: the first that applies
-- of upcoming, sold out, ended, paused, active.
local function sale_state(sale, now)
    if now < sale.starts_at then
        return 'upcoming'
    elseif sale.sold >= sale.stock then
        return 'sold_out'
    elseif now >= sale.ends_at then
        return 'ended'
    elseif sale.paused_at ~= nil then
        return 'paused'
    end
    return 'active'
end

-- Stops a live sale: nobody new queues, GRANT admits nobody; the queue and
-- the holds stay. Pausing a paused sale changes nothing.
local function pause(store, now)
    local sale = existing_sale(store)
    local state = sale_state(sale, now)
    if state == 'paused' then
        return { 'already_paused' }
    elseif state ~= 'active' then
        conflict(msg_not_live(state))
    end
    store.write_sale(with_field(sale, 'paused_at', now))
    return { 'paused' }
end

-- Lets a paused sale run again where it stopped; works in any state.
local function resume(store)
    local sale = existing_sale(store)
    if sale.paused_at == nil then
        return { 'not_paused' }
    end
    store.write_sale(with_field(sale, 'paused_at', nil))
    return { 'resumed' }
end

local function status(store, now, user)
    local sale = existing_sale(store)
    local held = store.live_holds(now)
    local queued = store.queue_len()
    local state = sale_state(sale, now)
    local reply = {
        'state', state,
        'stock', sale.stock,
        'sold', sale.sold,
        'held', held,
        'queued', queued,
        'starts_at', sale.starts_at,
        'ends_at', sale.ends_at,
        'hold_ttl_ms', sale.hold_ttl_ms,
        'rate', sale.rate,
        'max_queue', sale.max_queue,
        'now', now,
    }
    if user ~= nil then
        append(reply, 'user')
        local order = store.order_of(user)
        if order then
            append(reply, 'purchased', 'order_id', order)
        else
            local expires_at = store.hold_expiry(user)
            if expires_at ~= nil then
                if expires_at > now then
                    append(reply, 'holding', 'hold_ms', expires_at - now)
                else
                    append(reply, 'expired')
                end
            elseif store.is_lapsed(user) then
                append(reply, 'expired')
            else
                local rank = store.queue_rank(user)
                if rank ~= nil then
                    append(reply, 'queued', 'position', rank + 1)
                elseif draw_pending(sale) and store.is_registered(user) then
                    -- STATUS never draws: it writes nothing.
                    append(reply, 'registered')
                else
                    append(reply, 'none')
                end
            end
        end
    end
    return reply
end

-- What the lottery publishes (rules.rs draw): before the draw the
-- commitment SHA1(seed), after it the seed and a page of the draw.
local function draw(store, offset, count)
    local sale = existing_sale(store)
    if sale.prequeue_ms == nil or sale.prequeue_ms == 0 then
        return { 'none' }
    end
    local seed = store.seed()
    if seed == nil then
        err(MSG_SEED_MISSING)
    end
    if sale.drawn_at == nil then
        return { 'pending', sale.prequeue_ms, store.registered_count(), redis.sha1hex(seed) }
    end
    return { 'drawn', sale.prequeue_ms, sale.drawn_at, store.draw_len(), seed,
        store.draw_range(offset, count) }
end

---------------------------------------------------------------------------
-- Commands (rules::execute): each parsed as command.rs parses it, then its
-- rule run on the sale's keys at the server clock, read once per call.
---------------------------------------------------------------------------

local COMMANDS = {}

function COMMANDS.setup(sale, argv, n)
    local params = parse_setup(sale, argv, n)
    local now = now_ms()
    return setup(open_store(sale, 'setup'), now, sale, params)
end

function COMMANDS.enqueue(sale, argv, n)
    local user = parse_user_command('enqueue', sale, argv, n)
    local now = now_ms()
    return enqueue(open_store(sale, 'enqueue'), now, user)
end

function COMMANDS.grant(sale, argv, n)
    local max_users = parse_grant(sale, argv, n)
    local now = now_ms()
    return grant(open_store(sale, 'grant'), now, max_users)
end

function COMMANDS.confirm(sale, argv, n)
    local user, amount, contact = parse_confirm(sale, argv, n)
    local now = now_ms()
    return confirm(open_store(sale, 'confirm'), now, sale, user, amount, contact)
end

function COMMANDS.release(sale, argv, n)
    local user = parse_user_command('release', sale, argv, n)
    -- Read as for every command, though RELEASE does not look at it.
    now_ms()
    return release(open_store(sale, 'release'), user)
end

function COMMANDS.status(sale, argv, n)
    local user = parse_status(sale, argv, n)
    local now = now_ms()
    return status(open_store(sale, 'status'), now, user)
end

function COMMANDS.restore(sale, argv, n)
    local orders = parse_restore(sale, argv, n)
    local now = now_ms()
    return restore(open_store(sale, 'restore'), now, orders)
end

function COMMANDS.pause(sale, argv, n)
    parse_sale_only('pause', sale, n)
    local now = now_ms()
    return pause(open_store(sale, 'pause'), now)
end

function COMMANDS.resume(sale, argv, n)
    parse_sale_only('resume', sale, n)
    -- Read as for every command, though RESUME does not look at it.
    now_ms()
    return resume(open_store(sale, 'resume'))
end

function COMMANDS.draw(sale, argv, n)
    local offset, count = parse_draw(sale, argv, n)
    -- Read as for every command, though DRAW does not look at it.
    now_ms()
    return draw(open_store(sale, 'draw'), offset, count)
end

---------------------------------------------------------------------------
-- Entry points
---------------------------------------------------------------------------

local function entry_point(name)
    local command = COMMANDS[name]
    local function run(keys, argv)
        -- The sale id travels as the only key so cluster routing works; any
        -- other key count is an arity error, as for the module command.
        if #keys ~= 1 then
            wrong_arity(name)
        end
        return command(keys[1], argv, #argv + 1)
    end
    return function(keys, argv)
        if redis_pcall == nil then
            bind_globals()
        end
        local ok, result = pcall(run, keys, argv)
        if ok then
            return result
        end
        if getmetatable(result) == Failure then
            return redis.error_reply(result.text)
        end
        -- A bug, not a refusal: let Redis report it with its location.
        error(result, 0)
    end
end

-- Every function with its flags (CommandName::flags, as the module's).
-- Spelled out: while a library loads, Redis 7.0 exposes only a few globals
-- (no ipairs, no pairs), so no loop here.
-- BEGIN GENERATED registration by engine/src/lua_constants.rs (cargo test -p engine; UPDATE_EXPECT=1 to rewrite)
redis.register_function{
    function_name = 'flashsale_setup',
    callback = entry_point('setup'),
}
redis.register_function{
    function_name = 'flashsale_enqueue',
    callback = entry_point('enqueue'),
}
redis.register_function{
    function_name = 'flashsale_grant',
    callback = entry_point('grant'),
}
redis.register_function{
    function_name = 'flashsale_confirm',
    callback = entry_point('confirm'),
}
redis.register_function{
    function_name = 'flashsale_release',
    callback = entry_point('release'),
    flags = { 'allow-oom' },
}
redis.register_function{
    function_name = 'flashsale_status',
    callback = entry_point('status'),
    flags = { 'no-writes' },
}
redis.register_function{
    function_name = 'flashsale_restore',
    callback = entry_point('restore'),
}
redis.register_function{
    function_name = 'flashsale_pause',
    callback = entry_point('pause'),
    flags = { 'allow-oom' },
}
redis.register_function{
    function_name = 'flashsale_resume',
    callback = entry_point('resume'),
    flags = { 'allow-oom' },
}
redis.register_function{
    function_name = 'flashsale_draw',
    callback = entry_point('draw'),
    flags = { 'no-writes' },
}
-- END GENERATED registration
