-- KEYS: job, active, events, index prefix, akool-map  ARGV: job_id, akool_id, status, url,
-- now, next_due, map_ttl, retention_seconds, credits ('' for none: v3). Returns 1 when the job
-- is now submitted (or, with status 3 and a url in the create answer, downloading). Credits
-- Akool charged (v4) are added to the record whatever happens next: they were spent.
local st = redis.call('HGET', JOB, 'state')
if not st then return 0 end
if ARGV[9] and ARGV[9] ~= '' then redis.call('HINCRBYFLOAT', JOB, 'credits', ARGV[9]) end
if FINAL[st] then
  -- the job was ended (e.g. at its deadline) while this POST was in flight: keep the paid
  -- Akool id for the audit trail, but never bring a final job back to life
  redis.call('HSET', JOB, 'orphan_akool_id', ARGV[2])
  event(ARGV[5], 'submitted', {akool_id = ARGV[2], status = tonumber(ARGV[3]), orphan = true})
  return 0
end
if redis.call('HGET', JOB, 'akool_id') then
  if redis.call('HGET', JOB, 'akool_id') ~= ARGV[2] then
    redis.call('HSET', JOB, 'orphan_akool_id', ARGV[2])  -- a racing duplicate submission
    event(ARGV[5], 'submitted', {akool_id = ARGV[2], status = tonumber(ARGV[3]), orphan = true})
  end
  return 0
end
redis.call('HSET', JOB, 'akool_id', ARGV[2], 'akool_status', ARGV[3], 'audio_url', ARGV[4],
  'submit_inflight', '0', 'submit_lease_until', 0, 'submitted_at', ARGV[5],
  'updated_at', ARGV[5], 'due_at', ARGV[6])
redis.call('SET', KEYS[5], ARGV[1], 'EX', ARGV[7])
event(ARGV[5], 'submitted', {akool_id = ARGV[2], status = tonumber(ARGV[3])})
if st == 'cancelling' then
  -- Akool has the job (and may charge for it); it is recorded, but nothing more is done
  settle_cancel(ARGV[1], st, ARGV[5], ARGV[8])
  return 0
end
if ARGV[3] == '3' and ARGV[4] ~= '' then
  -- done at create: straight to the download, as a poll that saw status 3 would
  set_state(ARGV[1], st, 'downloading')
  redis.call('HSET', JOB, 'detected_at', ARGV[5], 'due_at', ARGV[5])
  redis.call('ZADD', ACTIVE, ARGV[5], ARGV[1])
  return 1
end
set_state(ARGV[1], st, 'submitted')
redis.call('ZADD', ACTIVE, ARGV[6], ARGV[1])
return 1
