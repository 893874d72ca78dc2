"""``RoadSense-Convoy-v1``: the single-ego Gymnasium view of the original specification.

A view over :class:`~roadsense_marl.env.convoy_env.RoadSenseParallelEnv`, not a second
implementation: the ego is the one controlled agent; every other vehicle is driven by
SUMO's car-following model but still broadcasts, so the ego's receive buffer is filled
exactly as in the multi-agent env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from roadsense_marl.env.convoy_env import RoadSenseParallelEnv


class SingleEgoEnv(gym.Env):
    """One ego vehicle in a SUMO convoy, warned of hazards only through ESP-NOW messages.

    ## Description
    The ego (``ego_id``, ``"V001"``: the rear car of ``convoy_3`` by default) must avoid a
    rear-end crash when a vehicle ahead brakes hard. It knows the other vehicles only from
    the messages in its own receive buffer (latency, loss, bursts, sensor noise and
    staleness from measured ESP-NOW parameters).

    ## Action Space, Observation Space, Rewards
    Exactly those of one agent of :class:`RoadSenseParallelEnv` (see its docstring):
    ``Box(0, 1, (1,))`` brake fraction by default; ``Dict(ego (6,), peers (K, 6),
    peer_mask (K,))``; the same reward terms, listed per step in ``info["reward_components"]``.

    ## Starting State
    The scenario loaded with the reset seed's vType perturbation, radio randomisation and
    hazard; SUMO runs until the ego is inserted.

    ## Episode End
    Terminated when the ego collides; truncated when it arrives at its route end, at
    ``max_steps`` (500), or when no vehicle is left.

    ## Arguments
    ``gymnasium.make("RoadSense-Convoy-v1", scenario="convoy_3", ego_id="V001", **config)``
    with every config key of the parallel env.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 10}

    def __init__(self, scenario: str = "convoy_3", ego_id: str | None = None, **config: Any) -> None:
        self.multi = RoadSenseParallelEnv(scenario, **config)
        self.ego_id = ego_id or self.multi.scenario.ego_id
        if self.ego_id is None:
            raise ValueError(
                f"scenario {self.multi.scenario.name!r} has no designated ego; pass ego_id= one of "
                f"{self.multi.possible_agents[:8]}"
            )
        if self.ego_id not in self.multi.possible_agents:
            raise ValueError(
                f"ego_id {self.ego_id!r} is not a vehicle of scenario {self.multi.scenario.name!r}; "
                f"vehicles: {self.multi.possible_agents[:8]}"
            )
        self.multi.controlled = frozenset({self.ego_id})
        self.observation_space = self.multi.observation_space(self.ego_id)
        self.action_space = self.multi.action_space(self.ego_id)
        self.render_mode = self.multi.render_mode

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        obs, infos = self.multi.reset(seed=seed, options=options)
        while self.ego_id not in self.multi.agents:  # the ego departs later than the first vehicle
            if not self.multi.agents:
                raise RuntimeError(f"ego {self.ego_id!r} was never inserted by SUMO (dropped by scenario variation?)")
            obs, _, _, _, infos = self.multi.step({})
        return obs[self.ego_id], infos[self.ego_id]

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if self.ego_id not in self.multi.agents:
            raise RuntimeError("step() after the episode ended: call reset() first")
        obs, rewards, terms, truncs, infos = self.multi.step({self.ego_id: action})
        ego = self.ego_id
        terminated, truncated = terms[ego], truncs[ego]
        if not terminated and not truncated and ego not in self.multi.agents:
            truncated = True
        return obs[ego], float(rewards[ego]), bool(terminated), bool(truncated), infos[ego]

    def render(self) -> np.ndarray | None:
        return self.multi.render()

    def close(self) -> None:
        self.multi.close()
