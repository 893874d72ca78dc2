"""Seeded emergency-braking hazards.

A hazard is drawn whole at episode reset (so the random stream does not depend on what
the agents do), except for which vehicle brakes, which is picked at onset among the
vehicles that have a follower, from a uniform number also drawn at reset.

Times are configured in seconds (:class:`~roadsense_marl.env.config.HazardConfig`) and converted
to env steps here, with the run's step length ``dt``, by
:func:`~roadsense_marl.env.config.onset_steps` / :func:`~roadsense_marl.env.config.seconds_to_steps`.
Timeline in env steps (counted from the episode's first state):

- ``onset_step``: drawn uniformly among the steps whose time ``step * dt`` lies in ``onset_window_s``; the vehicle starts braking at ``decel`` m/s^2 towards
  ``max(0, v - decel * duration)`` (SUMO ``slowDown`` over ``duration`` s);
- until ``release_step`` it holds the reduced speed; its own action is ignored throughout;
- ``release_step`` (only for the ``release_prob`` share of hazards, ``release_after`` s after
  the braking ends): the vehicle is handed back to its action / car-following;
- ``override_step`` = onset + ``ceil(override_delay_s / dt)``: from then until the release (or the end
  of the episode) every other agent that does not brake holds its speed (no free braking from
  SUMO's car-following model). The override needs a hazard vehicle: if none could be picked
  (no vehicle had a follower) or it arrived at its route end, there is no override. A collision
  that removes the hazard vehicle does not end it: the cars behind must not be rewarded for the
  crash by being free to speed up again (it ends at the planned release, as it would have).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from roadsense_marl.env.actions import RELEASE, SPEED_MODE_DEFAULT, SPEED_MODE_RAW
from roadsense_marl.env.config import HazardConfig, onset_steps, seconds_to_steps


@dataclass(frozen=True)
class HazardPlan:
    """One episode's hazard, or none (``onset_step is None``)."""

    onset_step: int | None
    decel: float = 0.0
    duration_s: float = 0.0
    brake_steps: int = 0
    release_step: int | None = None  # None: never released
    override_step: int | None = None
    choice_u: float = 0.0

    @property
    def active(self) -> bool:
        return self.onset_step is not None


NO_HAZARD = HazardPlan(onset_step=None)


def draw_hazard_plan(cfg: HazardConfig, rng: np.random.Generator, step_length: float) -> HazardPlan:
    """Draw an episode's hazard at ``step_length`` s per step. Always consumes the same number of draws.

    The deprecated step keys of ``cfg`` (``step_window``, ``override_delay_steps``), when set, are
    used as steps as they are (the core converts them to seconds first, see
    :meth:`~roadsense_marl.env.config.HazardConfig.in_seconds`).
    """
    u_happens, u_choice = rng.random(2)
    first, last = cfg.step_window if cfg.step_window is not None else onset_steps(cfg.onset_window_s, step_length)
    onset = int(rng.integers(first, last + 1))
    decel = float(rng.uniform(*cfg.decel_range))
    duration = float(rng.uniform(*cfg.duration_range))
    u_release = float(rng.random())
    release_after = float(rng.uniform(*cfg.release_after_range))
    if u_happens >= cfg.probability:
        return NO_HAZARD
    brake_steps = max(1, math.ceil(duration / step_length - 1e-9))
    release_step = None
    if u_release < cfg.release_prob:
        release_step = onset + brake_steps + max(1, round(release_after / step_length))
    if cfg.override_delay_steps is not None:
        override = onset + cfg.override_delay_steps
    elif cfg.override_delay_s is not None:
        override = onset + seconds_to_steps(cfg.override_delay_s, step_length)
    else:
        override = None
    return HazardPlan(
        onset_step=onset,
        decel=decel,
        duration_s=duration,
        brake_steps=brake_steps,
        release_step=release_step,
        override_step=override,
        choice_u=float(u_choice),
    )


def pick_hazard_vehicle(plan: HazardPlan, ids: tuple[str, ...], leader: np.ndarray) -> int | None:
    """Index in ``ids`` of the vehicle that brakes: one that some vehicle follows.

    Candidates are sorted by id so the pick depends only on the seed and the traffic.
    Returns ``None`` when no vehicle has a follower.
    """
    leaders = np.unique(leader[leader >= 0])
    if leaders.size == 0:
        return None
    candidates = sorted(leaders.tolist(), key=lambda i: ids[i])
    return int(candidates[min(int(plan.choice_u * len(candidates)), len(candidates) - 1)])


