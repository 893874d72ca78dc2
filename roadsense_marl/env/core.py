"""The array core: one convoy episode as arrays over vehicle slots, one call per step.

Every view (the PettingZoo ``ParallelEnv`` and its AEC conversion, the single-ego Gymnasium
env, the direct SB3 ``VecEnv``) drives one :class:`ConvoyCore` and only reshapes what it
exposes; none of them copies its logic. A step reads as its phases, each owned by a module:

1. actions -> SUMO commands (:mod:`roadsense_marl.env.actions`)
2. the hazard's commands (:mod:`roadsense_marl.env.hazards`)
3. SUMO advances one step (:mod:`roadsense_marl.sim`)
4. agents join and leave, slots are assigned (:mod:`roadsense_marl.env.agents`)
5. every due vehicle broadcasts its true state; each receiver's buffer takes what has
   arrived (:mod:`roadsense_marl.espnow`)
6. observations from each agent's own buffer (:mod:`roadsense_marl.env.observations`, pluggable)
7. rewards from ground truth (:mod:`roadsense_marl.env.rewards`, pluggable), terminations,
   truncations and the public per-step :class:`StepRecord`.

Slots: see :mod:`roadsense_marl.env.agents`. All arrays below are preallocated over slots and
overwritten in place each step: copy what you keep.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roadsense_marl.env.actions import CommandCache, action_space, check_slot_actions, commanded_decel, speed_commands
from roadsense_marl.env.agents import AgentSlots
from roadsense_marl.env.config import RADIO_PROFILES, EnvConfig, make_env_config, radio_profile_path
from roadsense_marl.env.hazards import HazardRuntime, draw_hazard_plan
from roadsense_marl.env.observations import DeepSetObservation, ObservationFunction
from roadsense_marl.env.rewards import ConvoyReward, RewardFunction

#: Seconds of SUMO time reset() waits for the first vehicle (the scenario's vehicle set covers this
#: allowance plus ``max_steps``, see :func:`roadsense_marl.sim.registry.load_scenario`).
MAX_WARMUP_S = 300.0
MAX_WARMUP_STEPS = 10_000  # an upper bound in steps, whatever the step length (single-ego view)
#: Why an agent ended (``info["reason"]`` in every view): index of :attr:`StepRecord.end_reason`.
END_REASONS = ("collision", "max_steps", "arrived")


@dataclass
class StepView:
    """What observation and reward functions see after a step (rows = vehicles on the road).

    ``states``: ground truth (:class:`~roadsense_marl.sim.VehicleStates`, SI units, SUMO
    conventions); ``slots`` int64[n] slot of each row; ``row_of_slot`` int64[S] (-1: not on the
    road); ``rx``: the valid messages in the receivers' own buffers (:class:`~roadsense_marl.espnow.RxBatch`,
    receiver/sender are slots); ``imposed`` bool[n] rows whose motion the hazard imposes;
    ``t_ms`` simulation time (ms); ``num_steps`` steps taken; ``config`` the :class:`EnvConfig`;
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
    ended_victim: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


