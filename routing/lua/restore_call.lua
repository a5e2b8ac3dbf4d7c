-- The engine holding a call's channel writes back what it knows of the call
-- after Redis lost it (restarted without persistence) or missed changes to
-- it (unreachable for a while): ringing at an advocate (offered), bridged
-- with one, or ringing the supervisors of a crisis escalation. The engine's
-- view wins over the record, since the channels it holds are real; an
-- advocate whom Redis has ringing or on another call is left alone and
-- named in the reply. A waiting call is not restored here: the engine simply
-- enqueues it again (enqueue.lua), keeping its arrival.
-- KEYS[1] call hash
-- ARGV[1] key prefix  ARGV[2] now ms  ARGV[3] call id  ARGV[4] state (offered|bridged|escalating)
-- ARGV[5] queue  ARGV[6] priority  ARGV[7] arrival ms  ARGV[8] score  ARGV[9] owner  ARGV[10] ttl seconds
-- ARGV[11] n, the number of advocates that follow  ARGV[12..11+n] advocate ids (one unless escalating)
-- ARGV[12+n..] metadata field, value... (written only where the record lacks them)
-- Reply: {'ok', advocate id left alone...}
local p, now_ms, call_id, state, queue = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local n = tonumber(ARGV[11])
local cur = redis.call('HMGET', KEYS[1], 'state', 'queue')
if cur[1] == 'waiting' then redis.call('ZREM', waiting_key(p, cur[2]), call_id) end
for i = 12 + n, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'queue', queue, 'priority', ARGV[6], 'arrival_ms', ARGV[7], 'score', ARGV[8],
  'owner', ARGV[9], 'ttl_s', ARGV[10], 'state', state)
if state == 'escalating' then
  redis.call('HDEL', KEYS[1], 'advocate')
else
  redis.call('HSET', KEYS[1], 'advocate', ARGV[12])
end
if state == 'offered' then
  redis.call('ZADD', ringing_key(p), 'NX', now_ms, call_id)
else
  redis.call('ZREM', ringing_key(p), call_id)
end
touch_call(KEYS[1], ARGV[10])

local wanted = state == 'bridged' and 'on_call' or 'ringing'
local left_alone = {'ok'}
for i = 12, 11 + n do
  local id = ARGV[i]
  local akey = advocate_key(p, id)
  local adv = redis.call('HMGET', akey, 'state', 'call', 'queues')
  if not adv[1] or ((adv[1] == 'ringing' or adv[1] == 'on_call') and adv[2] ~= call_id) then
    left_alone[#left_alone + 1] = id
  elseif adv[1] ~= wanted or adv[2] ~= call_id then
    if adv[1] == 'available' then make_unavailable(p, id, split_csv(adv[3])) end
    redis.call('HSET', akey, 'state', wanted, 'state_since', now_ms, 'call', call_id)
    -- A supervisor goes back to this state when the escalation settles.
    if state == 'escalating' then redis.call('HSET', akey, 'escalated_from', adv[1]) end
  end
end
return left_alone
