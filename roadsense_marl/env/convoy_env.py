"""RoadSense convoy: a PettingZoo ParallelEnv where every SUMO motor vehicle is an agent (configurable).

| Import             | ``from roadsense_marl import parallel_env``                      |
|--------------------|------------------------------------------------------------------|
| Actions            | Continuous                                                        |
| Parallel API       | Yes                                                               |
| Manual control     | No                                                                |
| Agents             | every motor vehicle of the scenario (``convoy_6``: 6), ``agents`` |
| Action shape       | (1,)                                                              |
| Action values      | [0, 1] (``brake``) or [-1, 1] (``accel``)                         |
| Observation shape  | Dict(ego: (9,), peers: (K, 6), peer_mask: (K,))                   |
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from roadsense_marl.env.core import END_REASONS, ConvoyCore
from roadsense_marl.env.rewards import BRAKING_DECEL
from roadsense_marl.env.version import ENV_NAME


class RoadSenseParallelEnv(ParallelEnv):
    """Cooperative collision avoidance over an emulated ESP-NOW radio.

    A thin view over :class:`~roadsense_marl.env.core.ConvoyCore` (``env.core``), which owns the
    episode as arrays over vehicle slots; this class only builds PettingZoo's per-agent dicts.
    The per-step :class:`~roadsense_marl.env.core.StepRecord` is ``env.record``.

    ## Description
    Every motor vehicle SUMO simulates is an agent running the same policy (``agents`` chooses
    others; the rest of the traffic is driven by SUMO). Every radio-equipped vehicle broadcasts
    its TRUE state (position, speed, heading, acceleration) over a shared ESP-NOW emulator at
    10 Hz, each beacon at its own time inside a SUMO step with the state interpolated between the
    two SUMO states around it (so ages and visibility do not depend on the step length); a message
    from sender s reaches receiver r only after the latency
    sampled for that link, may be lost (distance-dependent, bursty per link; with the shared
    channel of the ``measured`` and ``degraded`` profiles also to airtime collisions under
    CSMA/CA, each vehicle's channel busy ratio in ``env.record.cbr``) and carries
    sensor noise. An agent observes its own state exactly and its peers only through the
    messages in its OWN receive buffer. One vehicle brakes hard at a random time (the
    hazard, drawn from ``hazard.onset_window_s``, 15..25 s); followers that react to the radio's braking warning avoid a rear-end crash.

    ## Action Space
    ``action_mode="brake"`` (default): ``Box(0, 1, (1,), float32)``, a brake fraction ``a``.
    ``a <= 0.02`` hands the vehicle to SUMO's car-following model; above, the vehicle is
    commanded to ``max(0, v - max_decel * a * dt)`` (``max_decel`` = 8 m/s^2). From
    ``hazard.override_delay_s`` (0.3 s) after a hazard starts, an agent with ``a <= 0.02`` holds
    its speed instead (no free braking from car-following) and SUMO's safety checks are off,
    so only braking chosen from V2V messages prevents the crash. The override lasts until the
    hazard vehicle is released or reaches its route's end (a crash that removes it does not end
    it).

    ``action_mode="accel"``: ``Box(-1, 1, (1,), float32)`` mapped to
    ``[-max_decel, +max_accel]`` m/s^2 with all SUMO safety checks off (full control).

    Actions are a dict ``{agent: number or array of one number}``. Out-of-range actions are
    clipped; a non-dict, a non-numeric value (a string, ``None``, a complex number), NaN, a wrong
    shape, or an agent that is not live raise ``ValueError`` naming the agent and the expected
    type, before anything changes. Live agents missing from the action dict act as ``0``.

    ## Observation Space
    ``Dict`` of float32 arrays. ``ego`` (9,):

    | idx | feature                                                    | min  | max |
    |-----|------------------------------------------------------------|------|-----|
    | 0   | own speed / 30 (m/s)                                       | 0    | inf |
    | 1   | own acceleration / 10 (m/s^2)                              | -inf | inf |
    | 2   | visible peers / K                                          | 0    | 1   |
    | 3   | min(0, lowest visible peer acceleration) / 10              | -inf | 0   |
    | 4   | braking signal: 1 when a visible peer reports <= -2.5 m/s^2, else decays with a 1.35 s half-life (0.95 per 0.1 s) | 0 | 1 |
    | 5   | max(0, largest closing speed to a visible peer ahead) / 30 | 0    | inf |
    | 6   | tracked distance to the nearest visible peer ahead / 50 (m; 1: none) | -inf | inf |
    | 7   | tracked closing speed on it / 5 (m/s)                      | -inf | inf |
    | 8   | deceleration that stops that closing short of it / 10 (m/s^2, the reward's ``brake_shortfall`` formula, <= 20) | 0 | 2 |

    Columns 6-8 are a track kept across steps (``observations.track_nearest_ahead``): each
    message's position moved on by its age, the distance predicted with the tracked closing
    speed, both smoothed with a 1 s time constant (averaging the ~3 m GPS noise of single
    messages); a new track starts when another peer becomes the nearest ahead (forward cone, no
    lane test) or a vehicle takes the slot.

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
    Per agent, from ground truth (SUMO's bumper-to-bumper gap and collision records; termination
    uses the same truth); see :mod:`roadsense_marl.env.rewards`. Every term but the collision is a
    rate per second times the step length (at 0.1 s a step earns about +0.4..+0.6 while following
    well), so a second of driving earns the same at any step length; scale the discount with it
    (``gamma = gamma_per_second ** step_length``; the shipped training config: 0.904 per second).
    ``safety`` (collision -100 per event for the **collider** only, ``collision_victim`` 0 for the
    vehicle it hit; gap 5..20 m linear -5..+4 /s, 20..35 m +4 /s, beyond 35 m -2 /s behind a moving
    leader), ``comfort`` and ``hard_brake`` (deceleration charges, none for braking the situation
    requires: warned, or needing >= 0.5 m/s^2 to stop 2 m plus a 1 s headway short of the leader), ``ignore_warning``
    (-20 /s x signal, braking less than 2.5 m/s^2 while warned and closing, graded), ``early_reaction`` (off by default), ``progress``
    (4 /s x the speed the leader allows / 30 m/s: holding back behind a stopped leader costs
    nothing), ``brake_shortfall`` (-2 /s per m/s^2 braked less than needed to stop short of the
    leader). Each term is in ``info["reward_components"]``; weights are the ``reward`` config section.

    ## Starting State
    ``reset(seed)`` (re)loads the scenario in SUMO with per-episode vType perturbation
    (speedFactor U(0.8, 1.2), sigma U(0, 0.5), decel U(3.5, 5.5), tau U(0.5, 1.5)), radio
    domain randomisation and a hazard drawn from the seed, and advances SUMO until the
    first vehicle is inserted. ``agents`` are the vehicles in the simulation then.

    ## Episode End
    An agent is *terminated* when it collides (``info["reason"] = "collision"``) and
    *truncated* when it reaches its route end (``"arrived"``) or at the episode length
    (``max_steps``, 500, or ``max_time_s`` seconds converted with the step length, rounded up;
    ``"max_steps"``); every truncated agent's info has ``"TimeLimit.truncated": True``.
    Agents join in the step SUMO inserts them and are never revived. The episode ends when
    no agents remain.

    ## Arguments
    ``parallel_env(scenario="convoy_6", observation_fn=None, reward_fn=None, **config)``.
    ``observation_fn`` / ``reward_fn`` replace the shipped observation and reward
    (:class:`~roadsense_marl.env.observations.ObservationFunction`,
    :class:`~roadsense_marl.env.rewards.RewardFunction`); the spaces follow the observation
    function. Every key of
    :class:`roadsense_marl.env.config.EnvConfig` (``configs/env/default.yaml`` lists them with
    their defaults): ``scenario`` (name or ``.sumocfg`` path), ``scenario_kwargs``,
    ``backend`` (``"libsumo"``: fast, one simulation per process; ``"traci"``: several per
    process, sumo-gui), ``step_length``, ``max_steps`` or ``max_time_s`` (not both), ``radio`` (``"measured"``, ``"ideal"``,
    ``"degraded"``, a path or a dict of ESP-NOW parameters), ``domain_randomization``,
    ``max_peers``, ``cone_half_angle_deg``, ``action_mode``, ``max_decel``, ``max_accel``,
    ``vtype_randomization``, ``drop_peer_prob``,
    ``agents`` (which SUMO vehicles are agents: a mapping of glob patterns on ``vclass`` / ``vtype`` /
    ``id`` with an optional ``exclude`` of the same; default ``None``: every road motor vehicle, not
    pedestrians, bicycles, scooters, trams, trains or ships; a selector matching no vehicle of the
    scenario is a ValueError listing its vClasses and vTypes), ``equipped`` (which vehicles may carry a
    radio, same syntax, default any), ``penetration_rate`` (in [0, 1], default 1: the share of them
    that carries a radio, drawn per vehicle per episode from the seed; unequipped vehicles neither send
    nor receive, an unequipped agent observes only its own state; ``info["equipped"]``,
    ``record.equipped``), ``max_other_vehicles`` (radio slots for equipped vehicles that are not agents,
    a pool apart from ``max_vehicles``: the most present at once; default one per such vehicle),
    ``max_vehicles`` (vehicle slots of the array core:
    the most vehicles present at once; default one per possible agent), ``hazard`` and ``reward`` sections,
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

    def __init__(
        self, scenario: str | None = None, *, config: Any = None, observation_fn=None, reward_fn=None, **kwargs: Any
    ) -> None:
        if scenario is not None:
            kwargs["scenario"] = scenario
        self.core = ConvoyCore(config, observation_fn=observation_fn, reward_fn=reward_fn, **kwargs)
        self.render_mode = self.core.config.render_mode
        self._renderer = EpisodeRenderer(self.core, self.render_mode, fps=self.metadata["render_fps"])
        self.possible_agents: list[str] = list(self.core.possible_agents)
        self._index_of = self.core.slots.index_of
        self.agents: list[str] = []

    # -- what the core owns, under the names users and tools know ---------------------------

    @property
    def config(self):
        """The validated :class:`~roadsense_marl.env.config.EnvConfig`."""
        return self.core.config

    @property
    def scenario(self):
        return self.core.scenario

    @property
    def step_length(self) -> float:
        """SUMO step length (s)."""
        return self.core.step_length

    @property
    def radio(self):
        return self.core.radio

    @property
    def sim(self):
        return self.core.sim

    @property
    def num_steps(self) -> int:
        """Steps taken in the current episode."""
        return self.core.num_steps

    @property
    def record(self):
        """The public :class:`~roadsense_marl.env.core.StepRecord` of the latest step."""
        return self.core.record

    @property
    def sim_states(self):
        """The latest ground-truth :class:`~roadsense_marl.sim.VehicleStates` from SUMO (for tests and evaluation)."""
        return self.core.states

    @property
    def controlled(self) -> frozenset[str] | None:
        """Agents whose actions drive their vehicle (None: all)."""
        return self.core.controlled

    @controlled.setter
    def controlled(self, agents: frozenset[str] | None) -> None:
        self.core.controlled = agents

    # -- PettingZoo API ---------------------------------------------------------------------

    def observation_space(self, agent: str) -> spaces.Space:
        self._check_possible(agent)
        return self.core.observation_space

    def action_space(self, agent: str) -> spaces.Box:
        self._check_possible(agent)
        return self.core.action_space

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        core = self.core
        core.reset(seed)
        self._renderer.reset()
        live = np.flatnonzero(core.live)
        self.agents = self._names(live)
        obs = self._obs_dict(self.agents, self._in_order(live))
        onset = core.record.hazard_onset_step
        equipped = core.record.equipped
        infos = {a: {"hazard_vehicle": None, "hazard_onset_step": onset, "equipped": bool(equipped[s])}
                 for a, s in zip(self.agents, self._in_order(live).tolist())}
        if self.render_mode == "human":
            self.render()
        return obs, infos

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        core = self.core
        if not self.agents:
            if getattr(core, "_unpickled", False):
                core.step(None)  # raises the restored-from-pickle error
            raise RuntimeError("step() called on an ended episode (no agents left): call reset() first")
        acts = self._slot_actions(actions)  # a bad action raises here and changes nothing
        before, states_before = core.live.copy(), core.states
        try:
            core.step(acts)
        except BaseException:
            if core.episode_over:  # the simulation failed: the episode is over, not half-alive
                self.agents = []
            raise
        self._renderer.note_crashes(states_before)
        out_slots = self._in_order(np.flatnonzero(before | core.joined))
        out = core.slots.ids[out_slots].tolist()
        obs = self._obs_dict(out, out_slots)
        rewards = dict(zip(out, core.reward[out_slots].tolist()))
        terminations = dict(zip(out, core.terminated[out_slots].tolist()))
        truncations = dict(zip(out, core.truncated[out_slots].tolist()))
        infos = step_infos(core, out, out_slots)
        live = np.flatnonzero(core.live)
        self.agents = [] if core.episode_over else self._names(live)
        if self.render_mode == "human":
            self.render()  # the window follows the episode, as in Gymnasium's human mode
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        """``"rgb_array"``: uint8[260, 800, 3] annotated frame (see :func:`roadsense_marl.env.render.draw_frame`);
        ``"human"``: the same frame in a matplotlib window, returns None."""
        return self._renderer.render()

    def visible_peers(self, agent: str) -> list[str]:
        """Senders in ``agent``'s peer table this step (nearest first): what it knows of, via radio."""
        self._check_possible(agent)
        core = self.core
        slot = core.slots.slot_of.get(agent)
        rec = core.record
        sender = rec.extra("peer_sender") if "peer_sender" in rec.row_extras else None
        if slot is None or sender is None or agent not in self.agents:
            return []
        ids = rec.radio_ids  # radio slots: agents' own, then equipped vehicles that are not agents
        return [ids[j] for j in sender[slot].tolist() if j >= 0]

    def close(self) -> None:
        self.core.close()
        self._renderer.close()

    def state(self) -> np.ndarray:
        """Global state: every possible agent's [x, y, speed, accel, heading/360], zeros if absent."""
        out = np.zeros((len(self.possible_agents), 5), dtype=np.float32)
        rec = self.core.record
        s = rec.states
        if s is not None and s.n and not self.core.episode_over:
            idx = self.core.slots.agent_index[rec.slots]
            out[idx] = np.stack([s.x, s.y, s.speed, s.accel, s.heading_deg / 360.0], axis=1)
        return out

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.core.episode_over:
            self.agents = []

    # -- the dict view ----------------------------------------------------------------------

    def _in_order(self, slots: np.ndarray) -> np.ndarray:
        """``slots`` sorted by their agents' order in ``possible_agents``."""
        if len(slots) > 1 and not self.core.slots.in_order:
            slots = slots[np.argsort(self.core.slots.agent_index[slots], kind="stable")]
        return slots

    def _names(self, slots: np.ndarray) -> list[str]:
        """Agents of ``slots`` in ``possible_agents`` order."""
        return self.core.slots.ids[self._in_order(slots)].tolist()

    def _obs_dict(self, names: list[str], slots: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """``{agent: {key: row}}`` for ``names`` in ``slots`` (same order)."""
        # One copy per key per step; every agent's entry is a row view of that copy.
        parts = {k: buf[slots] for k, buf in self.core.obs.items()}
        keys = tuple(parts)
        return {a: {k: parts[k][i] for k in keys} for i, a in enumerate(names)}

    def _check_possible(self, agent: str) -> None:
        if agent not in self._index_of:
            raise ValueError(
                f"unknown agent {agent!r}: not a vehicle of scenario {self.scenario.name!r} "
                f"(possible agents: {_preview(self.possible_agents)})"
            )

    def _slot_actions(self, actions: Any) -> np.ndarray:
        """float64[S] from a PettingZoo action dict; ValueError naming the agent for anything bad."""
        if not isinstance(actions, dict):
            raise ValueError(
                f"actions must be a dict {{agent: action}} for the live agents, got {type(actions).__name__}"
            )
        core = self.core
        slot_of = core.slots.slot_of
        live = core.live
        extra = [a for a in actions if not (a in slot_of and live[slot_of[a]])]
        if extra:
            a = sorted(extra, key=str)[0]
            if a in self._index_of:
                raise ValueError(f"action for agent {a!r}, which is not live this step; live agents: {_preview(self.agents)}")
            raise ValueError(f"action for unknown agent {a!r}; live agents: {_preview(self.agents)}")
        out = np.zeros(core.n_slots)
        if not actions:
            return out
        names = list(actions)
        try:
            arr = np.asarray([actions[a] for a in names])
            ok = arr.dtype.kind in "iuf" and (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1))
        except (ValueError, TypeError):
            ok = False
        if not ok:
            for a in names:  # find and name the offending agent
                value = actions[a]
                kind = np.asarray(value).dtype.kind if not isinstance(value, (str, bytes)) else "U"
                if value is None or kind not in "iuf":
                    raise ValueError(
                        f"action for agent {a!r} must be a real number (or an array of one), got {value!r} "
                        f"({type(value).__name__})"
                    )
                shape = np.shape(value)
                if np.size(value) != 1 or len(shape) > 1:
                    raise ValueError(f"action for agent {a!r} must have shape (1,) (a single number), got shape {shape}")
            # each is fine: scalars mixed with shape-(1,) arrays
            arr = np.array([np.asarray(actions[a], dtype=np.float64).reshape(-1)[0] for a in names])
        arr = arr.reshape(-1).astype(np.float64)
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            space = core.action_space
            raise ValueError(
                f"action for agent {names[i]!r} is {arr[i]}; it must be a finite number in [{space.low[0]}, {space.high[0]}]"
            )
        out[np.fromiter((slot_of[a] for a in names), dtype=np.int64, count=len(names))] = arr
        return out


class EpisodeRenderer:
    """What the views draw: annotated frames of the core's latest step, crash sites, the window.

    SUMO removes crashed vehicles; their last positions are kept (only in steps with a
    collision) so frames show the wreck. ``render_mode="human"`` shows frames in a matplotlib
    window (:class:`~roadsense_marl.env.render.HumanViewer`; ValueError without a display).
    """

    def __init__(self, core: ConvoyCore, render_mode: str | None, fps: float = 10.0) -> None:
        self.core = core
        self.render_mode = render_mode
        self.viewer = None
        if render_mode == "human":
            from roadsense_marl.env.render import HumanViewer

            try:
                self.viewer = HumanViewer(title=ENV_NAME, fps=fps)
            except RuntimeError as exc:
                raise ValueError(str(exc)) from None
        self.crash_sites: dict[str, tuple[float, float, float]] = {}

    def reset(self) -> None:
        self.crash_sites = {}

    def note_crashes(self, before) -> None:
        """After a step: keep where the vehicles that collided in it were (``before``: states before the step)."""
        s = self.core.record.states
        if s is None or not s.collided or before is None:
            return
        for v in set(s.collided) & set(before.ids):
            i = before.index(v)
            self.crash_sites[v] = (float(before.x[i]), float(before.y[i]), float(before.length[i]))

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            import gymnasium

            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        from roadsense_marl.env.render import draw_frame

        core = self.core
        rec = core.record
        s = rec.all_states if rec.all_states is not None else rec.states  # agents and other traffic
        if s is None:
            raise RuntimeError("render() before reset()")
        wrecks = [v for v in self.crash_sites if v not in s.ids]
        w = np.array([self.crash_sites[v] for v in wrecks], dtype=np.float64).reshape(-1, 3)
        xy = np.concatenate([np.stack([s.x, s.y], axis=1), w[:, :2]])
        length = np.concatenate([s.length, w[:, 2]])
        radio_slots = rec.radio_slots if rec.all_states is not None else rec.slots
        row_of_slot = np.full(core.radio.capacity, -1, dtype=np.int64)
        on_air = radio_slots >= 0
        row_of_slot[radio_slots[on_air]] = np.flatnonzero(on_air)
        links = rec.all_links if rec.all_links is not None else rec.links
        ok = np.asarray(links.delivered, dtype=bool)
        pairs = np.stack(
            [row_of_slot[np.asarray(links.sender)[ok]], row_of_slot[np.asarray(links.receiver)[ok]]], axis=1
        ).reshape(-1, 2)
        pairs = pairs[(pairs >= 0).all(axis=1)]
        frame = draw_frame(
            xy,
            length,
            braking=np.concatenate([s.accel < -BRAKING_DECEL - 1.0, np.zeros(len(wrecks), bool)]),
            crashed=np.concatenate([np.zeros(s.n, bool), np.ones(len(wrecks), bool)]),
            ids=list(s.ids) + wrecks,
            hazard_id=rec.hazard_vehicle,
            links=pairs,
            time_s=s.time_s,
            step=core.num_steps,
            max_steps=core.max_steps,
        )
        if self.render_mode == "human":
            self.viewer.show(frame)
            return None
        return frame

    def close(self) -> None:
        if self.viewer is not None:
            self.viewer.close()


def step_infos(core: ConvoyCore, names: list[str], slots: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per-agent infos of the latest step for ``names`` in ``slots`` (the views' only info builder).

    Every agent: ``reward_components``, ``hazard_vehicle``, ``hazard_onset_step``, ``equipped``
    (carries a radio this episode); on the road:
    ``gap`` (m), ``braking_signal``, ``n_visible_peers``; ended: ``reason`` (``collision``,
    ``arrived``, ``max_steps``) and, if truncated, ``TimeLimit.truncated``.
    """
    rec = core.record
    keys = tuple(rec.reward_components)
    columns = rec.reward_table[slots].tolist() if keys else [()] * len(names)
    g = rec.gap[slots]
    on_road = ~np.isnan(g)
    gap = g.tolist()
    have = rec.row_extras
    signal = rec.extra("braking_signal")[slots].tolist() if "braking_signal" in have else None
    n_vis = rec.extra("n_visible")[slots].tolist() if "n_visible" in have else None
    reason = rec.end_reason[slots].tolist()
    equipped = rec.equipped[slots].tolist()
    hv, onset = rec.hazard_vehicle, rec.hazard_onset_step
    infos: dict[str, dict[str, Any]] = {}
    for i, (a, parts) in enumerate(zip(names, columns)):
        info: dict[str, Any] = {"reward_components": dict(zip(keys, parts))}
        if on_road[i]:
            info["gap"] = gap[i]
            if signal is not None:
                info["braking_signal"] = signal[i]
            if n_vis is not None:
                info["n_visible_peers"] = n_vis[i]
        info["hazard_vehicle"] = hv
        info["hazard_onset_step"] = onset
        info["equipped"] = equipped[i]
        if reason[i] >= 0:
            info["reason"] = END_REASONS[reason[i]]
            if reason[i] > 0:
                info["TimeLimit.truncated"] = True
        infos[a] = info
    return infos


def _preview(names: list[str], n: int = 8) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return f"[{shown}{', ...' if len(names) > n else ''}] ({len(names)} in all)"
