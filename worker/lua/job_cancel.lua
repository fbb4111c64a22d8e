-- KEYS: job, active, events, index prefix  ARGV: job_id, now, retention_seconds, force (0/1),
-- expected attempt ('' for any: a mismatch returns {'stale', attempt} and changes nothing).
-- Asks a job to stop. Where no step can be halfway through something that must not happen
-- after a cancel (nothing sent yet, or only polling), the job is cancelled at once; while a
-- POST to Akool or a download may be in flight it is 'cancelling', and the step in flight
-- ends it at its next check. ``force`` ends a 'cancelling' job (the sweeper, when no step
-- moved it). Returns {outcome, state}: outcome 'missing', 'final', 'asked' (already asked),
-- 'cancelling' or 'cancelled'.
local st = redis.call('HGET', JOB, 'state')
if not st then return {'missing', ''} end
local attempt = redis.call('HGET', JOB, 'attempt') or '1'
if ARGV[5] ~= '' and ARGV[5] ~= attempt then return {'stale', attempt} end
if FINAL[st] then return {'final', st} end
local now = tonumber(ARGV[2])
if st == 'cancelling' then
  if ARGV[4] == '1' then
    settle_cancel(ARGV[1], st, ARGV[2], ARGV[3])
    return {'cancelled', 'cancelled'}
  end
  return {'asked', st}
end
redis.call('HSET', JOB, 'cancel_requested_at', ARGV[2], 'updated_at', ARGV[2])
event(ARGV[2], 'cancel_requested', {state = st})
local lease = tonumber(redis.call('HGET', JOB, 'submit_lease_until') or '0')
local in_flight = (st == 'submitting' and lease > now) or st == 'downloading' or st == 'storing'
if in_flight then
  set_state(ARGV[1], st, 'cancelling')
  return {'cancelling', 'cancelling'}
end
settle_cancel(ARGV[1], st, ARGV[2], ARGV[3])
return {'cancelled', 'cancelled'}
