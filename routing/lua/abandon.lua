-- The caller hung up while waiting.
-- KEYS[1] call hash
-- ARGV[1] key prefix   ARGV[2] call id
-- Reply: 1 if the call was waiting (now ended), 0 otherwise (unknown, offered,
-- bridged or already ended: nothing changed)
local p, call_id = ARGV[1], ARGV[2]
local call = redis.call('HMGET', KEYS[1], 'state', 'queue', 'ttl_s')
if call[1] ~= 'waiting' then return 0 end
redis.call('ZREM', waiting_key(p, call[2]), call_id)
redis.call('HSET', KEYS[1], 'state', 'ended')
touch_call(KEYS[1], call[3])
return 1
