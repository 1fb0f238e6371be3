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

-- The sale record's fields, in their order in the record (store.rs).
local FIELDS = { 'stock', 'sold', 'starts_at', 'ends_at', 'hold_ttl_ms', 'rate', 'max_queue', 'rate_credit', 'rate_at', 'order_seq', 'price' }
-- A record written before order_seq existed ends after this many (order_seq = sold).
local LEGACY_FIELDS = 9
-- Fields from this one on are left out when the sale has none (price).
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
}

-- The outbox entry's fields, in their order in the stream (store.rs).
local OUTBOX_FIELDS = { 'order_id', 'sale_id', 'user_id', 'amount', 'confirmed_at' }

-- Commands (command.rs).
local MODULE_COMMAND = {
    setup = 'FLASHSALE.SETUP',
    enqueue = 'FLASHSALE.ENQUEUE',
    grant = 'FLASHSALE.GRANT',
    confirm = 'FLASHSALE.CONFIRM',
    release = 'FLASHSALE.RELEASE',
    status = 'FLASHSALE.STATUS',
    restore = 'FLASHSALE.RESTORE',
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
local function call(...)
    local reply = redis.pcall(...)
    if type(reply) == 'table' and reply.err then
        fail(reply.err)
    end
    return reply
end

---------------------------------------------------------------------------
-- Numbers (number.rs)
---------------------------------------------------------------------------

-- Lua numbers are doubles; every value here is an integer below 2^53, and
-- '%d' prints it without ".0" or an exponent, as Rust's u64::to_string does.
local function int_str(n)
    return string.format('%d', n)
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

local function sale_keys(sale)
    local prefix = KEY_OPEN .. sale .. KEY_CLOSE
    return {
        prefix = prefix,
        sale = prefix .. KEY_SALE,
        queue = prefix .. KEY_QUEUE,
        holds = prefix .. KEY_HOLDS,
        orders = prefix .. KEY_ORDERS,
        lapsed = prefix .. KEY_LAPSED,
        outbox = prefix .. KEY_OUTBOX,
        hold = function(user) return prefix .. KEY_HOLD .. user end,
    }
end

local function order_id(sale, n)
    return sale .. ORDER_ID_SEPARATOR .. int_str(n)
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
---------------------------------------------------------------------------

local function wrong_arity(name)
    err(msg_wrong_arity(MODULE_COMMAND[name]))
end

local function sale_id(raw)
    if not is_valid_sale_id(raw) then
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
local function ascii_upper(s)
    return (s:gsub('[a-z]', function(c) return string.char(c:byte() - 32) end))
end

-- Checks run in a fixed order — arity, sale id, then each argument left to
-- right — so the module and this library report the same first problem.
-- `args` is 1-based: args[1] is the sale id (Rust's args[0]).
local function parse(name, args)
    local n = #args
    local arity_ok
    if name == 'setup' then
        arity_ok = n >= 5
    elseif name == 'enqueue' or name == 'grant' or name == 'release' then
        arity_ok = n == 2
    elseif name == 'confirm' then
        arity_ok = n == 2 or n == 3
    elseif name == 'restore' then
        -- The sale, then user/order id pairs.
        arity_ok = n >= 3 and n % 2 == 1
    else -- status
        arity_ok = n == 1 or n == 2
    end
    if not arity_ok then
        wrong_arity(name)
    end
    local cmd = { name = name, sale = sale_id(args[1]) }

    if name == 'setup' then
        local params = {}
        params.stock = parse_int(args[2], 'stock', 0, MAX_STOCK)
        params.starts_at = parse_int(args[3], 'starts_at', 0, MAX_TIME_MS)
        params.ends_at = parse_int(args[4], 'ends_at', 0, MAX_TIME_MS)
        params.hold_ttl_ms = parse_int(args[5], 'hold_ttl_ms', 1, MAX_HOLD_TTL_MS)
        local rate, max_queue, price = nil, nil, nil
        local i = 6
        while i <= n do
            local option = ascii_upper(args[i])
            if option ~= 'RATE' and option ~= 'MAXQUEUE' and option ~= 'PRICE' then
                err(MSG_SYNTAX)
            end
            local already = (option == 'RATE' and rate) or (option == 'MAXQUEUE' and max_queue)
                or (option == 'PRICE' and price)
            -- A repeated option or one without a value.
            if already or i + 1 > n then
                err(MSG_SYNTAX)
            end
            if option == 'RATE' then
                rate = parse_int(args[i + 1], 'RATE', 1, MAX_RATE)
            elseif option == 'MAXQUEUE' then
                max_queue = parse_int(args[i + 1], 'MAXQUEUE', 1, MAX_QUEUE)
            else
                price = parse_int(args[i + 1], 'PRICE', 0, MAX_AMOUNT)
            end
            i = i + 2
        end
        -- The window is checked after the options, as in Rust.
        if params.ends_at <= params.starts_at then
            err(MSG_ENDS_BEFORE_START)
        end
        params.rate = rate or 0
        params.max_queue = max_queue or 0
        -- nil keeps the sale's price.
        params.price = price
        cmd.params = params
    elseif name == 'enqueue' or name == 'release' then
        cmd.user = user_id(args[2])
    elseif name == 'grant' then
        cmd.max = parse_int(args[2], 'max', 1, MAX_GRANT)
    elseif name == 'confirm' then
        cmd.user = user_id(args[2])
        -- nil: the sale's price.
        if args[3] ~= nil then
            cmd.amount = parse_int(args[3], 'amount', 0, MAX_AMOUNT)
        end
    elseif name == 'restore' then
        if (n - 1) / 2 > MAX_RESTORE_ORDERS then
            err(msg_too_many_orders(int_str(MAX_RESTORE_ORDERS)))
        end
        local orders, users, numbers = {}, {}, {}
        for i = 2, n, 2 do
            local user = user_id(args[i])
            if users[user] then
                err(MSG_USER_TWICE)
            end
            users[user] = true
            local number = restorable_order_number(cmd.sale, args[i + 1])
            if number == nil then
                err(MSG_INVALID_ORDER_ID)
            end
            if numbers[number] then
                err(MSG_ORDER_ID_TWICE)
            end
            numbers[number] = true
            orders[#orders + 1] = { user = user, order_id = args[i + 1], number = number }
        end
        cmd.orders = orders
    else -- status
        if args[2] ~= nil then
            cmd.user = user_id(args[2])
        end
    end
    return cmd
end

---------------------------------------------------------------------------
-- Store (store.rs): one method per Redis operation on one sale's keys, the
-- commands documented on each `Store` method. (The module reaches some of
-- them through the key API instead; the data left behind is the same.)
---------------------------------------------------------------------------

-- SaleRecord::decode: exactly `name=<1..15 digits>` for every field, in
-- order, single spaces between; the record may end before an optional
-- field (price: none), and a legacy record ends after the first
-- LEGACY_FIELDS (order_seq = sold); anything else is a corrupt record.
local function decode_sale(raw)
    local record = {}
    local pos = 1
    for i, field in ipairs(FIELDS) do
        if (i == LEGACY_FIELDS + 1 or i >= OPTIONAL_FIELDS_FROM) and pos == #raw + 1 then
            if i == LEGACY_FIELDS + 1 then
                record.order_seq = record.sold
            end
            break
        end
        local prefix = field .. '='
        if i > 1 then
            prefix = ' ' .. prefix
        end
        if raw:sub(pos, pos + #prefix - 1) ~= prefix then
            err(MSG_CORRUPT_SALE)
        end
        pos = pos + #prefix
        -- With an init position, '^' anchors the match there.
        local digits = raw:match('^[0-9]+', pos)
        if digits == nil or #digits > MAX_DIGITS then
            err(MSG_CORRUPT_SALE)
        end
        record[field] = tonumber(digits, 10)
        pos = pos + #digits
    end
    if pos ~= #raw + 1 then
        err(MSG_CORRUPT_SALE)
    end
    return record
end

-- SaleRecord::encode
local function encode_sale(record)
    local parts = {}
    for _, field in ipairs(FIELDS) do
        -- Only an optional field (price) can be nil.
        if record[field] ~= nil then
            parts[#parts + 1] = field .. '=' .. int_str(record[field])
        end
    end
    return table.concat(parts, ' ')
end

local function new_store(sale)
    local k = sale_keys(sale)
    local store = {}

    -- GET fs:{s}:sale, decoded; nil when the sale does not exist.
    function store.sale()
        local raw = call('GET', k.sale)
        if not raw then
            return nil
        end
        return decode_sale(raw)
    end

    -- SET fs:{s}:sale <encoded record>
    function store.write_sale(record)
        call('SET', k.sale, encode_sale(record))
    end

    -- HGET fs:{s}:orders user
    function store.order_of(user)
        local order = call('HGET', k.orders, user)
        if order then return order end
        return nil
    end

    -- HSET fs:{s}:orders user order_id
    function store.record_order(user, order)
        call('HSET', k.orders, user, order)
    end

    -- HLEN fs:{s}:orders
    function store.orders_count()
        return call('HLEN', k.orders)
    end

    -- HVALS fs:{s}:orders: every order id, in no particular order.
    function store.order_ids()
        return call('HVALS', k.orders)
    end

    -- ZSCORE fs:{s}:holds user: when the user's hold expires (ms).
    function store.hold_expiry(user)
        local score = call('ZSCORE', k.holds, user)
        if score then return tonumber(score) end
        return nil
    end

    -- ZCOUNT fs:{s}:holds (now +inf: holds still live at `now`.
    function store.live_holds(now)
        return call('ZCOUNT', k.holds, '(' .. int_str(now), '+inf')
    end

    -- ZRANGEBYSCORE fs:{s}:holds -inf now: holds that lapsed by `now`.
    function store.expired_holds(now)
        return call('ZRANGEBYSCORE', k.holds, '-inf', int_str(now))
    end

    -- ZADD fs:{s}:holds expires_at user, then
    -- SET fs:{s}:hold:user expires_at PXAT expires_at.
    function store.add_hold(user, expires_at)
        local at = int_str(expires_at)
        call('ZADD', k.holds, at, user)
        call('SET', k.hold(user), at, 'PXAT', at)
    end

    -- ZREM fs:{s}:holds user, then DEL fs:{s}:hold:user.
    function store.remove_hold(user)
        call('ZREM', k.holds, user)
        call('DEL', k.hold(user))
    end

    -- ZRANK fs:{s}:queue user (0-based).
    function store.queue_rank(user)
        local rank = call('ZRANK', k.queue, user)
        if rank then return rank end
        return nil
    end

    -- ZCARD fs:{s}:queue
    function store.queue_len()
        return call('ZCARD', k.queue)
    end

    -- ZRANGE fs:{s}:queue -1 -1 WITHSCORES: the newest arrival's ticket.
    function store.queue_last_ticket()
        local last = call('ZRANGE', k.queue, '-1', '-1', 'WITHSCORES')
        if #last == 0 then
            return nil
        end
        return tonumber(last[2])
    end

    -- ZADD fs:{s}:queue ticket user
    function store.queue_push(user, ticket)
        call('ZADD', k.queue, int_str(ticket), user)
    end

    -- ZREM fs:{s}:queue user
    function store.queue_remove(user)
        call('ZREM', k.queue, user)
    end

    -- ZPOPMIN fs:{s}:queue n: the n oldest users, oldest first. The reply
    -- alternates member and score; keep the members.
    function store.queue_pop(n)
        local flat = call('ZPOPMIN', k.queue, int_str(n))
        local users = {}
        for i = 1, #flat, 2 do
            users[#users + 1] = flat[i]
        end
        return users
    end

    -- DEL fs:{s}:queue
    function store.queue_clear()
        call('DEL', k.queue)
    end

    -- ZSCORE fs:{s}:lapsed user: the user's hold expired and was reclaimed,
    -- and the user has not queued again since. (A zset, scored by when the
    -- hold was reclaimed, because the module's key API handles zsets.)
    function store.is_lapsed(user)
        return call('ZSCORE', k.lapsed, user) ~= false
    end

    -- ZADD fs:{s}:lapsed reclaimed_at user
    function store.add_lapsed(user, reclaimed_at)
        call('ZADD', k.lapsed, int_str(reclaimed_at), user)
    end

    -- ZREM fs:{s}:lapsed user
    function store.remove_lapsed(user)
        call('ZREM', k.lapsed, user)
    end

    -- TYPE of every key of the sale: WRONGTYPE unless each is absent or of
    -- its own type. Commands that write keys they have not read call it
    -- before their first write.
    function store.check_key_types()
        for _, pair in ipairs(KEY_TYPES) do
            local found = call('TYPE', k.prefix .. pair[1]).ok
            if found ~= 'none' and found ~= pair[2] then
                fail(CODE_WRONGTYPE .. ' ' .. MSG_WRONG_TYPE)
            end
        end
    end

    -- XADD fs:{s}:outbox 0-n order_id .. sale_id .. user_id .. amount ..
    -- confirmed_at ..  (the id is fixed so replicas and AOF rebuild it).
    -- `entry` is keyed by field name, as OutboxEntry's fields are named.
    function store.append_outbox(n, entry)
        local args = { 'XADD', k.outbox, OUTBOX_ENTRY_ID_PREFIX .. int_str(n) }
        for _, field in ipairs(OUTBOX_FIELDS) do
            local value = entry[field]
            if type(value) == 'number' then
                value = int_str(value)
            end
            args[#args + 1] = field
            args[#args + 1] = value
        end
        call(unpack(args))
    end

    return store
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
    local time = call('TIME')
    return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

---------------------------------------------------------------------------
-- Rules (rules.rs). Each rule reads everything it needs, decides, and only
-- then writes. Replies are built directly in their RESP shape (reply.rs):
-- strings become bulk strings, numbers integers.
---------------------------------------------------------------------------

local function existing_sale(store)
    local sale = store.sale()
    if sale == nil then
        no_sale()
    end
    return sale
end

local function setup(store, now, sale_id_, params)
    local existing = store.sale()
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
    })
    if existing then
        return { 'updated' }
    end
    return { 'created' }
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
        return { 'not_started', sale.starts_at - now }
    end
    if sale.sold >= sale.stock then
        return { 'sold_out' }
    end
    local length = store.queue_len()
    local rank = store.queue_rank(user)
    if rank ~= nil then
        return { 'queued', rank + 1, length }
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
    local expired = store.expired_holds(now)
    local queued = store.queue_len()
    local outcome, admit, credit
    if now >= sale.ends_at then
        outcome = 'ended'
    elseif now < sale.starts_at then
        outcome = 'not_started'
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
        sale.rate_credit = saturating_sub(credit, spent)
        sale.rate_at = max(now, sale.rate_at)
        store.write_sale(sale)
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

local function confirm(store, now, sale_id_, user, amount)
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
    store.check_key_types()

    local id = order_id(sale_id_, n)
    -- The outbox first: XADD is the one write that can still be refused (a
    -- hand-made entry with a higher id), and then nothing else is written.
    store.append_outbox(n, {
        order_id = id,
        sale_id = sale_id_,
        user_id = user,
        amount = amount,
        confirmed_at = now,
    })
    sale.sold = sale.sold + 1
    sale.order_seq = n
    store.write_sale(sale)
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
        store.record_order(user, n.order.order_id)
    end
    if sale ~= nil then
        local order_seq = max(sale.order_seq, highest)
        if added > 0 or order_seq ~= sale.order_seq then
            sale.sold = sale.sold + added
            sale.order_seq = order_seq
            store.write_sale(sale)
        end
    end
    return { 'restored', added, recorded + added }
end

local function release(store, user)
    existing_sale(store)
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
    return { 'none' }
end

local function status(store, now, user)
    local sale = existing_sale(store)
    local held = store.live_holds(now)
    local queued = store.queue_len()
    local state
    if now < sale.starts_at then
        state = 'upcoming'
    elseif sale.sold >= sale.stock then
        state = 'sold_out'
    elseif now >= sale.ends_at then
        state = 'ended'
    else
        state = 'active'
    end
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
        local function push(...)
            for _, item in ipairs({ ... }) do
                reply[#reply + 1] = item
            end
        end
        push('user')
        local order = store.order_of(user)
        if order then
            push('purchased', 'order_id', order)
        else
            local expires_at = store.hold_expiry(user)
            if expires_at ~= nil then
                if expires_at > now then
                    push('holding', 'hold_ms', expires_at - now)
                else
                    push('expired')
                end
            elseif store.is_lapsed(user) then
                push('expired')
            else
                local rank = store.queue_rank(user)
                if rank ~= nil then
                    push('queued', 'position', rank + 1)
                else
                    push('none')
                end
            end
        end
    end
    return reply
end

local function execute(store, now, cmd)
    local name = cmd.name
    if name == 'setup' then
        return setup(store, now, cmd.sale, cmd.params)
    elseif name == 'enqueue' then
        return enqueue(store, now, cmd.user)
    elseif name == 'grant' then
        return grant(store, now, cmd.max)
    elseif name == 'confirm' then
        return confirm(store, now, cmd.sale, cmd.user, cmd.amount)
    elseif name == 'release' then
        return release(store, cmd.user)
    elseif name == 'restore' then
        return restore(store, now, cmd.orders)
    end
    return status(store, now, cmd.user)
end

---------------------------------------------------------------------------
-- Entry points
---------------------------------------------------------------------------

local function run(name, keys, argv)
    -- The sale id travels as the only key so cluster routing works; any
    -- other key count is an arity error, as for the module command.
    if #keys ~= 1 then
        wrong_arity(name)
    end
    local args = { keys[1] }
    for _, a in ipairs(argv) do
        args[#args + 1] = a
    end
    local cmd = parse(name, args)
    local now = now_ms()
    return execute(new_store(cmd.sale), now, cmd)
end

local function entry_point(name)
    return function(keys, argv)
        local ok, result = pcall(run, name, keys, argv)
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
-- END GENERATED registration
