-- KEYS[1] the consumer's heartbeat, KEYS[2] the set of tags it holds, KEYS[3] the registry of
-- consumers, KEYS[4] the claim (a key of this restorer's own).  ARGV[1] the consumer.
-- A consumer whose heartbeat has expired is dead: its set of held tags becomes this
-- restorer's claim, in one step, so two restorers never both restore one message. Returns 1
-- when there is something to restore, 0 when the consumer is alive or held nothing.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('RENAME', KEYS[2], KEYS[4])
return 1
