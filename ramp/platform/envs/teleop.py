"""An example teleoperation driver: the keyboard as an ``InterventionSource``.

A real device implements the same two methods as the simulated human (``reset`` and ``act``):
``act`` returns None while the operator lets the policy drive, and the operator's action while
they hold control; the rollout stores those steps with ``intervention=True``. This driver reads
keys from a terminal without blocking (standard library only):

    space  take over / hand back          w / s  +x / -x      a / d  +y / -y
    r / f  +z / -z                         g      toggle the gripper

Each key press moves the end effector one ``speed`` step for that control step. To drive another
device, keep ``KeyboardTeleop``'s shape and replace ``keys()``; a gamepad through ``evdev`` maps
its axes onto the same action vector (docs/envs.md has the sketch).
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ramp.platform.envs.core import Observation, SimEnv

KEYMAP = {
    "w": (0, 1.0),
    "s": (0, -1.0),
    "a": (1, 1.0),
    "d": (1, -1.0),
    "r": (2, 1.0),
    "f": (2, -1.0),
}


def terminal_keys() -> Callable[[], list[str]]:
    """A non-blocking reader of the keys pressed since the last call (POSIX terminals)."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    import atexit

    atexit.register(termios.tcsetattr, fd, termios.TCSADRAIN, old)

    def read() -> list[str]:
        keys = []
        while select.select([fd], [], [], 0)[0]:
            keys.append(os.read(fd, 1).decode(errors="ignore"))
        return keys

    return read


@dataclass
class KeyboardTeleop:
    """Keyboard takeover for a 4-d (dx, dy, dz, gripper) action space such as MetaWorld's."""

    keys: Callable[[], Iterable[str]] = field(default_factory=terminal_keys)
    speed: float = 1.0
    action_dim: int = 4
    name: str = "human"

    def __post_init__(self) -> None:
        self.engaged = False
        self.gripper = -1.0

    def reset(self, env: SimEnv | None, seed: int | None) -> None:
        self.engaged = False
        self.gripper = -1.0

    def act(self, obs: Observation, policy_action: np.ndarray) -> np.ndarray | None:
        action = np.zeros(self.action_dim)
        for key in self.keys():
            if key == " ":
                self.engaged = not self.engaged
            elif key == "g":
                self.gripper = -self.gripper
            elif key in KEYMAP:
                axis, sign = KEYMAP[key]
                action[axis] += sign * self.speed
        if not self.engaged:
            return None
        action[-1] = self.gripper
        return np.clip(action, -1.0, 1.0)
