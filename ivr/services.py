"""What every call actor works with, built once by the app and shared.

Collaborators are passed in, never imported as globals, so a test can build
calls against the real sandbox with its own settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ivr.ari.rest import AriRest
from ivr.dispatch import Dispatcher
from ivr.interpreters.provider import ProviderSettings
from ivr.menu import MenuDefinition
from ivr.tasks import TaskSet
from metrics.hotline import HotlineMetrics
from routing.audit import SupervisorAudit
from routing.daily import Tally
from routing.policy import CallPlan
from routing.queues import Offer
from routing.restore import RestoreStore
from routing.store import RoutingStore

if TYPE_CHECKING:
    from ivr.call import CallActor


@dataclass(frozen=True)
class CallConfig:
    owner: str  # this engine's instance id: offers for its calls are published to it
    app: str
    toll_free: str
    entry_for_did: Callable[[str], str | None]
    line_kind: Callable[[str], str]
    call_ttl_s: int
    queue_for_language: Callable[[str], str]
    # (queue chosen, relay, crisis) -> the call's plan: tiers, rings, escalation, max wait.
    plan: Callable[[str, bool, bool], CallPlan]
    # (caller number, DID) -> whether it is a relay (TRS/711) call.
    is_relay: Callable[[str, str], bool] = lambda number, did: False
    relay_menu_factor: float = 3.0
    supervisor_ring_s: float = 20.0
    # The Asterisk this engine controls: calls record it, so that an engine
    # clearing a dead engine's calls touches only those of its own Asterisk.
    ari_url: str = ""
    interpreter_providers: tuple[ProviderSettings, ...] = ()
    feature_codes: Mapping[str, str] = field(default_factory=dict)
    monitor_ring_s: float = 30.0  # a supervisor's phone, dialled to monitor a call


class WrapUpScheduler(Protocol):
    def start(self, advocate_id: str, call_id: str | None = None) -> None: ...


class DailyCounter(Protocol):
    def tally(self, queue: str, *counts: str) -> Tally:
        """The call's counts today, for the routing script that changes it to add."""

    async def add(self, queue: str, *counts: str) -> None:
        """Count the call today in `counts` (routing.daily.COUNTS) of `queue`, for every engine to read."""


@dataclass
class CallServices:
    config: CallConfig
    rest: AriRest
    store: RoutingStore
    restore: RestoreStore  # writing the call back after Redis lost it
    dispatcher: Dispatcher
    tasks: TaskSet
    metrics: HotlineMetrics
    menu: MenuDefinition
    hasher: Callable[[str], str]
    wrap_up: WrapUpScheduler
    daily: DailyCounter
    forget: Callable[[CallActor], None]
    audit: SupervisorAudit
    # Offers in a script's reply, handed to this engine's calls at once
    # (Engine.take_offers); their pub/sub copies follow and are ignored.
    take_offers: Callable[[list[Offer]], None] = lambda offers: None
