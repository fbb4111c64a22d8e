-- KEYS: job, active, events, index prefix  ARGV: job_id, now, akool_status, url, next_due,
-- count_poll, count_error, lag, source ('poll', 'webhook' or 'create'), retention_seconds.
-- Records one poll outcome (or a callback); moves a completed job to 'downloading'. Returns
-- the state after. 'lag' is how late this poll ran against its plan; the worst is kept.
local st = redis.call('HGET', JOB, 'state')
if not st then return 'missing' end
if FINAL[st] or st == 'downloading' or st == 'storing' then
  return st
end
if st == 'cancelling' then
  settle_cancel(ARGV[1], st, ARGV[2], ARGV[10])
  return 'cancelled'
end
local planned = redis.call('HGET', JOB, 'due_at')
local before = redis.call('HGET', JOB, 'akool_status')
redis.call('HINCRBY', JOB, 'polls', tonumber(ARGV[6]))
redis.call('HINCRBY', JOB, 'transient_errors', tonumber(ARGV[7]))
redis.call('HSET', JOB, 'updated_at', ARGV[2], 'due_at', ARGV[5])
local lag = tonumber(ARGV[8])
if lag > tonumber(redis.call('HGET', JOB, 'poll_lag_max') or '-1e9') then
  redis.call('HSET', JOB, 'poll_lag_max', ARGV[8])
end
if ARGV[9] == 'webhook' then
  event(ARGV[2], 'webhook', {status = tonumber(ARGV[3])})
elseif ARGV[6] == '1' or ARGV[7] == '1' then
  event(ARGV[2], 'poll', {planned = tonumber(planned), status = tonumber(ARGV[3]),
    error = ARGV[7] == '1', next = tonumber(ARGV[5])})
end
if ARGV[3] ~= '' then
  redis.call('HSET', JOB, 'akool_status', ARGV[3])
  if before ~= ARGV[3] then
    event(ARGV[2], 'status', {from = tonumber(before), to = tonumber(ARGV[3])})
  end
end
if ARGV[3] == '3' then
  set_state(ARGV[1], st, 'downloading')
  redis.call('HSET', JOB, 'audio_url', ARGV[4], 'detected_at', ARGV[2],
    'poll_errors', redis.call('HGET', JOB, 'transient_errors') or '0', 'transient_errors', 0)
  st = 'downloading'
end
redis.call('ZADD', ACTIVE, ARGV[5], ARGV[1])
return st
