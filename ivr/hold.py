"""What a waiting caller hears: music on hold, broken by short messages.

Asterisk plays one thing on a channel at a time: a message needs the music
stopped first, and the music started again when the message ends (its
PlaybackFinished, which the call actor passes to ``finished``). A channel
with a playback running joins a bridge only when the playback ends, so the
message is stopped before the caller is connected (``stop``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ivr.ari.errors import AriNotFound
from ivr.ari.rest import AriRest


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

    async def music(self) -> None:
        try:
            await self.rest.start_moh(self.channel)
        except AriNotFound:
            pass  # the caller left; their events follow

    async def say(self, media: Sequence[str]) -> None:
        """Stop the music (or the message being said) and play `media`."""
        await self.stop()
        self.message = self.next_playback_id()
        try:
            await self.rest.stop_moh(self.channel)
            await self.rest.play(self.channel, list(media), playback_id=self.message)
        except AriNotFound:
            self.message = None

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
