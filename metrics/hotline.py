"""The engine's metric set, on a registry of its own (no global state)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Waits of a crisis line: most calls are answered in seconds, the ones that
# matter for alerts wait minutes.
WAIT_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)

# A hotline call runs from a few minutes to over an hour (a survivor's story,
# safety planning, a three-way call with an interpreter).
HANDLE_BUCKETS = (30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200)
# After-call work: notes and the disposition, usually well under the timer.
AFTER_CALL_WORK_BUCKETS = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)

ADVOCATE_STATES = ("offline", "available", "ringing", "on_call", "wrap_up", "away")


class HotlineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.calls_received = Counter("hotline_calls_received", "Calls answered by the engine (entered the IVR).",
                                      registry=r)
        self.menu_outcomes = Counter("hotline_menu_outcomes", "Menu results by language and call type.",
                                     ["language", "call_type"], registry=r)
        # Calls are counted by the queue they entered (whatever tiers they
        # widened to later), so offered, answered and abandoned add up per queue.
        self.calls_offered = Counter("hotline_calls_offered", "Calls that entered a queue.", ["queue", "relay"],
                                     registry=r)
        self.calls_answered = Counter("hotline_calls_answered", "Queued calls answered by an advocate.",
                                      ["queue", "relay"], registry=r)
        self.calls_abandoned = Counter("hotline_calls_abandoned",
                                       "Callers who hung up before reaching an advocate, by stage "
                                       "(menu, queue, ringing, escalating).", ["queue", "stage", "relay"], registry=r)
        self.wait_seconds = Histogram("hotline_wait_seconds", "Time in queue of answered calls.", ["queue", "relay"],
                                      buckets=WAIT_BUCKETS, registry=r)
        self.abandon_wait_seconds = Histogram("hotline_abandon_wait_seconds", "Time in queue of abandoned calls.",
                                              ["queue", "relay"], buckets=WAIT_BUCKETS, registry=r)
        self.advocate_rings = Counter("hotline_advocate_rings", "Times an advocate's phone was rung.", registry=r)
        self.advocate_missed = Counter("hotline_advocate_missed",
                                       "Rings an advocate did not take, by reason (no_answer, rejected, "
                                       "dial_failed).", ["reason"], registry=r)
        self.fallbacks = Counter("hotline_fallbacks", "Calls handed to the dialplan fallback, by reason.",
                                 ["reason"], registry=r)
        self.interpreter_requests = Counter("hotline_interpreter_requests", "Interpreters asked for, by language "
                                            "('operator' when the language is not yet known) and by whom.",
                                            ["language", "source"], registry=r)
        self.interpreter_connect_seconds = Histogram(
            "hotline_interpreter_connect_seconds", "From asking for an interpreter to three parties bridged.",
            ["language"], buckets=(1, 2, 3, 5, 8, 13, 20, 30, 45, 60), registry=r)
        self.interpreter_failures = Counter("hotline_interpreter_failures",
                                            "Interpreter attempts that failed, by reason (busy, no_answer, "
                                            "hung_up, unavailable, dial_failed, join_failed, exhausted) and language.",
                                            ["reason", "language"], registry=r)
        self.queue_widenings = Counter("hotline_queue_widenings",
                                       "Waiting calls widened to another queue by a skill tier (relay to anyone, "
                                       "Spanish to anyone with an interpreter...).", ["from_queue", "to_queue"],
                                       registry=r)
        self.queue_depth = Gauge("hotline_queue_depth", "Calls waiting now.", ["queue"], registry=r)
        self.longest_wait = Gauge("hotline_queue_longest_wait_seconds", "Wait of the oldest waiting call now.",
                                  ["queue"], registry=r)
        self.queue_available = Gauge("hotline_queue_available_advocates",
                                     "Advocates available now who could take the queue's calls.", ["queue"],
                                     registry=r)
        self.advocates = Gauge("hotline_advocates", "Advocates by state now.", ["state"], registry=r)
        self.advocates_by_skill = Gauge("hotline_advocates_by_skill",
                                        "Advocates by skill and state now; one with two skills counts in both.",
                                        ["skill", "state"], registry=r)
        self.ari_connected = Gauge("hotline_ari_connected", "1 while the ARI events WebSocket is connected.",
                                   registry=r)
        self.redis_up = Gauge("hotline_redis_up", "1 if Redis answered the engine's last probe or scrape.", registry=r)
        self.ari_events_skipped = Counter("hotline_ari_events_skipped", "Malformed or unexpected ARI events skipped.",
                                          ["reason"], registry=r)
        self.ari_socket_held_up = Counter("hotline_ari_socket_held_up",
                                          "Times a request held up in Asterisk held up the ARI WebSocket's others "
                                          "(requests went over HTTP until it answered again).", registry=r)
        # Queue policies (issue 4): relay calls, service level, crisis escalation.
        self.service_level_target = Gauge("hotline_service_level_target_seconds",
                                          "Service-level target: calls should be answered within this many seconds.",
                                          ["queue"], registry=r)
        self.answered_within_target = Counter("hotline_calls_answered_within_target",
                                              "Answered calls that waited no longer than their queue's target.",
                                              ["queue", "relay"], registry=r)
        self.escalations = Counter("hotline_escalations", "Crisis calls escalated, by outcome (supervisor, backup).",
                                   ["outcome"], registry=r)
        self.max_wait_overflows = Counter("hotline_max_wait_overflows",
                                          "Calls sent to the backup destination after their queue's maximum wait.",
                                          ["queue"], registry=r)
        self.comfort_messages = Counter("hotline_comfort_messages", "Comfort messages played to waiting callers.",
                                        ["queue"], registry=r)
        # Supervisors on a call (issue 5); who and which call go to the audit, never to a label.
        self.supervisor_actions = Counter("hotline_supervisor_actions",
                                          "Supervisor monitoring actions carried out, by mode (listen, whisper, "
                                          "barge: started or switched to; stop: ended by a supervisor).",
                                          ["mode"], registry=r)

        # Issue 5: handle time, after-call work and dispositions.
        self.handle_seconds = Histogram("hotline_handle_seconds",
                                        "Connected calls: from the advocate answering to the end of the call.",
                                        ["queue"], buckets=HANDLE_BUCKETS, registry=r)
        self.after_call_work_seconds = Histogram("hotline_after_call_work_seconds",
                                                 "Wrap-up: from the end of the call to the advocate ending it "
                                                 "(API) or the wrap-up timer.", buckets=AFTER_CALL_WORK_BUCKETS,
                                                 registry=r)
        self.dispositions = Counter("hotline_dispositions",
                                    "Calls categorised by the advocate at the end of wrap-up, by the menu's call "
                                    "type and the disposition chosen.", ["call_type", "disposition"], registry=r)

    def set_snapshot(self, now_s: float, queues: Iterable[str], depth: dict[str, int],
                     oldest_ms: dict[str, int | None], advocates: dict[str, int], *,
                     available: dict[str, int], advocates_by_skill: dict[str, dict[str, int]]) -> None:
        """Queue and advocate gauges, read from Redis at scrape time (shared by all engines)."""
        for queue in queues:
            self.queue_depth.labels(queue=queue).set(depth.get(queue, 0))
            self.queue_available.labels(queue=queue).set(available.get(queue, 0))
            oldest = oldest_ms.get(queue)
            self.longest_wait.labels(queue=queue).set(0 if oldest is None else max(0.0, now_s - oldest / 1000))
        for state in ADVOCATE_STATES:
            self.advocates.labels(state=state).set(advocates.get(state, 0))
        # Skills come and go with the roster: a skill nobody has any more must
        # leave the page, not stay at its last counts.
        self.advocates_by_skill.clear()
        for skill, states in advocates_by_skill.items():
            for state in ADVOCATE_STATES:
                self.advocates_by_skill.labels(skill=skill, state=state).set(states.get(state, 0))

    def clear_snapshot(self) -> None:
        """Redis did not answer: drop the queue and advocate gauges rather than
        show their last values as if current (an empty series alerts; a stale
        "0 waiting" would not)."""
        for gauge in (self.queue_depth, self.queue_available, self.longest_wait, self.advocates,
                      self.advocates_by_skill):
            gauge.clear()

    def render(self) -> bytes:
        return generate_latest(self.registry)
