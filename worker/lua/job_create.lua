-- KEYS: job, active  ARGV: job_id, kind, request, fingerprint, now, task_id, deadline
local fp = redis.call('HGET', KEYS[1], 'fingerprint')
if fp then
  if fp ~= ARGV[4] then return {'conflict', ''} end
  return {'exists', redis.call('HGET', KEYS[1], 'owner_task_id') or ''}
end
redis.call('HSET', KEYS[1], 'job_id', ARGV[1], 'kind', ARGV[2], 'request', ARGV[3],
  'fingerprint', ARGV[4], 'state', 'accepted', 'created_at', ARGV[5], 'updated_at', ARGV[5],
  'owner_task_id', ARGV[6], 'deadline_at', ARGV[7], 'submit_attempts', 0, 'polls', 0,
  'transient_errors', 0, 'ambiguous_submits', 0)
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return {'created', ARGV[6]}
