"""A supervisor listening to, whispering to, or barging into a connected call.

Part of a call actor, like ``ivr.interpreting``: it runs in the actor's
worker, so the session is touched in order with the call's other events. The
API posts a ``MonitorRequest`` to the actor, which answers it at once
(accepted, or refused and why) and then carries it out. One supervisor at a
time monitors a call; they switch modes without being dialled again.

The supervisor's phone (their roster endpoint) is dialled into our Stasis
app. How each mode then reaches the call:

- listen and whisper: a snoop channel on the *advocate's* leg, bridged with
  the supervisor's leg in a bridge of their own. ``spy=both`` gives the
  supervisor what the advocate says (in) and what the advocate hears (out:
  the caller, and an interpreter when one is on). ``whisper=out`` mixes what
  the supervisor says into what is sent to the advocate, and into nothing
  else. In listen mode ``whisper=none``: whatever the supervisor's phone
  sends reaches nobody. Asterisk fixes a snoop's directions when it creates
  it, so a switch between the two replaces the snoop.
- barge: the supervisor's leg moves into the call's own mixing bridge.
  Conferencing is what that bridge does natively (each participant hears
  the mix of all the others), so caller, advocate and an interpreter hear
  the supervisor as any third party, and the bridge's channel list shows
  plainly who is on the call. A snoop whispering both ways on the
  advocate's leg would also reach the caller, but only as part of the
  advocate's voice, through a second audiohook on the leg the call hangs
  on. A Stasis channel moves between bridges with one addChannel: Asterisk
  takes it out of the bridge it was in.

Everything is audited (``ivr.monitoring.audit`` log lines, the Redis list
``Keys.supervisor_audit``, ``hotline_supervisor_actions_total``): who, when,
which call, which mode; a call is named by its id, never by a number.
"""

from ivr.monitoring.requests import (SNOOP, Decision, Mode, MonitorAnswer, MonitorDesk, MonitorRecord,
                                     MonitorRequest, Refuse, SnoopDirections, Start, Stop, Switch, Unchanged,
                                     answer_for, decide, parse_mode)
from ivr.monitoring.session import CallLine, Monitoring, carry_out

__all__ = ["SNOOP", "CallLine", "Decision", "Mode", "MonitorAnswer", "MonitorDesk", "MonitorRecord",
           "MonitorRequest", "Monitoring", "Refuse", "SnoopDirections", "Start", "Stop", "Switch", "Unchanged",
           "answer_for", "carry_out", "decide", "parse_mode"]
