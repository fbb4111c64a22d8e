-- KEYS: job  ARGV: now, lease_seconds
-- Returns 'go' (caller may POST), 'submitted', 'final', 'busy', or 'missing'.
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 'missing' end
if st == 'succeeded' or st == 'failed' then return 'final' end
if redis.call('HGET', KEYS[1], 'akool_id') then return 'submitted' end
local lease = tonumber(redis.call('HGET', KEYS[1], 'submit_lease_until') or '0')
local now = tonumber(ARGV[1])
if lease > now then return 'busy' end
if redis.call('HGET', KEYS[1], 'submit_inflight') == '1' then
  -- an earlier POST started but its outcome was never recorded (crash or lost answer)
  redis.call('HINCRBY', KEYS[1], 'ambiguous_submits', 1)
end
redis.call('HSET', KEYS[1], 'state', 'submitting', 'submit_inflight', '1',
  'submit_lease_until', now + tonumber(ARGV[2]), 'updated_at', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'submit_attempts', 1)
return 'go'
