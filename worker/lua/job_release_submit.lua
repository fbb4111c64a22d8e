-- KEYS: job  ARGV: now, ambiguous(0/1). Only a job still being submitted goes back to accepted.
if redis.call('HGET', KEYS[1], 'state') ~= 'submitting' then return 0 end
if redis.call('HGET', KEYS[1], 'akool_id') then return 0 end
redis.call('HSET', KEYS[1], 'state', 'accepted', 'submit_lease_until', 0, 'updated_at', ARGV[1])
if ARGV[2] == '0' then redis.call('HSET', KEYS[1], 'submit_inflight', '0') end
return 1
