-- Unregister an advocate. Refused while ringing or on a call: the call still
-- points at them and would be stranded.
-- KEYS[1] advocate hash   KEYS[2] advocates set   KEYS[3] tokens hash
-- ARGV[1] key prefix      ARGV[2] advocate id
-- Reply: {'ok'} | {'unknown_advocate'} | {'invalid', current state}
local p, id = ARGV[1], ARGV[2]
local adv = redis.call('HMGET', KEYS[1], 'state', 'queues', 'token_hash')
if not adv[1] then
  redis.call('SREM', KEYS[2], id)
  return {'unknown_advocate'}
end
if adv[1] == 'ringing' or adv[1] == 'on_call' then return {'invalid', adv[1]} end
make_unavailable(p, id, split_csv(adv[2]))
if adv[3] and redis.call('HGET', KEYS[3], adv[3]) == id then redis.call('HDEL', KEYS[3], adv[3]) end
redis.call('SREM', KEYS[2], id)
redis.call('DEL', KEYS[1])
return {'ok'}
