-- Register an advocate or update their profile (login, admin edit). Their
-- state is kept; if they are available and their queues changed, they move
-- to the new queues' lines keeping their idle_since, which may make offers.
-- KEYS[1] advocate hash   KEYS[2] advocates set   KEYS[3] tokens hash
-- ARGV[1] key prefix      ARGV[2] advocate id     ARGV[3] name
-- ARGV[4] endpoint        ARGV[5] skills csv      ARGV[6] roles csv
-- ARGV[7] queues csv      ARGV[8] token hash      ARGV[9] now ms
-- Reply: {'ok', offer json...} | {'token_in_use'}
local p, id, queues_csv, token_hash, now_ms = ARGV[1], ARGV[2], ARGV[7], ARGV[8], ARGV[9]

local owner_of_token = redis.call('HGET', KEYS[3], token_hash)
if owner_of_token and owner_of_token ~= id then return {'token_in_use'} end

local old = redis.call('HMGET', KEYS[1], 'state', 'queues', 'token_hash', 'idle_since')
local old_state, old_queues, old_token, idle_since = old[1], old[2], old[3], old[4]

if old_token and old_token ~= token_hash then redis.call('HDEL', KEYS[3], old_token) end
redis.call('HSET', KEYS[3], token_hash, id)
redis.call('SADD', KEYS[2], id)
redis.call('HSET', KEYS[1], 'name', ARGV[3], 'endpoint', ARGV[4], 'skills', ARGV[5],
  'roles', ARGV[6], 'queues', queues_csv, 'token_hash', token_hash)

if not old_state then
  redis.call('HSET', KEYS[1], 'state', 'offline', 'state_since', now_ms)
  return reply_ok()
end
if old_state == 'available' and old_queues ~= queues_csv then
  local queues = split_csv(queues_csv)
  make_unavailable(p, id, split_csv(old_queues))
  make_available(p, id, queues, idle_since)
  return reply_ok(match(p, queues, now_ms))
end
return reply_ok()
