"""A small deterministic stand-in for ``roadsense_marl.env.core.ConvoyCore`` (unit tests of the vector env only).

It implements the core's slot interface (see /work/briefs/core_api.md): agents join on a
schedule and take the lowest free slot (a slot freed in step t is reusable from t+1), leave
by collision (terminated) or arrival (truncated), everything still present is truncated at
``max_steps``, and one agent's motion is "imposed" for some steps (``acted`` False). Features
come from a seeded generator, the reward is ``-(a - ego[0])^2`` for occupied slots.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np

K = 3
# agent: (join step, leave step or None, how). More agents than slots: slots are reused.
SCHEDULE = {
    "a": (0, 4, "collision"),
    "b": (0, None, None),  # stays to the end (truncated by max_steps)
    "c": (1, 3, "arrived"),
    "d": (4, 7, "collision"),  # reuses c's slot (freed at 3) -- joins at 4
    "e": (5, None, None),  # joins a's slot (freed at 4)
}
IMPOSED = {"b": (2, 4)}  # b's action is ignored in steps 2..4 (1-based step numbers)
MAX_STEPS = 9
N_SLOTS = 3


class FakeCore:
    def __init__(self, n_slots=N_SLOTS, schedule=SCHEDULE, max_steps=MAX_STEPS, imposed=IMPOSED, marker_dir=None):
        self.possible_agents = tuple(schedule)
        self.n_slots = n_slots
        self.schedule, self.max_steps, self.imposed = dict(schedule), max_steps, dict(imposed)
        self.marker_dir = marker_dir
        self.observation_space = gym.spaces.Dict(
            {
                "ego": gym.spaces.Box(-1.0, 1.0, (6,), np.float32),
                "peers": gym.spaces.Box(-1.0, 1.0, (K, 6), np.float32),
                "peer_mask": gym.spaces.Box(0.0, 1.0, (K,), np.float32),
            }
        )
        self.action_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        S = n_slots
        self.obs = {"ego": np.zeros((S, 6), np.float32), "peers": np.zeros((S, K, 6), np.float32),
                    "peer_mask": np.zeros((S, K), np.float32)}
        self.reward = np.zeros(S)
        self.terminated, self.truncated = np.zeros(S, bool), np.zeros(S, bool)
        self.joined, self.acted, self.live = np.zeros(S, bool), np.zeros(S, bool), np.zeros(S, bool)
        self.agent_of_slot: list = [None] * S
        self.record = SimpleNamespace(gap=np.full(S, np.nan))  # gap NaN: not on the road after the step
        self.episode_over = True
        self.num_steps = 0
        self.closed = False
        self.resets = 0
        self._rng = np.random.default_rng()

    def _fill(self, slots):
        for s in slots:
            self.obs["ego"][s] = self._rng.uniform(-1, 1, 6)
            n = int(self._rng.integers(0, K + 1))
            self.obs["peers"][s] = 0
            self.obs["peers"][s, :n] = self._rng.uniform(-1, 1, (n, 6))
            self.obs["peer_mask"][s] = np.arange(K) < n

    def _join(self, step, blocked=()):
        for agent in self.possible_agents:
            if self.schedule[agent][0] == step:
                free = [s for s in range(self.n_slots) if self.agent_of_slot[s] is None and s not in blocked]
                if not free:
                    raise RuntimeError(f"no free slot for {agent}")
                self.agent_of_slot[free[0]] = agent
                self.live[free[0]] = True
                self.joined[free[0]] = True

    def reset(self, seed=None):
        if self.closed:
            raise RuntimeError("closed")
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.resets += 1
        self.num_steps = 0
        for v in self.obs.values():
            v[:] = 0
        for a in (self.reward, self.terminated, self.truncated, self.joined, self.acted, self.live):
            a[:] = 0
        self.agent_of_slot = [None] * self.n_slots
        self._join(0)
        self._fill(np.flatnonzero(self.live))
        self.episode_over = False

    def step(self, actions):
        a = np.asarray(actions, np.float64).reshape(-1)
        if a.shape != (self.n_slots,):
            raise ValueError(f"actions must have {self.n_slots} entries")
        bad = [s for s in np.flatnonzero(self.live) if not np.isfinite(a[s])]
        if bad:
            raise ValueError(f"non-finite action for agent {self.agent_of_slot[bad[0]]}")
        self.num_steps += 1
        t = self.num_steps
        self.reward[:] = 0
        self.terminated[:] = self.truncated[:] = self.joined[:] = self.acted[:] = False
        for s in np.flatnonzero(self.live):
            agent = self.agent_of_slot[s]
            lo, hi = self.imposed.get(agent, (0, -1))
            self.acted[s] = not (lo <= t <= hi)
            self.reward[s] = -(float(np.clip(a[s], 0, 1)) - float(self.obs["ego"][s, 0])) ** 2
        occupied = np.flatnonzero(self.live)
        freed = []
        for s in occupied:
            agent = self.agent_of_slot[s]
            _, leave, how = self.schedule[agent]
            if leave == t or t >= self.max_steps:
                self.terminated[s] = leave == t and how == "collision"
                self.truncated[s] = not self.terminated[s]
                freed.append(s)
        on_road = np.zeros(self.n_slots, bool)
        on_road[occupied] = True
        on_road[[s for s in freed if self.schedule[self.agent_of_slot[s]][1] == t]] = False  # arrived or collided
        self.record.gap = np.where(on_road, 10.0, np.nan)
        # as StepRecord.end_reason: collision / truncated on the road (max_steps) / off it (arrived)
        self.record.end_reason = np.where(self.terminated, 0,
                                          np.where(self.truncated, np.where(on_road, 1, 2), -1)).astype(np.int8)
        self._fill(occupied)  # next (or final) observation of every agent present in this step
        for s in freed:
            self.agent_of_slot[s] = None
            self.live[s] = False
        empty = [s for s in range(self.n_slots) if self.agent_of_slot[s] is None and s not in freed]
        for v in self.obs.values():
            v[empty] = 0
        if t < self.max_steps:
            before = self.live.copy()
            self._join(t, blocked=freed)
            self._fill(np.flatnonzero(self.live & ~before))
        future = any(j > t for j, _, _ in self.schedule.values())
        self.episode_over = t >= self.max_steps or (not self.live.any() and not future)

    def close(self):
        if self.marker_dir is not None and not self.closed and self.resets:
            Path(self.marker_dir, f"closed-{os.getpid()}-{uuid.uuid4().hex}").touch()
        self.closed = True
