"""The sandbox's simulated PSTN: callers, advocates' phones, the backup centre.

An ARI application of its own on the sandbox Asterisk. Every number the
hotline dials on the PSTN side (an advocate's phone, the backup call centre,
later the interpreter service) arrives here through the ``pstn-in`` context
and behaves as a test scripted it: answer after N seconds, never answer,
refuse as busy, hang up after M seconds. Calls *to* the hotline are placed
from here as real SIP calls with a caller id and RFC 4733 DTMF.

A phone can also *say* something (a tone, a sound: what its user would
speak) and *listen* (record what it hears and measure its level), which is
how the tests prove who hears whom.

Tests, demos and ``hotline call`` drive it over a small HTTP API on loopback
(see :class:`ivr.sandbox.phones_client.PhonesClient`). Every change is an
entry in one ordered event log that clients long-poll, so a test waits on
"advocate 1001 rang" instead of sleeping. Entries that come from Asterisk
carry ``asterisk_time``, the ARI event's own timestamp: measurements use it,
so the phones' own delays under load do not count.

The bench places 200 calls at once: event handling never waits on an ARI
request (the events WebSocket would stall behind it), and each caller waits
on its own call's progress, not on every change.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import random
import time
import uuid
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from ivr.ari.errors import AriError, AriNotFound
from ivr.ari.events import ChannelDestroyed, ChannelDtmfReceived, Event, StasisEnd, StasisStart, UnknownEvent
from ivr.ari.rest import AriRest, ari_session
from ivr.ari.stream import EventStream
from ivr.sandbox.control import STATE_IN_ROOT
from ivr.settings import Settings
from ivr.tasks import TaskSet

log = logging.getLogger(__name__)

EVENT_LOG_LIMIT = 20000


@dataclass
class PhoneScript:
    """How a simulated phone behaves when the hotline dials it."""

    answer_after_s: float = 0.3
    never_answer: bool = False
    busy: bool = False
    hangup_after_s: float | None = None
    # For load tests, a person rather than a machine: each call draws its
    # delays between the values above and these maxima, and goes unanswered
    # with probability miss_rate.
    answer_after_max_s: float | None = None
    hangup_after_max_s: float | None = None
    miss_rate: float = 0.0

    def draw(self, rng: random.Random) -> tuple[float | None, float | None]:
        """(answer after, hang up after) for one call; None: never answer / never hang up."""
        if self.never_answer or rng.random() < self.miss_rate:
            return None, None
        answer = self.answer_after_s if self.answer_after_max_s is None \
            else rng.uniform(self.answer_after_s, self.answer_after_max_s)
        hangup = self.hangup_after_s
        if hangup is not None and self.hangup_after_max_s is not None:
            hangup = rng.uniform(hangup, self.hangup_after_max_s)
        return answer, hangup


@dataclass
class PhoneCall:
    id: str
    direction: str  # "in": the hotline dialled a phone; "out": a caller dialled the hotline
    number: str  # the phone's own number (the dialled one, or the caller's)
    to: str = ""
    state: str = "dialing"  # dialing | ringing | answered | ended
    caller_id_seen: str = ""  # what the phone's display shows, for incoming calls
    sip_call_id: str = ""
    started_at: float = field(default_factory=time.time)
    created_at: float | None = None  # Asterisk's creation time of a caller's channel
    answered_at: float | None = None
    ended_at: float | None = None
    dtmf_received: str = ""
    dtmf_sent: str = ""


class Phones:
    def __init__(self, rest: AriRest, *, app: str, trunk: str, tasks: TaskSet, spool: Path) -> None:
        self.rest = rest
        self.spool = spool  # Asterisk's spool directory, seen from the host
        self._recordings: dict[str, asyncio.Future[str]] = {}
        self.app = app
        self.trunk = trunk  # the PSTN side's endpoint towards the hotline
        self.tasks = tasks
        self.scripts: dict[str, PhoneScript] = {}
        self.calls: dict[str, PhoneCall] = {}
        self.events: list[dict[str, Any]] = []
        self._seq = itertools.count(1)
        self._changed = asyncio.Condition()
        # Set when an outgoing call is answered or ends: its caller script waits on it.
        self._progress: dict[str, asyncio.Event] = {}
        self._rng = random.Random()

    # -- event log ------------------------------------------------------------

    async def _record(self, call: PhoneCall, kind: str, **extra: Any) -> None:
        entry = {"seq": next(self._seq), "time": time.time(), "call": call.id,
                 "direction": call.direction, "number": call.number, "kind": kind, **extra}
        self.events.append(entry)
        del self.events[:-EVENT_LOG_LIMIT]
        async with self._changed:
            self._changed.notify_all()

    async def events_after(self, seq: int, timeout_s: float) -> list[dict[str, Any]]:
        async def newer() -> list[dict[str, Any]]:
            return self.events[bisect.bisect_right(self.events, seq, key=lambda e: e["seq"]):]

        async with self._changed:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._changed.wait_for(lambda: bool(self.events) and self.events[-1]["seq"] > seq)
            except TimeoutError:
                pass
        return await newer()

    # -- ARI events -----------------------------------------------------------

    async def handle(self, event: Event) -> None:
        if isinstance(event, StasisStart):
            await self._stasis_start(event)
        elif isinstance(event, ChannelDtmfReceived):
            call = self.calls.get(event.channel.id)
            if call is not None:
                call.dtmf_received += event.digit
                await self._record(call, "dtmf_received", digit=event.digit)
        elif isinstance(event, UnknownEvent) and event.type in {"RecordingFinished", "RecordingFailed"}:
            name = event.raw.get("recording", {}).get("name", "")
            waiter = self._recordings.get(name)
            if waiter is not None and not waiter.done():
                waiter.set_result(event.type)
        elif isinstance(event, (ChannelDestroyed, StasisEnd)):
            # A channel that entered the app from the dialplan (a phone the
            # hotline rang) is ours only while in Stasis: Asterisk sends its
            # StasisEnd, and its ChannelDestroyed to nobody. Phones leave the
            # app only by hanging up, so either one means the call ended.
            call = self.calls.get(event.channel.id)
            if call is not None and call.state != "ended":
                call.state = "ended"
                call.ended_at = time.time()
                self._progressed(call)
                stamp = getattr(event, "timestamp", None)
                await self._record(call, "ended", cause=getattr(event, "cause", None),
                                   asterisk_time=stamp.timestamp() if stamp is not None else None)

    async def reconcile(self) -> None:
        """After (re)connecting to ARI: calls whose channel died meanwhile
        (Asterisk restarted) are over, and say so in the event log."""
        live = {channel.id for channel in await self.rest.list_channels()}
        for call in list(self.calls.values()):
            if call.state != "ended" and call.id not in live:
                call.state = "ended"
                call.ended_at = time.time()
                await self._record(call, "ended", cause="gone")

    async def _stasis_start(self, event: StasisStart) -> None:
        # The call is known at once, so its later events find it; what needs an
        # ARI request runs in a task of its own.
        channel = event.channel
        at = event.timestamp.timestamp()
        call = self.calls.get(channel.id)
        if call is not None:  # our outgoing call was answered by the hotline
            self.tasks.spawn(self._answered(call, at), name=f"answered-{call.id}")
            return
        number = event.args[0] if event.args else channel.dialplan.exten
        call = PhoneCall(id=channel.id, direction="in", number=number, state="ringing",
                         caller_id_seen=f"{channel.caller.name} <{channel.caller.number}>")
        self.calls[call.id] = call
        self.tasks.spawn(self._incoming(call, self.scripts.get(number, PhoneScript()), at),
                         name=f"phone-{number}-{call.id}")

    async def _answered(self, call: PhoneCall, at: float) -> None:
        # Looked up before "answered" is told: whoever waits on it finds the Call-ID set.
        call.sip_call_id = await self._sip_call_id(call.id)
        if call.state != "dialing":
            return  # ended meanwhile
        call.state = "answered"
        call.answered_at = time.time()
        self._progressed(call)
        await self._record(call, "answered", asterisk_time=at)

    def _progressed(self, call: PhoneCall) -> None:
        progress = self._progress.get(call.id)
        if progress is not None:
            progress.set()

    async def _sip_call_id(self, channel_id: str) -> str:
        try:
            return await self.rest.get_var(channel_id, "CHANNEL(pjsip,call-id)")
        except AriError:
            return ""

    async def _incoming(self, call: PhoneCall, script: PhoneScript, at: float) -> None:
        call.sip_call_id = await self._sip_call_id(call.id)
        await self._record(call, "ringing", caller_id_seen=call.caller_id_seen, asterisk_time=at)
        answer_after_s, hangup_after_s = script.draw(self._rng)
        try:
            if script.busy:
                await self.rest.hangup(call.id, reason="busy")
                return
            await self.rest.ring(call.id)
            if answer_after_s is None:
                return
            await asyncio.sleep(answer_after_s)
            if call.state == "ended":
                return
            await self.rest.answer(call.id)
            call.state = "answered"
            call.answered_at = time.time()
            await self._record(call, "answered")
            if hangup_after_s is not None:
                await asyncio.sleep(hangup_after_s)
                await self.hangup(call.id)
        except AriNotFound:
            pass  # the hotline gave up on this phone first

    # -- control --------------------------------------------------------------

    async def place_call(self, *, caller: str, to: str, dtmf: str, dtmf_delay_s: float,
                         dtmf_gap_s: float, hangup_after_s: float | None) -> PhoneCall:
        call = PhoneCall(id=f"caller-{uuid.uuid4().hex[:12]}", direction="out", number=caller, to=to)
        self.calls[call.id] = call
        self._progress[call.id] = asyncio.Event()
        await self._record(call, "dialing", to=to)
        try:
            channel = await self.rest.originate(f"PJSIP/{to}@{self.trunk}", app=self.app, app_args="out",
                                                channel_id=call.id, caller_id=caller, timeout_s=60)
        except AriError:
            del self._progress[call.id]
            raise
        call.created_at = channel.creationtime.timestamp()
        self.tasks.spawn(self._caller_script(call, dtmf, dtmf_delay_s, dtmf_gap_s, hangup_after_s),
                         name=f"caller-{call.id}")
        return call

    async def _caller_script(self, call: PhoneCall, dtmf: str, delay_s: float, gap_s: float,
                             hangup_after_s: float | None) -> None:
        started = time.monotonic()
        try:
            await self._progress[call.id].wait()  # the hotline answered (StasisStart), or the call ended
            del self._progress[call.id]
            if call.state != "answered":
                return
            await asyncio.sleep(delay_s)
            for digit in dtmf:
                if call.state != "answered":
                    return
                if digit in "wW":  # a pause, as on a phone's dial string
                    await asyncio.sleep(gap_s)
                    continue
                await self.send_dtmf(call.id, digit)
                await asyncio.sleep(gap_s)
            if hangup_after_s is not None:
                remaining = hangup_after_s - (time.monotonic() - started)
                if remaining > 0:
                    await asyncio.sleep(remaining)
                await self.hangup(call.id)
        except AriNotFound:
            pass

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        call = self.calls[call_id]
        await self.rest.send_dtmf(call_id, digits, duration_ms=120, between_ms=150)
        call.dtmf_sent += digits
        await self._record(call, "dtmf_sent", digits=digits)

    async def listen(self, call_id: str, seconds: int) -> float:
        """Record what this phone hears for ``seconds`` and return its RMS level
        (0 silence .. 1 full scale): how a test knows the caller hears music or a prompt."""
        name = f"listen-{call_id}-{next(self._seq)}"
        done = asyncio.get_running_loop().create_future()
        self._recordings[name] = done
        try:
            await self.rest.record(call_id, name, max_duration_s=seconds)
            async with asyncio.timeout(seconds + 5):
                await done
        finally:
            self._recordings.pop(name, None)
        path = self.spool / "recording" / f"{name}.wav"
        try:
            return await _rms(path)
        finally:
            path.unlink(missing_ok=True)

    async def play(self, call_id: str, media: str) -> str:
        """Make the phone *say* ``media`` (e.g. ``tone:440``, which lasts until
        stopped): played on the phone's channel, it goes out to the hotline as
        the phone's own audio. Returns the playback id, for ``stop_playback``."""
        call = self.calls[call_id]
        playback = await self.rest.play(call_id, media, playback_id=f"say-{call_id}-{next(self._seq)}")
        await self._record(call, "playing", media=media, playback=playback.id)
        return playback.id

    async def stop_playback(self, playback_id: str) -> None:
        try:
            await self.rest.stop_playback(playback_id)
        except AriNotFound:
            pass  # finished, or its channel hung up

    async def hangup(self, call_id: str) -> None:
        call = self.calls[call_id]
        try:
            await self.rest.hangup(call_id)
        except AriNotFound:
            pass
        await self._record(call, "hangup_sent")


