-- KEYS: bucket, penalty  ARGV: rate, burst, max_wait. Take a token now or reserve the next
-- slot within max_wait s (rl_reserve in _ratelimit.lua). Returns {wait, reserved}.
local wait, reserved = rl_reserve(KEYS[1], rl_now(), rl_rate(KEYS[2], tonumber(ARGV[1])),
                                  tonumber(ARGV[2]), tonumber(ARGV[3]))
return {tostring(wait), reserved}
