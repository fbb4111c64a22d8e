-- KEYS[1] kombu's unacked hash, KEYS[2] its index, KEYS[3] the set of delivery tags this
-- consumer holds (worker/broker/heartbeat.py), KEYS[4..] the queue lists in the order BRPOP
-- would try them. ARGV[1] the time, the score kombu's restore sweep compares with.
-- It reads, then records, then pops: Redis does not roll back a script that fails midway (out
-- of memory at the HSET), and such a script must not have popped anything.
for i = 4, #KEYS do
  local raw = redis.call('LINDEX', KEYS[i], -1)
  if raw then
    local tag, record = nil, nil
    local ok, msg = pcall(cjson.decode, raw)
    if ok and type(msg) == 'table' and type(msg.properties) == 'table' then
      local props = msg.properties
      local info = props.delivery_info
      if type(props.delivery_tag) == 'string' and type(info) == 'table'
          and info.exchange ~= nil and info.routing_key ~= nil then
        local ok_ex, ex = pcall(cjson.encode, info.exchange)
        local ok_rk, rk = pcall(cjson.encode, info.routing_key)
        if ok_ex and ok_rk then
          tag = props.delivery_tag
          record = '[' .. raw .. ',' .. ex .. ',' .. rk .. ']'
        end
      end
    end
    if record then
      redis.call('ZADD', KEYS[2], ARGV[1], tag)
      redis.call('HSET', KEYS[1], tag, record)
      redis.call('SADD', KEYS[3], tag)
      redis.call('RPOP', KEYS[i])
      return {KEYS[i], raw, tag}
    end
    redis.call('RPOP', KEYS[i])
    return {KEYS[i], raw}
  end
end
return false
