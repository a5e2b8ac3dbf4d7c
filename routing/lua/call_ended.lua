-- A bridged call is over (either side hung up): the advocate enters wrap_up,
-- which they leave through the API. Repeating it for the same pair is
-- harmless; any other pair is stale.
-- KEYS[1] advocate hash   KEYS[2] call hash
-- ARGV[1] key prefix      ARGV[2] call id   ARGV[3] advocate id   ARGV[4] now ms
-- Reply: {'ok'} | {'stale'}
local call_id, adv_id, now_ms = ARGV[2], ARGV[3], ARGV[4]
local adv = redis.call('HMGET', KEYS[1], 'state', 'call')
local call = redis.call('HMGET', KEYS[2], 'state', 'advocate', 'ttl_s')
if adv[2] ~= call_id or call[2] ~= adv_id then return {'stale'} end
if adv[1] == 'wrap_up' and call[1] == 'ended' then return {'ok'} end
if adv[1] ~= 'on_call' or call[1] ~= 'bridged' then return {'stale'} end
redis.call('HSET', KEYS[1], 'state', 'wrap_up', 'state_since', now_ms)
redis.call('HSET', KEYS[2], 'state', 'ended')
touch_call(KEYS[2], call[3])
return {'ok'}
