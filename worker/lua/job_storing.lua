-- KEYS: job, active, events, index prefix  ARGV: job_id, now, error, next_due, staged, sha256,
-- bytes, download event (JSON or ''). The result was fetched (``staged`` in the store's
-- staging directory, with its sha256 and size) but the store refused it: the job waits in
-- 'storing' with the reason, counted, due again at next_due.
-- Returns {since, attempts}: when the store first refused this job and how often; {} when the
-- job is not (or no longer) waiting for its result.
local st = redis.call('HGET', JOB, 'state')
if st ~= 'downloading' and st ~= 'storing' then return {} end
if ARGV[8] ~= '' then
  redis.call('RPUSH', EVENTS, ARGV[8])
end
redis.call('HSETNX', JOB, 'storage_since', ARGV[2])
local attempts = redis.call('HINCRBY', JOB, 'storage_attempts', 1)
set_state(ARGV[1], st, 'storing')
redis.call('HSET', JOB, 'storage_error', ARGV[3], 'updated_at', ARGV[2],
  'staged', ARGV[5], 'sha256', ARGV[6], 'bytes', ARGV[7])
redis.call('ZADD', ACTIVE, 'XX', ARGV[4], ARGV[1])
event(ARGV[2], 'storing_refused', {attempt = attempts, error = string.sub(ARGV[3], 1, 300)})
return {redis.call('HGET', JOB, 'storage_since'), attempts}
