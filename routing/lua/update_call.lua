-- Add metadata to a call only if it still exists: a plain HSET on an expired
-- call would recreate the hash without a TTL and leak it.
-- KEYS[1] call hash
-- ARGV[1] key prefix (unused)   ARGV[2..] field, value, field, value...
-- Reply: 1 if updated, 0 if the call is unknown
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
