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
      -- textual edits: decoding and encoding again would turn an empty JSON list into {}
      payload = string.gsub(payload, '"sent_at": [%d%.eE+-]+', '"sent_at": ' .. ARGV[1], 1)
      if kept then
        local seq = redis.call('HINCRBY', job, 'dispatched', 1)
        payload = string.gsub(payload, '"delivery_tag": "([^".]+)[^"]*"',
                              '"delivery_tag": "%1.' .. seq .. '"', 1)
      end
      redis.call('LPUSH', queue, payload)
      moved = moved + 1
    end
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then return {moved, '-1'} end
return {moved, tostring(math.max(0, tonumber(first[2]) - now))}
