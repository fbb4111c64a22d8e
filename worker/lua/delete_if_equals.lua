-- KEYS: a key  ARGV: a value. Deletes the key only while it still holds that value (a lock's
-- owner token, a cached token): someone else's newer value is never deleted. Returns 1 or 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
