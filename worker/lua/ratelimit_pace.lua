-- KEYS: pace, penalty  ARGV: rate, burst. The check at the moment of sending (the generic cell
-- rate algorithm on Redis's own clock): a call may go when the fleet's theoretical arrival
-- time is at most (burst - 1) intervals ahead; it then moves that time one interval on.
-- Returns '0' (go now) or the seconds to wait. A reservation made earlier and used late would
-- otherwise land next to the call of the following slot.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1]) * tonumber(redis.call('GET', KEYS[2]) or '1')
local interval = 1 / rate
local tolerance = (tonumber(ARGV[2]) - 1) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat - now > tolerance then return tostring(tat - now - tolerance) end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil((tat + interval - now) * 1000) + 1000)
return '0'
