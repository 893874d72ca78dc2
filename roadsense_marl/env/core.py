"""The array core: one convoy episode as arrays over vehicle slots, one call per step.

Every view (the PettingZoo ``ParallelEnv`` and its AEC conversion, the single-ego Gymnasium
env, the direct SB3 ``VecEnv``) drives one :class:`ConvoyCore` and only reshapes what it
exposes; none of them copies its logic. A step reads as its phases, each owned by a module:

1. actions -> SUMO commands (:mod:`roadsense_marl.env.actions`)
2. the hazard's commands (:mod:`roadsense_marl.env.hazards`)
3. SUMO advances one step (:mod:`roadsense_marl.sim`)
4. agents join and leave, slots are assigned (:mod:`roadsense_marl.env.agents`)
5. every radio-equipped vehicle (agent or not) broadcasts each beacon due inside the step at
   its own time, with its true state interpolated to that time; each equipped agent's buffer
   takes what has arrived by the step's end (:mod:`roadsense_marl.espnow`, see
   :meth:`ConvoyCore._radio_phase`)
6. observations from each agent's own buffer (:mod:`roadsense_marl.env.observations`, pluggable)
7. rewards from ground truth (:mod:`roadsense_marl.env.rewards`, pluggable), terminations,
   truncations and the public per-step :class:`StepRecord`.

Slots: see :mod:`roadsense_marl.env.agents`. All arrays below are preallocated over slots and
overwritten in place each step: copy what you keep.

Time: every time constant is in seconds (or ms for the radio); the core converts them to steps
with the run's step length in one place, :func:`~roadsense_marl.env.config.seconds_to_steps`
(episode length ``max_time_s``, hazard onset window and override delay, the warm-up allowance).
"""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roadsense_marl.env.actions import CommandCache, action_space, check_slot_actions, commanded_decel, speed_commands
from roadsense_marl.env.agents import AgentSlots, OtherSlots, draw_equipped, select_vehicles, type_alternatives
from roadsense_marl.env.config import RADIO_PROFILES, EnvConfig, make_env_config, radio_profile_path, seconds_to_steps
from roadsense_marl.env.hazards import HazardRuntime, draw_hazard_plan
from roadsense_marl.env.observations import DeepSetObservation, ObservationFunction
from roadsense_marl.env.rewards import ConvoyReward, RewardFunction
from roadsense_marl.espnow.core import beacon_calls

#: Seconds of SUMO time reset() waits for the first vehicle (the scenario's vehicle set covers this
#: allowance plus the episode, see :func:`roadsense_marl.sim.registry.load_scenario`); converted
#: to steps with the run's step length.
MAX_WARMUP_S = 300.0
#: Why an agent ended (``info["reason"]`` in every view): index of :attr:`StepRecord.end_reason`.
END_REASONS = ("collision", "max_steps", "arrived")


@dataclass
class StepView:
    """What observation and reward functions see after a step (rows = agents on the road; vehicles
    that are not agents are left out, a leader that is not an agent is -1 with its true gap kept).

    ``states``: ground truth (:class:`~roadsense_marl.sim.VehicleStates`, SI units, SUMO
    conventions); ``slots`` int64[n] slot of each row; ``row_of_slot`` int64[S] (-1: not on the
    road); ``rx``: the valid messages in the receivers' own buffers (:class:`~roadsense_marl.espnow.RxBatch`,
    receiver/sender are slots); ``imposed`` bool[n] rows whose motion the hazard imposes;
    ``t_ms`` simulation time (ms); ``num_steps`` steps taken; ``config`` the :class:`EnvConfig`;
    ``step_length`` seconds per step (convert per-step quantities with it, e.g. the braking-signal
    decay :func:`~roadsense_marl.env.observations.braking_signal_decay`); ``cbr`` float64[R] each
    radio slot's own channel busy ratio (agent slots first; what its radio measures; 0 with the
    shared channel off; :attr:`~roadsense_marl.espnow.Radio.cbr`, read-only).
    ``ended_victim`` bool[k], for :meth:`~roadsense_marl.env.rewards.RewardFunction.terminal`: the
    agents that left in this step and were only the victim of their collision (SUMO's collision
    records, :attr:`~roadsense_marl.sim.VehicleStates.victims`), aligned with its ``collided``.
    """

    config: EnvConfig
    states: Any
    slots: np.ndarray
    row_of_slot: np.ndarray
    rx: Any
    imposed: np.ndarray
    t_ms: float
    num_steps: int
    step_length: float
    cbr: Any = None
    ended_victim: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


