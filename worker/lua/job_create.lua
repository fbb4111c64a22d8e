-- KEYS: job, active, events, index prefix  ARGV: job_id, kind, request, fingerprint, now,
-- task_id, deadline. Returns {'created'|'exists'|'conflict', owner_task_id}.
local fp = redis.call('HGET', JOB, 'fingerprint')
if fp then
  if fp ~= ARGV[4] then return {'conflict', ''} end
  return {'exists', redis.call('HGET', JOB, 'owner_task_id') or ''}
end
redis.call('HSET', JOB, 'job_id', ARGV[1], 'kind', ARGV[2], 'request', ARGV[3],
  'fingerprint', ARGV[4], 'created_at', ARGV[5], 'updated_at', ARGV[5],
  'owner_task_id', ARGV[6], 'deadline_at', ARGV[7], 'submit_attempts', 0, 'polls', 0,
  'transient_errors', 0, 'ambiguous_submits', 0, 'attempt', 1)
set_state(ARGV[1], nil, 'accepted')
redis.call('ZADD', ACTIVE, ARGV[5], ARGV[1])
redis.call('ZADD', IDX .. 'created', ARGV[5], ARGV[1])
redis.call('ZADD', IDX .. 'ids', 0, ARGV[1])
event(ARGV[5], 'accepted', {kind = ARGV[2]})
return {'created', ARGV[6]}
