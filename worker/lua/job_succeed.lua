-- KEYS: job, active  ARGV: job_id, now, file, sha256, bytes, retention_seconds
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'succeeded' or st == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'succeeded', 'file', ARGV[3], 'sha256', ARGV[4],
  'bytes', ARGV[5], 'completed_at', ARGV[2], 'updated_at', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
