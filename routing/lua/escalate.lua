-- A crisis call nobody answered in time leaves its queue for the on-call
-- supervisors: every advocate with the supervisor role who is not ringing or
-- on a call, whatever their other state (away, wrap-up, even logged out: a
-- supervisor on call is reachable on their phone). Each is claimed for this
-- call at once, so the matcher cannot offer them another call while they ring;
-- their previous state (and call) is kept in escalated_from (escalated_call)
-- for escalation_settled.lua.
-- KEYS[1] call hash
-- ARGV[1] key prefix  ARGV[2] now ms  ARGV[3] call id
-- Reply: {'ok', supervisor id, endpoint, id, endpoint...} (ids in order) | {'not_waiting'}
local p, now_ms, call_id = ARGV[1], ARGV[2], ARGV[3]
local call = redis.call('HMGET', KEYS[1], 'state', 'queue', 'ttl_s')
if call[1] ~= 'waiting' then return {'not_waiting'} end
redis.call('ZREM', waiting_key(p, call[2]), call_id)
redis.call('HSET', KEYS[1], 'state', 'escalating')
touch_call(KEYS[1], call[3])

local ids = redis.call('SMEMBERS', advocates_key(p))
table.sort(ids)
local reply = {'ok'}
for _, id in ipairs(ids) do
  local akey = advocate_key(p, id)
  local adv = redis.call('HMGET', akey, 'roles', 'state', 'endpoint', 'queues', 'call')
  if adv[2] and adv[2] ~= 'ringing' and adv[2] ~= 'on_call' and contains(split_csv(adv[1]), 'supervisor') then
    if adv[2] == 'available' then make_unavailable(p, id, split_csv(adv[4])) end
    -- A supervisor in wrap-up goes back to the wrap-up of that call afterwards.
    redis.call('HSET', akey, 'state', 'ringing', 'state_since', now_ms, 'call', call_id, 'escalated_from', adv[2],
      'escalated_call', adv[5] or '')
    reply[#reply + 1] = id
    reply[#reply + 1] = adv[3]
  end
end
return reply
