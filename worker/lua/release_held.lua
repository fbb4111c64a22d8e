-- KEYS[1] the set of delivery tags this consumer holds (worker/broker/heartbeat.py).
-- ARGV the tags it still holds in memory (tasks it is running), to keep.
-- After a lost connection the consumer no longer holds what it had reserved or scheduled: take
-- every other tag out of its set, in one step (a dead-consumer restorer that claims the set
-- meanwhile gets the rest, never the same tag), and return them to be restored.
local keep = {}
for i = 1, #ARGV do keep[ARGV[i]] = true end
local released = {}
for _, tag in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not keep[tag] then
    redis.call('SREM', KEYS[1], tag)
    released[#released + 1] = tag
  end
end
return released
