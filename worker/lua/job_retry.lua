-- KEYS: job, active, events, index prefix  ARGV: job_id, now, deadline, expected attempt ('' for
-- any: a mismatch returns {'stale', attempt} and changes nothing). Runs a failed or
-- cancelled job again under the same id as attempt N+1: the finished attempt is kept in
-- 'attempts' (a JSON list), every field of the run is reset, and the record no longer expires.
-- Returns {'retried', attempt}, {'wrong', state} or {'missing', ''}.
local st = redis.call('HGET', JOB, 'state')
if not st then return {'missing', ''} end
local current = redis.call('HGET', JOB, 'attempt') or '1'
if ARGV[4] ~= '' and ARGV[4] ~= current then return {'stale', current} end
if st ~= 'failed' and st ~= 'cancelled' then return {'wrong', st} end
local h = {}
local flat = redis.call('HGETALL', JOB)
for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
local attempt = tonumber(h['attempt'] or '1')
local done = {attempt = attempt, state = st, akool_id = h['akool_id'] or cjson.null,
  orphan_akool_id = h['orphan_akool_id'] or cjson.null,
  error = {code = h['error_code'] or cjson.null, message = h['error_message'] or cjson.null},
  submitted_at = tonumber(h['submitted_at'] or '') or cjson.null,
  completed_at = tonumber(h['completed_at'] or '') or cjson.null,
  polls = tonumber(h['polls'] or '0'), submit_attempts = tonumber(h['submit_attempts'] or '0'),
  ambiguous_submits = tonumber(h['ambiguous_submits'] or '0'),
  credits = tonumber(h['credits'] or '') or cjson.null}
local attempts = {}
if h['attempts'] then attempts = cjson.decode(h['attempts']) end
attempts[#attempts + 1] = done
redis.call('HDEL', JOB, 'akool_id', 'akool_status', 'audio_url', 'error_code', 'error_message',
  'completed_at', 'finished_at', 'submitted_at', 'detected_at', 'due_at', 'notify_state',
  'notify_task_state', 'notify_error', 'notify_attempts', 'location', 'file', 'sha256', 'bytes',
  'staged', 'storage_error', 'storage_since', 'storage_attempts', 'orphan_akool_id',
  'poll_lag_max', 'cancel_requested_at', 'poll_errors', 'credits', 'stage', 'voice_doc_id',
  'cloned_voice_id', 'voice_polls')
redis.call('HSET', JOB, 'attempts', cjson.encode(attempts), 'attempt', attempt + 1,
  'polls', 0, 'transient_errors', 0, 'submit_attempts', 0, 'ambiguous_submits', 0, 'sweeps', 0,
  'submit_inflight', '0', 'submit_lease_until', 0, 'deadline_at', ARGV[3],
  'updated_at', ARGV[2])
set_state(ARGV[1], st, 'accepted')
redis.call('PERSIST', JOB)
redis.call('PERSIST', EVENTS)
redis.call('ZADD', ACTIVE, ARGV[2], ARGV[1])
event(ARGV[2], 'retried', {attempt = attempt + 1})
return {'retried', attempt + 1}
