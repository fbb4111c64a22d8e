-- Shared by every job_*.lua script (prepended by worker.lua.job_script). Every job script
-- takes KEYS[1] the job hash, KEYS[2] the active index, KEYS[3] the job's event list and
-- KEYS[4] the prefix of the listing indexes ('<prefix>:jobs:'): '<it>created' (every job by
-- created_at), '<it>ids' (job ids, for prefix search) and '<it>state:<state>' (one per state,
-- by created_at). Further keys follow these four.
local JOB, ACTIVE, EVENTS, IDX = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local EVENTS_MAX = 200
local FINAL = {succeeded = true, failed = true, cancelled = true}

-- Appends one event to the job's timeline (the newest EVENTS_MAX are kept).
local function event(now, kind, fields)
  fields = fields or {}
  fields['t'] = tonumber(now)
  fields['type'] = kind
  redis.call('RPUSH', EVENTS, cjson.encode(fields))
  redis.call('LTRIM', EVENTS, -EVENTS_MAX, -1)
end

-- Moves the job to another state, in its hash and in the per-state listing index. A job that
-- leaves the state its kept message was built for (a poll's while submitted, the clone stage's
-- resume while accepted: job_park.lua) drops it.
local function set_state(job_id, old, new)
  redis.call('HSET', JOB, 'state', new)
  if old == new then return end
  if old == 'submitted' or old == 'accepted' then redis.call('HDEL', JOB, 'poll_msg') end
  if old then redis.call('ZREM', IDX .. 'state:' .. old, job_id) end
  redis.call('ZADD', IDX .. 'state:' .. new, redis.call('HGET', JOB, 'created_at') or 0, job_id)
end

-- A final record (and its timeline) expires after the retention.
local function expire(seconds)
  redis.call('EXPIRE', JOB, seconds)
  redis.call('EXPIRE', EVENTS, seconds)
end

-- Ends a job whose cancel was asked: cancelled, due now, so that a finisher (or the sweeper)
-- publishes and notifies it.
local function settle_cancel(job_id, old, now, retention)
  set_state(job_id, old, 'cancelled')
  redis.call('HSET', JOB, 'completed_at', now, 'updated_at', now, 'submit_inflight', '0',
    'error_code', 'cancelled', 'error_message', 'cancelled on request')
  redis.call('ZADD', ACTIVE, now, job_id)
  expire(retention)
  event(now, 'cancelled', {})
end
