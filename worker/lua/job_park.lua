-- KEYS: job, active, events, index prefix, parked (ZSET), parked messages (hash)
-- ARGV: job_id, due, queue key, message. Parks a waiting poll: the job's next poll message
-- is kept in Redis and pushed onto its queue when due (dispatch_due.lua), instead of a
-- countdown message held by a worker. Only a job that still waits for Akool is parked; one
-- that moved on meanwhile (a webhook completed it, a cancel) is continued by whoever moved it.
-- Returns 1 when parked.
if redis.call('HGET', JOB, 'state') ~= 'submitted' then return 0 end
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[6], ARGV[1], ARGV[3] .. '\n' .. ARGV[4])
return 1
