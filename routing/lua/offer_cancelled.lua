-- The caller hung up while the advocate's phone rang. The advocate did
-- nothing wrong: they return to their lines with their previous idle_since,
-- ahead of those who became free after them, and are matched at once.
-- KEYS[1] advocate hash   KEYS[2] call hash   KEYS[3] ringing zset
-- ARGV[1] key prefix      ARGV[2] call id     ARGV[3] advocate id   ARGV[4] now ms
-- Reply: {'ok', offer json...} | {'stale'}
local p, call_id, adv_id, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local adv = redis.call('HMGET', KEYS[1], 'state', 'call', 'queues', 'idle_since', 'endpoint')
local call = redis.call('HMGET', KEYS[2], 'state', 'advocate', 'ttl_s')
if adv[1] ~= 'ringing' or adv[2] ~= call_id or call[1] ~= 'offered' or call[2] ~= adv_id then
  return {'stale'}
end
redis.call('HSET', KEYS[2], 'state', 'ended')
touch_call(KEYS[2], call[3])
redis.call('ZREM', KEYS[3], call_id)
return reply_ok({offer_to_freed(p, adv_id, split_csv(adv[3]), adv[4] or now_ms, adv[5], now_ms, {})})
