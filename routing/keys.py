"""Every Redis key and channel routing uses, with its type and lifetime.

The Lua twin of this layout is ``lua/keys.lib.lua``: scripts discover keys
(the next waiting call, the advocate it goes to) while they run, so they must
build names themselves. Keep both files in step; the Redis tests read back
through this module what the scripts wrote, so a drift fails them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    # Several deployments (or test runs) can share one Redis under different
    # prefixes. No "*" allowed: snapshot() uses the advocate key as a SORT
    # GET pattern, where "*" stands for the advocate id.
    prefix: str = "hl:"

    def __post_init__(self) -> None:
        if "*" in self.prefix:
            raise ValueError(f"Redis key prefix must not contain '*': {self.prefix!r}")

    def advocates(self) -> str:
        """SET of every registered advocate id. Permanent; SREM on removal."""
        return f"{self.prefix}advocates"

    def advocate(self, advocate_id: str) -> str:
        """HASH name, endpoint, skills csv, roles csv, queues csv, token_hash,
        state, state_since ms, idle_since ms, call, and escalated_from and
        escalated_call (the state, and call, a supervisor had before a crisis
        escalation rang them). Permanent until removal."""
        return f"{self.prefix}adv:{advocate_id}"

    def advocate_state_pattern(self) -> str:
        """SORT ... GET pattern reading every advocate's state in one command."""
        return f"{self.prefix}adv:*->state"

    def advocate_skills_pattern(self) -> str:
        """SORT ... GET pattern reading every advocate's skills csv."""
        return f"{self.prefix}adv:*->skills"

    def advocate_field_pattern(self, field: str) -> str:
        """SORT ... GET pattern reading one field of every advocate's hash."""
        return f"{self.prefix}adv:*->{field}"

    def waiting(self, queue: str) -> str:
        """ZSET call_id -> waiting_score (lower is offered first). Members leave
        when offered, abandoned, or found without a call hash (TTL expired)."""
        return f"{self.prefix}q:{queue}:waiting"

    def available(self, queue: str) -> str:
        """ZSET advocate_id -> idle_since ms (lowest = longest idle). Holds
        exactly the available advocates serving the queue."""
        return f"{self.prefix}q:{queue}:available"

    def answered(self, queue: str) -> str:
        """LIST of the epoch ms of the queue's last 20 answers, newest first:
        the pace behind estimated waits. Expires an hour after the last answer."""
        return f"{self.prefix}q:{queue}:answered"

    def call(self, call_id: str) -> str:
        """HASH queue, priority, arrival_ms, score, owner, ttl_s, state
        (waiting|offered|escalating|bridged|ended), advocate, plus free metadata fields.
        Expires ttl_s after its last routing change, so ended calls linger
        long enough for late events to be recognised as stale."""
        return f"{self.prefix}call:{call_id}"

    def ringing(self) -> str:
        """ZSET call_id -> ms the offer was made, for calls in state offered.
        Lets an engine find offers whose pub/sub message it never received."""
        return f"{self.prefix}ringing"

    def offers(self, owner: str) -> str:
        """Pub/sub channel of the engine `owner`: JSON offers for the calls whose
        channel it holds. Fire and forget; see RoutingStore.stale_offers."""
        return f"{self.prefix}offers:{owner}"

    def sip_call(self, sip_call_id: str) -> str:
        """STRING call id, for the SIP Call-ID the carrier knows the call by
        (trouble tickets, the sandbox's `hotline call`). Same TTL as the call."""
        return f"{self.prefix}sip:{sip_call_id}"

    def day(self, day: str, queue: str) -> str:
        """HASH offered, answered, answered_within_target, abandoned -> count:
        the queue's calls on `day` (YYYY-MM-DD in wallboard.timezone), counted
        by every engine sharing the Redis (HINCRBY). Expires two days after its
        last increment (routing.daily.DAY_TTL_S): yesterday stays readable
        past midnight, nothing older is kept."""
        return f"{self.prefix}day:{day}:{queue}"

    def engine(self, owner: str) -> str:
        """STRING heartbeat of the engine `owner`, refreshed every few seconds
        with a short expiry: while it exists the engine is alive, and the
        calls it owns are not another engine's to clean up."""
        return f"{self.prefix}engine:{owner}"

    def epoch(self) -> str:
        """STRING, a random token written by the first engine to find it
        missing. Permanent: if it vanishes or changes, Redis lost its data
        (restarted without persistence, flushed) and the engines rebuild the
        routing state from what they know (ivr.recovery)."""
        return f"{self.prefix}epoch"

    def tokens(self) -> str:
        """HASH sha256(token) hex -> advocate id. Entry lives as long as the
        advocate keeps that token hash."""
        return f"{self.prefix}tokens"

    def supervisor_audit(self) -> str:
        """LIST of JSON entries, newest first: every supervisor action on a
        call (listen, whisper, barge, switch, stop, and how each session
        ended), with who, when, which call and which mode; never a caller's
        number. Capped at the newest `max_entries` (LTRIM on every push) and
        expiring `retention` after the last push (EXPIRE on every push). Not
        used by the Lua scripts."""
        return f"{self.prefix}audit:supervisor"
