"""The action contract: action spaces, validation, the brake/accel mapping and SUMO commands.

This module is the one owner of what an action means. Everything else (the core, the
baselines, evaluation) calls these functions by name:

- :func:`action_space`: ``Box(0, 1, (1,))`` brake fraction (``brake``) or ``Box(-1, 1, (1,))``
  (``accel``), float32.
- :func:`check_slot_actions`: validate and clip one float per vehicle slot.
- :func:`speed_commands`: the SUMO speed target and speed mode an action commands.
- :func:`commanded_decel`: the deceleration (m/s^2) an action commands (evaluation's reaction metric).
- :class:`CommandCache`: SUMO keeps a ``setSpeed``/``setSpeedMode`` until changed, so only
  changes are sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

ACTION_MODES = ("brake", "accel")
#: A brake fraction at or below this hands the vehicle to SUMO's car-following model.
BRAKE_DEADBAND = 0.02
#: SUMO speed modes (bit fields, see SUMO's ``speedMode``): all safety checks on.
SPEED_MODE_DEFAULT = 31
#: Safe speed kept, vType decel limit off (an agent may brake at up to ``max_decel``).
SPEED_MODE_BRAKE = 27
#: No checks: the commanded speed is what happens (crashes possible).
SPEED_MODE_RAW = 0
#: ``setSpeed`` target that releases the vehicle to car-following (SUMO's convention).
RELEASE = -1.0


def action_space(action_mode: str) -> spaces.Box:
    """The per-agent action space of ``action_mode`` (float32, shape (1,)).

    Raises ValueError naming the valid modes.
    """
    if action_mode == "brake":
        return spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
    if action_mode == "accel":
        return spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")


def check_slot_actions(
    actions: Any, live: np.ndarray, agent_of_slot: Sequence[str | None], low: float, high: float
) -> np.ndarray:
    """float64[S]: one action per slot, clipped to ``[low, high]``; entries of non-live slots are 0.

    :param actions: float[S] or float[S, 1] (any real dtype).
    :param live: bool[S], slots that hold an acting agent.
    Raises ValueError (nothing changes) for a wrong shape, a non-real dtype, or a non-finite
    action of a live slot, naming its agent.
    """
    n = live.shape[0]
    arr = np.asarray(actions)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"actions must be real numbers (one per vehicle slot), got dtype {arr.dtype}")
    if arr.shape not in ((n,), (n, 1)):
        raise ValueError(f"actions must have shape ({n},) or ({n}, 1) (one per vehicle slot), got {arr.shape}")
    a = arr.reshape(n).astype(np.float64)
    bad = live & ~np.isfinite(a)
    if bad.any():
        s = int(np.flatnonzero(bad)[0])
        raise ValueError(f"action for agent {agent_of_slot[s]!r} is {a[s]}; it must be a finite number in [{low}, {high}]")
    a[~live] = 0.0
    return np.clip(a, low, high)


def speed_commands(
    action_mode: str,
    actions: np.ndarray,
    speed: np.ndarray,
    dt: float,
    max_decel: float,
    max_accel: float,
    hold_speed: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """``(target_speed, speed_mode)`` per vehicle for clipped ``actions`` at current ``speed`` (m/s).

    ``brake``: ``a <= BRAKE_DEADBAND`` releases the vehicle to car-following (target ``RELEASE``,
    all safety checks on), or, with ``hold_speed`` (the hazard override), holds its speed with no
    checks; above the deadband the target is ``max(0, v - max_decel * a * dt)`` (speed mode
    ``SPEED_MODE_BRAKE``, or ``SPEED_MODE_RAW`` under the override).
    ``accel``: target ``max(0, v + rate * a * dt)`` with ``rate = max_accel`` for ``a >= 0`` else
    ``max_decel``, no SUMO checks.
    """
    if action_mode == "brake":
        braking = actions > BRAKE_DEADBAND
        target = np.where(braking, np.maximum(0.0, speed - max_decel * actions * dt), RELEASE)
        if hold_speed:
            return np.where(braking, target, speed), np.full(actions.shape, SPEED_MODE_RAW, dtype=np.int64)
        return target, np.where(braking, SPEED_MODE_BRAKE, SPEED_MODE_DEFAULT).astype(np.int64)
    rate = np.where(actions >= 0, max_accel, max_decel)
    return np.maximum(0.0, speed + rate * actions * dt), np.full(actions.shape, SPEED_MODE_RAW, dtype=np.int64)


def commanded_decel(actions: np.ndarray, action_mode: str, max_decel: float) -> np.ndarray:
    """float64: deceleration (m/s^2, >= 0) an action commands on its own.

    ``brake``: ``a`` clipped to [0, 1]; ``a <= BRAKE_DEADBAND`` is no braking, above ``max_decel * a``.
    ``accel``: ``a`` clipped to [-1, 1]; negative ``a`` commands ``max_decel * -a``.
    """
    a = np.asarray(actions, dtype=np.float64)
    if action_mode == "brake":
        a = np.clip(a, 0.0, 1.0)
        return np.where(a > BRAKE_DEADBAND, max_decel * a, 0.0)
    if action_mode == "accel":
        return max_decel * np.clip(-a, 0.0, 1.0)
    raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")


class CommandCache:
    """What SUMO was last told per vehicle slot, so that only changes are sent.

    ``speed_mode[s]``: last speed mode (SUMO's initial ``SPEED_MODE_DEFAULT``); ``target[s]``: last
    ``setSpeed`` target (``RELEASE`` initially; NaN = unknown, e.g. after ``slowDown``, so the
    next command is always sent). A slot is :meth:`clear`-ed when a new vehicle takes it.
    """

    def __init__(self, n_slots: int) -> None:
        self.speed_mode = np.full(n_slots, SPEED_MODE_DEFAULT, dtype=np.int64)
        self.target = np.full(n_slots, RELEASE)

    def clear(self, slots: np.ndarray) -> None:
        self.speed_mode[slots] = SPEED_MODE_DEFAULT
        self.target[slots] = RELEASE

    def send(self, sim: Any, ids: np.ndarray, slots: np.ndarray, targets: np.ndarray, modes: np.ndarray) -> None:
        """Send the speed modes and targets that differ from the last ones sent.

        :param ids: object[n] vehicle ids of ``slots`` (int64[n]); ``targets`` float[n] m/s
            (``RELEASE`` = car-following); ``modes`` int[n] SUMO speed modes.
        """
        changed = self.speed_mode[slots] != modes
        if changed.any():
            sim.set_speed_modes(ids[changed].tolist(), modes[changed])
            self.speed_mode[slots[changed]] = modes[changed]
        send = self.target[slots] != targets  # NaN compares unequal: unknown is always sent
        if send.any():
            sim.set_speeds(ids[send].tolist(), targets[send])
            self.target[slots[send]] = targets[send]
