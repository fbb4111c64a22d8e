-- KEYS: job, active  ARGV: job_id, now, error_code, error_message, retention_seconds
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'succeeded' or st == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'failed', 'error_code', ARGV[3], 'error_message', ARGV[4],
  'completed_at', ARGV[2], 'updated_at', ARGV[2], 'submit_inflight', '0')
-- stays indexed (due now) until a finisher claims it: the sweeper finishes it if none does
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
