"""Who is bridged with whom, as Asterisk tells it: the load test's witness of an answer.

A call the engine bridges is seen here the moment the second party enters
the bridge, however short the conversation; polling the bridges once a
second would miss a caller whose advocate hung up within the second. The
watcher is an ARI application of its own subscribed to every event in
Asterisk and filtered down to channels entering bridges; it touches no
channel. It reconnects when Asterisk restarts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import aiohttp
from yarl import URL

log = logging.getLogger("load.bridges")

APP = "load-bridge-watch"


class BridgeWatch:
    def __init__(self, http: aiohttp.ClientSession, ari_url: str, username: str, password: str,
                 on_bridged: Callable[[str, float], None]) -> None:
        """`on_bridged(caller number, epoch seconds)`: a channel with that caller
        number is in a call bridge ("call-..." in its name) with someone else."""
        self._http = http
        self._base = URL(ari_url.rstrip("/")) / "ari"
        self._headers = {"Authorization": aiohttp.encode_basic_auth(username, password)}
        self._on_bridged = on_bridged
        self._numbers: dict[str, str] = {}  # channel id -> caller number, as seen entering a bridge

    async def run(self) -> None:
        url = self._base.with_scheme("ws" if self._base.scheme == "http" else "wss") / "events"
        url = url.with_query(app=APP, subscribeAll="true")
        while True:
            try:
                async with self._http.ws_connect(url, headers=self._headers, heartbeat=10) as ws:
                    await self._filter()
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            self._event(json.loads(message.data))
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                log.info("bridge watch: %s; reconnecting", type(exc).__name__)
            await asyncio.sleep(1)

    async def _filter(self) -> None:
        body = {"allowed": [{"type": "ChannelEnteredBridge"}], "disallowed": []}
        async with self._http.put(self._base / "applications" / APP / "eventFilter", json=body,
                                  headers=self._headers) as response:
            if response.status >= 400:
                log.warning("bridge watch: event filter refused (%s); every event will be read", response.status)

    def _event(self, event: dict) -> None:
        if event.get("type") != "ChannelEnteredBridge":
            return
        bridge, channel = event.get("bridge", {}), event.get("channel", {})
        if not str(bridge.get("name", "")).startswith("call-"):
            return
        self._numbers[channel.get("id", "")] = str(channel.get("caller", {}).get("number", "")).lstrip("+")
        members = bridge.get("channels", [])
        if len(members) < 2:
            return
        now = time.time()
        for member in members:
            number = self._numbers.get(member)
            if number:
                self._on_bridged(number, now)
