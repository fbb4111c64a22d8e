-- KEYS: pace, penalty  ARGV: rate, burst. The check at the moment of sending (rl_pace in
-- _ratelimit.lua). Returns '0' (go now, counted as sent) or the seconds to wait.
return tostring(rl_pace(KEYS[1], rl_now(), rl_rate(KEYS[2], tonumber(ARGV[1])),
                        tonumber(ARGV[2])))