def hazard_controls(plan: HazardPlan, step: int) -> bool:
    """True while the hazard vehicle's motion is imposed (its action ignored) at ``step``."""
    if not plan.active or step < plan.onset_step:  # type: ignore[operator]
        return False
    return plan.release_step is None or step < plan.release_step


def override_active(plan: HazardPlan, step: int) -> bool:
    """True while non-braking agents must hold their speed: from ``override_step`` until the
    hazard vehicle is released (never, for the hazards that are not released).

    The env additionally requires the hazard vehicle to exist and still be in the simulation.
    """
    if plan.override_step is None or step < plan.override_step:
        return False
    return plan.release_step is None or step < plan.release_step


class HazardRuntime:
    """One episode's hazard as it happens: which vehicle brakes, and the SUMO commands it takes.

    Owns the hazard's runtime state (``vehicle``/``slot`` of the braking vehicle, its target
    speed); the plan itself is drawn at reset (:func:`draw_hazard_plan`). ``candidates`` (a
    callable ``ids, leader -> bool[n]`` or None) restricts which vehicles may be picked (the
    single-ego view picks only vehicles ahead of its ego).
    """

    def __init__(self, plan: HazardPlan, candidates=None) -> None:
        self.plan = plan
        self.candidates = candidates
        self.vehicle: str | None = None
        self.slot = -1
        self.target_speed = 0.0
        self.crashed = False  # the hazard vehicle was removed by a collision

    def imposed(self, step: int) -> bool:
        """True while the hazard vehicle is on the road and its motion is imposed (its action
        ignored) at ``step``."""
        return self.slot >= 0 and hazard_controls(self.plan, step)

    def left(self, ended_slots: np.ndarray, collided_slots: np.ndarray | None = None) -> None:
        """The hazard vehicle left the road if its slot is among ``ended_slots`` (the slot may be
        reused); ``collided_slots`` (int64[k]) are the ended slots that left in a collision."""
        if self.slot >= 0 and np.isin(self.slot, ended_slots):
            self.crashed = collided_slots is not None and bool(np.isin(self.slot, collided_slots))
            self.slot = -1

    def override(self, step: int) -> bool:
        """True while non-braking agents hold their speed: the plan's override window, while the
        hazard vehicle is on the road or after a collision removed it (module docstring)."""
        return (self.slot >= 0 or self.crashed) and override_active(self.plan, step)

    def pick(self, step: int, states, row_slot: np.ndarray) -> None:
        """At the onset step, choose the braking vehicle (before actions are applied, so that its
        action in this step is already ignored).

        :param states: ground truth before the step (``ids``, ``speed``, ``leader``).
        :param row_slot: int64[n] slot of each row of ``states``.
        """
        plan = self.plan
        if not plan.active or step != plan.onset_step:
            return
        leader = states.leader
        if self.candidates is not None:
            allowed = self.candidates(states.ids, leader)
            leader = np.where((leader >= 0) & allowed[np.maximum(leader, 0)], leader, -1)
        i = pick_hazard_vehicle(plan, states.ids, leader)
        if i is None or row_slot[i] < 0:
            return
        self.vehicle, self.slot = states.ids[i], int(row_slot[i])
        self.target_speed = max(0.0, float(states.speed[i]) - plan.decel * plan.duration_s)

    def advance(self, step: int, sim, commands) -> None:
        """Issue this step's hazard commands to ``sim`` before SUMO advances (after :meth:`pick`).

        :param commands: the env's :class:`~roadsense_marl.env.actions.CommandCache`.
        """
        plan = self.plan
        if not plan.active or self.slot < 0:
            return
        slot = np.array([self.slot])
        ids = np.array([self.vehicle], dtype=object)
        if step == plan.onset_step:
            if commands.speed_mode[self.slot] != SPEED_MODE_RAW:
                sim.set_speed_modes([self.vehicle], np.array([SPEED_MODE_RAW]))
                commands.speed_mode[self.slot] = SPEED_MODE_RAW
            sim.slow_down([self.vehicle], np.array([self.target_speed]), np.array([plan.duration_s]))
            commands.target[self.slot] = np.nan  # slowDown leaves the setSpeed target unknown
            return
        if step == plan.onset_step + plan.brake_steps and hazard_controls(plan, step):
            commands.send(sim, ids, slot, np.array([self.target_speed]), commands.speed_mode[slot])
        if plan.release_step is not None and step == plan.release_step:
            commands.send(sim, ids, slot, np.array([RELEASE]), np.array([SPEED_MODE_DEFAULT]))
