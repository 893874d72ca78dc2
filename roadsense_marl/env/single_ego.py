"""``RoadSense-Convoy-v4``: the single-ego Gymnasium view of the original specification.

A view over :class:`~roadsense_marl.env.core.ConvoyCore`, not a second implementation: the
ego is the one controlled agent; every other vehicle is driven by SUMO's car-following model
but still broadcasts, so the ego's receive buffer is filled exactly as in the multi-agent env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from roadsense_marl.env.convoy_env import step_infos
from roadsense_marl.env.core import ConvoyCore


def _own_steps(core: ConvoyCore) -> int:
    """The ego's own episode length: the core's, without the warm-up allowance it adds."""
    from roadsense_marl.env.config import seconds_to_steps
    from roadsense_marl.env.core import MAX_WARMUP_S

    return core.max_steps - seconds_to_steps(MAX_WARMUP_S, core.step_length)


class SingleEgoEnv(gym.Env):
    """One ego vehicle in a SUMO convoy, warned of hazards only through ESP-NOW messages.

    ## Description
    The ego (``ego_id``, ``"V001"``: the rear car of ``convoy_3`` by default) must avoid a
    rear-end crash when a vehicle ahead of it brakes hard (the hazard vehicle is always picked
    from the vehicles ahead of the ego, in its leader chain at the onset; with no vehicle ahead
    there is no hazard). It knows the other vehicles only from the messages in its own receive
    buffer (latency, loss, bursts, sensor noise and staleness from measured ESP-NOW parameters).

    ## Action Space, Observation Space, Rewards
    Exactly those of one agent of :class:`~roadsense_marl.env.convoy_env.RoadSenseParallelEnv`
    (see its docstring): ``Box(0, 1, (1,))`` brake fraction by default; ``Dict(ego (9,), peers
    (K, 6), peer_mask (K,))``; the same reward terms, listed per step in ``info["reward_components"]``.

    ## Starting State
    The scenario loaded with the reset seed's vType perturbation, radio randomisation and
    hazard; SUMO runs until the ego is inserted.

    ## Episode End
    Terminated when the ego collides; truncated when it arrives at its route end, after
    ``max_steps`` (500) steps (or ``max_time_s`` seconds) counted from the ego's own departure, or
    when no vehicle is left.

    ## Arguments
    ``gymnasium.make("RoadSense-Convoy-v4", scenario="convoy_3", ego_id="V001", **config)``
    with every config key of the parallel env.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 10}

    def __init__(self, scenario: str = "convoy_3", ego_id: str | None = None, **config: Any) -> None:
        from roadsense_marl.env.config import make_env_config

        cfg = make_env_config(config.pop("config", None), scenario=scenario, **config)
        # The core runs the warm-up allowance (MAX_WARMUP_S, in steps of the run) past the episode
        # length so that a late ego still gets its own max_steps / max_time_s.
        self.core = ConvoyCore(cfg, warmup_in_episode=True)
        core = self.core
        #: The ego's own episode length in steps (``max_steps``, or ``max_time_s`` converted).
        self.max_steps = _own_steps(core)
        self.ego_id = ego_id or core.scenario.ego_id
        if self.ego_id is None:
            raise ValueError(
                f"scenario {core.scenario.name!r} has no designated ego; pass ego_id= one of "
                f"{list(core.possible_agents[:8])}"
            )
        if self.ego_id not in core.slots.index_of:
            raise ValueError(
                f"ego_id {self.ego_id!r} is not a vehicle of scenario {core.scenario.name!r}; "
                f"vehicles: {list(core.possible_agents[:8])}"
            )
        core.controlled = frozenset({self.ego_id})
        core.hazard_candidates = self._ahead_of_ego
        self.observation_space = core.observation_space
        self.action_space = core.action_space
        self.render_mode = cfg.render_mode
        from roadsense_marl.env.convoy_env import EpisodeRenderer

        self._renderer = EpisodeRenderer(core, cfg.render_mode, fps=self.metadata["render_fps"])
        self._ego_steps = 0
        self._done = True

    @property
    def config(self):
        """The validated env config (the episode length as given; the core's own runs longer)."""
        return self.core.config

    def _ahead_of_ego(self, ids: tuple[str, ...], leader: np.ndarray) -> np.ndarray:
        """bool[n]: vehicles in the ego's leader chain (loop over chain depth, once per episode)."""
        ahead = np.zeros(len(ids), dtype=bool)
        if self.ego_id not in ids:
            return ahead
        i = leader[ids.index(self.ego_id)]
        while i >= 0 and not ahead[i]:
            ahead[i] = True
            i = leader[i]
        return ahead

    def _slot(self) -> int:
        return self.core.slots.slot_of.get(self.ego_id, -1)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        core = self.core
        core.reset(seed)
        idle = np.zeros(core.n_slots)
        while self._slot() < 0:  # the ego departs later than the first vehicle
            if core.episode_over:
                raise RuntimeError(f"ego {self.ego_id!r} was never inserted by SUMO (dropped by scenario variation?)")
            core.step(idle)
        self._ego_steps = 0
        self._done = False
        self._renderer.reset()
        if self.render_mode == "human":
            self.render()
        slot = self._slot()
        obs = {k: buf[slot].copy() for k, buf in core.obs.items()}
        return obs, {"hazard_vehicle": core.record.hazard_vehicle, "hazard_onset_step": core.record.hazard_onset_step}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if self._done:
            raise RuntimeError("step() after the episode ended: call reset() first")
        core = self.core
        slot = self._slot()
        a = np.asarray(action)
        if a.dtype.kind not in "iuf" or a.size != 1:
            raise ValueError(f"action for the ego {self.ego_id!r} must be one real number (shape (1,)), got {action!r}")
        acts = np.zeros(core.n_slots)
        acts[slot] = float(a.reshape(-1)[0])
        before = core.states
        core.step(acts)
        self._renderer.note_crashes(before)
        if self.render_mode == "human":
            self.render()
        self._ego_steps += 1
        obs = {k: buf[slot].copy() for k, buf in core.obs.items()}
        info = step_infos(core, [self.ego_id], np.array([slot]))[self.ego_id]
        terminated = bool(core.terminated[slot])
        truncated = bool(core.truncated[slot])
        if not terminated and not truncated and self._ego_steps >= self.max_steps:
            truncated = True  # the ego's own max_steps (the core runs longer, see __init__)
            info["reason"] = "max_steps"
            info["TimeLimit.truncated"] = True
        self._done = terminated or truncated
        return obs, float(core.reward[slot]), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        return self._renderer.render()

    def close(self) -> None:
        self.core.close()
        self._renderer.close()
