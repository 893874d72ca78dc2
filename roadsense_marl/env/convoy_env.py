"""RoadSense convoy: a PettingZoo ParallelEnv where every SUMO vehicle is an agent.

| Import             | ``from roadsense_marl import parallel_env``                      |
|--------------------|------------------------------------------------------------------|
| Actions            | Continuous                                                        |
| Parallel API       | Yes                                                               |
| Manual control     | No                                                                |
| Agents             | every vehicle of the scenario (``convoy_6``: 6; ``highway``: N)   |
| Action shape       | (1,)                                                              |
| Action values      | [0, 1] (``brake``) or [-1, 1] (``accel``)                         |
| Observation shape  | Dict(ego: (6,), peers: (K, 6), peer_mask: (K,))                   |
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from roadsense_marl.env.config import RADIO_PROFILES, EnvConfig, make_env_config, radio_profile_path
from roadsense_marl.env.hazards import (
    HazardPlan,
    draw_hazard_plan,
    hazard_controls,
    override_active,
    pick_hazard_vehicle,
)
from roadsense_marl.env.observations import EGO_DIM, PEER_DIM, build_observations
from roadsense_marl.env.rewards import BRAKING_DECEL, REWARD_COMPONENTS, compute_rewards
from roadsense_marl.env.version import ENV_NAME

BRAKE_DEADBAND = 0.02  # brake fraction at or below this hands the vehicle to car-following
SPEED_MODE_DEFAULT = 31  # SUMO: all safety checks on
SPEED_MODE_BRAKE = 27  # safe speed kept, vType decel limit off (an agent may brake at up to max_decel)
SPEED_MODE_RAW = 0  # no checks: the commanded speed is what happens (crashes possible)
MAX_WARMUP_STEPS = 10_000  # SUMO steps reset() waits for the first vehicle


class RoadSenseParallelEnv(ParallelEnv):
    """Cooperative collision avoidance over an emulated ESP-NOW radio.

    ## Description
    Every vehicle SUMO simulates is an agent running the same policy. Each step every
    vehicle broadcasts its TRUE state (position, speed, heading, acceleration) over a shared
    ESP-NOW emulator; a message from sender s reaches receiver r only after the latency
    sampled for that link, may be lost (distance-dependent, bursty per link) and carries
    sensor noise. An agent observes its own state exactly and its peers only through the
    messages in its OWN receive buffer. One vehicle brakes hard at a random step (the
    hazard); followers that react to the radio's braking warning avoid a rear-end crash.

    ## Action Space
    ``action_mode="brake"`` (default): ``Box(0, 1, (1,), float32)``, a brake fraction ``a``.
    ``a <= 0.02`` hands the vehicle to SUMO's car-following model; above, the vehicle is
    commanded to ``max(0, v - max_decel * a * dt)`` (``max_decel`` = 8 m/s^2). From
    ``hazard.override_delay_steps`` after a hazard starts, an agent with ``a <= 0.02`` holds
    its speed instead (no free braking from car-following) and SUMO's safety checks are off,
    so only braking chosen from V2V messages prevents the crash. The override lasts while the
    hazard vehicle is in the simulation and not released.

    ``action_mode="accel"``: ``Box(-1, 1, (1,), float32)`` mapped to
    ``[-max_decel, +max_accel]`` m/s^2 with all SUMO safety checks off (full control).

    Out-of-range actions are clipped; NaN, a wrong shape, or an agent that is not live raise
    ``ValueError`` naming the agent. Live agents missing from the action dict act as ``0``.

    ## Observation Space
    ``Dict`` of float32 arrays. ``ego`` (6,):

    | idx | feature                                                    | min  | max |
    |-----|------------------------------------------------------------|------|-----|
    | 0   | own speed / 30 (m/s)                                       | 0    | inf |
    | 1   | own acceleration / 10 (m/s^2)                              | -inf | inf |
    | 2   | visible peers / K                                          | 0    | 1   |
    | 3   | min(0, lowest visible peer acceleration) / 10              | -inf | 0   |
    | 4   | braking signal: 1 when a visible peer reports <= -2.5 m/s^2, else previous x 0.95 | 0 | 1 |
    | 5   | max(0, largest closing speed to a visible peer ahead) / 30 | 0    | inf |

    ``peers`` (K, 6), one row per visible peer, nearest first, zeros for padding:

    | idx | feature                                                             |
    |-----|---------------------------------------------------------------------|
    | 0   | forward offset / 100: message position minus own position, own heading frame (m) |
    | 1   | left offset / 100 (m)                                               |
    | 2   | (peer speed - own speed) / 30 (m/s)                                 |
    | 3   | wrap180(peer heading - own heading) / 180 (SUMO compass degrees)    |
    | 4   | peer acceleration / 10 (m/s^2)                                      |
    | 5   | message age / 500 (ms): now - the message's timestamp               |

    ``peer_mask`` (K,): 1 for a real peer row, 0 for padding. Visible peers are the
    non-stale messages (age < ``staleness_threshold_ms``, 500 ms measured) in the agent's
    own buffer, from senders inside a forward cone of ``cone_half_angle_deg`` (45 deg;
    ``"off"`` keeps all); with more than K (8) the K nearest by message position are kept.
    Peer values come from the (noisy, delayed) messages; own values are ground truth.

    ## Rewards
    Per agent, from ground truth (SUMO's bumper-to-bumper gap and collisions; termination
    uses the same truth). Terms (see :mod:`roadsense_marl.env.rewards`): ``safety``
    (collision -100; gap 5..20 m linear -5..+4; 20..35 m +4; beyond 35 m -2; no leader 0),
    ``comfort`` (deceleration penalty, softened close to a leader), ``hard_brake`` (braking
    with a gap above 35 m), ``ignore_warning`` (not braking while warned and closing),
    ``early_reaction`` (braking on a warning with a gap above 15 m), ``progress`` (speed / 30,
    weight 0 by default: set ``reward={"progress": w}`` so that stopping is not a free way to
    keep a safe gap; the shipped training config does). Each term is in
    ``info["reward_components"]``; weights are the ``reward`` config section.

    ## Starting State
    ``reset(seed)`` (re)loads the scenario in SUMO with per-episode vType perturbation
    (speedFactor U(0.8, 1.2), sigma U(0, 0.5), decel U(3.5, 5.5), tau U(0.5, 1.5)), radio
    domain randomisation and a hazard drawn from the seed, and advances SUMO until the
    first vehicle is inserted. ``agents`` are the vehicles in the simulation then.

    ## Episode End
    An agent is *terminated* when it collides (``info["reason"] = "collision"``) and
    *truncated* when it reaches its route end (``"arrived"``) or at ``max_steps`` (500,
    ``"max_steps"``); every truncated agent's info has ``"TimeLimit.truncated": True``.
    Agents join in the step SUMO inserts them and are never revived. The episode ends when
    no agents remain.

    ## Arguments
    ``parallel_env(scenario="convoy_6", **config)``; every key of
    :class:`roadsense_marl.env.config.EnvConfig` (``configs/env/default.yaml`` lists them with
    their defaults): ``scenario`` (name or ``.sumocfg`` path), ``scenario_kwargs``,
    ``backend`` (``"libsumo"``: fast, one simulation per process; ``"traci"``: several per
    process, sumo-gui), ``step_length``, ``max_steps``, ``radio`` (``"measured"``, ``"ideal"``,
    ``"degraded"``, a path or a dict of ESP-NOW parameters), ``domain_randomization``,
    ``max_peers``, ``cone_half_angle_deg``, ``action_mode``, ``max_decel``, ``max_accel``,
    ``vtype_randomization``, ``drop_peer_prob``, ``hazard`` and ``reward`` sections,
    ``render_mode`` (``"rgb_array"``: annotated frames; ``"human"``: the same frames in a
    matplotlib window, needs a display), ``sumo_gui`` (SUMO's own GUI, traci only), ``sumo_args``.
    ``config`` may name a YAML file whose keys the other arguments override.
    """

    metadata = {
        "name": ENV_NAME,
        "render_modes": ["rgb_array", "human"],
        "render_fps": 10,
        "is_parallelizable": True,
    }

    def __init__(self, scenario: str | None = None, *, config: Any = None, **kwargs: Any) -> None:
        from roadsense_marl.espnow import Radio, load_params
        from roadsense_marl.sim import SumoSimulation, resolve_scenario

        if scenario is not None:
            kwargs["scenario"] = scenario
        self.config: EnvConfig = make_env_config(config, **kwargs)
        cfg = self.config
        self.render_mode = cfg.render_mode
        self._viewer = None
        if cfg.render_mode == "human":
            from roadsense_marl.env.render import HumanViewer

            try:
                self._viewer = HumanViewer(title=ENV_NAME, fps=self.metadata["render_fps"])
            except RuntimeError as exc:
                raise ValueError(str(exc)) from None
        self.scenario = resolve_scenario(cfg.scenario, **cfg.scenario_kwargs)
        self.step_length = float(cfg.step_length or self.scenario.default_step_length)
        self.possible_agents: list[str] = list(self.scenario.vehicle_ids)
        self._slot_of = {a: i for i, a in enumerate(self.possible_agents)}
        radio = cfg.radio
        if isinstance(radio, str) and radio in RADIO_PROFILES:
            radio = radio_profile_path(radio)
        elif isinstance(radio, str) and not Path(radio).is_file():
            raise ValueError(
                f"radio {radio!r} is neither a radio profile ({', '.join(RADIO_PROFILES)}) nor an existing "
                "JSON/YAML parameter file"
            )
        self.radio = Radio(
            load_params(radio), capacity=len(self.possible_agents), domain_randomization=cfg.domain_randomization
        )
        self.sim = SumoSimulation(
            self.scenario,
            backend=cfg.backend,
            step_length=self.step_length,
            gui=cfg.sumo_gui,
            sumo_args=cfg.sumo_args,
        )
        k = cfg.max_peers
        inf = np.float32(np.inf)
        self._observation_space = spaces.Dict(
            {
                "ego": spaces.Box(
                    low=np.array([0, -inf, 0, -inf, 0, 0], dtype=np.float32),
                    high=np.array([inf, inf, 1, 0, 1, inf], dtype=np.float32),
                    dtype=np.float32,
                ),
                "peers": spaces.Box(-inf, inf, shape=(k, PEER_DIM), dtype=np.float32),
                "peer_mask": spaces.Box(0.0, 1.0, shape=(k,), dtype=np.float32),
            }
        )
        if cfg.action_mode == "brake":
            self._action_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        else:
            self._action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.agents: list[str] = []
        # Agents whose actions drive their vehicle; None = all. The single-ego view leaves every
        # other vehicle entirely to SUMO (they still broadcast and are still observed).
        self.controlled: frozenset[str] | None = None
        self._root_seed: np.random.SeedSequence | None = None
        self._states = None
        self._built = None
        weakref.finalize(self, _close_sim, self.sim)

    # -- PettingZoo API ---------------------------------------------------------------

    def observation_space(self, agent: str) -> spaces.Dict:
        self._check_possible(agent)
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Box:
        self._check_possible(agent)
        return self._action_space

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        from roadsense_marl.sim import sample_variation

        cfg = self.config
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative whole number or None, got {seed!r}")
        if seed is not None or self._root_seed is None:
            self._root_seed = np.random.SeedSequence(seed)
        episode_ss = self._root_seed.spawn(1)[0]
        sumo_ss, radio_ss, hazard_ss, variation_ss = episode_ss.spawn(4)
        self.episode_seed = int(episode_ss.generate_state(1)[0])
        sumo_seed = int(sumo_ss.generate_state(1)[0] % (2**31 - 1))

        variation = None
        if cfg.vtype_randomization or cfg.drop_peer_prob > 0:
            variation = sample_variation(
                self.scenario,
                np.random.default_rng(variation_ss),
                drop_peer_prob=cfg.drop_peer_prob,
                **({} if cfg.vtype_randomization else {"ranges": {}}),
            )
        states = self._guard(self._start_episode, sumo_seed, variation)
        self.radio.reset(radio_ss)
        self.hazard: HazardPlan = draw_hazard_plan(cfg.hazard, np.random.default_rng(hazard_ss), self.step_length)
        self.hazard_vehicle: str | None = None
        self.hazard_target_speed = 0.0
        self.num_steps = 0
        m = len(self.possible_agents)
        self._braking_signal = np.zeros(m)
        self._speed_mode = np.full(m, SPEED_MODE_DEFAULT, dtype=np.int64)
        # Last setSpeed target per vehicle (-1: released to car-following, SUMO's initial state;
        # NaN: unknown). SUMO keeps a setSpeed until changed, so only changes are sent.
        self._commanded = np.full(m, -1.0)
        self._ever_seen = np.zeros(m, dtype=bool)
        self._last_ego = np.zeros((m, EGO_DIM), dtype=np.float32)
        self._last_peers = np.zeros((m, cfg.max_peers, PEER_DIM), dtype=np.float32)
        self._last_mask = np.zeros((m, cfg.max_peers), dtype=np.float32)
        self._t_ms = states.time_s * 1000.0
        self._states = states
        self._crash_sites: dict[str, tuple[float, float, float]] = {}  # id -> last x, y, length (render)
        self.agents = sorted(states.ids, key=self._slot_of.__getitem__)
        self._ever_seen[self._slots(self.agents)] = True
        self._broadcast(states, self._t_ms - self.step_length * 1000.0)
        obs, _ = self._observe(states)
        infos = {a: {"hazard_vehicle": None, "hazard_onset_step": self.hazard.onset_step} for a in self.agents}
        if self.render_mode == "human":
            self.render()
        return obs, infos

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() called on an ended episode (no agents left): call reset() first")
        acts = self._parse_actions(actions)  # a bad action raises here and changes nothing
        # From here on, any failure (e.g. SUMO died) ends the episode and closes SUMO.
        out = self._guard(self._advance, acts)
        if self.render_mode == "human":
            self.render()  # the window follows the episode, as in Gymnasium's human mode
        return out

    def _advance(self, acts: np.ndarray) -> tuple[dict, dict, dict, dict, dict]:
        cfg = self.config
        live = self.agents
        t_step = self.num_steps
        states = self._states

        # 1. apply actions
        self._apply_actions(live, acts, states, t_step)
        # 2. advance hazards
        self._advance_hazard(states, t_step)
        # 3. step SUMO
        prev_t = self._t_ms
        new_states = self.sim.step()
        self.num_steps += 1
        self._t_ms = new_states.time_s * 1000.0
        self._check_known(new_states.ids)

        collided = set(new_states.collided) & set(live)
        if new_states.collided:  # SUMO removed them: keep where they were, for render()
            for v in set(new_states.collided) & set(states.ids):
                i = states.index(v)
                self._crash_sites[v] = (float(states.x[i]), float(states.y[i]), float(states.length[i]))
        arrived = (set(new_states.arrived) & set(live)) - collided
        present = set(new_states.ids)
        # A live agent that vanished without SUMO reporting why (e.g. teleported away) leaves as arrived.
        arrived |= (set(live) - present) - collided
        ended = collided | arrived
        gone_slots = self._slots(sorted(ended))
        self.radio.forget(gone_slots)

        joined = [v for v in new_states.ids if not self._ever_seen[self._slot_of[v]]]
        self._ever_seen[self._slots(joined)] = True
        current = sorted(present, key=self._slot_of.__getitem__)

        # 4. broadcast, 5. observe
        self._states = new_states
        self._broadcast(new_states, prev_t)
        obs, built = self._observe(new_states)
        # 6. rewards, terminations, truncations, infos
        rewards, infos = self._rewards_and_infos(new_states, built, collided, t_step)

        out_agents = sorted(set(live) | set(current), key=self._slot_of.__getitem__)
        time_up = self.num_steps >= cfg.max_steps
        terminations = {a: a in collided for a in out_agents}
        truncations = {a: (a in arrived) or (time_up and a not in collided) for a in out_agents}
        for a in ended:
            slot = self._slot_of[a]
            obs[a] = {
                "ego": self._last_ego[slot].copy(),
                "peers": self._last_peers[slot].copy(),
                "peer_mask": self._last_mask[slot].copy(),
            }
            rewards[a] = float(cfg.reward.collision) if a in collided else 0.0
            infos[a] = {
                "reason": "collision" if a in collided else "arrived",
                "reward_components": {
                    c: (float(cfg.reward.collision) if (a in collided and c == "safety") else 0.0)
                    for c in REWARD_COMPONENTS
                },
                "hazard_vehicle": self.hazard_vehicle,
                "hazard_onset_step": self.hazard.onset_step,
            }
        for a in out_agents:
            if truncations[a]:
                infos[a]["TimeLimit.truncated"] = True
                if a not in ended:
                    infos[a]["reason"] = "max_steps"
        self.agents = [] if time_up else [a for a in current if a not in ended]
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        """``"rgb_array"``: uint8[260, 800, 3] annotated frame (see :func:`roadsense_marl.env.render.draw_frame`);
        ``"human"``: the same frame in a matplotlib window, returns None."""
        if self.render_mode is None:
            import gymnasium

            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        from roadsense_marl.env.render import draw_frame

        s = self._states
        if s is None:
            raise RuntimeError("render() before reset()")
        wrecks = [v for v in self._crash_sites if v not in s.ids]
        w = np.array([self._crash_sites[v] for v in wrecks], dtype=np.float64).reshape(-1, 3)
        xy = np.concatenate([np.stack([s.x, s.y], axis=1), w[:, :2]])
        length = np.concatenate([s.length, w[:, 2]])
        ids = list(s.ids) + wrecks
        links = self.radio.last_links
        delivered = np.asarray(links.delivered, dtype=bool)
        row_of_slot = np.full(len(self.possible_agents), -1, dtype=np.int64)
        row_of_slot[self._slots(s.ids)] = np.arange(s.n)
        pairs = np.stack(
            [row_of_slot[np.asarray(links.sender)[delivered]], row_of_slot[np.asarray(links.receiver)[delivered]]], axis=1
        ).reshape(-1, 2)
        pairs = pairs[(pairs >= 0).all(axis=1)]
        frame = draw_frame(
            xy,
            length,
            braking=np.concatenate([s.accel < -BRAKING_DECEL - 1.0, np.zeros(len(wrecks), bool)]),
            crashed=np.concatenate([np.zeros(s.n, bool), np.ones(len(wrecks), bool)]),
            ids=ids,
            hazard_id=self.hazard_vehicle,
            links=pairs,
            time_s=s.time_s,
            step=self.num_steps,
            max_steps=self.config.max_steps,
        )
        if self.render_mode == "human":
            self._viewer.show(frame)
            return None
        return frame

    def visible_peers(self, agent: str) -> list[str]:
        """Senders in ``agent``'s peer table this step (nearest first): what it knows of, via radio."""
        self._check_possible(agent)
        s = self._states
        if s is None or agent not in s.ids or self._built is None:
            return []
        row = s.ids.index(agent)
        return [self.possible_agents[j] for j in self._built.peer_sender[row] if j >= 0]

    @property
    def sim_states(self):
        """The latest ground-truth :class:`~roadsense_marl.sim.VehicleStates` from SUMO (for tests and evaluation)."""
        return self._states

    def close(self) -> None:
        self.sim.close()
        if getattr(self, "_viewer", None) is not None:
            self._viewer.close()

    def state(self) -> np.ndarray:
        """Global state: every possible agent's [x, y, speed, accel, heading/360], zeros if absent."""
        out = np.zeros((len(self.possible_agents), 5), dtype=np.float32)
        s = self._states
        if s is not None and s.ids:
            idx = self._slots(s.ids)
            out[idx] = np.stack([s.x, s.y, s.speed, s.accel, s.heading_deg / 360.0], axis=1)
        return out

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_states", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._states = None
        weakref.finalize(self, _close_sim, self.sim)

    # -- internals -------------------------------------------------------------------

    def _guard(self, fn, *args, **kwargs):
        """Run a simulator call; on any failure SUMO is closed before the error propagates."""
        try:
            return fn(*args, **kwargs)
        except BaseException:
            self.agents = []
            self.sim.close()
            raise

    def _start_episode(self, sumo_seed: int, variation):
        """Load the episode in SUMO and run it until the first vehicle is inserted."""
        states = self.sim.reset(seed=sumo_seed, variation=variation)
        for _ in range(MAX_WARMUP_STEPS):
            if states.ids:
                self._check_known(states.ids)
                return states
            states = self.sim.step()
        dropped = f" ({len(variation.dropped)} vehicles dropped by drop_peer_prob)" if variation and variation.dropped else ""
        raise RuntimeError(f"scenario {self.scenario.name!r} inserted no vehicle within {MAX_WARMUP_STEPS} steps{dropped}")

    def _check_possible(self, agent: str) -> None:
        if agent not in self._slot_of:
            raise ValueError(
                f"unknown agent {agent!r}: not a vehicle of scenario {self.scenario.name!r} "
                f"(possible agents: {_preview(self.possible_agents)})"
            )

    def _check_known(self, ids: tuple[str, ...]) -> None:
        unknown = [v for v in ids if v not in self._slot_of]
        if unknown:
            raise RuntimeError(
                f"SUMO produced vehicles {unknown[:5]} that are not in the scenario's route files; "
                "possible_agents cannot include them (vehicles added at run time are not supported)"
            )

    def _slots(self, ids) -> np.ndarray:
        return np.fromiter((self._slot_of[v] for v in ids), dtype=np.int64, count=len(ids))

    def _parse_actions(self, actions: dict[str, Any]) -> np.ndarray:
        live = self.agents
        space = self._action_space
        extra = actions.keys() - set(live)
        if extra:
            a = sorted(extra, key=str)[0]
            if a in self._slot_of:
                raise ValueError(f"action for agent {a!r}, which is not live this step; live agents: {_preview(live)}")
            raise ValueError(f"action for unknown agent {a!r}; live agents: {_preview(live)}")
        given = [a for a in live if a in actions]
        out = np.zeros(len(live))
        if not given:
            return out
        try:  # fast path: one array from every action at once
            arr = np.asarray([actions[a] for a in given], dtype=np.float64)
            ok = arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            for a in given:  # find and name the offending agent
                shape = np.shape(actions[a])
                if np.size(actions[a]) != 1 or len(shape) > 1:
                    raise ValueError(f"action for agent {a!r} must have shape (1,) (a single number), got shape {shape}")
            raise ValueError(f"actions must be numbers, got {[actions[a] for a in given][:4]}")
        arr = arr.reshape(-1)
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"action for agent {given[i]!r} is {arr[i]}; it must be a finite number in [{space.low[0]}, {space.high[0]}]"
            )
        if len(given) == len(live):
            out = arr
        else:
            index = {a: i for i, a in enumerate(live)}
            out[[index[a] for a in given]] = arr
        return np.clip(out, space.low[0], space.high[0])

    def _apply_actions(self, live: list[str], acts: np.ndarray, states, t_step: int) -> None:
        cfg = self.config
        dt = self.step_length
        row = {v: i for i, v in enumerate(states.ids)}
        idx = np.fromiter((row[a] for a in live), dtype=np.int64, count=len(live))
        v = states.speed[idx]
        controlled = np.ones(len(live), dtype=bool)
        if self.controlled is not None:
            controlled &= np.array([a in self.controlled for a in live])
        if self.hazard_vehicle is not None and hazard_controls(self.hazard, t_step):
            controlled &= np.array([a != self.hazard_vehicle for a in live])
        override = (
            override_active(self.hazard, t_step) and self.hazard_vehicle is not None and self.hazard_vehicle in live
        )

        if cfg.action_mode == "brake":
            braking = acts > BRAKE_DEADBAND
            target = np.where(braking, np.maximum(0.0, v - cfg.max_decel * acts * dt), -1.0)
            if override:
                target = np.where(braking, target, v)  # hold speed: no free braking from car-following
                mode = np.full(len(live), SPEED_MODE_RAW)
            else:
                mode = np.where(braking, SPEED_MODE_BRAKE, SPEED_MODE_DEFAULT)
        else:
            rate = np.where(acts >= 0, cfg.max_accel, cfg.max_decel)
            target = np.maximum(0.0, v + rate * acts * dt)
            mode = np.full(len(live), SPEED_MODE_RAW)

        ids = [a for a, c in zip(live, controlled) if c]
        target, mode = target[controlled], mode[controlled]
        slots = self._slots(ids)
        changed = self._speed_mode[slots] != mode
        if changed.any():
            self.sim.set_speed_modes([ids[i] for i in np.flatnonzero(changed)], mode[changed])
            self._speed_mode[slots[changed]] = mode[changed]
        send = self._commanded[slots] != target  # NaN compares unequal: unknown is always sent
        if send.any():
            self.sim.set_speeds([ids[i] for i in np.flatnonzero(send)], target[send])
            self._commanded[slots[send]] = target[send]

    def _advance_hazard(self, states, t_step: int) -> None:
        plan = self.hazard
        if not plan.active:
            return
        if t_step == plan.onset_step:
            i = pick_hazard_vehicle(plan, states.ids, states.leader)
            if i is None:
                return
            vid = states.ids[i]
            self.hazard_vehicle = vid
            self.hazard_target_speed = max(0.0, float(states.speed[i]) - plan.decel * plan.duration_s)
            self._set_mode(vid, SPEED_MODE_RAW)
            self.sim.slow_down([vid], np.array([self.hazard_target_speed]), np.array([plan.duration_s]))
            self._commanded[self._slot_of[vid]] = np.nan
            return
        vid = self.hazard_vehicle
        if vid is None or vid not in self.agents:
            return
        if t_step == plan.onset_step + plan.brake_steps and hazard_controls(plan, t_step):
            self.sim.set_speeds([vid], np.array([self.hazard_target_speed]))
            self._commanded[self._slot_of[vid]] = self.hazard_target_speed
        if plan.release_step is not None and t_step == plan.release_step:
            self._set_mode(vid, SPEED_MODE_DEFAULT)
            self.sim.set_speeds([vid], np.array([-1.0]))
            self._commanded[self._slot_of[vid]] = -1.0

    def _set_mode(self, vid: str, mode: int) -> None:
        slot = self._slot_of[vid]
        if self._speed_mode[slot] != mode:
            self.sim.set_speed_modes([vid], np.array([mode]))
            self._speed_mode[slot] = mode

    def _broadcast(self, states, prev_t_ms: float) -> None:
        if not states.ids:
            return
        slots = self._slots(states.ids)
        xy = np.stack([states.x, states.y], axis=1)
        due = self.radio.beacon_due(slots, prev_t_ms, self._t_ms)
        payload = np.stack([states.x, states.y, states.speed, states.heading_deg, states.accel], axis=1)
        self.radio.broadcast(self._t_ms, slots[due], xy[due], payload[due], slots, xy)

    def _observe(self, states) -> tuple[dict, Any]:
        if not states.ids:
            return {}, None
        cfg = self.config
        slots = self._slots(states.ids)
        rx = self.radio.receive(self._t_ms, slots)
        row_of_slot = np.full(len(self.possible_agents), -1, dtype=np.int64)
        row_of_slot[slots] = np.arange(len(slots))
        built = build_observations(
            np.stack([states.x, states.y], axis=1),
            states.speed,
            states.accel,
            states.heading_deg,
            self._braking_signal[slots],
            row_of_slot[rx.receiver],
            rx.sender,
            rx.payload,
            rx.age_ms,
            max_peers=cfg.max_peers,
            cone_half_angle_deg=cfg.cone_half_angle_deg,
        )
        self._braking_signal[slots] = built.braking_signal
        self._last_ego[slots] = built.ego
        self._last_peers[slots] = built.peers
        self._last_mask[slots] = built.peer_mask
        self._built = built
        obs = {
            v: {"ego": built.ego[i], "peers": built.peers[i], "peer_mask": built.peer_mask[i]}
            for i, v in enumerate(states.ids)
        }
        return obs, built

    def _rewards_and_infos(self, states, built, collided: set[str], t_step: int) -> tuple[dict, dict]:
        if not states.ids:
            return {}, {}
        has_leader = states.leader >= 0
        leader_speed = np.where(has_leader, states.speed[np.maximum(states.leader, 0)], states.speed)
        closing = np.where(has_leader, states.speed - leader_speed, 0.0)
        imposed = np.zeros(len(states.ids), dtype=bool)
        if self.hazard_vehicle is not None and hazard_controls(self.hazard, t_step):
            imposed = np.array([v == self.hazard_vehicle for v in states.ids])
        total, comps = compute_rewards(
            states.gap,
            np.zeros(len(states.ids), dtype=bool),  # vehicles that collided were removed by SUMO
            states.accel,
            states.speed,
            closing,
            built.braking_signal,
            imposed,
            self.config.reward,
        )
        ids = states.ids
        rewards = dict(zip(ids, total.tolist()))
        columns = [comps[c].tolist() for c in REWARD_COMPONENTS]
        hazard_vehicle, onset = self.hazard_vehicle, self.hazard.onset_step
        infos = {
            v: {
                "reward_components": dict(zip(REWARD_COMPONENTS, parts)),
                "gap": gap,
                "braking_signal": signal,
                "n_visible_peers": n_vis,
                "hazard_vehicle": hazard_vehicle,
                "hazard_onset_step": onset,
            }
            for v, parts, gap, signal, n_vis in zip(
                ids, zip(*columns), states.gap.tolist(), built.braking_signal.tolist(), built.n_visible.tolist()
            )
        }
        return rewards, infos


def _preview(names: list[str], n: int = 8) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return f"[{shown}{', ...' if len(names) > n else ''}] ({len(names)} in all)"


def _close_sim(sim) -> None:
    try:
        sim.close()
    except Exception:  # noqa: BLE001 - best effort at garbage collection
        pass
