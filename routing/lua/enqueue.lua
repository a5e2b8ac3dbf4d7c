-- A caller joins a queue; they are offered at once if an advocate is free.
-- KEYS[1] call hash   KEYS[2] waiting zset of the queue
-- KEYS[3] (only when the call has a SIP Call-ID) the Call-ID's index string
-- ARGV[1] key prefix  ARGV[2] now ms      ARGV[3] call id   ARGV[4] queue
-- ARGV[5] priority    ARGV[6] arrival ms  ARGV[7] score     ARGV[8] owner
-- ARGV[9] ttl seconds ARGV[10] today's counts ('' or a Tally, see count_today)
-- ARGV[11..] metadata field, value, field, value...
-- Reply: {'ok', offer json...} | {'duplicate_call'}
local p, now_ms, call_id, queue = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', KEYS[1]) == 1 then
  -- The same call again: redis-py runs a script again when its reply came
  -- late (a timeout), and the first run queued it. Harmless, counted once;
  -- an offer the first run made went out on pub/sub.
  local known = redis.call('HMGET', KEYS[1], 'queue', 'priority', 'arrival_ms', 'owner')
  if known[1] == queue and known[2] == ARGV[5] and known[3] == ARGV[6] and known[4] == ARGV[8] then
    return {'ok'}
  end
  return {'duplicate_call'}
end
-- One HSET: the routing fields and the metadata (never a routing field: RoutingStore checks).
redis.call('HSET', KEYS[1], 'queue', queue, 'priority', ARGV[5], 'arrival_ms', ARGV[6], 'score', ARGV[7],
  'owner', ARGV[8], 'ttl_s', ARGV[9], 'state', 'waiting', unpack(ARGV, 11))
touch_call(KEYS[1], ARGV[9])
if KEYS[3] then redis.call('SET', KEYS[3], call_id, 'EX', ARGV[9]) end
redis.call('ZADD', KEYS[2], ARGV[7], call_id)
count_today(p, ARGV[10])
return reply_ok(match(p, {queue}, now_ms))
