-- KEYS: job, active, akool-map  ARGV: job_id, akool_id, status, url, now, next_due, map_ttl
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 0 end
if st == 'succeeded' or st == 'failed' then
  -- the job was ended (e.g. at its deadline) while this POST was in flight: keep the paid
  -- Akool id for the audit trail, but never bring a final job back to life
  redis.call('HSET', KEYS[1], 'orphan_akool_id', ARGV[2])
  return 0
end
if redis.call('HGET', KEYS[1], 'akool_id') then
  if redis.call('HGET', KEYS[1], 'akool_id') ~= ARGV[2] then
    redis.call('HSET', KEYS[1], 'orphan_akool_id', ARGV[2])  -- a racing duplicate submission
  end
  return 0
end
redis.call('HSET', KEYS[1], 'akool_id', ARGV[2], 'akool_status', ARGV[3], 'audio_url', ARGV[4],
  'state', 'submitted', 'submit_inflight', '0', 'submit_lease_until', 0,
  'submitted_at', ARGV[5], 'updated_at', ARGV[5], 'due_at', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[7])
return 1
