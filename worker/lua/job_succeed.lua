-- KEYS: job, active, events, index prefix  ARGV: job_id, now, location, file ('' for object
-- storage), sha256, bytes, retention_seconds, download event (JSON, '' when the result was
-- fetched before). Ends a job with its stored result: 1. A final job is never changed: 0.
-- A job whose cancel was asked is cancelled instead: 2 (the caller removes the stored result).
local st = redis.call('HGET', JOB, 'state')
if not st or FINAL[st] then return 0 end
if ARGV[8] ~= '' then
  redis.call('RPUSH', EVENTS, ARGV[8])
end
if st == 'cancelling' then
  settle_cancel(ARGV[1], st, ARGV[2], ARGV[7])
  return 2
end
set_state(ARGV[1], st, 'succeeded')
redis.call('HSET', JOB, 'location', ARGV[3], 'file', ARGV[4],
  'sha256', ARGV[5], 'bytes', ARGV[6], 'completed_at', ARGV[2], 'updated_at', ARGV[2])
redis.call('HDEL', JOB, 'storage_error')
redis.call('ZADD', ACTIVE, ARGV[2], ARGV[1])
expire(ARGV[7])
event(ARGV[2], 'stored', {location = ARGV[3], bytes = tonumber(ARGV[6])})
event(ARGV[2], 'succeeded', {})
return 1
