"""The IVR menu: its definition as data (``definition``) and the pure session a call walks (``session``)."""

from ivr.menu.definition import (CALL_TYPES, DIGITS, LANGUAGES, PRIORITIES, Choice, MenuDefinition, MenuError,
                                 MenuNode, MenuOutcome, load_menu, parse_menu)
from ivr.menu.session import (Action, CancelTimer, Finish, MenuSession, Phase, Play, SessionState, StartTimer,
                              StopPlayback)

__all__ = ["CALL_TYPES", "DIGITS", "LANGUAGES", "PRIORITIES", "Action", "CancelTimer", "Choice", "Finish",
           "MenuDefinition", "MenuError", "MenuNode", "MenuOutcome", "MenuSession", "Phase", "Play",
           "SessionState", "StartTimer", "StopPlayback", "load_menu", "parse_menu"]
