"""Wiring: the one place the engine's object graph is built and run."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace

import redis.asyncio as redis
from redis.backoff import ExponentialBackoff
from aiohttp import web

from ivr.adoption import HEARTBEAT_EVERY_S, HEARTBEAT_TTL_S, Adoption, rescue_stranded
from ivr.api import Api, Authenticator, RosterEntry
from ivr.ari.errors import AriError
from ivr.ari.rest import AriRest, ari_session
from ivr.ari.socket_requests import SocketRequests
from ivr.ari.stream import Backoff, EventStream, RequestSocket
from ivr.engine import Engine
from ivr.offers import OffersListener
from ivr.pages import Pages
from ivr.interpreters.catalog import LanguageCatalog, UnknownLanguage
from ivr.interpreters.provider import InterpreterConfigError, validate_interpreters
from ivr.interpreting import InterpreterDesk
from ivr.logs import redact_url
from ivr.menu import MenuError, load_menu
from ivr.monitoring import MonitorDesk
from ivr.prompts import PromptError, load_prompts, prompt_catalog
from ivr.recovery import RecoveryConfig, RoutingRecovery
from ivr.privacy import CallerHasher
from ivr.relay import RelayDetector
from ivr.services import CallConfig, CallServices
from ivr.settings import Settings, SettingsError
from ivr.tasks import TaskSet
from ivr.throttle import BadTokenThrottle
from ivr.wallboard import Wallboard
from ivr.wrapup import WrapUpTimers
from metrics.hotline import HotlineMetrics
from routing.audit import SupervisorAudit
from routing.connection import keeping_cancels, retry_lost
from routing.daily import DailyCounts
from routing.errors import RoutingError
from routing.keys import Keys
from routing.policy import CallPlan, QueuePolicy, plan_call
from routing.queues import Offer, QueueSpec
from routing.restore import RestoreStore
from routing.store import RoutingStore

log = logging.getLogger(__name__)

# Redis runs one command at a time: more connections only queue there. One
# is the offers subscription's for good.
REDIS_CONNECTIONS = 50


@dataclass
class Running:
    """A started engine, for tests and the CLI."""

    engine: Engine
    store: RoutingStore
    metrics: HotlineMetrics
    stream: EventStream
    http_port: int
    audit: SupervisorAudit
    recovery: RoutingRecovery
    socket_requests: SocketRequests | None  # None: requests over HTTP only (ari.requests_over_websocket)


@contextlib.asynccontextmanager
async def running_engine(settings: Settings) -> AsyncIterator[Running]:
    """Start the engine and yield it; everything it started is stopped on exit."""
    # A prompt the menu names but no language has fails here, not on a call.
    try:
        prompts = prompt_catalog(load_prompts(settings.menu.prompts_dir))
        menu = load_menu(settings.menu.path, prompts)
    except (PromptError, MenuError) as exc:
        # Their messages name the file, node and key: no traceback needed.
        raise SettingsError(str(exc)) from None
    unknown = sorted(set(settings.lines.entries.values()) - set(menu.entries))
    if unknown:
        raise SettingsError(f"lines.entries: no entry {', '.join(unknown)} in the menu {settings.menu.path}")
    if settings.lines.spanish is not None and "spanish" not in menu.entries:
        raise SettingsError(f"lines.spanish: the menu {settings.menu.path} has no [entries.spanish] for it")
    for language in menu.prompt_languages:
        if not any(language in queue.languages for queue in settings.routing.queues):
            # Its callers would wait, unannounced, in the first queue.
            raise SettingsError(f"routing.queues: no queue lists the menu's language {language!r} in its languages")
    for note in settings.routing.unreachable_steps():
        log.warning("settings: %s", note)
    catalog = LanguageCatalog.load()
    try:
        interpreters = validate_interpreters(settings.interpreters, catalog)
    except InterpreterConfigError as exc:
        raise SettingsError(str(exc)) from None
    policies = _queue_policies(settings, catalog, prompts)
    tasks = TaskSet("engine")
    metrics = HotlineMetrics()
    redis_client = redis_for(settings)
    queues = [QueueSpec(q.name, q.skills) for q in settings.routing.queues]
    keys = Keys(settings.redis.key_prefix)
    store = RoutingStore(redis_client, queues=queues, keys=keys)
    daily = DailyCounts(redis_client, keys, settings.wallboard.zone())
    monitoring = settings.monitoring
    audit = SupervisorAudit(redis_client, keys, max_entries=monitoring.audit_max_entries,
                            retention_s=monitoring.audit_retention_days * 86400)
    restore = RestoreStore(redis_client, queues=queues, keys=keys)
    session = ari_session()
    socket_requests = (SocketRequests(on_stall=metrics.ari_socket_held_up.inc)
                       if settings.ari.requests_over_websocket else None)
    rest = AriRest(session, f"{settings.ari.url}/ari", settings.ari.username,
                   settings.ari.password.get_secret_value(), timeout_s=settings.ari.request_timeout_s,
                   socket=socket_requests)
    wrap_up = WrapUpTimers(store, tasks, settings.routing.wrap_up_s, metrics)
    hasher = CallerHasher(settings.privacy.hmac_key.get_secret_value().encode())
    routing = settings.routing

    def plan(queue: str, relay: bool, crisis: bool) -> CallPlan:
        return plan_call(queue=queue, relay=relay, crisis=crisis, policies=policies,
                         relay_policy=routing.relay_policy(), crisis_policy=routing.crisis_policy(),
                         ring_s=routing.advocate_ring_s, interpreters=bool(interpreters.providers))

    config = CallConfig(owner=settings.engine.instance_id, app=settings.engine.app,
                        toll_free=settings.lines.toll_free, entry_for_did=settings.lines.entry_for,
                        line_kind=settings.lines.kind_of, call_ttl_s=routing.call_ttl_s,
                        queue_for_language=routing.queue_for_language, plan=plan,
                        is_relay=RelayDetector(routing.relay.numbers, routing.relay.dids),
                        relay_menu_factor=routing.relay.menu_timeout_factor,
                        supervisor_ring_s=routing.crisis.supervisor_ring_s, ari_url=settings.ari.url,
                        interpreter_providers=interpreters.providers, feature_codes=interpreters.feature_codes,
                        monitor_ring_s=monitoring.ring_s)
    for policy in policies.values():
        metrics.service_level_target.labels(queue=policy.name).set(policy.service_level_s)

    engine = Engine(tasks, lambda eng: CallServices(
        config=config, rest=rest, store=store, restore=restore, dispatcher=eng.dispatcher, tasks=tasks,
        metrics=metrics, menu=menu, hasher=hasher, wrap_up=wrap_up, daily=daily, forget=eng.forget, audit=audit,
        take_offers=eng.take_offers))

    adopted = asyncio.Event()  # the first reconciliation, with its adoption, is over

    async def on_ari_connected() -> None:
        await engine.on_connected()
        adopted.set()
        # A call that failed to end itself in Redis while Asterisk was away is found by the sweep.
        recovery.sweep_soon()

    async def deliver_offer(offer: Offer, swept: bool) -> None:
        # An offer for a call this engine does not hold is released, which
        # ends the call in Redis. Until the first adoption is over, such a
        # call may be a dead predecessor's that this engine is about to
        # adopt: its offers wait in the subscription meanwhile.
        await adopted.wait()
        await engine.on_offer(offer, swept)

    stream = EventStream(session, f"{settings.ari.url}/ari", settings.ari.username,
                         settings.ari.password.get_secret_value(), settings.engine.app, engine.on_event,
                         on_connected=on_ari_connected, on_state=lambda up: metrics.ari_connected.set(int(up)),
                         on_skipped=lambda reason: metrics.ari_events_skipped.labels(reason=reason).inc(),
                         backoff=Backoff(cap_s=settings.ari.reconnect_max_s))
    request_socket = (RequestSocket(session, f"{settings.ari.url}/ari", settings.ari.username,
                                    settings.ari.password.get_secret_value(), settings.engine.app, socket_requests,
                                    backoff=Backoff(cap_s=settings.ari.reconnect_max_s))
                      if socket_requests is not None else None)
    recovery = RoutingRecovery(
        RecoveryConfig(owner=settings.engine.instance_id, probe_s=settings.redis.probe_s,
                       outage_hold_s=settings.redis.outage_hold_s),
        restore=restore, held=lambda: engine.calls.keys(), claimed=engine.claimed_advocates,
        post=engine.dispatcher.post,
        sync_roster=lambda: sync_roster(store, settings), wrap_up=wrap_up,
        clear_ghosts=lambda: Adoption(engine.services, engine.calls, engine.adopt).clear(),
        on_redis=lambda up: metrics.redis_up.set(int(up)))
    roster = [RosterEntry(a.id, a.token_sha256, "supervisor" in a.roles) for a in settings.advocates]
    desk = InterpreterDesk(catalog, interpreters.providers, engine.dispatcher.post) \
        if interpreters.providers else None
    monitor_desk = MonitorDesk(engine.dispatcher.post, timeout_s=monitoring.request_timeout_s,
                               endpoints={a.id: a.endpoint for a in settings.advocates if "supervisor" in a.roles})
    throttle = BadTokenThrottle(settings.api.bad_tokens_max, settings.api.bad_tokens_window_s,
                                settings.api.bad_tokens_clients_max)
    auth = Authenticator(roster, throttle, settings.api.trusted_proxies)
    api = Api(store, auth, metrics, [q.name for q in queues],
              health=lambda: {"ari": stream.connected, "redis": recovery.redis_up}, interpreters=desk,
              monitoring=monitor_desk, take_offers=engine.take_offers)
    wallboard = Wallboard(store, daily, auth, [policies[q.name] for q in queues], settings.wallboard.refresh_s)
    http = api.app()
    http.add_routes([*wallboard.routes(), *Pages().routes()])
    http.on_shutdown.append(wallboard.close)
    runner = web.AppRunner(http, access_log=None, shutdown_timeout=5)
    try:
        try:
            await _sync_roster_within_hold(store, settings)
        except RoutingError as exc:
            await _rescue_before_exit(rest, settings.engine.app)
            raise SystemExit(f"redis at {redact_url(settings.redis.url)}: unavailable at start-up "
                             f"({type(exc).__name__})") from exc
        await wrap_up.resume(int(time.time() * 1000))
        await open_connections(redis_client)
        await runner.setup()
        site = web.TCPSite(runner, settings.engine.http_host, settings.engine.http_port)
        await site.start()
        port = runner.addresses[0][1]
        # Redis is on loopback: resubscribing every second at most costs little
        # and shortens the time offers wait for the sweep after a Redis restart.
        offers = OffersListener(store, settings.engine.instance_id, deliver_offer, Backoff(cap_s=1.0))
        tasks.spawn(offers.run(), name="offers")
        # Subscribed before any call can be queued: no offer is published unheard.
        async with asyncio.timeout(10):
            await offers.subscribed.wait()
        tasks.spawn(_heartbeat(store, settings.engine.instance_id), name="heartbeat")
        tasks.spawn(engine.sweep_ghosts(), name="ghost-sweep")
        tasks.spawn(recovery.run(), name="routing-recovery")
        tasks.spawn(stream.run(), name="ari-events")
        if request_socket is not None:
            tasks.spawn(request_socket.run(), name="ari-requests")
        log.info("engine %s up: app %s, API on %s:%d", settings.engine.instance_id, settings.engine.app,
                 settings.engine.http_host, port)
        yield Running(engine, store, metrics, stream, port, audit, recovery, socket_requests)
    finally:
        await tasks.close()
        await runner.cleanup()
        await session.close()
        await redis_client.aclose()


async def _sync_roster_within_hold(store: RoutingStore, settings: Settings) -> None:
    """The roster into Redis, tried again every probe for as long as a running
    engine holds its callers through an outage (redis.outage_hold_s): a Redis
    restarting beside the engine takes a second or two."""
    deadline = time.monotonic() + settings.redis.outage_hold_s
    while True:
        try:
            await sync_roster(store, settings)
            return
        except RoutingError as exc:
            if time.monotonic() + settings.redis.probe_s > deadline:
                raise
            log.error("redis unavailable at start-up (%s); trying again", type(exc).__name__)
            await asyncio.sleep(settings.redis.probe_s)


async def _rescue_before_exit(rest: AriRest, app: str) -> None:
    """An engine that cannot start hands the callers a dead engine left in
    Stasis to the backup destination: nobody else would move them."""
    try:
        handed = await rescue_stranded(rest, app)
    except AriError as exc:
        log.error("rescue: cannot read the application (%s); callers left in it wait for an engine",
                  type(exc).__name__)
        return
    if handed:
        log.warning("rescue: %d callers left in the application handed to the backup destination", handed)


async def open_connections(client: redis.Redis) -> None:
    """Open every connection of `client`'s pool now rather than on first use.

    A connection is made when every open one is busy, and making one takes
    round trips of its own (connect, HELLO with the password, CLIENT
    SETINFO) on an event loop that a burst of callers keeps busy: 50 callers
    at once made 36 connections while their calls joined the line, and the
    median enqueue took 280 ms, against 65 ms with the pool opened first and
    no health-check PINGs (one traced run each of the bench's scenario 2).
    Best effort: a connection that cannot be made now is made when needed.
    """
    pool = client.connection_pool
    made = await asyncio.gather(*(pool.get_connection() for _ in range(pool.max_connections)),
                                return_exceptions=True)
    failed = [c for c in made if isinstance(c, BaseException)]
    for connection in made:
        if not isinstance(connection, BaseException):
            await pool.release(connection)
    if failed:
        log.warning("redis: %d of %d connections not opened at start-up (%s); opened when needed",
                    len(failed), len(made), type(failed[0]).__name__)


def redis_for(settings: Settings) -> redis.Redis:
    """The engine's Redis client.

    A caller waits on every Redis round trip: when Redis is gone, fail within
    about a second so the call reaches the dialplan fallback, rather than
    after redis-py's default retries. redis-py's default pool refuses the
    101st command in flight (MaxConnectionsError, as if Redis were down): 200
    callers at once went to the fallback. This pool makes a burst wait for a
    connection instead. Waiting is not a sign of a lost Redis (the commands
    holding the connections fail and release them within their own timeouts),
    only of a busy engine: a burst of 200 callers on a loaded machine kept the
    event loop seconds behind, and a one-second wait sent some of them to the
    fallback. Hence five.

    No health-check PING before a command on a connection idle for a while:
    after a quiet night every connection is idle, and the first burst of
    callers would pay a round trip each. A connection Redis closed (a
    restart) is at EOF, which the pool checks before handing it out; a
    command whose connection is lost under it is sent again on a new one.
    One whose reply is late is not: it may run, and a routing script must
    not run twice (routing.connection.retry_lost).

    Its connections send without losing a cancel (routing.connection).
    """
    return redis.Redis.from_pool(keeping_cancels(redis.BlockingConnectionPool.from_url(
        settings.redis.url, max_connections=REDIS_CONNECTIONS, timeout=5,
        decode_responses=True, health_check_interval=0, socket_timeout=1,
        socket_connect_timeout=0.5, retry=retry_lost(ExponentialBackoff(cap=0.2, base=0.05), 2),
        password=settings.redis.password.get_secret_value() if settings.redis.password else None)))


def _queue_policies(settings: Settings, catalog: LanguageCatalog,
                    prompts: Mapping[str, frozenset[str]]) -> dict[str, QueuePolicy]:
    """The queue policies, with tier interpreters as ISO 639-3 and announcements checked."""
    policies = settings.routing.queue_policies()
    for i, queue in enumerate(settings.routing.queues):
        tiers = []
        for j, tier in enumerate(policies[queue.name].widen):
            key = f"routing.queues[{i}].widen[{j}]"
            interpreter = tier.interpreter
            if interpreter is not None:
                try:
                    interpreter = catalog.get(interpreter).code
                except UnknownLanguage:
                    raise SettingsError(f"{key}.interpreter: {interpreter!r} is not a language in the catalog") \
                        from None
            missing = [lang for lang, ids in prompts.items() if tier.say is not None and tier.say not in ids]
            if missing:
                raise SettingsError(f"{key}.say: no prompt {tier.say!r} in {', '.join(sorted(missing))}")
            tiers.append(replace(tier, interpreter=interpreter))
        policies[queue.name] = replace(policies[queue.name], widen=tuple(tiers))
    return policies


async def _heartbeat(store: RoutingStore, owner: str) -> None:
    """Tell other engines this one is alive, so they leave its calls alone."""
    while True:
        try:
            await store.heartbeat(owner, HEARTBEAT_TTL_S)
        except RoutingError:
            pass  # Redis is down: nothing to tell anyone; /metrics shows it
        await asyncio.sleep(HEARTBEAT_EVERY_S)


async def sync_roster(store: RoutingStore, settings: Settings) -> None:
    """The settings file is the roster: add or update its advocates, keep their state.

    At start-up, and again whenever Redis returns (it may have lost them all).
    """
    for a in settings.advocates:
        await store.upsert_advocate(a.id, a.name, a.endpoint, a.skills, a.roles, a.token_sha256)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_engine(settings):
        # Start-up leaves about 90,000 long-lived objects (modules, settings,
        # the language catalog, models). Every full collection of Python's
        # garbage collector went through all of them: 70 to 120 ms on the
        # 2-core bench machine, up to four in ten seconds of bursts of 50
        # callers, and every call of a burst waited it out. Frozen, they are
        # never scanned again (a full collection then takes a few ms).
        gc.collect()
        gc.freeze()
        await stop.wait()
        log.info("engine stopping; calls in progress stay up in Asterisk")
