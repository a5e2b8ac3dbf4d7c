-- After-call work is over: the advocate asked (API) or the engine's wrap-up
-- timer fired, whichever came first; the other finds the advocate no longer
-- in wrap_up and changes nothing, so the wrap-up ends, and is measured, once.
-- The disposition is written on the call the wrap-up is for, found through
-- the advocate's `call` field (the call hash key is built here, not passed:
-- the caller does not know the call id when the timer of another engine
-- ended it first). Entering available matches the advocate at once.
-- KEYS[1] advocate hash
-- ARGV[1] key prefix   ARGV[2] advocate id   ARGV[3] new state (available | away | offline)
-- ARGV[4] disposition ('' none)   ARGV[5] call id the wrap-up must be for ('' any)   ARGV[6] now ms
-- Reply: {'ok', call id, wrap-up since ms, call's call_type, offer json...}
--      | {'unknown_advocate'} | {'not_in_wrap_up', current state} | {'other_call', call id}
local p, id, new, disposition, expected, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local adv = redis.call('HMGET', KEYS[1], 'state', 'queues', 'call', 'state_since', 'endpoint')
if not adv[1] then return {'unknown_advocate'} end
if adv[1] ~= 'wrap_up' then return {'not_in_wrap_up', adv[1]} end
local call_id = adv[3] or ''
-- A timer armed for an earlier call must not cut short the wrap-up of a later one.
if expected ~= '' and expected ~= call_id then return {'other_call', call_id} end

local call_type = ''
if call_id ~= '' then
  local ckey = call_key(p, call_id)
  -- An expired call hash is not recreated (it would have no TTL); a call
  -- hash always has a state, so one HMGET tells both.
  local call = redis.call('HMGET', ckey, 'state', 'call_type')
  if call[1] then
    call_type = call[2] or ''
    if disposition ~= '' then redis.call('HSET', ckey, 'disposition', disposition) end
  end
end

local reply = {'ok', call_id, adv[4] or '0', call_type}
if new ~= 'available' then
  redis.call('HSET', KEYS[1], 'state', new, 'state_since', now_ms)
  redis.call('HDEL', KEYS[1], 'call')
  return reply
end
reply[#reply + 1] = offer_to_freed(p, id, split_csv(adv[2]), now_ms, adv[5], now_ms, {'idle_since', now_ms})
return reply
