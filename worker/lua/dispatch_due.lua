-- KEYS: parked (ZSET job_id -> due), parked messages (hash job_id -> 'queue\nmessage', written
-- by earlier versions only), rate-limit penalty, the poll queue's list, the job hashes' prefix
-- ('<prefix>:job:', each holding its kept 'poll_msg', job_park.lua).
-- ARGV: now, most to move, rate (calls/s), horizon (s).
-- Moves the polls that are due, oldest first, onto their queue, each exactly once: the ZREM
-- and the LPUSH happen in this one call, so two dispatchers never push one poll twice and a
-- dispatcher killed mid-batch loses none. No more move than the fleet's shared Akool rate can
-- serve within the horizon, minus what already waits in the queue: a poll that would only wait
-- for a token waits here, in the sorted set, where it costs no worker anything.
-- Each push is a new delivery of the job's kept message: its delivery tag gets the job's
-- dispatch count appended (kombu's unacked index is keyed by it), and its sent_at header
-- (worker/fleet/counters.py) is set to now (the queue's oldest-message age starts here).
-- The envelope is decoded and encoded with cjson (its shape: worker/broker/compat.py, which
-- checks before parking that the rest comes out the same: no empty list, no number beyond
-- 14 digits; the base64 body is a string and stays as it is). A payload that is not JSON,
-- or has neither field, is pushed as it is.
-- Returns {moved, seconds until the next parked poll is due (-1: none)}.
local now = tonumber(ARGV[1])
local factor = tonumber(redis.call('GET', KEYS[3]) or '1')
local room = math.floor(tonumber(ARGV[3]) * factor * tonumber(ARGV[4])) - redis.call('LLEN', KEYS[4])
local n = math.min(tonumber(ARGV[2]), room)
local moved = 0
if n > 0 then
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, n)
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[1], id)
    local job = KEYS[5] .. id
    local kept = false
    local stored = redis.call('HGET', KEYS[2], id)  -- an earlier version's one-off message
    if stored then
      redis.call('HDEL', KEYS[2], id)
    else
      stored = redis.call('HGET', job, 'poll_msg')
      kept = stored ~= false
    end
    if stored then
      local cut = string.find(stored, '\n', 1, true)
      local queue, payload = string.sub(stored, 1, cut - 1), string.sub(stored, cut + 1)
      local seq = kept and redis.call('HINCRBY', job, 'dispatched', 1)
      local ok, msg = pcall(cjson.decode, payload)
      if ok and type(msg) == 'table' then
        local headers, props, edited = msg.headers, msg.properties, false
        if type(headers) == 'table' and type(headers.sent_at) == 'number' then
          headers.sent_at, edited = now, true
        end
        if seq and type(props) == 'table' and type(props.delivery_tag) == 'string' then
          local base = string.match(props.delivery_tag, '^[^.]+')
          if base then props.delivery_tag, edited = base .. '.' .. seq, true end
        end
        local encoded, out = pcall(cjson.encode, msg)
        if edited and encoded then payload = out end
      end
      redis.call('LPUSH', queue, payload)
      moved = moved + 1
    end
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then return {moved, '-1'} end
return {moved, tostring(math.max(0, tonumber(first[2]) - now))}
