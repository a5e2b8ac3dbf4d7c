-- After Redis lost its data, an engine puts an advocate back in the state it
-- last saw them in (available, away or wrap_up), with their place in line.
-- Only an advocate the roster sync has just re-created is touched (offline,
-- no call): one who logged in since, or whom the engine holding their call
-- has already restored as ringing or on a call, keeps their state.
-- KEYS[1] advocate hash
-- ARGV[1] key prefix  ARGV[2] advocate id  ARGV[3] state  ARGV[4] state_since ms
-- ARGV[5] idle_since ms ('' if unknown)  ARGV[6] now ms
-- Reply: {'ok', offer json...} | {'skipped', current state or ''}
local p, id, state, state_since, idle_since, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local adv = redis.call('HMGET', KEYS[1], 'state', 'call', 'queues')
if adv[1] ~= 'offline' or adv[2] then return {'skipped', adv[1] or ''} end
redis.call('HSET', KEYS[1], 'state', state, 'state_since', state_since)
if idle_since ~= '' then redis.call('HSET', KEYS[1], 'idle_since', idle_since) end
if state ~= 'available' then return reply_ok() end
if idle_since == '' then
  idle_since = now_ms
  redis.call('HSET', KEYS[1], 'idle_since', idle_since)
end
local queues = split_csv(adv[3])
make_available(p, id, queues, idle_since)
return reply_ok(match(p, queues, now_ms))
