"""What a waiting caller hears: music on hold, broken by short messages.

Asterisk plays one thing on a channel at a time: a message needs the music
stopped first, and the music started again when the message ends (its
PlaybackFinished, which the call actor passes to ``finished``). A channel
with a playback running joins a bridge only when the playback ends, so the
message is stopped before the caller is connected (``stop``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ivr.ari.errors import AriError, AriNotFound
from ivr.ari.rest import AriRest

log = logging.getLogger(__name__)


class HoldLine:
    def __init__(self, channel: str, rest: AriRest) -> None:
        self.channel = channel
        self.rest = rest
        self.message: str | None = None  # playback id of the message being said
        self._count = 0

    def next_playback_id(self) -> str:
        """A fresh playback id on this call (menu prompts use them too)."""
        self._count += 1
        return f"{self.channel}-pb{self._count}"

    async def stop_left_behind(self, count: int) -> None:
        """Stop what a dead engine may still be playing on this channel (its
        playback ids, pb1 to pb<count>: only the last it started can still
        play), and number this engine's playbacks after them.

        Asterisk holds some requests on a channel (setting a variable,
        answering, joining a bridge) until the prompt playing on it ends:
        left playing, a dead engine's call-type menu (23 s) held the new
        engine's first request on the call (the language the caller chose)
        past the request's timeout, and the caller went to the backup line.
        Stopping a playback is not held.
        """
        outcomes = await asyncio.gather(*(self.rest.stop_playback(f"{self.channel}-pb{n}")
                                          for n in range(1, count + 1)), return_exceptions=True)
        self._count = max(self._count, count)
        failed = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, AriNotFound)]
        for outcome in failed:
            if not isinstance(outcome, AriError):
                raise outcome  # not Asterisk's answer: a defect, the call actor's to handle
        if failed:
            # Asterisk slow or out of reach: what the dead engine left plays to its end. One
            # line, not one per id (most of which never existed: 404, as expected).
            log.warning("channel %s: %d of the dead engine's playbacks not stopped (%s)", self.channel,
                        len(failed), type(failed[0]).__name__)

    async def music(self) -> bool:
        """Start the hold music; False if Asterisk refused it (worth asking again)."""
        try:
            await self.rest.start_moh(self.channel)
        except AriNotFound:
            pass  # the caller left; their events follow
        except AriError as exc:
            # Asterisk slow or out of reach: the call goes on (its place in
            # line, its timers); the caller of this asks again.
            log.warning("channel %s: hold music not started (%s)", self.channel, type(exc).__name__)
            return False
        return True

    async def say(self, media: Sequence[str]) -> bool:
        """Stop the music (or the message being said) and play `media`.
        False if it is not being said: the caller is gone, or Asterisk
        refused it, and the caller of this starts the music again."""
        await self.stop()
        self.message = self.next_playback_id()
        try:
            await self.rest.stop_moh(self.channel)
            await self.rest.play(self.channel, list(media), playback_id=self.message)
        except AriNotFound:
            self.message = None
            return False
        except AriError as exc:
            # Not said, and no end of it will come to start the music: the
            # caller of this must, or the caller is left with neither.
            self.message = None
            log.warning("channel %s: hold message not played (%s)", self.channel, type(exc).__name__)
            return False
        return True

    def finished(self, playback_id: str) -> bool:
        """Whether `playback_id` was the message, now over (music is due again)."""
        if playback_id != self.message:
            return False
        self.message = None
        return True

    async def stop(self) -> None:
        """Cut the message short, if one is being said."""
        playback, self.message = self.message, None
        if playback is not None:
            await stop_playback(self.rest, playback)


async def stop_playback(rest: AriRest, playback: str) -> None:
    try:
        await rest.stop_playback(playback)
    except AriNotFound:
        pass  # it had just finished
    except AriError as exc:
        # Asterisk slow or out of reach: the playback ends by itself; what
        # comes next (a bridge, the fallback) must not wait on it.
        log.warning("playback %s: not stopped (%s)", playback, type(exc).__name__)
