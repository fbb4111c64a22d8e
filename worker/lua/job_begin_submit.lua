-- KEYS: job, active, events, index prefix  ARGV: job_id, now, lease_seconds, retention_seconds
-- Returns 'go' (caller may POST), 'submitted', 'final', 'busy', or 'missing'. A job whose
-- cancel was asked is cancelled here ('final'): nothing is sent.
local st = redis.call('HGET', JOB, 'state')
if not st then return 'missing' end
if FINAL[st] then return 'final' end
if redis.call('HGET', JOB, 'akool_id') then return 'submitted' end
local lease = tonumber(redis.call('HGET', JOB, 'submit_lease_until') or '0')
local now = tonumber(ARGV[2])
if lease > now then return 'busy' end
if st == 'cancelling' then
  settle_cancel(ARGV[1], st, ARGV[2], ARGV[4])
  return 'final'
end
if redis.call('HGET', JOB, 'submit_inflight') == '1' then
  -- an earlier POST started but its outcome was never recorded (crash or lost answer)
  redis.call('HINCRBY', JOB, 'ambiguous_submits', 1)
end
set_state(ARGV[1], st, 'submitting')
redis.call('HSET', JOB, 'submit_inflight', '1', 'submit_lease_until', now + tonumber(ARGV[3]),
  'updated_at', ARGV[2])
local n = redis.call('HINCRBY', JOB, 'submit_attempts', 1)
event(ARGV[2], 'submit_started', {n = n})
return 'go'
