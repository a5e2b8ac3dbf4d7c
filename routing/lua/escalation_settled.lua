-- An escalation is over: one supervisor answered (ARGV[4]), or nobody did and
-- the call goes to the backup destination or was abandoned (ARGV[4] = '').
-- Every other supervisor rung returns to the state they were in, keeping
-- their place in line if they were available, and is matched at once.
-- KEYS[1] call hash
-- ARGV[1] key prefix  ARGV[2] now ms  ARGV[3] call id  ARGV[4] answering supervisor or ''
-- ARGV[5..] the supervisors rung
-- Reply: {'ok', offer json...} | {'stale'} (the answer came too late: nothing changed)
local p, now_ms, call_id, winner = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local call = redis.call('HMGET', KEYS[1], 'state', 'ttl_s')
local state = call[1]
if winner ~= '' then
  local akey = advocate_key(p, winner)
  local adv = redis.call('HMGET', akey, 'state', 'call')
  if state ~= 'escalating' or adv[1] ~= 'ringing' or adv[2] ~= call_id then return {'stale'} end
  redis.call('HSET', akey, 'state', 'on_call', 'state_since', now_ms)
  redis.call('HDEL', akey, 'escalated_from', 'escalated_call')
  redis.call('HSET', KEYS[1], 'state', 'bridged', 'advocate', winner)
elseif state == 'escalating' then
  redis.call('HSET', KEYS[1], 'state', 'ended')
end
touch_call(KEYS[1], call[2])

local freed = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local akey = advocate_key(p, id)
  local adv = redis.call('HMGET', akey, 'state', 'call', 'escalated_from', 'queues', 'idle_since', 'escalated_call')
  if id ~= winner and adv[1] == 'ringing' and adv[2] == call_id then
    local previous = adv[3] or 'away'
    redis.call('HSET', akey, 'state', previous, 'state_since', now_ms)
    redis.call('HDEL', akey, 'escalated_from', 'escalated_call', 'call')
    if previous == 'wrap_up' and adv[6] and adv[6] ~= '' then redis.call('HSET', akey, 'call', adv[6]) end
    if previous == 'available' then
      local queues = split_csv(adv[4])
      make_available(p, id, queues, adv[5] or now_ms)
      for _, q in ipairs(queues) do
        if not contains(freed, q) then freed[#freed + 1] = q end
      end
    end
  end
end
return reply_ok(match(p, freed, now_ms))
