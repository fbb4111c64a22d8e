-- The shared token bucket's checks as functions, prepended to every ratelimit_*.lua script
-- (worker.lua.ratelimit_script). Time is Redis's own clock (TIME), so hosts need not trust
-- their clocks; Akool's 1005 ("too frequent") scales the rate by the penalty key's factor.

local function rl_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function rl_rate(penalty_key, rate)
  return rate * tonumber(redis.call('GET', penalty_key) or '1')
end

-- A token bucket; a caller that may wait up to max_wait s takes its token now (the bucket
-- goes negative): it owns a slot at now + wait, so waiting callers are spaced out exactly
-- instead of all retrying and finding the bucket empty again. Returns wait, reserved (1/0).
local function rl_reserve(bucket_key, now, rate, burst, max_wait)
  local b = redis.call('HMGET', bucket_key, 'tokens', 'ts')
  local tokens = tonumber(b[1]) or burst
  local ts = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  local wait = 0
  local reserved = 1
  if tokens < 1 then wait = (1 - tokens) / rate end
  if wait <= max_wait then tokens = tokens - 1 else reserved = 0 end
  redis.call('HSET', bucket_key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('EXPIRE', bucket_key, 3600)
  return wait, reserved
end

-- The check at the moment of sending (the generic cell rate algorithm): a call may go when
-- the fleet's theoretical arrival time is at most (burst - 1) intervals ahead; it then moves
-- that time one interval on. Returns 0 (go now) or the seconds to wait. A reservation made
-- earlier and used late would otherwise land next to the call of the following slot.
local function rl_pace(pace_key, now, rate, burst)
  local interval = 1 / rate
  local tolerance = (burst - 1) * interval
  local tat = tonumber(redis.call('GET', pace_key) or '0')
  if tat < now then tat = now end
  if tat - now > tolerance then return tat - now - tolerance end
  redis.call('SET', pace_key, tostring(tat + interval), 'PX',
             math.ceil((tat + interval - now) * 1000) + 1000)
  return 0
end
