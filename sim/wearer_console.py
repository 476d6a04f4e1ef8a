"""The simulator console's ``wearer`` command: ask the simulated wearer to stand or to walk.

``ankle sim --console`` adds it to the prosthetists' console (``Console(extra=...)``), so a
fitting can go as it goes with a real wearer: stand still for the mass and the calibrations, then
walk.  It talks to the simulated person, not to the ankle: it needs no PIN (read-only sessions may
use it) and it is not audited, because it changes no parameter and nothing the controller does.

    wearer                      what the wearer was last told (or the scenario it follows)
    wearer walk [M_S [m/s]]     walk (at the session's --speed, or M_S m/s, 0.3 .. 2.15)
    wearer stand                stop at a heel strike and stand (quiet sway, weight shifts)
    wearer follow               follow the scenario again

When it takes effect (:meth:`sim.wearer.Wearer.command`): a walking wearer stops at the next heel
strike or the one after (walking strides are planned at the toe-off before them); a standing one
starts walking at the end of its present standing segment (2..4 s of sway): its first walking heel
strike comes within 4.5 s of the command at 1.25 m/s (the segment, the unloading and the
initiation swing; 4.8 s at 0.3 m/s, whose swing is longest).
"""
from __future__ import annotations

import math
import re
from typing import Callable, Dict, List, Optional, Tuple

from sim import scenarios
from sim.wearer import MAX_SPEED_M_S, MIN_SPEED_M_S

__all__ = ["wearer_command", "USAGE"]

#: The usage a bad line gets; `help` lists the short one (its column is as wide as the longest usage)
USAGE = "wearer [walk [M_S [m/s]] | stand | follow]"
_HELP_USAGE = "wearer [walk|stand|follow]"
_TEXT = ("tell the simulated wearer to walk (at the session's speed, or M_S m/s), to stand, or to follow "
         "the scenario again; alone, what it was last told (no PIN: it changes no parameter, not audited)")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_UNIT = "m/s"
_WALK_WHEN = ("a standing wearer starts walking within about 5 s (at the end of the current standing "
              "sway); a walking one changes speed within two strides")
_STAND_WHEN = "the wearer stops at the next heel strike or the one after, and stands until told to walk"


def _shown(word: str) -> str:
    """A word typed at the console, safe in a one-line reply (short, escapes visible)."""
    return repr(word if len(word) <= 24 else word[:24] + "...")


def wearer_command(devices, nominal_speed_m_s: float,
                   scenario: Optional[str] = None) -> Dict[str, Tuple[Callable[[List[str]], str], str, str]]:
    """The console's extra-command entry ``{"wearer": (handler, usage, text)}``.

    ``devices``: anything with ``command_wearer(speed_m_s or None)`` (a
    :class:`sim.realtime.DeviceProcess`); ``nominal_speed_m_s``: the session's ``--speed``, what
    ``wearer walk`` alone walks at; ``scenario``: the scenario's name, for what ``wearer`` says.
    ``handler(words)`` (the words after ``wearer``) returns one line and never raises; bad input
    gets one line and sends nothing.
    """
    told: List[Optional[float]] = [None]        # what the wearer was last told: None = the scenario

    def the_scenario(then: str = "") -> str:
        """'the scenario NAME' + ``then`` + ': what it does'."""
        if scenario is None:
            return "the session's scenario" + then
        try:
            return f"the scenario {scenario}{then}: {scenarios.get(scenario).description}"
        except ValueError:
            return f"the scenario {scenario}{then}"

    def state() -> str:
        v = told[0]
        if v is None:
            return f"the wearer follows {the_scenario()}"
        if v == 0.0:
            return "the wearer was told to stand ('wearer walk' to walk, 'wearer follow' for the scenario)"
        return f"the wearer was told to walk at {v:.2f} m/s ('wearer stand' to stop)"

    def send(v: Optional[float]) -> Optional[str]:
        """None when the devices took it; else the one line saying why not."""
        try:
            devices.command_wearer(v)
        except Exception as e:          # the session ending, the devices gone: say so, change nothing
            why = " ".join(str(e).split()) or type(e).__name__
            return f"the simulated wearer did not get it ({why}); nothing changed"
        told[0] = v
        return None

    def walk_speed(args: List[str]) -> Tuple[Optional[float], Optional[str]]:
        """(speed m/s, None) or (None, why not) for the words after ``walk``."""
        if not args:
            return float(nominal_speed_m_s), None
        number, unit = args[0], args[1:]
        if number.endswith(_UNIT) and len(number) > len(_UNIT) and not unit:
            number, unit = number[:-len(_UNIT)], [_UNIT]      # "0.8m/s"
        if len(unit) > 1:
            return None, f"usage: {USAGE}"
        if unit and unit[0] != _UNIT:
            return None, (f"speeds are in m/s ({_shown(unit[0])} is not a unit here): "
                          f"'wearer walk 0.8' or 'wearer walk 0.8 m/s'; nothing changed")
        if not _NUMBER.fullmatch(number):
            return None, f"{_shown(number)} is not a speed: 'wearer walk 0.8' (m/s); nothing changed"
        v = float(number)
        if v == 0.0:
            return None, "0 m/s is not a walking speed: 'wearer stand' to stand; nothing changed"
        if not (math.isfinite(v) and MIN_SPEED_M_S <= v <= MAX_SPEED_M_S):
            return None, (f"refused: {v:g} m/s is outside the walking speeds {MIN_SPEED_M_S:.2f} .. "
                          f"{MAX_SPEED_M_S:.2f} m/s; nothing changed")
        return v, None

    def handler(words: List[str]) -> str:
        try:
            args = [str(w).lower() for w in words]
            if not args:
                return state()
            verb, rest = args[0], args[1:]
            if verb == "walk":
                v, why = walk_speed(rest)
                if why is not None:
                    return why
                return send(v) or f"told to walk at {v:.2f} m/s: {_WALK_WHEN}"
            if verb == "stand" and not rest:
                return send(0.0) or f"told to stand: {_STAND_WHEN}"
            if verb == "follow" and not rest:
                return send(None) or f"told to follow {the_scenario(' again, from its next stride or standing segment')}"
            return f"usage: {USAGE}"
        except Exception as e:      # a bug here must not take the console's thread with it
            return f"wearer: could not do it ({type(e).__name__}); nothing changed"

    return {"wearer": (handler, _HELP_USAGE, _TEXT)}
