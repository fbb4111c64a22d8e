-- KEYS: job, active, events, index prefix  ARGV: job_id, now, ambiguous (0/1), error code,
-- retention_seconds. Only a job still being submitted goes back to accepted (or, when its
-- cancel was asked meanwhile, to cancelled).
local st = redis.call('HGET', JOB, 'state')
if st ~= 'submitting' and st ~= 'cancelling' then return 0 end
if redis.call('HGET', JOB, 'akool_id') then return 0 end
event(ARGV[2], 'submit_failed', {code = ARGV[4], ambiguous = ARGV[3] == '1'})
if ARGV[3] == '0' then redis.call('HSET', JOB, 'submit_inflight', '0') end
if st == 'cancelling' then
  settle_cancel(ARGV[1], st, ARGV[2], ARGV[5])
  return 1
end
set_state(ARGV[1], st, 'accepted')
redis.call('HSET', JOB, 'submit_lease_until', 0, 'updated_at', ARGV[2])
return 1
