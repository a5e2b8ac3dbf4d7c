-- A waiting call widens to another queue, keeping its place by age and
-- priority (its score): the Spanish overflow to any advocate, and later the
-- skill tiers that widen over time. A call no longer waiting in the expected
-- queue (offered, bridged, ended, already moved) is left alone.
-- KEYS[1] call hash
-- ARGV[1] key prefix  ARGV[2] now ms  ARGV[3] call id  ARGV[4] from queue  ARGV[5] to queue
-- Reply: {'ok', offer json...} | {'not_waiting'}
local p, now_ms, call_id, from, to = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local call = redis.call('HMGET', KEYS[1], 'state', 'queue', 'score', 'ttl_s')
if call[1] ~= 'waiting' or call[2] ~= from then return {'not_waiting'} end
redis.call('ZREM', waiting_key(p, from), call_id)
redis.call('ZADD', waiting_key(p, to), call[3], call_id)
redis.call('HSET', KEYS[1], 'queue', to)
touch_call(KEYS[1], call[4])
return reply_ok(match(p, {to}, now_ms))
