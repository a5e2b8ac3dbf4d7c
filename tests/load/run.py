"""``make load``: simulated callers and advocates through the sandbox, faults on demand.

  .venv/bin/python -m tests.load [--callers 20] [--duration 60] [--advocates 20]
                                 [--fault KIND@AT[:FOR]]... [--json PATH]

The engine runs as a real process (``hotline run``) on the sandbox, with a
generated roster of advocates whose phones are on the sandbox's PSTN side;
the phones app answers for them after a random delay and hangs up after a
random talk time. Simulated callers dial the toll-free line through Asterisk,
press their menu choice and wait; some hang up if nobody answers within
their patience. New calls are placed for ``--duration`` seconds, keeping
``--callers`` in the line at once; then calls in progress get ``--drain``
seconds to finish, and the run stops by itself. Everything stays on loopback.

What each caller got is judged from the caller's side (tests/load/outcomes.py);
the run fails (exit 1) if any caller or any call in Redis was lost, or an
advocate was left stuck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from ivr.ari.errors import AriError
from ivr.ari.rest import AriRest
from ivr.cli import SANDBOX_CONFIG
from ivr.sandbox.control import Sandbox
from ivr.sandbox.phones_client import PhonesClient, PhonesError
from ivr.sandbox.proxy import TcpProxy
from ivr.settings import REPO, Settings, load_settings
from ivr.tasks import TaskSet

from .bridges import BridgeWatch
from .engine_proc import EngineProcess
from .faults import FaultInjector
from .outcomes import OUTCOMES, CallerRecord, Report, outcome, percentiles, timeline
from .plan import FAULT_KINDS, Fault, LoadPlan, roster, roster_env

log = logging.getLogger("load")

BACKUP_PHONE = "1999"
IN_PLAY = ("waiting", "offered", "bridged", "escalating")
# A caller left alone in a bridge (the advocate hung up while no engine ran) hangs up after this.
ALONE_S = 5.0
# A restarted engine starts the menu again for the calls it adopts in it
# (ivr/adoption.py). A simulated caller pressed their digits once and stays
# silent, so such a call takes the silent caller's path: about 150 s of menus
# at relay speed, then the queue (placed to answered up to 192 s in a run
# with the engine killed at 200 s). The drain lasts at least this long after
# the engine is back, or those callers would be judged stranded.
ADOPTED_IN_MENU_S = 240.0


class LoadRun:
    def __init__(self, plan: LoadPlan, settings: Settings, sandbox: Sandbox, http: aiohttp.ClientSession,
                 out_dir: Path) -> None:
        self.plan = plan
        self.settings = settings
        self.sandbox = sandbox
        self.http = http
        self.out_dir = out_dir
        self.rng = random.Random(plan.seed)
        self.phones = PhonesClient(http, f"http://127.0.0.1:{settings.sandbox.phones_http_port}")
        self.ari = AriRest(http, f"{settings.ari.url}/ari", settings.ari.username,
                           settings.ari.password.get_secret_value())
        # Redis may be restarted under it (a fault): reconnect rather than fail.
        self.redis = aioredis.Redis.from_url(settings.redis.url, decode_responses=True, health_check_interval=1,
                                             retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 5),
                                             password=settings.redis.password.get_secret_value()
                                             if settings.redis.password else None)
        self.advocates = roster(plan.advocates)
        self.records: dict[str, CallerRecord] = {}  # phones call id -> caller
        self.by_digits: dict[str, CallerRecord] = {}
        self.backup_calls: dict[str, CallerRecord] = {}
        self.ended: dict[str, asyncio.Event] = {}
        self.placement_failures = 0
        self.placed = 0
        self.tasks = TaskSet("load")
        self._slot = asyncio.Event()
        self._active = 0
        self._on_break: set[str] = set()

    # -- the run ------------------------------------------------------------------

    async def run(self) -> Report:
        plan = self.plan
        load_start = os.getloadavg()
        await self._clear_prefix()
        await self._script_phones()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        proxy = None
        env = self._engine_env()
        if any(f.kind == "drop-ari" for f in plan.faults):
            proxy = await TcpProxy("127.0.0.1", int(self.settings.ari.url.rsplit(":", 1)[1])).start()
            env["HOTLINE_ARI__URL"] = f"http://{proxy.url_host}"
        engine = EngineProcess(env, self.out_dir / "engine.log", self.http)
        faults = FaultInjector(self.sandbox, engine, proxy)
        try:
            await engine.start()
            await self._log_in_everyone(engine)
            t0 = time.time()
            watch = BridgeWatch(self.http, self.settings.ari.url, self.settings.ari.username,
                                self.settings.ari.password.get_secret_value(), self._bridged)
            for name, loop in (("phones-events", self._follow_phones()), ("bridges", watch.run()),
                               ("observer", self._observe()),
                               ("advocates", self._bring_back_advocates(engine)), ("scrape", self._scrape(engine)),
                               ("faults", faults.run(plan.faults, t0))):
                self.tasks.spawn(loop, name=name)
            try:
                callers = await self._drive(t0)
                drain_until = t0 + plan.duration_s + plan.drain_s
                if faults.engine_back_at is not None:
                    drain_until = max(drain_until, faults.engine_back_at + ADOPTED_IN_MENU_S)
                await self._drain(callers, drain_until)
                stranded = await self._end_leftovers()
                orphans, stuck = await self._leftovers_in_redis(engine)
            finally:
                await self.tasks.close()
            await engine.scrape()
            duration = time.time() - t0
        finally:
            await engine.stop()
            if proxy is not None:
                await proxy.close()
            await self.redis.aclose()
        counts = {name: 0 for name in OUTCOMES}
        lost = []
        for record in self.records.values():
            result = outcome(record, faults.asterisk_down)
            counts[result] += 1
            if result == "lost":
                lost.append(timeline(record))
        waits = [r.connected_at - r.placed_at for r in self.records.values() if r.connected_at is not None]
        return Report(plan=_plan_json(plan), outcomes=counts, placed=self.placed,
                      placement_failures=self.placement_failures, stranded=stranded, redis_orphans=orphans,
                      stuck_advocates=stuck, wait_to_answer_s=percentiles(waits), engine=engine.lives,
                      faults=faults.done, duration_s=duration, lost_callers=lost,
                      machine={"cores": os.cpu_count(), "load_start": _load(load_start),
                               "load_end": _load(os.getloadavg())})

    def _engine_env(self) -> dict[str, str]:
        plan = self.plan
        return {"HOTLINE_CONFIG": str(SANDBOX_CONFIG), "HOTLINE_ENGINE__INSTANCE_ID": plan.instance_id,
                "HOTLINE_ENGINE__LOG_LEVEL": "INFO", "HOTLINE_REDIS__KEY_PREFIX": plan.prefix,
"HOTLINE_ROUTING__WRAP_UP_S": str(plan.wrap_up_s),
                "HOTLINE_ADVOCATES": roster_env(self.advocates), **plan.extra}

    async def _clear_prefix(self) -> None:
        # SCAN on the sandbox's Redis for the load run's own prefix; never on a live server.
        keys = [key async for key in self.redis.scan_iter(match=f"{self.plan.prefix}*", count=1000)]
        if keys:
            await self.redis.delete(*keys)

    async def _script_phones(self) -> None:
        plan = self.plan
        await self.phones.ready()
        await self.phones.reset()
        for advocate in self.advocates:
            await self.phones.script(advocate.phone, answer_after_s=plan.answer_s[0],
                                     answer_after_max_s=plan.answer_s[1], hangup_after_s=plan.talk_s[0],
                                     hangup_after_max_s=plan.talk_s[1], miss_rate=plan.miss_rate)
        await self.phones.script(BACKUP_PHONE, hangup_after_s=plan.backup_talk_s)

    async def _log_in_everyone(self, engine: EngineProcess) -> None:
        for advocate in self.advocates:
            await self._act(engine, advocate.id, "login")

    async def _act(self, engine: EngineProcess, advocate_id: str, action: str) -> int:
        token = next(a.token for a in self.advocates if a.id == advocate_id)
        try:
            async with self.http.post(f"{engine.base}/advocates/{advocate_id}/{action}",
                                      headers={"Authorization": f"Bearer {token}"}) as response:
                return response.status
        except aiohttp.ClientError:
            return 0  # the engine is down (a fault); the advocate tries again later

    # -- callers --------------------------------------------------------------------

    async def _drive(self, t0: float) -> list[asyncio.Task[None]]:
        """Keep `callers` calls in the line until the duration is over."""
        callers = []
        n = 0
        while time.time() < t0 + self.plan.duration_s:
            if self._active >= self.plan.callers:
                self._slot.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot.wait(), 1.0)
                continue
            self._active += 1
            callers.append(self.tasks.spawn(self._caller(n), name=f"caller-{n}"))
            n += 1
            await asyncio.sleep(1 / self.plan.ramp_per_s)
        return callers

    async def _caller(self, n: int) -> None:
        plan, rng = self.plan, self.rng
        record = CallerRecord(plan.caller_number(n), plan.menu_choice(rng), time.time(),
                              abandoner=rng.random() < plan.abandon_rate, patience_s=rng.uniform(*plan.patience_s))
        try:
            try:
                call = await self.phones.place_call(record.number, self.settings.lines.toll_free, dtmf=record.menu)
            except (PhonesError, aiohttp.ClientError):
                # The simulated PSTN failed, not the hotline (Asterisk restarting): try again in a moment.
                self.placement_failures += 1
                await asyncio.sleep(1)
                return
            self.placed += 1
            record.phone_call = call["id"]
            ended = self.ended.setdefault(call["id"], asyncio.Event())
            self.records[call["id"]] = record
            self.by_digits[record.number.lstrip("+")] = record
            if record.abandoner:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), record.patience_s)
                if not ended.is_set() and not record.served:
                    await self._hang_up(record)
            await ended.wait()
        finally:
            self._active -= 1
            self._slot.set()

    async def _hang_up(self, record: CallerRecord) -> None:
        record.hung_up_at = time.time()
        with contextlib.suppress(PhonesError, aiohttp.ClientError):
            await self.phones.hangup(record.phone_call)

    async def _drain(self, callers: list[asyncio.Task[None]], until: float) -> None:
        if callers:
            await asyncio.wait(callers, timeout=max(0.0, until - time.time()))

    async def _end_leftovers(self) -> int:
        """Hang up what is still up: callers being served are fine; unserved ones were stranded."""
        stranded = 0
        for record in self.records.values():
            if record.ended_at is None and record.hung_up_at is None:
                if not record.served:
                    stranded += 1
                    record.ended_at = time.time()  # lost: ended unserved, not by the caller
                    record.end_cause = "stranded"
                    with contextlib.suppress(PhonesError, aiohttp.ClientError):
                        await self.phones.hangup(record.phone_call)
                else:
                    await self._hang_up(record)
        return stranded

    # -- what the callers see ------------------------------------------------------------

    async def _follow_phones(self) -> None:
        after = await self.phones.mark()
        while True:
            try:
                events = await self.phones.events(after, 5)
            except (PhonesError, aiohttp.ClientError):
                await asyncio.sleep(1)
                continue
            for event in events:
                after = event["seq"]
                self._phone_event(event)

    def _phone_event(self, event: dict) -> None:
        now, kind = event["time"], event["kind"]
        record = self.records.get(event["call"])
        if record is not None:
            if kind == "answered":
                record.hotline_answered_at = now
            elif kind == "ended" and record.ended_at is None:
                record.ended_at, record.end_cause = now, str(event.get("cause", ""))
                self.ended.setdefault(event["call"], asyncio.Event()).set()
            return
        if event["number"] != BACKUP_PHONE:
            return
        if kind == "ringing":
            # The backup centre is the one phone that sees the caller's number.
            seen = "".join(ch for ch in event.get("caller_id_seen", "") if ch.isdigit())
            caller = next((r for digits, r in self.by_digits.items() if seen.endswith(digits)), None)
            if caller is not None:
                caller.backup_call = event["call"]
                self.backup_calls[event["call"]] = caller
        elif kind == "answered" and event["call"] in self.backup_calls:
            self.backup_calls[event["call"]].backup_answered_at = now

    def _bridged(self, digits: str, when: float) -> None:
        record = self.by_digits.get(digits)
        if record is not None and record.ended_at is None:
            record.connected_at = record.connected_at or when
            record.last_bridged_at = when

    async def _observe(self) -> None:
        """Once a second: who is still in a call bridge with someone (Asterisk's view). A caller
        left alone there (the advocate hung up while no engine ran) hangs up after a while."""
        while True:
            await asyncio.sleep(1)
            now = time.time()
            try:
                channels = await self.ari.list_channels()
                bridges = await self.ari.list_bridges()
            except AriError:
                continue  # Asterisk restarting
            number_of = {c.id: c.caller.number.lstrip("+") for c in channels}
            for bridge in bridges:
                if bridge.name.startswith("call-") and len(bridge.channels) >= 2:
                    for channel in bridge.channels:
                        self._bridged(number_of.get(channel, ""), now)
            for record in list(self.records.values()):
                if record.last_bridged_at is not None and record.ended_at is None and record.hung_up_at is None \
                        and now - record.last_bridged_at > ALONE_S:
                    await self._hang_up(record)  # the advocate left and nobody hung up on them

    # -- advocates -----------------------------------------------------------------------

    async def _bring_back_advocates(self, engine: EngineProcess) -> None:
        """An advocate who went away (a missed ring) or was logged out comes back after a break."""
        supervisor = next(a for a in self.advocates if a.supervisor)
        while True:
            await asyncio.sleep(2)
            try:
                async with self.http.get(f"{engine.base}/advocates",
                                         headers={"Authorization": f"Bearer {supervisor.token}"}) as response:
                    listed = await response.json() if response.status == 200 else []
            except aiohttp.ClientError:
                continue
            for advocate in listed:
                if advocate["state"] in ("away", "offline") and advocate["id"] not in self._on_break:
                    self._on_break.add(advocate["id"])
                    self.tasks.spawn(self._back_after_break(engine, advocate["id"]), name=f"break-{advocate['id']}")

    async def _back_after_break(self, engine: EngineProcess, advocate_id: str) -> None:
        await asyncio.sleep(self.rng.uniform(*self.plan.break_s))
        await self._act(engine, advocate_id, "available")
        self._on_break.discard(advocate_id)

    async def _scrape(self, engine: EngineProcess) -> None:
        while True:
            await engine.scrape()
            await asyncio.sleep(5)

    # -- after the run --------------------------------------------------------------------

    async def _leftovers_in_redis(self, engine: EngineProcess, wait_s: float = 25.0) -> tuple[int, list[str]]:
        """Calls in play in Redis with no channel, and advocates stuck with such calls.
        The engine's own sweep gets a little time to clear them first."""
        deadline = time.time() + wait_s
        while True:
            orphans, stuck = await self._redis_against_asterisk()
            if (not orphans and not stuck) or time.time() > deadline:
                return len(orphans), stuck
            await asyncio.sleep(1)

    async def _redis_against_asterisk(self) -> tuple[list[str], list[str]]:
        prefix = self.plan.prefix
        live = {c.id for c in await self.ari.list_channels()}
        orphans = []
        async for key in self.redis.scan_iter(match=f"{prefix}call:*", count=1000):
            call_id = key[len(f"{prefix}call:"):]
            if await self.redis.hget(key, "state") in IN_PLAY and call_id not in live:
                orphans.append(call_id)
        stuck = []
        for advocate in self.advocates:
            state, call_id = await self.redis.hmget(f"{prefix}adv:{advocate.id}", ["state", "call"])
            if state in ("ringing", "on_call") and call_id not in live:
                stuck.append(advocate.id)
        return orphans, stuck


def _plan_json(plan: LoadPlan) -> dict[str, object]:
    data = asdict(plan)
    data["faults"] = [f"{f.kind}@{f.at_s:g}:{f.for_s:g}" for f in plan.faults]
    return data


def _load(averages: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in averages)


async def run_load(plan: LoadPlan, settings: Settings, out_dir: Path) -> Report:
    sandbox = Sandbox(settings, SANDBOX_CONFIG)
    await asyncio.to_thread(sandbox.up)
    async with aiohttp.ClientSession() as http:
        return await LoadRun(plan, settings, sandbox, http, out_dir).run()


def parse_args(argv: list[str] | None = None) -> tuple[LoadPlan, Path | None]:
    parser = argparse.ArgumentParser(prog="make load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="faults:\n" + "\n".join(f"  {k:17} {v}" for k, v in FAULT_KINDS.items()))
    parser.add_argument("--callers", type=int, default=20, help="simulated callers in the line at once")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds during which calls are placed")
    parser.add_argument("--advocates", type=int, default=20)
    parser.add_argument("--drain", type=float, default=120.0,
                        help=f"seconds calls in progress get to finish (after a kill-engine, "
                             f"at least {ADOPTED_IN_MENU_S:g} from the engine's return)")
    parser.add_argument("--abandon-rate", type=float, default=0.15)
    parser.add_argument("--fault", action="append", default=[], metavar="KIND@AT[:FOR]",
                        help="inject a fault AT seconds into the run (repeatable)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args(argv)
    try:
        faults = tuple(sorted((Fault.parse(f) for f in args.fault), key=lambda f: f.at_s))
    except ValueError as exc:
        parser.error(str(exc))
    plan = replace(LoadPlan(), callers=args.callers, duration_s=args.duration, advocates=args.advocates,
                   drain_s=args.drain, abandon_rate=args.abandon_rate, faults=faults, seed=args.seed)
    return plan, args.json


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    plan, json_path = parse_args(argv)
    settings = load_settings(SANDBOX_CONFIG)
    out_dir = REPO / "test-artifacts" / f"load-{time.strftime('%Y%m%d-%H%M%S')}"
    report = asyncio.run(run_load(plan, settings, out_dir))
    for line in report.lines():
        print(line)
    text = json.dumps(asdict(report), indent=2, default=str)
    (out_dir / "report.json").write_text(text)
    if json_path is not None:
        json_path.write_text(text)
    print(f"  report and engine log: {out_dir}")
    sys.exit(0 if report.ok() else 1)
