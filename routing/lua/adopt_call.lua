-- An engine takes over a call whose channel it found in its Stasis application
-- (the engine that held it died): from now on offers for it are published to
-- the new owner. Atomic with the state read, so an offer the matcher makes
-- after this goes to the new owner, and one made before shows as 'offered'.
-- KEYS[1] call hash
-- ARGV[1] key prefix  ARGV[2] new owner
-- Reply: the call's record as taken over (field, value...), or false if the
-- call is unknown (expired, or still in the menu). The engine acts on this
-- record, not on one it read before: an offer may have been made between.
local call = redis.call('HMGET', KEYS[1], 'state', 'ttl_s')
if not call[1] then return false end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
touch_call(KEYS[1], call[2])
return redis.call('HGETALL', KEYS[1])