@dataclass
class StepRecord:
    """The public record of the latest step (evaluation and tests read this, never internals).

    Arrays over slots (S); NaN / -1 where a slot holds no agent.

    - ``num_steps``: steps taken in the episode; ``time_s``: SUMO time after the step.
    - ``states``: ground truth of the agents on the road after the step; ``slots``: int64[n] slot of
      each of its rows.
    - ``agent_index``: int64[S] index in ``possible_agents`` of each slot's agent (-1 empty).
    - ``actions``: float64[S] the clipped action each live agent gave (NaN: none);
      ``decel_cmd``: float64[S] the deceleration it commands (m/s^2, :func:`~roadsense_marl.env.actions.commanded_decel`);
      ``acted``: bool[S] the action drove the vehicle (not padding, not hazard-imposed, controlled).
    - ``gap``, ``speed``, ``leader_slot``: truth after the step by slot (gap inf: no leader), computed
      on first access in a step.
    - ``reward``: float64[S]; ``reward_components``: ``{name: float64[S]}``, columns of
      ``reward_table`` float64[S, C] (C = the reward function's ``components``, in order).
    - ``extras``: ``{name: array[S, ...]}`` from the observation function (shipped: ``braking_signal``,
      ``n_visible``, ``peer_sender``, ``ahead_distance``, ``ahead_closing``, ``required_decel``,
      ``ahead_sender``); slots without an agent hold 0 (integer extras: -1);
      ``row_extras`` the same by vehicle row.
    - ``terminated`` / ``truncated``: bool[S] agents that collided / arrived, vanished or hit
      ``max_steps`` in this step; ``joined``: bool[S] new agents.
    - ``links``: this step's transmissions between agents (:class:`~roadsense_marl.espnow.LinkBatch`,
      agent slots; with several beacons per vehicle in a step, one block per beacon round, in time
      order); ``all_links``: every transmission, senders that are not agents included (radio
      slots: ``>= n_slots`` are equipped non-agents, named by ``radio_ids``);
      ``radio_params``: this episode's (domain-randomised) radio parameters; ``cbr``: float64[S]
      each agent slot's channel busy ratio (0..1) over the radio's CBR window ending at the step's
      receive (:attr:`~roadsense_marl.espnow.Radio.cbr`; 0 with the shared channel off).
    - ``equipped``: bool[S] the slot's agent carries a radio this episode (``penetration_rate``);
      ``all_states``: every vehicle on the road (agents and not; ``states`` holds the agents only);
      ``radio_slots``: int64[n] radio slot of each row of ``all_states`` (-1: no radio);
      ``radio_ids``: object[R] vehicle in each radio slot (None: empty; R = n_slots + other slots).
    - ``hazard_vehicle`` / ``hazard_slot`` / ``hazard_onset_step``: the braking vehicle (None / -1)
      and the planned onset step (None: no hazard this episode); ``hazard_onset_s``: the same onset
      in seconds after the episode's first state (``hazard_onset_step * step_length``; None: no hazard).
    """

    num_steps: int = 0
    time_s: float = 0.0
    states: Any = None
    slots: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    agent_index: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    actions: np.ndarray = field(default_factory=lambda: np.empty(0))
    decel_cmd: np.ndarray = field(default_factory=lambda: np.empty(0))
    acted: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    reward: np.ndarray = field(default_factory=lambda: np.empty(0))
    reward_components: dict = field(default_factory=dict)
    reward_table: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    row_extras: dict = field(default_factory=dict)
    n_slots: int = 0
    terminated: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    truncated: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    joined: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    links: Any = None
    radio_params: Any = None
    radio_cbr: Any = None  # the radio's float64[capacity] CBR array (read through ``cbr``)
    hazard_vehicle: str | None = None
    hazard_slot: int = -1
    hazard_onset_step: int | None = None
    equipped: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    all_states: Any = None
    radio_slots: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    radio_ids: np.ndarray = field(default_factory=lambda: np.empty(0, object))
    all_links: Any = None
    hazard_onset_s: float | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def _by_slot(self, key: str, rows: np.ndarray, fill: Any) -> np.ndarray:
        """``rows`` (one value per vehicle row of ``states``) scattered over slots, cached for this step."""
        out = self._cache.get(key)
        if out is None:
            out = np.full((self.n_slots, *rows.shape[1:]), fill, dtype=rows.dtype)
            out[self.slots] = rows
            self._cache[key] = out
        return out

    @property
    def cbr(self) -> np.ndarray:
        """float64[S]: channel busy ratio each slot measured at this step's receive (0..1; 0 with the
        shared channel off or no radio yet); a copy."""
        if self.radio_cbr is None:
            return np.zeros(self.n_slots)
        return np.array(self.radio_cbr[: self.n_slots], dtype=np.float64)

    @property
    def gap(self) -> np.ndarray:
        """float64[S]: true bumper-to-bumper gap to the leader after the step (m; inf: no leader; NaN: no vehicle)."""
        return self._by_slot("gap", self.states.gap, np.nan)

    @property
    def speed(self) -> np.ndarray:
        """float64[S]: true speed after the step (m/s; NaN: no vehicle)."""
        return self._by_slot("speed", self.states.speed, np.nan)

    @property
    def leader_slot(self) -> np.ndarray:
        """int64[S]: slot of each vehicle's leader after the step (-1: none)."""
        s = self.states
        rows = np.where(s.leader >= 0, self.slots[np.maximum(s.leader, 0)], -1) if s.n else np.empty(0, np.int64)
        return self._by_slot("leader_slot", rows, -1)

    @property
    def end_reason(self) -> np.ndarray:
        """int8[S]: why each slot's agent ended in this step, an index into :data:`END_REASONS`
        (-1: it did not end). Collision: terminated; truncated on the road: ``max_steps``;
        truncated off the road (arrived at its route end, or vanished): ``arrived``."""
        out = self._cache.get("end_reason")
        if out is None:
            out = np.where(self.terminated, 0, np.where(self.truncated, np.where(np.isnan(self.gap), 2, 1), -1))
            out = self._cache["end_reason"] = out.astype(np.int8)
        return out

    @property
    def extras(self) -> dict[str, np.ndarray]:
        """``{name: array[S, ...]}`` from the observation function; 0 (integers: -1) where no vehicle."""
        return {k: self.extra(k) for k in self.row_extras}

    def extra(self, name: str) -> np.ndarray:
        """One extra of the observation function by slot (see :attr:`extras`); KeyError names the known ones."""
        if name not in self.row_extras:
            raise KeyError(f"no extra {name!r} this step; the observation function gave {sorted(self.row_extras)}")
        v = np.asarray(self.row_extras[name])
        return self._by_slot("extras/" + name, v, -1 if v.dtype.kind in "iu" else 0)


def resolve_radio(radio: Any) -> Any:
    """A radio profile name becomes its shipped file; anything else goes to ``load_params``.

    Raises ValueError for a string that is neither a profile nor an existing file.
    """
    if isinstance(radio, str) and radio in RADIO_PROFILES:
        return radio_profile_path(radio)
    if isinstance(radio, str) and not Path(radio).is_file():
        raise ValueError(
            f"radio {radio!r} is neither a radio profile ({', '.join(RADIO_PROFILES)}) nor an existing "
            "JSON/YAML parameter file"
        )
    return radio


