-- An API-driven state change (available, away, offline), validated here so
-- that the check and the change are one atomic step. Entering available puts
-- the advocate at the back of each of their queues' lines and matches them.
-- KEYS[1] advocate hash
-- ARGV[1] key prefix   ARGV[2] advocate id   ARGV[3] new state
-- ARGV[4] csv of states the move is allowed from (routing.advocates.allowed_sources)
-- ARGV[5] now ms
-- Reply: {'ok', offer json...} | {'unknown_advocate'} | {'invalid', current state}
local p, id, new, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local adv = redis.call('HMGET', KEYS[1], 'state', 'queues', 'endpoint')
local old = adv[1]
if not old then return {'unknown_advocate'} end
if not contains(split_csv(ARGV[4]), old) then return {'invalid', old} end
-- A repeated request must not reset idle_since: that would cost a place in line.
if old == new then return reply_ok() end

local queues = split_csv(adv[2])
if old == 'available' then make_unavailable(p, id, queues) end
if new ~= 'available' then
  redis.call('HSET', KEYS[1], 'state', new, 'state_since', now_ms)
  redis.call('HDEL', KEYS[1], 'call')  -- only wrap_up had one, and it is over
  return reply_ok()
end
return reply_ok({offer_to_freed(p, id, queues, now_ms, adv[3], now_ms, {'idle_since', now_ms})})
