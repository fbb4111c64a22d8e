-- KEYS: job, active  ARGV: job_id, now, akool_status, url, next_due, count_poll, count_error, lag
-- Records one poll outcome; moves a completed job to 'downloading'. Returns the state after.
-- 'lag' is how late this poll ran against its plan; the worst is kept (bench/ reads it).
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 'missing' end
if st == 'succeeded' or st == 'failed' or st == 'downloading' or st == 'storing' then
  return st
end
redis.call('HINCRBY', KEYS[1], 'polls', tonumber(ARGV[6]))
redis.call('HINCRBY', KEYS[1], 'transient_errors', tonumber(ARGV[7]))
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2], 'due_at', ARGV[5])
local lag = tonumber(ARGV[8])
if lag > tonumber(redis.call('HGET', KEYS[1], 'poll_lag_max') or '-1e9') then
  redis.call('HSET', KEYS[1], 'poll_lag_max', ARGV[8])
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'akool_status', ARGV[3]) end
if ARGV[3] == '3' then
  redis.call('HSET', KEYS[1], 'state', 'downloading', 'audio_url', ARGV[4], 'detected_at', ARGV[2],
    'poll_errors', redis.call('HGET', KEYS[1], 'transient_errors') or '0', 'transient_errors', 0)
  st = 'downloading'
end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return st
