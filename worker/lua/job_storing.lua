-- KEYS: job, active  ARGV: job_id, now, error, next_due, staged, sha256, bytes. The result was
-- fetched (``staged`` in the store's staging directory, with its sha256 and size) but the store
-- refused it: the job waits in 'storing' with the reason, counted, due again at next_due.
-- Returns {since, attempts}: when the store first refused this job and how often; {} when the
-- job is not (or no longer) waiting for its result.
local st = redis.call('HGET', KEYS[1], 'state')
if st ~= 'downloading' and st ~= 'storing' then return {} end
redis.call('HSETNX', KEYS[1], 'storage_since', ARGV[2])
local attempts = redis.call('HINCRBY', KEYS[1], 'storage_attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'storing', 'storage_error', ARGV[3], 'updated_at', ARGV[2],
  'staged', ARGV[5], 'sha256', ARGV[6], 'bytes', ARGV[7])
redis.call('ZADD', KEYS[2], 'XX', ARGV[4], ARGV[1])
return {redis.call('HGET', KEYS[1], 'storage_since'), attempts}
