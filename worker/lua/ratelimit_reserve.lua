-- KEYS: bucket, penalty  ARGV: rate, burst, max_wait. Reads Redis's own clock (TIME), so hosts
-- need not trust their clocks.
-- A token bucket; a caller that must wait up to ARGV[3] s takes its token now (the bucket
-- goes negative): it owns a slot at now + wait, so waiting callers are spaced out exactly
-- instead of all retrying and finding the bucket empty again. Returns {wait, reserved}.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1]) * tonumber(redis.call('GET', KEYS[2]) or '1')
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
local reserved = 1
if tokens < 1 then wait = (1 - tokens) / rate end
if wait <= tonumber(ARGV[3]) then tokens = tokens - 1 else reserved = 0 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
return {tostring(wait), reserved}
