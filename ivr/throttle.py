"""Throttling of bad API tokens: guessing a token must be slow.

Each client (an address; an IPv6 /64, since one host may hold a whole /64)
may present at most ``max_failures`` unknown tokens within ``window_s``.
Then every request it makes is refused with 429 until its oldest failure
leaves the window, whatever token it carries, so the answer never tells
whether a guess was right, or close. A success resets nothing, for no one:
an advocate holding a valid token could otherwise interleave guesses at a
supervisor's token with good requests. Memory is bounded: at most
``max_clients`` clients are remembered, and the one whose last failure is
oldest is forgotten first.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection


class BadTokenThrottle:
    def __init__(self, max_failures: int, window_s: float, max_clients: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1 or window_s <= 0 or max_clients < 1:
            raise ValueError("max_failures, window_s and max_clients must be positive")
        self.max_failures = max_failures
        self._window_s = window_s
        self._max_clients = max_clients
        self._clock = clock
        # client -> times of its latest failures, oldest first; least recently failing client first.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` is heard again, or None if it may try now."""
        failures = self._failures.get(client)
        if failures is None or len(failures) < self.max_failures:
            return None
        # Never beyond the window: float sums can make (t + 60) - t come to 60.0000000000001.
        wait = min(self._window_s, failures[0] + self._window_s - self._clock())
        return wait if wait > 0 else None

    def failed(self, client: str) -> bool:
        """Count one bad token from ``client``; True if that shuts it out."""
        now = self._clock()
        failures = self._failures.pop(client, None) or deque(maxlen=self.max_failures)
        while failures and failures[0] <= now - self._window_s:
            failures.popleft()
        failures.append(now)
        self._failures[client] = failures
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)
        return len(failures) == self.max_failures

    def __len__(self) -> int:
        return len(self._failures)


def client_of(peer: str | None, forwarded_for: str | None, trusted_proxies: Collection[str]) -> str:
    """Who is asking: the peer address, or behind a trusted reverse proxy the
    nearest address in X-Forwarded-For that is not one of our proxies.

    Without trusted proxies the header is ignored: anyone can write it.
    """
    address = peer or "unknown"
    if address in trusted_proxies and forwarded_for:
        for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
            address = hop
            if hop not in trusted_proxies:
                break
    return _counted_as(address)


def _counted_as(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]  # not an address (a forged header): counted as written, bounded
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
