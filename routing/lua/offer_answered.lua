-- The advocate picked up: the offer becomes a bridged call. Repeating it for
-- the same pair is harmless; any other pair is stale.
-- KEYS[1] advocate hash   KEYS[2] call hash   KEYS[3] ringing zset
-- ARGV[1] key prefix      ARGV[2] call id     ARGV[3] advocate id   ARGV[4] now ms
-- ARGV[5] ms the caller waited   ARGV[6] today's counts ('' or a Tally, see count_today)
-- Reply: {'ok'} | {'stale'}
-- The call's record says who answered after how long.
-- The answer time also goes on the queue's recent-answers list, the pace
-- from which waiting callers are given an estimated wait.
local RECENT_ANSWERS, RECENT_ANSWERS_TTL_S = 20, 3600  -- see Keys.answered
local p, call_id, adv_id, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local adv = redis.call('HMGET', KEYS[1], 'state', 'call')
local call = redis.call('HMGET', KEYS[2], 'state', 'advocate', 'ttl_s', 'queue')
if adv[2] ~= call_id or call[2] ~= adv_id then return {'stale'} end
if adv[1] == 'on_call' and call[1] == 'bridged' then return {'ok'} end
if adv[1] ~= 'ringing' or call[1] ~= 'offered' then return {'stale'} end
redis.call('HSET', KEYS[1], 'state', 'on_call', 'state_since', now_ms)
redis.call('HSET', KEYS[2], 'state', 'bridged', 'answered_by', adv_id, 'waited_ms', ARGV[5])
touch_call(KEYS[2], call[3])
local answered = answered_key(p, call[4])
redis.call('LPUSH', answered, now_ms)
redis.call('LTRIM', answered, 0, RECENT_ANSWERS - 1)
redis.call('EXPIRE', answered, RECENT_ANSWERS_TTL_S)
redis.call('ZREM', KEYS[3], call_id)
count_today(p, ARGV[6])
return {'ok'}
