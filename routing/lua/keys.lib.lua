-- Library, not a script: prepended at load time to every routing script by
-- routing/scripts.py. Key builders, the Lua twin of routing/keys.py (see the
-- comments there for each key's type and lifetime). p is the key prefix,
-- passed to every script as ARGV[1].
local function advocate_key(p, id) return p .. 'adv:' .. id end
local function waiting_key(p, queue) return p .. 'q:' .. queue .. ':waiting' end
local function available_key(p, queue) return p .. 'q:' .. queue .. ':available' end
local function call_key(p, id) return p .. 'call:' .. id end
local function ringing_key(p) return p .. 'ringing' end
local function offers_channel(p, owner) return p .. 'offers:' .. owner end
local function advocates_key(p) return p .. 'advocates' end
local function answered_key(p, queue) return p .. 'q:' .. queue .. ':answered' end
local function day_key(p, day, queue) return p .. 'day:' .. day .. ':' .. queue end
