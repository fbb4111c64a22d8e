local f = tonumber(redis.call('GET', KEYS[1]) or '1') * 0.5
if f < 0.1 then f = 0.1 end
redis.call('SET', KEYS[1], tostring(f), 'EX', ARGV[1])
return tostring(f)