async def _rms(path: Path) -> float:
    proc = await asyncio.create_subprocess_exec("sox", str(path), "-n", "stat", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    _, report = await proc.communicate()
    for line in report.decode().splitlines():
        if line.startswith("RMS     amplitude:"):
            return float(line.split(":")[1])
    raise RuntimeError(f"sox stat gave no RMS amplitude for {path.name}")


def make_api(phones: Phones) -> web.Application:
    routes = web.RouteTableDef()

    @routes.put("/phones/{number}")
    async def set_script(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            phones.scripts[request.match_info["number"]] = PhoneScript(**body)
        except TypeError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"ok": True})

    @routes.delete("/phones")
    async def reset_scripts(request: web.Request) -> web.Response:
        phones.scripts.clear()
        return web.json_response({"ok": True})

    @routes.post("/calls")
    async def place(request: web.Request) -> web.Response:
        body = await request.json()
        call = await phones.place_call(caller=body["from"], to=body["to"], dtmf=body.get("dtmf", ""),
                                       dtmf_delay_s=float(body.get("dtmf_delay_s", 1.0)),
                                       dtmf_gap_s=float(body.get("dtmf_gap_s", 0.8)),
                                       hangup_after_s=body.get("hangup_after_s"))
        return web.json_response(asdict(call), status=201)

    @routes.get("/calls/{id}")
    async def get_call(request: web.Request) -> web.Response:
        call = phones.calls.get(request.match_info["id"])
        if call is None:
            raise web.HTTPNotFound(text="no such call")
        return web.json_response(asdict(call))

    @routes.get("/calls")
    async def list_calls(request: web.Request) -> web.Response:
        return web.json_response([asdict(c) for c in phones.calls.values()])

    @routes.post("/calls/{id}/dtmf")
    async def dtmf(request: web.Request) -> web.Response:
        body = await request.json()
        await phones.send_dtmf(request.match_info["id"], body["digits"])
        return web.json_response({"ok": True})

    @routes.post("/calls/{id}/hangup")
    async def hangup(request: web.Request) -> web.Response:
        await phones.hangup(request.match_info["id"])
        return web.json_response({"ok": True})

    @routes.post("/calls/{id}/listen")
    async def listen(request: web.Request) -> web.Response:
        seconds = int((await request.json()).get("seconds", 2))
        return web.json_response({"rms": await phones.listen(request.match_info["id"], seconds)})

    @routes.post("/calls/{id}/play")
    async def play(request: web.Request) -> web.Response:
        media = (await request.json())["media"]
        return web.json_response({"playback": await phones.play(request.match_info["id"], media)})

    @routes.delete("/playbacks/{id}")
    async def stop_playback(request: web.Request) -> web.Response:
        await phones.stop_playback(request.match_info["id"])
        return web.json_response({"ok": True})

    @routes.get("/events")
    async def events(request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        timeout_s = min(float(request.query.get("timeout", "5")), 30.0)
        return web.json_response(await phones.events_after(after, timeout_s))

    app = web.Application()
    app.add_routes(routes)
    return app


async def serve(settings: Settings) -> None:
    box = settings.sandbox
    tasks = TaskSet()
    async with ari_session() as session:
        rest = AriRest(session, f"{settings.ari.url}/ari", settings.ari.username,
                       settings.ari.password.get_secret_value())
        spool = box.root / STATE_IN_ROOT.lstrip("/") / "spool"
        phones = Phones(rest, app=box.phones_app, trunk="hotline-trunk", tasks=tasks, spool=spool)
        stream = EventStream(session, f"{settings.ari.url}/ari", settings.ari.username,
                             settings.ari.password.get_secret_value(), box.phones_app, phones.handle,
                             on_connected=phones.reconcile)
        runner = web.AppRunner(make_api(phones), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", box.phones_http_port).start()
        try:
            await stream.run()
        finally:
            await runner.cleanup()
            await tasks.close()


def main() -> None:
    import os

    from ivr.settings import REPO, load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings(os.environ.get("HOTLINE_CONFIG", REPO / "deploy" / "sandbox" / "hotline.toml"))
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
