-- KEYS: penalty  ARGV: seconds. Halves the shared rate (down to a tenth) for that long after
-- Akool said 1005 (too frequent). Returns the new factor.
local f = tonumber(redis.call('GET', KEYS[1]) or '1') * 0.5
if f < 0.1 then f = 0.1 end
redis.call('SET', KEYS[1], tostring(f), 'EX', ARGV[1])
return tostring(f)
