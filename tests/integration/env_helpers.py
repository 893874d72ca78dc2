"""Shared helpers for env integration tests."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from roadsense_marl.paths import config_path


def ideal_radio(latency_ms: float | None = None) -> dict[str, Any]:
    """The shipped ideal profile (no loss, no noise), optionally with a fixed latency."""
    params = json.loads(config_path("espnow", "ideal.json").read_text())
    if latency_ms is not None:
        params.setdefault("latency", {}).update({"base_ms": latency_ms, "jitter_std_ms": 0.0, "distance_factor": 0.0})
    return params


def zero_actions(env) -> dict[str, np.ndarray]:
    return {a: np.zeros(1, dtype=np.float32) for a in env.agents}


def run_episode(env, seed: int, policy=None, max_steps: int | None = None):
    """Run one episode; returns the list of (obs, rewards, terms, truncs, infos) per step (reset first)."""
    obs, infos = env.reset(seed=seed)
    trace = [(obs, {}, {}, {}, infos)]
    steps = 0
    while env.agents and (max_steps is None or steps < max_steps):
        actions = policy(env, obs) if policy else {a: env.action_space(a).sample() * 0 for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)
        trace.append((obs, rewards, terms, truncs, infos))
        steps += 1
    return trace


def assert_traces_equal(t1, t2) -> None:
    assert len(t1) == len(t2), f"episode lengths differ: {len(t1)} vs {len(t2)}"
    for step, (a, b) in enumerate(zip(t1, t2)):
        for part, (x, y) in enumerate(zip(a, b)):
            assert x.keys() == y.keys(), f"step {step} part {part}: agents differ"
            for agent in x:
                _assert_same(x[agent], y[agent], f"step {step} part {part} agent {agent}")


def _assert_same(x, y, where: str) -> None:
    if isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            _assert_same(x[k], y[k], f"{where}/{k}")
    elif isinstance(x, np.ndarray):
        assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), where
    elif isinstance(x, float) and np.isnan(x):
        assert isinstance(y, float) and np.isnan(y), where
    else:
        assert x == y, f"{where}: {x!r} != {y!r}"


def braking_policy(threshold: float = 0.5, brake: float = 1.0):
    """Brake hard while the observed braking signal is above ``threshold``."""

    def policy(env, obs):
        return {
            a: np.array([brake if obs[a]["ego"][4] > threshold else 0.0], dtype=np.float32)
            for a in env.agents
        }

    return policy


def seen_peers(rec) -> np.ndarray:
    """bool[n, n] over the rows of ``rec.states`` (a :class:`~roadsense_marl.env.core.StepRecord`):
    ``[i, j]`` when agent row i shows a message of agent row j among its visible peers this step
    (from the observation's ``peer_sender`` extra; senders that are not agents are left out)."""
    n = rec.states.n
    row_of_slot = np.full(rec.n_slots, -1)
    row_of_slot[rec.slots] = np.arange(n)
    senders = rec.row_extras["peer_sender"]
    rows, cols = np.nonzero((senders >= 0) & (senders < rec.n_slots))
    seen = np.zeros((n, n), dtype=bool)
    seen[rows, row_of_slot[senders[rows, cols]]] = True
    return seen
