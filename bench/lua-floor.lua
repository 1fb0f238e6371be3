#!lua name=flashsale_floor
-- The floor under the Lua library's ENQUEUE (bench/engine.sh): the nine
-- commands a new buyer's ENQUEUE sends (the clock, the sale record, the
-- buyer's order, hold, place and lapse, the queue's length and last ticket,
-- the ZADD), on keys of the same types, with none of the rules around
-- them. No library doing ENQUEUE's checks can be faster than this on the
-- same server; bench/engine.sh reports both against ZADD.
redis.register_function('floor_enqueue', function(keys, args)
    local sale, user = keys[1], args[1]
    redis.call('TIME')
    redis.call('GET', sale .. ':sale')
    redis.call('HGET', sale .. ':orders', user)
    redis.call('ZSCORE', sale .. ':holds', user)
    local length = redis.call('ZCARD', sale .. ':queue')
    redis.call('ZRANK', sale .. ':queue', user)
    redis.call('ZSCORE', sale .. ':lapsed', user)
    local last = redis.call('ZRANGE', sale .. ':queue', -1, -1, 'WITHSCORES')
    local ticket = 1
    if last[2] then
        ticket = tonumber(last[2]) + 1
    end
    redis.call('ZADD', sale .. ':queue', ticket, user)
    return { 'queued', length + 1, length + 1 }
end)
