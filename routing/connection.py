"""Redis connections that do not lose a cancel.

redis-py (8.1) sends each command under ``asyncio.wait_for(send,
socket_timeout)``. Before Python 3.12, ``wait_for`` returns its inner task's
result when the task waiting on it is cancelled in the loop turn the inner
task finishes in, and sending a command to a local Redis finishes in one turn.
So a task cancelled while it sends a command carries on as if it had not been
cancelled: against a local redis-server, every cancel that arrived during a
send was lost. At the engine's stop that was a call actor that went on
handling its call and held the stop for TaskSet's 10 s; inside an
``asyncio.timeout`` it is a timeout that never fires.

The send here is redis-py's, bounded by ``asyncio.timeout`` instead, which
lets the cancel through.

It also decides which failed commands are sent again (``retry_lost``).
redis-py's retries, by default, send a command again after a timeout too;
a routing script whose reply came late then ran twice, and most of them
cannot (a second ``abandon`` finds the call gone and says so, and the
engine takes that for an offer on its way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from redis import exceptions as redis_exceptions
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import AbstractBackoff


def retry_lost(backoff: AbstractBackoff, retries: int) -> Retry:
    """redis-py's retries, after a lost connection only: refused, reset, or
    closed by the server. Redis replies to a command before it closes a
    connection, so a command whose connection was lost did not run (or ran
    in a server that died with its memory before replying: this deployment
    keeps no append-only file). Never after a timeout: Redis is slow, not
    gone, and runs the command it has, late; the caller is told, and
    decides knowing it may have run."""
    return Retry(backoff, retries, supported_errors=(redis_exceptions.ConnectionError,))


class _KeepsCancel(AbstractConnection):
    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        if not self.is_connected:
            try:
                await self.connect_check_health(check_health=False)
            except redis_exceptions.TimeoutError as exc:
                # Nothing was sent: a lost connection, for retry_lost.
                raise redis_exceptions.ConnectionError(str(exc)) from exc
        if check_health:
            await self.check_health()
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        try:
            async with asyncio.timeout(self.socket_timeout or None):
                self._writer.writelines(command)  # type: ignore[union-attr]
                await self._writer.drain()  # type: ignore[union-attr]
        except TimeoutError:  # before OSError, of which it is one
            # Redis read nothing for a second: what sits in the socket's
            # buffer may still reach it and run (not for retry_lost).
            await self.disconnect(nowait=True)
            raise redis_exceptions.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise redis_exceptions.ConnectionError(f"Error while writing to socket: {exc.strerror or exc}") from exc
        except BaseException:
            # Cancelled part-way through a command: the connection cannot be
            # reused, whatever of the command went out.
            await self.disconnect(nowait=True)
            raise


def keeping_cancels(pool: ConnectionPool) -> ConnectionPool:
    """Make `pool`'s connections send with ``_KeepsCancel``, whatever their kind
    (TCP, TLS or Unix socket, as the URL chose). Before any connection is made."""
    base = pool.connection_class
    if not issubclass(base, _KeepsCancel):
        pool.connection_class = type(f"{base.__name__}KeepingCancels", (_KeepsCancel, base), {})
    return pool
