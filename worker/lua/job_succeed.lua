-- KEYS: job, active  ARGV: job_id, now, location, file ('' for object storage), sha256, bytes,
-- retention_seconds. Ends a job with its stored result; a final job is never changed.
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'succeeded' or st == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'succeeded', 'location', ARGV[3], 'file', ARGV[4],
  'sha256', ARGV[5], 'bytes', ARGV[6], 'completed_at', ARGV[2], 'updated_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'storage_error')
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[7])
return 1
