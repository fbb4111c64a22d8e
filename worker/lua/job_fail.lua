-- KEYS: job, active, events, index prefix  ARGV: job_id, now, error_code, error_message,
-- retention_seconds. Returns 1 when the job is now failed (a job whose cancel was asked ends
-- cancelled instead: 0).
local st = redis.call('HGET', JOB, 'state')
if not st or FINAL[st] then return 0 end
if st == 'cancelling' then
  event(ARGV[2], 'error', {code = ARGV[3], message = string.sub(ARGV[4], 1, 300)})
  settle_cancel(ARGV[1], st, ARGV[2], ARGV[5])
  return 0
end
set_state(ARGV[1], st, 'failed')
redis.call('HSET', JOB, 'error_code', ARGV[3], 'error_message', ARGV[4],
  'completed_at', ARGV[2], 'updated_at', ARGV[2], 'submit_inflight', '0')
-- stays indexed (due now) until a finisher claims it: the sweeper finishes it if none does
redis.call('ZADD', ACTIVE, ARGV[2], ARGV[1])
expire(ARGV[5])
event(ARGV[2], 'failed', {code = ARGV[3], message = string.sub(ARGV[4], 1, 300)})
return 1