def interpolate_states(prev_states, states, row0: np.ndarray, row1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Sender states at beacon times between two SUMO states (the NumPy reference).

    :param prev_states, states: :class:`~roadsense_marl.sim.VehicleStates` at the start and the end
        of the step.
    :param row0, row1: int64[m] each beacon's sender row in ``prev_states`` / ``states``.
    :param w: float64[m] ``(t_beacon - t_start) / (t_end - t_start)`` in [0, 1].
    :returns: float64[m, 5]: x, y (m), speed (m/s), heading (SUMO compass degrees, along the shorter
        arc, in [0, 360)), accel (m/s^2); linear in ``w``.
    """
    def lerp(a0, a1):
        return a0[row0] + w * (a1[row1] - a0[row0])

    h0 = prev_states.heading_deg[row0]
    heading = (h0 + w * ((states.heading_deg[row1] - h0 + 180.0) % 360.0 - 180.0)) % 360.0
    return np.stack([lerp(prev_states.x, states.x), lerp(prev_states.y, states.y),
                     lerp(prev_states.speed, states.speed), heading, lerp(prev_states.accel, states.accel)], axis=1)


def check_radio_timing(params: Any, domain_randomization: bool) -> None:
    """Raise ValueError when no message can ever be fresh under these radio parameters.

    A message is shown while ``now - send time < observation.staleness_threshold_ms``, and only
    after it has arrived (send time + latency); copies with ``latency >= staleness_threshold_ms``
    are dropped as stale on arrival. Beacons go at their own times inside a step with random
    per-vehicle phases, so the age at which a receiver first sees a message can be as small as
    its latency, at any step length: a peer is visible in some steps unless the threshold is at or
    below the smallest latency the model can draw,
    ``max(1, base)`` ms without jitter (``base``: ``latency.base_ms``, or the low end of
    ``domain_randomization.latency_range_ms`` when domain randomisation is on; ``distance_factor``
    only adds), 1 ms with jitter (Gaussian, clipped at 1 ms).

    :param params: :class:`~roadsense_marl.espnow.RadioParams` (the nominal ones).
    :param domain_randomization: whether the episode parameters are drawn from the
        ``domain_randomization`` ranges (the env's ``domain_randomization`` and the file's
        ``domain_randomization.enabled``).
    """
    if domain_randomization:
        base, base_key = params.dr_latency_range_ms[0], "domain_randomization.latency_range_ms[0]"
        jitter, jitter_key = params.dr_jitter_std_range_ms[1], "domain_randomization.jitter_std_range_ms[1]"
    else:
        base, base_key = params.latency_base_ms, "latency.base_ms"
        jitter, jitter_key = params.latency_jitter_std_ms, "latency.jitter_std_ms"
    if jitter > 0:
        min_latency, why = 1.0, f"{jitter_key} = {jitter:g} ms > 0, latencies are clipped at 1 ms"
    else:
        min_latency, why = max(1.0, base), f"{base_key} = {base:g} ms, {jitter_key} = 0, at least 1 ms"
    stale = params.staleness_threshold_ms
    if stale <= min_latency:
        raise ValueError(
            f"radio {params.source}: observation.staleness_threshold_ms = {stale:g} ms is not above the smallest "
            f"latency the radio can draw, {min_latency:g} ms ({why}): every message would be stale on arrival and "
            "no agent could ever see a peer; give observation.staleness_threshold_ms above "
            f"{min_latency:g} ms (the measured profile uses 500 ms)"
        )


class ConvoyCore:
    """One convoy episode as arrays over vehicle slots (see the module docstring).

    :param config: an :class:`EnvConfig`, a mapping, a YAML path or None; ``overrides`` are
        env config keys (validated, ValueError naming the key).
    :param observation_fn: an :class:`~roadsense_marl.env.observations.ObservationFunction`
        (default: the shipped :class:`~roadsense_marl.env.observations.DeepSetObservation`).
    :param reward_fn: a :class:`~roadsense_marl.env.rewards.RewardFunction` (default: the shipped
        :class:`~roadsense_marl.env.rewards.ConvoyReward`).
    :param warmup_in_episode: the episode may run :data:`MAX_WARMUP_S` longer than its length
        (the single-ego view: an ego that departs late still gets its own ``max_steps``).

    Episode length: ``max_steps`` steps, or ``ceil(max_time_s / step_length)`` steps
    (:attr:`max_steps` holds the result). Raises ValueError, naming the keys, for a radio
    configuration in which no message can ever be fresh (:func:`check_radio_timing`).

    Agents are the scenario's vehicles the config's ``agents`` selector chooses (``possible_agents``;
    ``other_vehicles`` are driven by SUMO); ``equipped_vehicles`` bool[V] (over
    ``scenario.vehicle_ids``) says who carries a radio this episode (``penetration_rate``).

    After :meth:`reset` / :meth:`step`: ``obs`` (``{key: float32[S, ...]}``), ``reward``
    float64[S], ``terminated`` / ``truncated`` / ``joined`` / ``acted`` / ``live`` / ``equipped`` bool[S],
    ``agent_of_slot`` list[str | None], ``episode_over``, ``num_steps`` and ``record``.
    """

    def __init__(
        self,
        config: Any = None,
        *,
        observation_fn: ObservationFunction | None = None,
        reward_fn: RewardFunction | None = None,
        warmup_in_episode: bool = False,
        **overrides: Any,
    ) -> None:
        from roadsense_marl.espnow import Radio, load_params
        from roadsense_marl.sim import SumoSimulation, resolve_scenario

        cfg = config if isinstance(config, EnvConfig) and not overrides else make_env_config(config, **overrides)
        self.config: EnvConfig = cfg
        if observation_fn is not None and not isinstance(observation_fn, ObservationFunction):
            raise ValueError(f"observation_fn must be an ObservationFunction, got {type(observation_fn).__name__}")
        if reward_fn is not None and not isinstance(reward_fn, RewardFunction):
            raise ValueError(f"reward_fn must be a RewardFunction, got {type(reward_fn).__name__}")
        self._warmup_in_episode = bool(warmup_in_episode)
        self.scenario, self.step_length = self._resolve_scenario(resolve_scenario)
        #: The episode length in steps (``max_steps``, or ``max_time_s`` converted; plus the warm-up
        #: allowance with ``warmup_in_episode``).
        self.max_steps = self.episode_steps(self.step_length)
        hazard = cfg.hazard.in_seconds(self.step_length)  # deprecated step keys: converted, with a warning
        if hazard is not cfg.hazard:
            cfg = self.config = dataclasses.replace(cfg, hazard=hazard)
        sc = self.scenario
        vids = tuple(sc.vehicle_ids)
        vtypes = sc.vehicle_types or ("DEFAULT_VEHTYPE",) * len(vids)
        vclasses = sc.vehicle_classes or ("passenger",) * len(vids)
        # A vehicle typed by a <vTypeDistribution> may get any member's vType/vClass (SUMO draws
        # per seed): it is a possible agent if some member is chosen, and is decided when it departs.
        owner, alt_types, alt_classes = type_alternatives(vtypes, vclasses, dict(sc.vtype_classes),
                                                          dict(sc.vtype_alternatives))
        agent_any, agent_all = _any_all(select_vehicles(cfg.agents, "agents", vids, alt_types, alt_classes,
                                                        sc.name, owner), owner, len(vids))
        elig_any, elig_all = _any_all(select_vehicles(cfg.equipped, "equipped", vids, alt_types, alt_classes,
                                                      sc.name, owner), owner, len(vids))
        #: bool[V] over the scenario's vehicles: may carry a radio (the ``equipped`` selector).
        self._eligible_base = elig_all
        self._eligible = elig_all.copy()
        #: Vehicles whose agent-hood or radio eligibility depends on SUMO's vType draw.
        self._undecided = frozenset(v for v, u in zip(vids, (agent_any != agent_all) | (elig_any != elig_all)) if u)
        self._decided: set[str] = set()
        self.possible_agents: tuple[str, ...] = tuple(v for v, a in zip(vids, agent_any) if a)
        #: The scenario's vehicles that may not be agents (driven by SUMO; radio only if equipped).
        self.other_vehicles: tuple[str, ...] = tuple(v for v, a in zip(vids, agent_all) if not a)
        self._vehicle_index = {v: i for i, v in enumerate(vids)}
        self._agent_vehicle_index = np.flatnonzero(agent_any)
        self.n_slots = int(cfg.max_vehicles or len(self.possible_agents))
        n_other = len(self.other_vehicles) if cfg.max_other_vehicles is None else cfg.max_other_vehicles
        #: Every vehicle is an agent and carries a radio: radio slot = agent slot, no masks.
        self._plain = not self.other_vehicles and cfg.penetration_rate >= 1.0 and bool(self._eligible.all())
        self.other_slots = OtherSlots(self.n_slots, 0 if self._plain else n_other)
        self.radio = Radio(
            load_params(resolve_radio(cfg.radio)), capacity=self.n_slots + self.other_slots.n,
            domain_randomization=cfg.domain_randomization,
        )
        check_radio_timing(self.radio.nominal_params, self.radio.domain_randomization)
        self.sim = SumoSimulation(
            self.scenario,
            backend=cfg.backend,
            step_length=self.step_length,
            gui=cfg.sumo_gui,
            sumo_args=cfg.sumo_args,
        )
        self.observation_fn = observation_fn or DeepSetObservation()
        self.reward_fn = reward_fn or ConvoyReward()
        self.observation_space = self.observation_fn.space(cfg)
        self.action_space = action_space(cfg.action_mode)
        self._act_low, self._act_high = float(self.action_space.low[0]), float(self.action_space.high[0])
        self.slots = AgentSlots(self.possible_agents, self.n_slots,
                                tuple(v for v, a in zip(vids, agent_any) if not a))
        #: bool[S]: the slot's agent carries a radio this episode.
        self.equipped = np.zeros(self.n_slots, dtype=bool)
        #: bool[V] over the scenario's vehicles: equipped this episode (drawn at reset).
        self.equipped_vehicles = np.ones(len(vids), dtype=bool)
        self.agent_states = None
        self._radio_key = None
        self._view_rows = None
        #: Agents whose actions drive their vehicle (None: all). Others are left to SUMO's
        #: car-following model but still broadcast, observe and get rewards.
        self.controlled: frozenset[str] | None = None
        #: Optional ``(ids, leader) -> bool[n]``: which vehicles the hazard may pick.
        self.hazard_candidates = None
        s = self.n_slots
        self.obs = {k: np.zeros((s, *sp.shape), dtype=sp.dtype) for k, sp in self.observation_space.spaces.items()}
        self.reward = np.zeros(s)
        self.terminated = np.zeros(s, dtype=bool)
        self.truncated = np.zeros(s, dtype=bool)
        self.joined = np.zeros(s, dtype=bool)
        self.acted = np.zeros(s, dtype=bool)
        self._controlled = np.ones(s, dtype=bool)
        self.record = StepRecord()
        self.num_steps = 0
        self.episode_over = True
        self.states = None
        self._root_seed: np.random.SeedSequence | None = None
        self._ended = np.empty(0, np.int64)
        self._prev_row_of_radio: np.ndarray | None = None
        self._links = None
        weakref.finalize(self, _close_sim, self.sim)

    def episode_steps(self, step_length: float) -> int:
        """Steps in an episode at ``step_length`` s: ``max_steps``, or ``max_time_s`` converted
        (:func:`~roadsense_marl.env.config.seconds_to_steps`), plus ``ceil(MAX_WARMUP_S / step_length)``
        with ``warmup_in_episode``."""
        cfg = self.config
        steps = cfg.max_steps if cfg.max_steps is not None else max(1, seconds_to_steps(cfg.max_time_s, step_length))
        if self._warmup_in_episode:
            steps += seconds_to_steps(MAX_WARMUP_S, step_length)
        return int(steps)

    def _resolve_scenario(self, resolve_scenario) -> tuple[Any, float]:
        """The scenario and the run's step length. ``possible_agents`` covers every vehicle that can
        depart in the warm-up allowance plus this episode, whose length in steps needs the step
        length: with ``step_length`` unset the scenario's own is assumed to be 0.1 s (every shipped
        one) and the scenario is asked again if it is not."""
        from roadsense_marl.sim.registry import DEFAULT_STEP_LENGTH

        cfg = self.config
        kwargs = dict(cfg.scenario_kwargs)
        if cfg.scenario == "highway" or "horizon_s" in kwargs:
            scenario = resolve_scenario(cfg.scenario, **kwargs)
            return scenario, float(cfg.step_length or scenario.default_step_length)
        if cfg.step_length is not None:
            kwargs.setdefault("step_length", cfg.step_length)
        guess = float(kwargs.get("step_length") or DEFAULT_STEP_LENGTH)
        scenario = resolve_scenario(cfg.scenario, **{"episode_steps": self.episode_steps(guess), **kwargs})
        step_length = float(kwargs.get("step_length") or scenario.default_step_length)
        if step_length != guess and "episode_steps" not in cfg.scenario_kwargs:
            scenario = resolve_scenario(cfg.scenario, **{**kwargs, "episode_steps": self.episode_steps(step_length)})
        return scenario, step_length
    # ---- public state ---------------------------------------------------------------------

    @property
    def live(self) -> np.ndarray:
        """bool[S]: slots holding an agent that acts in the next step."""
        return self.slots.live

    @property
    def agent_of_slot(self) -> list[str | None]:
        """The agent in each slot (None: empty); an agent that ended in the last step is still named."""
        return self.slots.agent_of_slot

    # ---- episode ----------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Start an episode (SUMO started on the first call, ``load()`` after).

        ``seed`` (a non-negative int) seeds ``SeedSequence(seed)``, from which SUMO's ``--seed``,
        the radio, the hazard and the scenario variation each get a child; ``None`` continues the
        previous sequence. Raises ValueError for a bad seed; a SUMO failure closes SUMO and raises.
        """
        from roadsense_marl.sim import sample_variation

        cfg = self.config
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative whole number or None, got {seed!r}")
        if seed is not None or self._root_seed is None:
            self._root_seed = np.random.SeedSequence(None if seed is None else int(seed))
        episode_ss = self._root_seed.spawn(1)[0]
        sumo_ss, radio_ss, hazard_ss, variation_ss = episode_ss.spawn(4)
        equip_rng = np.random.default_rng(episode_ss.spawn(1)[0])  # the 5th child: earlier ones unchanged
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
        self.episode_over = True
        self._unpickled = False
        # who is an agent / equipped this episode: decided during warm-up for distribution-typed vehicles
        self.slots.reset()
        self.other_slots.reset()
        self._equip_draw = draw_equipped(equip_rng, cfg.penetration_rate, np.ones(len(self._eligible), bool))
        self._eligible = self._eligible_base.copy()
        self._decided = set()
        self.equipped_vehicles = self._equip_draw & self._eligible
        self.equipped[:] = False
        self._radio_key = None
        self._agent_slots = None  # no agent of the last episode is on the road
        states = self._guard(self._start_episode, sumo_seed, variation)
        self.radio.reset(radio_ss)
        self.hazard = HazardRuntime(
            draw_hazard_plan(cfg.hazard, np.random.default_rng(hazard_ss), self.step_length), self.hazard_candidates
        )
        self.commands = CommandCache(self.n_slots)
        self._controlled[:] = True  # set per joining vehicle from `controlled`
        self.observation_fn.reset(self.n_slots)
        for buf in self.obs.values():
            buf.fill(0)
        self.num_steps = 0
        self._t_ms = states.time_s * 1000.0
        self._prev_row_of_radio = None  # nothing of the last episode is on the road
        self._guard(self._enter, states, self._t_ms - self.step_length * 1000.0)

    def step(self, actions: Any) -> None:
        """Advance one step with one action per slot (float[S] or float[S, 1]; non-live entries ignored).

        Raises RuntimeError after the episode ended, ValueError for bad actions (nothing changes);
        any failure after that (e.g. SUMO died) ends the episode and closes SUMO before it propagates.
        """
        if self.episode_over:
            if getattr(self, "_unpickled", False):
                raise RuntimeError(
                    "step() on an env restored from a pickle: a running SUMO simulation cannot be pickled, so a "
                    "copy holds no episode; call reset() first"
                )
            raise RuntimeError("step() called on an ended episode (no agents left): call reset() first")
        acts = check_slot_actions(actions, self.slots.live, self.slots.agent_of_slot, self._act_low, self._act_high)
        self._guard(self._advance, acts)

    def close(self) -> None:
        """Close SUMO (idempotent; also done on error and at garbage collection)."""
        self.sim.close()

    # ---- phases -----------------------------------------------------------------------------

    def _advance(self, acts: np.ndarray) -> None:
        cfg, slots = self.config, self.slots
        t_step = self.num_steps
        states, row_slot = self.agent_states, self._agent_slots
        live = slots.live
        if len(self._ended):  # slots whose agent ended in the last step become free and empty
            for buf in self.obs.values():
                buf[self._ended] = 0
            slots.release_ended(self._ended)

        # 1. actions -> SUMO commands
        speed = np.zeros(self.n_slots)
        speed[row_slot] = states.speed
        self.hazard.pick(t_step, states, row_slot)  # at the onset: its action in this step is ignored too
        acted = live & self._controlled
        if self.hazard.imposed(t_step):
            acted[self.hazard.slot] = False
        act_slots = np.flatnonzero(acted)
        if len(act_slots):
            target, mode = speed_commands(
                cfg.action_mode, acts[act_slots], speed[act_slots], self.step_length, cfg.max_decel, cfg.max_accel,
                hold_speed=self.hazard.override(t_step),
            )
            self.commands.send(self.sim, slots.ids[act_slots], act_slots, target, mode)
        rec = self.record
        rec.actions = np.where(live, acts, np.nan)
        rec.decel_cmd = np.where(live, commanded_decel(acts, cfg.action_mode, cfg.max_decel), np.nan)
        self.acted = acted
        # 2. hazard
        self.hazard.advance(t_step, self.sim, self.commands)
        # 3. SUMO
        prev_t = self._t_ms
        new = self.sim.step()
        self.num_steps += 1
        if not self._agents_on(new, after_entered=True) and self.num_steps < self.max_steps and self._agents_to_come() \
                and self.sim.expected_vehicles() > 0:
            new = self._skip_empty_road(new)
        self._t_ms = new.time_s * 1000.0
        self._enter(new, prev_t)

    def _skip_empty_road(self, emptied):
        """The road became empty but SUMO will insert more vehicles: run SUMO on (each SUMO step
        counts towards ``max_steps``) until the next vehicle is on the road, so that the episode
        does not end in a gap of the traffic. Returns the first state with vehicles (or the state at
        ``max_steps``), carrying the arrivals and collisions of ``emptied`` so that the agents that
        left are reported in this step."""
        states = emptied
        while not self._agents_on(states) and self.num_steps < self.max_steps:
            states = self.sim.step()
            self.num_steps += 1
        return dataclasses.replace(states, arrived=emptied.arrived, collided=emptied.collided,
                                   collisions=emptied.collisions, departed=states.ids)

    def _enter(self, states, prev_t_ms: float) -> None:
        """Phases 4-7 for a new SUMO state (also the first state of an episode)."""
        cfg, slots = self.config, self.slots
        first = self.num_steps == 0
        # 4. agents join and leave
        if self._undecided:
            self._decide(states.ids)
        if first:
            changes = slots.update(states.ids, states.ids, (), (), states.time_s)
        else:
            changes = slots.update(states.ids, states.departed, states.arrived, states.collided, states.time_s)
        ended = np.union1d(changes.collided, changes.left) if len(changes.collided) or len(changes.left) else changes.left
        if len(ended):
            self.radio.forget(ended)
            self.hazard.left(ended, changes.collided)
        if len(changes.joined):
            self.equipped[changes.joined] = self.equipped_vehicles[
                self._agent_vehicle_index[slots.agent_index[changes.joined]]]
            self.commands.clear(changes.joined)
            self.observation_fn.clear(changes.joined)
            if self.controlled is not None:
                self._controlled[changes.joined] = [slots.agent_of_slot[s] in self.controlled for s in changes.joined]
        prev_states, self.states = self.states, states
        snd_slot, snd_rows, rcv_slot, rcv_rows = self._radio_rows(states)
        all_states, states = states, self._agent_view(states)
        row_slot = self._agent_slots
        n = len(row_slot)
        # 5. radio: every beacon of an equipped vehicle due inside the step, at its own time;
        # equipped agents take what has arrived
        t_ms = self._t_ms
        rx = None
        if all_states.n:
            self._radio_phase(prev_states, all_states, snd_slot, snd_rows, rcv_slot, rcv_rows, prev_t_ms, t_ms)
            rx = self.radio.receive(t_ms, rcv_slot)
        else:
            self._links = None
        prev_row = np.full(self.radio.capacity, -1, dtype=np.int64)
        if all_states.n:
            prev_row[snd_slot] = np.arange(all_states.n)[snd_rows]
        self._prev_row_of_radio = prev_row
        # 6. observations from each agent's own buffer
        row_of_slot = np.full(self.n_slots, -1, dtype=np.int64)
        row_of_slot[row_slot] = np.arange(n)
        imposed = np.zeros(n, dtype=bool)
        if self.hazard.imposed(self.num_steps - 1 if not first else -1) and row_of_slot[self.hazard.slot] >= 0:
            imposed[row_of_slot[self.hazard.slot]] = True
        view = StepView(cfg, states, row_slot, row_of_slot, rx, imposed, t_ms, self.num_steps, self.step_length,
                        self.radio.cbr)
        rec = self.record
        n_slots = self.n_slots
        names = self.reward_fn.components
        table = np.zeros((n_slots, len(names)))
        reward = np.zeros(n_slots)
        if n:
            obs, extras = self.observation_fn(view)
            for k, buf in self.obs.items():
                buf[row_slot] = obs[k]
            # 7. rewards from ground truth
            if not first:
                total, parts = self.reward_fn(view, extras)
                reward[row_slot] = total
                table[row_slot] = np.column_stack([parts[c] for c in names])
        else:
            extras = {}
        if len(ended):
            victims = states.victims
            view.ended_victim = (np.isin(slots.ids[ended], victims) if victims else np.zeros(len(ended), bool))
            total, parts = self.reward_fn.terminal(view, np.isin(ended, changes.collided))
            reward[ended] = total
            table[ended] = np.column_stack([parts[c] for c in names])
        self.reward = reward
        flags = np.zeros((3, n_slots), dtype=bool)
        self.terminated, self.truncated, self.joined = flags
        self.terminated[changes.collided] = True
        self.truncated[changes.left] = True
        self.joined[changes.joined] = True
        time_up = not first and self.num_steps >= self.max_steps
        if time_up:
            self.truncated |= slots.live
            slots.live[:] = False
        if first:
            self.acted = np.zeros(n_slots, dtype=bool)
        self._ended = np.flatnonzero(self.terminated | self.truncated)
        self.episode_over = time_up or not slots.live.any()

        # the public record
        rec.num_steps, rec.time_s, rec.states, rec.slots = self.num_steps, states.time_s, states, row_slot
        rec.agent_index = slots.agent_index
        if first:
            rec.actions = np.full(n_slots, np.nan)
            rec.decel_cmd = np.full(n_slots, np.nan)
        rec.acted = self.acted
        rec.n_slots = n_slots
        rec._cache = {}
        rec.reward, rec.reward_table = reward, table
        rec.reward_components = {c: table[:, j] for j, c in enumerate(names)}
        rec.row_extras = extras
        rec.terminated, rec.truncated, rec.joined = self.terminated, self.truncated, self.joined
        rec.all_links = links = self._links if self._links is not None else self.radio.last_links
        if not self._plain and links is not None and len(links) and links.sender.max() >= n_slots:
            keep = links.sender < n_slots
            links = type(links)(**{f.name: getattr(links, f.name)[keep] for f in dataclasses.fields(links)})
        rec.links = links
        rec.equipped = self.equipped & (slots.agent_index >= 0)
        rec.all_states, rec.radio_slots, rec.radio_ids = all_states, self._radio_slot, self._radio_ids
        rec.radio_params = self.radio.params
        rec.radio_cbr = self.radio.cbr
        rec.hazard_vehicle, rec.hazard_slot = self.hazard.vehicle, self.hazard.slot
        rec.hazard_onset_step = onset = self.hazard.plan.onset_step
        rec.hazard_onset_s = None if onset is None else onset * self.step_length

    def _radio_phase(self, prev_states, states, snd_slot: np.ndarray, snd_rows: Any, rcv_slot: np.ndarray,
                     rcv_rows: Any, prev_t_ms: float, t_ms: float) -> None:
        """Phase 5: the beacons of the step ``(prev_t_ms, t_ms]``, each sent at its own time.

        ``states`` / ``prev_states``: every vehicle on the road at the two ends of the step;
        ``snd_slot`` int64[m] the radio slot of each sending (equipped) vehicle, ``snd_rows`` its rows
        of ``states`` (or ``slice(None)``: every row); ``rcv_slot`` / ``rcv_rows`` the same for the
        receivers (equipped agents).

        - A vehicle on the road at both ends of the step sends every beacon due in the interval
          (:meth:`~roadsense_marl.espnow.Radio.beacon_times`) at its own time ``tb``, with its true
          state linearly interpolated between the two SUMO states around it (weight
          ``(tb - prev_t) / (t - prev_t)``; x, y, speed, accel linear, heading along the shorter
          arc, kept in [0, 360)).
        - A vehicle on the road only at ``t_ms`` (SUMO inserted it in this step, at ``t_ms``; also
          every vehicle at the first state of an episode) does not beacon before ``t_ms``: if a
          beacon was due in the interval it sends one at ``t_ms`` with its state there.
        - A vehicle that left during the step sends nothing for it.

        Link geometry (range, distance-dependent loss and latency) uses both vehicles' positions at
        ``t_ms``, the end of the step, so that one broadcast call serves senders with different send
        times (their relative displacement within a step is the approximation). Several beacons of
        one vehicle in one step (steps longer than the beacon period, or two jittered beacon times
        in one step, ~1 % of vehicle-steps at 0.1 s with the 5 ms transmit jitter) go in successive
        broadcast calls in time order: consecutive runs of the time-sorted beacons, a new call where
        a vehicle repeats (:func:`~roadsense_marl.espnow.beacon_calls`), so a later call's frame never
        starts before an earlier call's; one call in most 0.1 s steps.
        """
        radio = self.radio
        xy = np.stack([states.x, states.y], axis=1)
        rows_all = np.arange(states.n)
        s_row = rows_all[snd_rows]
        r_xy = xy[rcv_rows]
        m = len(snd_slot)
        prev_row = self._prev_row_of_radio
        old_row = None
        if prev_row is not None and prev_states is not None and prev_states.n and t_ms > prev_t_ms:
            # a radio slot on the road at both ends holds the same vehicle: a slot freed in a step is
            # reused from the next one only
            old_row = prev_row[snd_slot]
        passes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (sender index, send times, payload)
        fresh = None
        if old_row is not None:
            both = old_row >= 0
            if both.all():  # the common case: every sender on the road at both ends
                i, tb = radio.beacon_times(snd_slot, prev_t_ms, t_ms)
                j = i
            else:
                fresh = np.flatnonzero(~both)
                b_idx = np.flatnonzero(both)
                i, tb = radio.beacon_times(snd_slot[b_idx], prev_t_ms, t_ms)
                j = b_idx[i]
            payload = self._interpolate(prev_states, states, old_row[j], s_row[j], (tb - prev_t_ms) / (t_ms - prev_t_ms))
            # a vehicle beacons twice in a step that is a period long or more, or with transmit
            # jitter when two of its jittered times fall in the step: consecutive runs of the
            # time-sorted beacons, a new pass where a vehicle repeats (passes in time order)
            for sl in beacon_calls(i):
                passes.append((j[sl], tb[sl], payload[sl]))
        else:
            fresh = np.arange(m)
        if fresh is not None and len(fresh):
            fresh = fresh[radio.beacon_due(snd_slot[fresh], prev_t_ms, t_ms)]
            if len(fresh):
                r = s_row[fresh]
                pay = np.stack([states.x[r], states.y[r], states.speed[r], states.heading_deg[r], states.accel[r]],
                               axis=1)
                at_t = np.full(len(fresh), t_ms)
                if passes:  # at t_ms, the step's end: with the last (latest) pass, keeping the time order
                    j0, tb0, pay0 = passes[-1]
                    passes[-1] = (np.concatenate([j0, fresh]), np.concatenate([tb0, at_t]), np.concatenate([pay0, pay]))
                else:
                    passes.append((fresh, at_t, pay))
        if not passes:
            self._links = radio.broadcast(t_ms, snd_slot[:0], xy[:0], np.empty((0, 5)), rcv_slot, r_xy)
            return
        links = []
        for j, tb, payload in passes:
            o = np.argsort(snd_slot[j], kind="stable")  # senders by slot: the radio's fast path
            j = j[o]
            links.append(radio.broadcast(tb[o], snd_slot[j], xy[s_row[j]], payload[o], rcv_slot, r_xy))
        if len(links) == 1:
            self._links = links[0]
        else:
            from roadsense_marl.espnow.radio import LinkBatch

            self._links = LinkBatch(*(np.concatenate([getattr(b, f) for b in links]) for f in
                                      LinkBatch.__dataclass_fields__))

    def _interpolate(self, prev_states, states, row0: np.ndarray, row1: np.ndarray, w: np.ndarray) -> np.ndarray:
        """float64[m, 5] beacon payloads (x, y, speed, heading_deg, accel) interpolated between the two
        SUMO states (:func:`interpolate_states`; its compiled twin when numba is installed)."""
        from roadsense_marl.env import kernels

        if not kernels.AVAILABLE:
            return interpolate_states(prev_states, states, row0, row1, w)
        out = np.empty((len(row0), 5))
        p, s = prev_states, states
        kernels.interpolate_states(p.x, p.y, p.speed, p.heading_deg, p.accel, s.x, s.y, s.speed, s.heading_deg,
                                   s.accel, row0, row1, w, out)
        return out

    # ---- who is on the road, who has a radio ---------------------------------------------------

    def _agents_on(self, states, after_entered: bool = False) -> bool:
        """Whether any agent is among ``states.ids``. ``after_entered``: ``states`` is the state right
        after the last one entered (one SUMO step on), so an unchanged vehicle set answers at once."""
        if not self.other_vehicles:
            return bool(states.ids)
        if (after_entered and not (len(states.departed) or len(states.arrived) or len(states.collided))
                and getattr(self, "_agent_slots", None) is not None and len(self._agent_slots)):
            return True  # the same vehicles as in the last state, which had agents on the road
        if self._undecided:
            self._decide(states.ids)
        index, others = self.slots.index_of, self.slots.others
        return any(v in index and v not in others for v in states.ids)

    def _agents_to_come(self) -> bool:
        """Whether some possible agent has not been on the road yet this episode."""
        slots = self.slots
        not_agents = len(slots.others) - len(slots.base_others)
        return len(slots._ended) + len(slots.slot_of) + not_agents < len(self.possible_agents)

    def _decide(self, ids) -> None:
        """Vehicles among ``ids`` typed by a ``<vTypeDistribution>`` whose draw decides whether they
        are agents or may carry a radio: ask SUMO which vType/vClass it drew (once per vehicle
        and episode)."""
        todo = [v for v in ids if v in self._undecided and v not in self._decided]
        if not todo:
            return
        raw = self.sim.raw
        cfg = self.config
        types = [raw.vehicle.getTypeID(v) for v in todo]
        classes = [raw.vehicle.getVehicleClass(v) for v in todo]
        agent = select_vehicles(cfg.agents, "agents", todo, types, classes, self.scenario.name, check=False)
        elig = select_vehicles(cfg.equipped, "equipped", todo, types, classes, self.scenario.name, check=False)
        for v, a, e in zip(todo, agent.tolist(), elig.tolist()):
            self._decided.add(v)
            if not a:
                self.slots.exclude(v)
            i = self._vehicle_index[v]
            self._eligible[i] = e
            self.equipped_vehicles[i] = e and self._equip_draw[i]
        self._radio_key = None

    def _radio_rows(self, states):
        """Senders and receivers of this step: (radio slot of each sending row, the sending rows,
        radio slot of each receiving row, the receiving rows); rows index ``states``. Senders are
        the equipped vehicles (agents in their agent slot, others in :class:`OtherSlots`),
        receivers the equipped agents. Recomputed only when the vehicle set changed."""
        row_slot = self.slots.row_slot
        if self._radio_key is not row_slot:
            self._radio_key = row_slot
            everyone = slice(None)
            if self._plain:
                radio_slot = row_slot
                self._radio_io = (row_slot, everyone, row_slot, everyone)
                self._radio_ids = self.slots.ids
            else:
                vidx = self._vehicle_index
                eq = self.equipped_vehicles[np.fromiter((vidx[v] for v in states.ids), np.int64, states.n)]
                agent = row_slot >= 0
                others = [v for v, e, a in zip(states.ids, eq.tolist(), agent.tolist()) if e and not a]
                left, _ = self.other_slots.update(others, states.time_s)
                if len(left):
                    self.radio.forget(left)
                oslot = self.other_slots.slot_of
                other_slot = np.fromiter((oslot.get(v, -1) for v in states.ids), np.int64, states.n)
                radio_slot = np.where(eq, np.where(agent, row_slot, other_slot), -1)
                snd = np.flatnonzero(radio_slot >= 0)
                rcv = np.flatnonzero(eq & agent)
                self._radio_io = (radio_slot[snd], snd, row_slot[rcv], rcv)
                self._radio_ids = np.concatenate([self.slots.ids, self.other_slots.ids])
            self._radio_slot = radio_slot
        return self._radio_io

    def _agent_view(self, states):
        """``states`` restricted to the agents' rows (itself when every vehicle is an agent); sets
        ``agent_states`` and ``_agent_slots`` (slot of each of its rows). A leader that is not an
        agent becomes -1 in the view; the gap to it is kept (SUMO's truth)."""
        row_slot = self.slots.row_slot
        if not self.other_vehicles or not (row_slot < 0).any():
            self.agent_states, self._agent_slots = states, row_slot
            return states
        cached = self._view_rows
        if cached is None or cached[0] is not row_slot:  # the vehicle set changed: new row selection
            rows = np.flatnonzero(row_slot >= 0)
            inv = np.full(states.n, -1, np.int64)
            inv[rows] = np.arange(len(rows))
            cached = self._view_rows = (row_slot, rows, inv, tuple(states.ids[i] for i in rows.tolist()))
        _, rows, inv, ids = cached
        lead = states.leader[rows]
        lead = np.where(lead >= 0, inv[np.maximum(lead, 0)], -1)
        view = dataclasses.replace(
            states, ids=ids, x=states.x[rows], y=states.y[rows],
            speed=states.speed[rows], accel=states.accel[rows], heading_deg=states.heading_deg[rows],
            length=states.length[rows], leader=lead, gap=states.gap[rows],
            extras={k: v[rows] for k, v in states.extras.items()},
        )
        self.agent_states, self._agent_slots = view, row_slot[rows]
        return view

    # ---- internals --------------------------------------------------------------------------

    def _guard(self, fn, *args):
        """Run a simulator call; on any failure the episode ends and SUMO is closed first."""
        try:
            return fn(*args)
        except BaseException:
            self.episode_over = True
            self.slots.live[:] = False
            self.sim.close()
            raise

    def _start_episode(self, sumo_seed: int, variation):
        """Load the episode in SUMO and run it until the first vehicle is inserted (at most
        :data:`MAX_WARMUP_S` of SUMO time)."""
        states = self.sim.reset(seed=sumo_seed, variation=variation)
        limit = seconds_to_steps(MAX_WARMUP_S, self.step_length)
        for _ in range(limit):
            if self._agents_on(states):
                return states
            states = self.sim.step()
        dropped = f" ({len(variation.dropped)} vehicles dropped by drop_peer_prob)" if variation and variation.dropped else ""
        raise RuntimeError(
            f"scenario {self.scenario.name!r} inserted no agent vehicle within {MAX_WARMUP_S:g} s ({limit} steps) of its "
            f"begin{dropped}"
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if not self.episode_over:
            # A SUMO simulation cannot be pickled: a copy starts with no episode (reset() first).
            state["episode_over"] = True
            state["states"] = None
            state["slots"] = AgentSlots(self.possible_agents, self.n_slots, self.slots.base_others)
            state["other_slots"] = OtherSlots(self.other_slots.offset, self.other_slots.n)
            state["agent_states"] = None
            state["_unpickled"] = True
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        weakref.finalize(self, _close_sim, self.sim)


def _any_all(chosen: np.ndarray, owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per vehicle: whether any / every one of its alternatives (rows owned by it) is chosen."""
    any_ = np.zeros(n, dtype=bool)
    all_ = np.ones(n, dtype=bool)
    np.logical_or.at(any_, owner, chosen)
    np.logical_and.at(all_, owner, chosen)
    return any_, all_


def _close_sim(sim) -> None:
    try:
        sim.close()
    except Exception:  # noqa: BLE001 - best effort at garbage collection
        pass
