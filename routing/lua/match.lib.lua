-- Library, not a script: prepended at load time (after keys.lib.lua) to every
-- routing script by routing/scripts.py, so that one copy of the matching loop
-- decides who takes which call whichever event triggered it.

local function split_csv(s)
  local parts = {}
  if s then
    for part in string.gmatch(s, '[^,]+') do parts[#parts + 1] = part end
  end
  return parts
end

local function contains(list, value)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

-- The call hash lives ttl_s after its last routing change: a long bridged
-- call must not expire under the advocate, and an ended one must linger so
-- that late events are recognised as stale rather than unknown. Callers read
-- ttl_s in the HMGET of the call they already make: a redis.call of its own
-- would be one more in every script (nil when the hash is gone: nothing to
-- expire, and EXPIRE must not be given it).
local function touch_call(ckey, ttl)
  if ttl then redis.call('EXPIRE', ckey, ttl) end
end

-- Today's counts (routing/daily.py), added in the script that makes the
-- change they count: an engine dying between the two cannot lose one.
-- tally: '' (count nothing) or 'day queue ttl_s name name...' (Tally.arg()).
local function count_today(p, tally)
  local day, queue, ttl, names = string.match(tally or '', '^(%S+) (%S+) (%d+) (.+)$')
  if not day then return end
  local key = day_key(p, day, queue)
  for name in string.gmatch(names, '%S+') do redis.call('HINCRBY', key, name, 1) end
  redis.call('EXPIRE', key, ttl)
end

local function make_available(p, adv_id, queues, idle_since)
  for _, q in ipairs(queues) do redis.call('ZADD', available_key(p, q), idle_since, adv_id) end
end

local function make_unavailable(p, adv_id, queues)
  for _, q in ipairs(queues) do redis.call('ZREM', available_key(p, q), adv_id) end
end

-- Script reply: a status word, then the JSON offers made (if any).
local function reply_ok(offers)
  local reply = {'ok'}
  for _, o in ipairs(offers or {}) do reply[#reply + 1] = o end
  return reply
end

-- The call hash fields an offer needs, read in one HMGET with the state
-- that tells whether the call is still waiting.
local CALL_FIELDS = {'state', 'ttl_s', 'owner'}

-- Offer call_id, head of queue q whose hash fields CALL_FIELDS are `call`,
-- to adv_id, who is already in no available set. adv_fields (field, value
-- pairs) go into the advocate's hash with the state, in the same HSET.
local function offer(p, q, call_id, call, adv_id, endpoint, now_ms, adv_fields)
  local ckey = call_key(p, call_id)
  redis.call('HSET', advocate_key(p, adv_id), 'state', 'ringing', 'state_since', now_ms, 'call', call_id,
    unpack(adv_fields))
  redis.call('ZREM', waiting_key(p, q), call_id)
  redis.call('HSET', ckey, 'state', 'offered', 'advocate', adv_id, 'offered_ms', now_ms)
  touch_call(ckey, call[2])
  redis.call('ZADD', ringing_key(p), now_ms, call_id)
  local owner = call[3]
  local payload = cjson.encode({
    call_id = call_id, advocate_id = adv_id, endpoint = endpoint, queue = q, owner = owner,
    offered_ms = now_ms,  -- the ARGV string: cjson would round a number to 14 digits
  })
  redis.call('PUBLISH', offers_channel(p, owner), payload)
  return payload
end

-- While some queue among `queues` has both a waiting call and an available
-- advocate: take the best head call (lowest score; on a tie the queue listed
-- first, as Lua's string "<" follows the server's locale and would not be a
-- stable order) among queues that have an advocate, and offer it to that
-- queue's longest-idle advocate (ZSET ties: lowest id). Callers pass the queues their event could
-- have unblocked; the others already had no such pair. Returns the JSON
-- offers in the order they were made.
local function match(p, queues, now_ms)
  local offers = {}
  while true do
    local best_q, best_call, best_score
    for _, q in ipairs(queues) do
      -- Ranks as strings: Redis formats a Lua number argument with "%.17g",
      -- which costs about as much as the ZRANGE itself.
      if redis.call('ZCARD', available_key(p, q)) > 0 then
        local head = redis.call('ZRANGE', waiting_key(p, q), '0', '0', 'WITHSCORES')
        if head[1] then
          local score = tonumber(head[2])
          if best_score == nil or score < best_score then
            best_q, best_call, best_score = q, head[1], score
          end
        end
      end
    end
    if best_q == nil then break end

    local adv_id = redis.call('ZRANGE', available_key(p, best_q), '0', '0')[1]
    -- Heal entries left by an expired call hash or a removed advocate
    -- instead of offering them; each pass removes one, so the loop ends.
    local call = redis.call('HMGET', call_key(p, best_call), unpack(CALL_FIELDS))
    if call[1] ~= 'waiting' then
      redis.call('ZREM', waiting_key(p, best_q), best_call)
    else
      local adv = redis.call('HMGET', advocate_key(p, adv_id), 'state', 'queues', 'endpoint')
      if adv[1] ~= 'available' then
        redis.call('ZREM', available_key(p, best_q), adv_id)
      else
        -- Serving two queues must not get them two calls: they leave every line at once.
        make_unavailable(p, adv_id, split_csv(adv[2]))
        offers[#offers + 1] = offer(p, best_q, best_call, call, adv_id, adv[3], now_ms, {})
      end
    end
  end
  return offers
end

-- One advocate has just become available in `queues` (set_state,
-- end_wrap_up, offer_cancelled): the same decision as make_available then
-- match, for a fraction of the redis.calls. Every script matches the queues
-- its event touched, so between scripts no queue holds both a waiting call
-- and any available entry (assert_routing_invariants in the tests checks
-- it). In a queue with a waiting call adv_id is therefore the only
-- candidate: they take the best head call of `queues` (lowest score; ties:
-- the queue listed first, as in match), nobody else can, and they never
-- need to enter the available sets and leave them again. Without a waiting
-- call they join every line at idle_since. Either way the advocate's hash
-- gets its state, state_since and adv_fields (pairs) in one HSET.
-- Returns the JSON offer, or nil.
local function offer_to_freed(p, adv_id, queues, idle_since, endpoint, now_ms, adv_fields)
  local heads, scores = {}, {}
  for i, q in ipairs(queues) do
    local head = redis.call('ZRANGE', waiting_key(p, q), '0', '0', 'WITHSCORES')
    heads[i], scores[i] = head[1], tonumber(head[2])
  end
  while true do
    local best
    for i = 1, #queues do
      if heads[i] and (best == nil or scores[i] < scores[best]) then best = i end
    end
    if best == nil then break end
    local q, call_id = queues[best], heads[best]
    local call = redis.call('HMGET', call_key(p, call_id), unpack(CALL_FIELDS))
    if call[1] == 'waiting' then
      return offer(p, q, call_id, call, adv_id, endpoint, now_ms, adv_fields)
    end
    -- A head no longer waiting (its hash expired): healed as match heals
    -- it, and that queue's next head is considered.
    redis.call('ZREM', waiting_key(p, q), call_id)
    local head = redis.call('ZRANGE', waiting_key(p, q), '0', '0', 'WITHSCORES')
    heads[best], scores[best] = head[1], tonumber(head[2])
  end
  local akey = advocate_key(p, adv_id)
  redis.call('HSET', akey, 'state', 'available', 'state_since', now_ms, unpack(adv_fields))
  redis.call('HDEL', akey, 'call')
  make_available(p, adv_id, queues, idle_since)
  return nil
end
