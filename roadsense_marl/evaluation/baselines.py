"""Reference policies that need no model: every evaluation number gets a floor and a V2V rule.

A policy is a callable ``policy(env, obs) -> {agent: action}`` for the live agents of a
:class:`~roadsense_marl.env.convoy_env.RoadSenseParallelEnv` (``brake`` action mode).

- ``no-v2v``: never brakes on its own (action 0). Under the hazard override a non-braking agent
  holds its speed, so this is the lower bound: followers of the hazard vehicle crash.
- ``rule-v2v``: full brake (action 1, 8 m/s^2) while the observed ego feature ``braking_signal``
  is above a threshold, released when it decays below it (half-life
  :data:`~roadsense_marl.env.observations.BRAKING_SIGNAL_HALF_LIFE_S`, about 1.35 s, after the last warning:
  0.95 per step at 0.1 s).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from roadsense_marl.env.observations import feature

Policy = Callable[[Any, dict], dict]

RULE_THRESHOLD = 0.5
BASELINES = ("no-v2v", "rule-v2v")


def _require_brake_mode(env: Any, name: str) -> None:
    mode = env.config.action_mode
    if mode != "brake":
        raise ValueError(f"baseline {name!r} is defined for action_mode='brake', the env uses {mode!r}")


def no_v2v_policy() -> Policy:
    """Action 0 for every live agent: no braking of its own, ever."""

    def policy(env: Any, obs: dict) -> dict:
        _require_brake_mode(env, "no-v2v")
        zero = np.zeros(1, dtype=np.float32)
        return {a: zero.copy() for a in env.agents}

    return policy


def rule_v2v_policy(threshold: float = RULE_THRESHOLD, brake: float = 1.0) -> Policy:
    """Brake at ``brake`` while braking_signal > ``threshold``, else 0 (one vectorised comparison per step)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"rule-v2v threshold must be in (0, 1), got {threshold!r}")
    if not 0.0 <= brake <= 1.0:
        raise ValueError(f"rule-v2v brake fraction must be in [0, 1], got {brake!r}")

    def policy(env: Any, obs: dict) -> dict:
        _require_brake_mode(env, "rule-v2v")
        agents = env.agents
        if not agents:
            return {}
        signal = feature(np.stack([obs[a]["ego"] for a in agents]), "ego", "braking_signal").astype(np.float64)
        act = np.where(signal > threshold, brake, 0.0).astype(np.float32)
        return {a: act[i : i + 1] for i, a in enumerate(agents)}

    return policy


def make_baseline(name: str) -> Policy:
    """The baseline policy called ``name`` (``"no-v2v"`` or ``"rule-v2v"``)."""
    if name == "no-v2v":
        return no_v2v_policy()
    if name == "rule-v2v":
        return rule_v2v_policy()
    raise ValueError(f"unknown baseline policy {name!r}; valid: {', '.join(BASELINES)}")