@dataclass
class StepRecord:
    """The public record of the latest step (evaluation and tests read this, never internals).

    Arrays over slots (S); NaN / -1 where a slot holds no agent.

    - ``num_steps``: steps taken in the episode; ``time_s``: SUMO time after the step.
    - ``states``: ground truth after the step; ``slots``: int64[n] slot of each of its rows.
    - ``agent_index``: int64[S] index in ``possible_agents`` of each slot's agent (-1 empty).
    - ``actions``: float64[S] the clipped action each live agent gave (NaN: none);
      ``decel_cmd``: float64[S] the deceleration it commands (m/s^2, :func:`~roadsense_marl.env.actions.commanded_decel`);
      ``acted``: bool[S] the action drove the vehicle (not padding, not hazard-imposed, controlled).
    - ``gap``, ``speed``, ``leader_slot``: truth after the step by slot (gap inf: no leader), computed
      on first access in a step.
    - ``reward``: float64[S]; ``reward_components``: ``{name: float64[S]}``, columns of
      ``reward_table`` float64[S, C] (C = the reward function's ``components``, in order).
    - ``extras``: ``{name: array[S, ...]}`` from the observation function (shipped: ``braking_signal``,
      ``n_visible``, ``peer_sender``); slots without an agent hold 0 (integer extras: -1);
      ``row_extras`` the same by vehicle row.
    - ``terminated`` / ``truncated``: bool[S] agents that collided / arrived, vanished or hit
      ``max_steps`` in this step; ``joined``: bool[S] new agents.
    - ``links``: this step's transmissions (:class:`~roadsense_marl.espnow.LinkBatch`, slots);
      ``radio_params``: this episode's (domain-randomised) radio parameters.
    - ``hazard_vehicle`` / ``hazard_slot`` / ``hazard_onset_step``: the braking vehicle (None / -1)
      and the planned onset step (None: no hazard this episode).
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
    hazard_vehicle: str | None = None
    hazard_slot: int = -1
    hazard_onset_step: int | None = None
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


class ConvoyCore:
    """One convoy episode as arrays over vehicle slots (see the module docstring).

    :param config: an :class:`EnvConfig`, a mapping, a YAML path or None; ``overrides`` are
        env config keys (validated, ValueError naming the key).
    :param observation_fn: an :class:`~roadsense_marl.env.observations.ObservationFunction`
        (default: the shipped :class:`~roadsense_marl.env.observations.DeepSetObservation`).
    :param reward_fn: a :class:`~roadsense_marl.env.rewards.RewardFunction` (default: the shipped
        :class:`~roadsense_marl.env.rewards.ConvoyReward`).

    After :meth:`reset` / :meth:`step`: ``obs`` (``{key: float32[S, ...]}``), ``reward``
    float64[S], ``terminated`` / ``truncated`` / ``joined`` / ``acted`` / ``live`` bool[S],
    ``agent_of_slot`` list[str | None], ``episode_over``, ``num_steps`` and ``record``.
    """

    def __init__(
        self,
        config: Any = None,
        *,
        observation_fn: ObservationFunction | None = None,
        reward_fn: RewardFunction | None = None,
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
        scenario_kwargs = dict(cfg.scenario_kwargs)
        if cfg.scenario != "highway" and "horizon_s" not in scenario_kwargs:
            # possible_agents: every vehicle that can depart in the warm-up allowance + this episode
            scenario_kwargs.setdefault("episode_steps", cfg.max_steps)
            if cfg.step_length is not None:
                scenario_kwargs.setdefault("step_length", cfg.step_length)
        self.scenario = resolve_scenario(cfg.scenario, **scenario_kwargs)
        self.step_length = float(cfg.step_length or self.scenario.default_step_length)
        self.possible_agents: tuple[str, ...] = tuple(self.scenario.vehicle_ids)
        self.n_slots = int(cfg.max_vehicles or len(self.possible_agents))
        self.radio = Radio(
            load_params(resolve_radio(cfg.radio)), capacity=self.n_slots, domain_randomization=cfg.domain_randomization
        )
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
        self.slots = AgentSlots(self.possible_agents, self.n_slots)
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
        weakref.finalize(self, _close_sim, self.sim)

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
        states = self._guard(self._start_episode, sumo_seed, variation)
        self.radio.reset(radio_ss)
        self.hazard = HazardRuntime(
            draw_hazard_plan(cfg.hazard, np.random.default_rng(hazard_ss), self.step_length), self.hazard_candidates
        )
        self.commands = CommandCache(self.n_slots)
        self._controlled[:] = True  # set per joining vehicle from `controlled`
        self.observation_fn.reset(self.n_slots)
        self.slots.reset()
        for buf in self.obs.values():
            buf.fill(0)
        self.num_steps = 0
        self._t_ms = states.time_s * 1000.0
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
        states = self.states
        live = slots.live
        if len(self._ended):  # slots whose agent ended in the last step become free and empty
            for buf in self.obs.values():
                buf[self._ended] = 0
            slots.release_ended(self._ended)

        # 1. actions -> SUMO commands
        row_slot = slots.row_slot
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
        if not new.ids and self.num_steps < cfg.max_steps and self.sim.expected_vehicles() > 0:
            new = self._skip_empty_road(new)
        self._t_ms = new.time_s * 1000.0
        self._enter(new, prev_t)

    def _skip_empty_road(self, emptied):
        """The road became empty but SUMO will insert more vehicles: run SUMO on (each SUMO step
        counts towards ``max_steps``) until the next vehicle is on the road, so that the episode
        does not end in a gap of the traffic. Returns the first state with vehicles (or the state at
        ``max_steps``), carrying the arrivals and collisions of ``emptied`` so that the agents that
        left are reported in this step."""
        import dataclasses

        states = emptied
        while not states.ids and self.num_steps < self.config.max_steps:
            states = self.sim.step()
            self.num_steps += 1
        return dataclasses.replace(states, arrived=emptied.arrived, collided=emptied.collided,
                                   collisions=emptied.collisions, departed=states.ids)

    def _enter(self, states, prev_t_ms: float) -> None:
        """Phases 4-7 for a new SUMO state (also the first state of an episode)."""
        cfg, slots = self.config, self.slots
        first = self.num_steps == 0
        # 4. agents join and leave
        if first:
            changes = slots.update(states.ids, states.ids, (), (), states.time_s)
        else:
            changes = slots.update(states.ids, states.departed, states.arrived, states.collided, states.time_s)
        ended = np.union1d(changes.collided, changes.left) if len(changes.collided) or len(changes.left) else changes.left
        if len(ended):
            self.radio.forget(ended)
            self.hazard.left(ended, changes.collided)
        if len(changes.joined):
            self.commands.clear(changes.joined)
            self.observation_fn.clear(changes.joined)
            if self.controlled is not None:
                self._controlled[changes.joined] = [slots.agent_of_slot[s] in self.controlled for s in changes.joined]
        self.states = states
        row_slot = slots.row_slot
        n = len(row_slot)
        # 5. radio: every due vehicle broadcasts its true state; receivers take what has arrived
        t_ms = self._t_ms
        rx = None
        if n:
            xy = np.stack([states.x, states.y], axis=1)
            due = self.radio.beacon_due(row_slot, prev_t_ms, t_ms)
            payload = np.stack([states.x, states.y, states.speed, states.heading_deg, states.accel], axis=1)
            self.radio.broadcast(t_ms, row_slot[due], xy[due], payload[due], row_slot, xy)
            rx = self.radio.receive(t_ms, row_slot)
        # 6. observations from each agent's own buffer
        row_of_slot = np.full(self.n_slots, -1, dtype=np.int64)
        row_of_slot[row_slot] = np.arange(n)
        imposed = np.zeros(n, dtype=bool)
        if self.hazard.imposed(self.num_steps - 1 if not first else -1) and row_of_slot[self.hazard.slot] >= 0:
            imposed[row_of_slot[self.hazard.slot]] = True
        view = StepView(cfg, states, row_slot, row_of_slot, rx, imposed, t_ms, self.num_steps, self.step_length)
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
        time_up = not first and self.num_steps >= cfg.max_steps
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
        rec.links = self.radio.last_links
        rec.radio_params = self.radio.params
        rec.hazard_vehicle, rec.hazard_slot = self.hazard.vehicle, self.hazard.slot
        rec.hazard_onset_step = self.hazard.plan.onset_step

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
        """Load the episode in SUMO and run it until the first vehicle is inserted."""
        import math

        states = self.sim.reset(seed=sumo_seed, variation=variation)
        limit = min(MAX_WARMUP_STEPS, math.ceil(MAX_WARMUP_S / self.step_length - 1e-9))
        for _ in range(limit):
            if states.ids:
                return states
            states = self.sim.step()
        dropped = f" ({len(variation.dropped)} vehicles dropped by drop_peer_prob)" if variation and variation.dropped else ""
        raise RuntimeError(
            f"scenario {self.scenario.name!r} inserted no vehicle within {MAX_WARMUP_S:g} s ({limit} steps) of its "
            f"begin{dropped}"
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if not self.episode_over:
            # A SUMO simulation cannot be pickled: a copy starts with no episode (reset() first).
            state["episode_over"] = True
            state["states"] = None
            state["slots"] = AgentSlots(self.possible_agents, self.n_slots)
            state["_unpickled"] = True
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        weakref.finalize(self, _close_sim, self.sim)


def _close_sim(sim) -> None:
    try:
        sim.close()
    except Exception:  # noqa: BLE001 - best effort at garbage collection
        pass
