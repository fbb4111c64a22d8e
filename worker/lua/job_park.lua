-- KEYS: job, active, events, index prefix, parked (ZSET), parked messages (hash)
-- ARGV: job_id, due, queue key, message ('': the job's own, kept from its last park), the
-- state the job waits in: 'submitted' (for its speech) or 'accepted' (for the voice of a v4
-- clone stage).
-- Parks a wait for Akool: the job's next message is kept in Redis and pushed onto its queue
-- when due (dispatch_due.lua), instead of a countdown message held by a worker. The message
-- (the rest of the job's chain, as kombu would LPUSH it; for an accepted job, its resume) is
-- the same for every wait in one state of one attempt, so it is built once and kept in the
-- job's hash ('poll_msg') until the job leaves that state (set_state). Only a job still in the
-- state it waits in is parked; one that moved on meanwhile (a webhook completed it, a cancel,
-- another worker submitted it) is continued by whoever moved it.
-- Returns 1 when parked, 0 when the job moved on, 2 when no message is kept (send one).
if redis.call('HGET', JOB, 'state') ~= ARGV[5] then return 0 end
if ARGV[4] ~= '' then
  redis.call('HSET', JOB, 'poll_msg', ARGV[3] .. '\n' .. ARGV[4])
elseif redis.call('HEXISTS', JOB, 'poll_msg') == 0 then
  return 2
end
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])  -- a copy parked by an earlier version is superseded
return 1
