"""Fixed policies run on the array core, scored by their mean discounted per-agent return.

Used by the reward-ordering test (and to tune the reward on training seeds). The policies are
the ones of :mod:`roadsense_marl.evaluation.baselines`, called through a thin adapter that gives
them what they read from a PettingZoo env (``config``, ``agents``, ``obs[agent]["ego"]``).
"""

from __future__ import annotations

import numpy as np

from roadsense_marl.env.core import ConvoyCore
from roadsense_marl.evaluation.baselines import make_baseline, rule_v2v_policy

#: The issue's "brake gently": the rule's trigger with a brake fraction of 0.3 (2.4 m/s^2 of 8).
GENTLE_BRAKE = 0.3


def fixed_policy(name: str):
    """``no-v2v``, ``rule-v2v`` (evaluation/baselines) or ``gentle-brake`` (the rule at fraction 0.3)."""
    if name == "gentle-brake":
        return rule_v2v_policy(brake=GENTLE_BRAKE)
    return make_baseline(name)


class _CoreAgents:
    """What a baseline policy reads from a ParallelEnv, over the core's live slots."""

    def __init__(self, core: ConvoyCore) -> None:
        self.core = core
        self.config = core.config

    @property
    def agents(self) -> list[str]:
        return [self.core.agent_of_slot[s] for s in np.flatnonzero(self.core.live)]

    def obs(self) -> dict:
        obs = self.core.obs
        return {self.core.agent_of_slot[s]: {k: v[s] for k, v in obs.items()} for s in np.flatnonzero(self.core.live)}

    def slot_actions(self, acts: dict) -> np.ndarray:
        out = np.zeros(self.core.n_slots)
        for s in np.flatnonzero(self.core.live):
            out[s] = float(np.asarray(acts[self.core.agent_of_slot[s]]).reshape(-1)[0])
        return out


def episode_returns(core: ConvoyCore, policy, seed: int, gamma: float) -> dict:
    """One episode of ``policy`` on ``core``: per-agent discounted returns (each from the agent's
    first reward), the undiscounted per-component sums, and whether any agent collided."""
    view = _CoreAgents(core)
    core.reset(seed=seed)
    n = core.n_slots
    ret = np.zeros(n)
    disc = np.ones(n)
    returns: list[float] = []
    comps: dict[str, float] = {}
    crashed = False
    while not core.episode_over:
        before = core.live.copy()
        core.step(view.slot_actions(policy(view, view.obs())))
        r = core.reward
        ret[before] += disc[before] * r[before]
        disc[before] *= gamma
        for name, col in core.record.reward_components.items():
            comps[name] = comps.get(name, 0.0) + float(col[before].sum())
        crashed |= bool(core.terminated.any())
        ended = np.flatnonzero(core.terminated | core.truncated)
        returns += ret[ended].tolist()
        ret[ended] = 0.0
        disc[ended] = 1.0
        ret[core.joined] = 0.0
        disc[core.joined] = 1.0
    return {"returns": returns, "components": comps, "crashed": crashed}


def mean_returns(core: ConvoyCore, names: tuple[str, ...], seeds, gamma: float) -> dict[str, dict]:
    """For each fixed policy: mean discounted per-agent return over ``seeds``, crash episodes, components."""
    out = {}
    for name in names:
        policy = fixed_policy(name)
        rets: list[float] = []
        crashes = 0
        comps: dict[str, float] = {}
        for seed in seeds:
            e = episode_returns(core, policy, seed, gamma)
            rets += e["returns"]
            crashes += e["crashed"]
            for k, v in e["components"].items():
                comps[k] = comps.get(k, 0.0) + v / len(seeds)
        out[name] = {"mean_return": float(np.mean(rets)), "crash_episodes": crashes, "episodes": len(seeds),
                     "agents": len(rets), "components_per_episode": comps}
    return out
