-- The advocate did not answer (or their phone failed). They go away so the
-- next call does not ring an empty desk; the call goes back with its original
-- score, first in line again, and is matched at once.
-- KEYS[1] advocate hash   KEYS[2] call hash   KEYS[3] ringing zset
-- ARGV[1] key prefix      ARGV[2] call id     ARGV[3] advocate id   ARGV[4] now ms
-- Reply: {'ok', offer json...} | {'stale'}
local p, call_id, adv_id, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local adv = redis.call('HMGET', KEYS[1], 'state', 'call')
local call = redis.call('HMGET', KEYS[2], 'state', 'advocate', 'queue', 'score', 'ttl_s')
if adv[1] ~= 'ringing' or adv[2] ~= call_id or call[1] ~= 'offered' or call[2] ~= adv_id then
  return {'stale'}
end
redis.call('HSET', KEYS[1], 'state', 'away', 'state_since', now_ms)
redis.call('HDEL', KEYS[1], 'call')
redis.call('HSET', KEYS[2], 'state', 'waiting')
redis.call('HDEL', KEYS[2], 'advocate')
touch_call(KEYS[2], call[5])
redis.call('ZREM', KEYS[3], call_id)
redis.call('ZADD', waiting_key(p, call[3]), call[4], call_id)
return reply_ok(match(p, {call[3]}, now_ms))
