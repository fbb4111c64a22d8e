-- KEYS: bucket, pace, penalty, held  ARGV: rate, burst, max_wait, hold_extra
-- All a call to Akool asks the shared limit, in one round trip. A caller that reserved a slot
-- earlier (its held key) skips the bucket; any other takes a token, or reserves the next slot
-- within max_wait s and holds it; then the check at the moment of sending. A held slot or
-- token is remembered for its wait plus hold_extra s. Returns {wait, outcome}:
--   {'0', 'go'}          call now (counted as sent)
--   {w, 'reserved'}      a slot is held: come back in w s and call without asking again
--   {w, 'retry'}         no slot within max_wait: ask again in w s (nothing is held)
--   {w, 'paced'}         the token is held; the send-time check asks for w s more
local now = rl_now()
local rate = rl_rate(KEYS[3], tonumber(ARGV[1]))
local burst = tonumber(ARGV[2])
local extra = tonumber(ARGV[4])
if redis.call('DEL', KEYS[4]) == 0 then
  local wait, reserved = rl_reserve(KEYS[1], now, rate, burst, tonumber(ARGV[3]))
  if wait > 0 then
    if reserved == 0 then return {tostring(wait), 'retry'} end
    redis.call('SET', KEYS[4], '1', 'EX', math.max(1, math.floor(wait + extra)))
    return {tostring(wait), 'reserved'}
  end
end
local wait = rl_pace(KEYS[2], now, rate, burst)
if wait > 0 then
  redis.call('SET', KEYS[4], '1', 'EX', math.max(1, math.floor(wait + extra)))
  return {tostring(wait), 'paced'}
end
return {'0', 'go'}
