"""The env as one SB3 ``VecEnv`` for parameter-shared MARL: one vector index per vehicle slot.

``make_vec_env`` is the entry point. By default (``via="core"``) it serves the array core's
slots directly (:class:`~roadsense_marl.training.core_vec_env.CoreVecEnv`: every slot of every
core copy is one index, no PettingZoo/SuperSuit conversion). ``via="supersuit"`` keeps the
previous path for users who want it, or for a custom PettingZoo ``env_fn``; both paths give the
same observations, rewards and dones for the same seed and actions, and both flag every
sample with ``info["acted"]`` for :class:`~roadsense_marl.training.ppo.MaskedPPO`.

The SuperSuit path, with SuperSuit 3.11's gaps closed:

    parallel env ─> FixedSlotParallelEnv ─> pettingzoo_env_to_vec_env_v1 ─> concat_vec_envs_v1(SB3)
                 ─> SuperSuitVecEnv (seeding, closing, acted flags) ─> VehicleVecMonitor

What SuperSuit 3.11 lacks and this module supplies (measured, see shared/reference/STACK.md):

* ``pettingzoo_env_to_vec_env_v1`` needs every possible agent present at every step, and
  ``black_death_v3`` rejects Dict observations and reports the episode end one step late.
  :class:`FixedSlotParallelEnv` pads absent agents and ends exactly with the inner env.
* ``PPO(seed=...)`` raises ``AttributeError: 'ConcatVecEnv' object has no attribute 'seed'``,
  and SuperSuit's SB3 wrapper drops reset seeds. :class:`SuperSuitVecEnv` stores the seed
  and hands ``seed + i`` to env copy ``i`` at the next reset.
* ``ProcConcatVec.close()`` sends ``("close", None)``, which the worker loop rejects as a
  "bad tuple instruction", so workers die before ``env.close()`` and SUMO is never closed.
  :func:`close_proc_concat_vec` sends the string the loop understands.
"""

from __future__ import annotations

import copy
import functools
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import supersuit as ss
from pettingzoo.utils.env import ParallelEnv
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecMonitor

from roadsense_marl.training.ppo import ACTED_KEY
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn
from supersuit.vector import ConcatVecEnv, ProcConcatVec
from supersuit.vector.multiproc_vec import decompress_info, numpy_deepcopy

PADDED_KEY = "padded"
VIA = ("core", "supersuit")
BACKENDS = ("libsumo", "traci")
DEFAULT_BACKEND = "libsumo"


# ─── fixed slots ──────────────────────────────────────────────────────────────


def zero_observation(space: gym.Space) -> Any:
    """All-zero observation of a Box or (nested) Dict space: the padding an absent agent sees.

    For the roadsense observation this is a zero ego vector and an all-zero ``peer_mask``,
    i.e. "no peers". Raises ValueError for other spaces or when zero is outside the space.
    """
    if isinstance(space, gym.spaces.Dict):
        return {key: zero_observation(sub) for key, sub in space.spaces.items()}
    if isinstance(space, gym.spaces.Box):
        zeros = np.zeros(space.shape, dtype=space.dtype)
        if not space.contains(zeros):
            raise ValueError(f"cannot pad with zeros: an all-zero observation is outside {space!r}")
        return zeros
    raise ValueError(f"fixed-slot padding supports Box and Dict observation spaces, got {space!r}")


class FixedSlotParallelEnv(ParallelEnv):
    """Every possible agent is a slot that is present at every step until the episode ends.

    SuperSuit's vector conversion maps each possible agent to a fixed vector slot and
    requires all of them in every dict. Vehicles, however, join when SUMO inserts them and
    leave when they arrive or collide. This wrapper keeps ``agents == possible_agents``
    during an episode:

    * an agent the inner env does not report this step (not departed yet, or gone) gets an
      all-zero observation (``peer_mask`` all 0, ego zeros), reward 0 and
      ``info = {"padded": True}``; its action is dropped, never passed to the inner env;
    * an agent the inner env does report gets the inner observation, reward and info
      (copied, plus ``"padded": False``; ``"TimeLimit.truncated"`` and everything else pass
      through). In the step an agent leaves, its last real observation and reward are
      returned, but its slot stays open (PettingZoo forbids ending an agent and keeping it);
    * the episode ends in exactly the step the inner env's ``agents`` becomes empty: then
      every slot is done. Agents the inner env reported in that step carry the inner
      termination/truncation flags and infos; padded slots are truncated with
      ``"TimeLimit.truncated": False`` (nothing to bootstrap: a padded slot earns 0 forever).

    ``info["padded"]`` always describes the observation returned with it, also after
    SuperSuit merges the next reset's infos into the final step's, so the share of padded
    samples can be counted from infos (:class:`PaddedFractionCallback`).
    """

    def __init__(self, env: ParallelEnv) -> None:
        if not isinstance(env, ParallelEnv):
            raise TypeError(f"FixedSlotParallelEnv wraps a pettingzoo ParallelEnv, got {type(env).__name__}")
        self.env = env
        self.possible_agents = list(env.possible_agents)
        if not self.possible_agents:
            raise ValueError("the inner env has no possible_agents; fixed slots need at least one")
        self.metadata = getattr(env, "metadata", {})
        self.render_mode = getattr(env, "render_mode", None)
        self._padding = {agent: zero_observation(env.observation_space(agent)) for agent in self.possible_agents}
        self.agents: list = []
        self._closed = False

    def observation_space(self, agent: Any) -> gym.Space:
        return self.env.observation_space(agent)

    def action_space(self, agent: Any) -> gym.Space:
        return self.env.action_space(agent)

    def _pad(self, agent: Any) -> Any:
        return copy.deepcopy(self._padding[agent])

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, infos = self.env.reset(seed=seed, options=options)
        self._closed = False
        self.agents = list(self.possible_agents)
        out_obs, out_infos = {}, {}
        for agent in self.possible_agents:
            if agent in obs:
                out_obs[agent] = obs[agent]
                out_infos[agent] = {**infos.get(agent, {}), PADDED_KEY: False}
            else:
                out_obs[agent] = self._pad(agent)
                out_infos[agent] = {PADDED_KEY: True}
        return out_obs, out_infos

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        unknown = [agent for agent in actions if agent not in self._padding]
        if unknown:
            raise ValueError(f"actions for unknown agent(s) {unknown}; possible agents are {self.possible_agents}")
        live = self.env.agents
        obs, rewards, terms, truncs, infos = self.env.step({a: actions[a] for a in live if a in actions})
        ended = not self.env.agents

        out_obs, out_rew, out_term, out_trunc, out_info = {}, {}, {}, {}, {}
        for agent in self.possible_agents:
            if agent in obs:
                out_obs[agent] = obs[agent]
                out_rew[agent] = float(rewards.get(agent, 0.0))
                out_info[agent] = {**infos.get(agent, {}), PADDED_KEY: False}
                term = bool(terms.get(agent, False))
                # an agent still reported when the inner env ends counts as truncated if not terminated
                out_term[agent] = ended and term
                out_trunc[agent] = ended and (bool(truncs.get(agent, False)) or not term)
            else:
                out_obs[agent] = self._pad(agent)
                out_rew[agent] = 0.0
                out_info[agent] = {PADDED_KEY: True}
                out_term[agent] = False
                out_trunc[agent] = ended
                if ended:
                    out_info[agent]["TimeLimit.truncated"] = False
        if ended:
            self.agents = []
        return out_obs, out_rew, out_term, out_trunc, out_info

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        """Close the inner env once (until the next reset).

        SuperSuit's vector envs never set gymnasium's ``closed`` flag, so gymnasium >= 1.2's
        ``VectorEnv.__del__`` closes them again at garbage collection (measured with 1.2.2: three
        closes per env); the inner env sees one.
        """
        if self._closed:
            return
        self._closed = True
        self.env.close()

    def state(self) -> np.ndarray:
        return self.env.state()


# ─── seeding and closing SuperSuit's vector envs ─────────────────────────────


def close_proc_concat_vec(vec: ProcConcatVec, timeout_s: float = 10.0) -> None:
    """Close every env in every worker of a SuperSuit ``ProcConcatVec``, then stop the workers.

    The worker loop (``supersuit.vector.multiproc_vec.async_loop``) closes its envs on the
    plain string ``"close"`` and replies; it exits on ``"terminate"``. ``ProcConcatVec.close``
    sends the tuple ``("close", None)`` instead, which the loop rejects before any
    ``env.close()``.

    Also safe after an interrupted step (Ctrl-C in the main process while workers were busy):
    replies still pending are drained first; a worker that itself got the interrupt (it replies
    ``(KeyboardInterrupt, traceback)`` and exits, taking its in-process libsumo simulation with
    it) or that has already died is not a close failure. Every worker still alive after
    ``timeout_s`` is killed. Errors raised by an env's ``close()`` are re-raised here as one
    ``RuntimeError`` after every worker has been stopped.
    """
    failures: list[str] = []

    def interrupted(reply: Any) -> bool:
        return isinstance(reply, tuple) and len(reply) == 2 and isinstance(reply[0], KeyboardInterrupt)

    alive = [(pipe, proc) for pipe, proc in zip(vec.pipes, vec.procs) if proc.is_alive()]
    sent = []
    for pipe, proc in alive:
        gone = False
        try:
            while pipe.poll(0):  # replies to a request the main process stopped waiting for
                if interrupted(pipe.recv()):
                    gone = True
            if not gone:
                pipe.send("close")
                sent.append((pipe, proc))
        except (EOFError, OSError):  # the worker is gone: nothing left to close in it
            continue
    for pipe, proc in sent:
        try:
            if not pipe.poll(timeout_s):
                failures.append(f"worker {proc.pid}: no reply to close within {timeout_s} s")
                continue
            reply = pipe.recv()
            if interrupted(reply):
                continue
            if isinstance(reply, tuple) and len(reply) == 2 and isinstance(reply[0], BaseException):
                failures.append(f"worker {proc.pid}: env.close() raised\n{reply[1]}")
                continue
            pipe.send("terminate")
        except (EOFError, OSError):
            if proc.is_alive():  # a worker that died has no env left open; one that lives broke the pipe
                failures.append(f"worker {proc.pid}: pipe broke while closing")
    for _, proc in alive:
        proc.join(timeout_s)
        if proc.is_alive():
            proc.kill()
            proc.join()
    for pipe in vec.pipes:
        pipe.close()
    # ProcConcatVec.__del__ calls close() again; with no workers left to talk to it does
    # nothing. Without this, a copy of this object inherited by a later forked worker fails
    # in __del__ with "can only test a child process" (proc.is_alive() from a non-parent).
    vec.pipes, vec.procs = [], []
    if failures:
        raise RuntimeError("closing the vector env's workers failed: " + "; ".join(failures))


def _reset_vector(vec: ConcatVecEnv | ProcConcatVec, seed: int | None, options: dict | None, slots_per_env: int):
    """Reset SuperSuit's gymnasium vector env so that env copy ``i`` gets ``seed + i``.

    ``ConcatVecEnv.reset(seed)`` already does that. ``ProcConcatVec.reset(seed)`` gives
    worker ``w`` the seed ``seed + w`` and that worker's ConcatVecEnv adds its local index,
    so with several copies per worker two copies would share a seed; here worker ``w`` gets
    ``seed + (index of its first copy)`` instead. Also returns one info dict per slot
    (``ProcConcatVec.reset`` returns the workers' compressed infos).
    """
    if isinstance(vec, ProcConcatVec):
        for w, pipe in enumerate(vec.pipes):
            first_env = vec.idx_starts[w] // slots_per_env
            pipe.send(("reset", (None if seed is None else seed + first_env, options)))
        infos = decompress_info(vec.num_envs, vec.idx_starts, vec._receive_info())
        return numpy_deepcopy(vec.observations_buffers), [dict(info) for info in infos]
    obs, infos = vec.reset(seed=seed, options=options)
    return obs, [dict(info) for info in infos]


class SuperSuitVecEnv(VecEnvWrapper):
    """SB3 face of ``concat_vec_envs_v1(..., base_class="stable_baselines3")`` that seeds and closes.

    * ``seed(s)`` stores ``s`` (SB3 calls it from ``PPO(seed=...)``); the next ``reset()``
      resets env copy ``i`` with ``seed=s + i``. Later automatic resets are unseeded, so
      each copy continues its own seeded random stream, as with SB3's own VecEnvs.
    * ``close()`` closes every env copy, in every worker process when ``num_cpus >= 2``.
    * Per-slot episode boundaries: a vehicle that leaves mid-episode (collides or arrives)
      ends its slot's episode for SB3 in that step: ``done`` is set, its last real
      observation goes to ``info["terminal_observation"]`` (so an arrival with
      ``TimeLimit.truncated`` is bootstrapped and a collision is terminal) and the slot
      continues with padding as a new "episode". Likewise a vehicle joining ends the
      preceding padding episode (terminal, value 0), so GAE never carries value between a
      vehicle and the padding around it.
    * ``info["acted"]`` is False where the slot's observation before the step was padding
      (its action was dropped), for :class:`~roadsense_marl.training.ppo.MaskedPPO`.

    :param venv: the ``SB3VecEnvWrapper`` returned by ``concat_vec_envs_v1``.
    :param num_copies: how many env copies it concatenates (``num_vec_envs``).
    """

    def __init__(self, venv: VecEnv, num_copies: int) -> None:
        self._vector = venv.venv  # SuperSuit's gymnasium-style ConcatVecEnv or ProcConcatVec
        if venv.num_envs % num_copies:
            raise ValueError(f"{venv.num_envs} vector slots cannot be split evenly into {num_copies} env copies")
        self.num_copies = num_copies
        self.slots_per_env = venv.num_envs // num_copies
        self._pending_seed: int | None = None
        self._reset_options: dict | None = None
        self._closed = False
        self._padded = np.zeros(venv.num_envs, dtype=bool)  # does each slot's current obs show padding?
        super().__init__(venv)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":
            return [self.venv.render_mode] * self.num_envs
        return self.venv.get_attr(attr_name, indices)

    def seed(self, seed: int | None = None) -> list[int | None]:
        """Use ``seed + i`` for env copy ``i`` at the next reset; returns the seed of every slot."""
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self._pending_seed = None if seed is None else int(seed)
        if seed is None:
            return [None] * self.num_envs
        return [int(seed) + slot // self.slots_per_env for slot in range(self.num_envs)]

    def set_options(self, options: dict | None = None) -> None:
        """Options for the next reset, the same for every env copy (SuperSuit passes one dict)."""
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"options must be one dict shared by all env copies or None, got {type(options).__name__}")
        self._reset_options = options

    def reset(self) -> VecEnvObs:
        seed, self._pending_seed = self._pending_seed, None
        options, self._reset_options = self._reset_options, None
        obs, infos = _reset_vector(self._vector, seed, options, self.slots_per_env)
        self.reset_infos = self.venv.reset_infos = infos
        self._padded = np.array([bool(info.get(PADDED_KEY, False)) for info in infos])
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        for info, padded in zip(infos, self._padded.tolist()):
            info[ACTED_KEY] = not padded  # the action of this step went to a vehicle iff obs_t was not padding
        padded_now = np.array([bool(info.get(PADDED_KEY, False)) for info in infos])
        live = ~dones.astype(bool)  # slots whose whole env episode did not just end (SuperSuit handles those)
        left = live & ~padded_now & np.array(["reason" in info for info in infos])
        joined = live & self._padded & ~padded_now
        if left.any() or joined.any():
            dones = dones.copy()
            for i in np.flatnonzero(left):
                infos[i]["terminal_observation"] = {k: v[i].copy() for k, v in obs.items()}
                for v in obs.values():
                    v[i] = 0  # the slot goes on as padding, a new (empty) episode
                padded_now[i] = True
                infos[i][PADDED_KEY] = True  # "padded" describes the observation returned with it
            for i in np.flatnonzero(joined):
                infos[i]["terminal_observation"] = {k: np.zeros_like(v[i]) for k, v in obs.items()}
                infos[i]["TimeLimit.truncated"] = False  # padding earns nothing: its value is 0
            dones[left | joined] = True
        self._padded = padded_now
        return obs, rewards, dones, infos

    def close(self) -> None:
        """Close every env copy and stop the workers (see :func:`close_proc_concat_vec`); idempotent.

        After the processes are gone the SB3 wrapper's own ``close`` is not called: it would
        send SuperSuit's broken close request again.
        """
        if self._closed:
            return
        self._closed = True
        if isinstance(self._vector, ProcConcatVec):
            close_proc_concat_vec(self._vector)
        else:
            self.venv.close()


class VehicleVecMonitor(VecMonitor):
    """SB3's ``VecMonitor`` that reports episodes of vehicles only, never of padding.

    On the SuperSuit path a slot's "episode" may be a stretch of padding (before its vehicle
    joins, after it leaves, or a vehicle that never departs); plain ``VecMonitor`` reported
    those as 0-reward episodes (convoy_6: ``ep_rew_mean`` 638 instead of 851 for real vehicles,
    and ``evaluate_policy`` returned padding episodes). An episode whose last sample was
    padding (``info["acted"]`` False) gets no ``info["episode"]`` and is not written to the
    monitor file.
    """

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.episode_returns += rewards
        self.episode_lengths += 1
        new_infos = list(infos[:])
        for i in np.flatnonzero(dones):
            info = infos[i].copy()
            if info.get(ACTED_KEY, True):
                episode_info = {
                    "r": float(self.episode_returns[i]),
                    "l": int(self.episode_lengths[i]),
                    "t": round(time.time() - self.t_start, 6),
                }
                for key in self.info_keywords:
                    episode_info[key] = info[key]
                info["episode"] = episode_info
                self.episode_count += 1
                if self.results_writer:
                    self.results_writer.write_row(episode_info)
            self.episode_returns[i] = 0
            self.episode_lengths[i] = 0
            new_infos[i] = info
        return obs, rewards, dones, new_infos


# ─── construction ────────────────────────────────────────────────────────────


def resolve_num_cpus(num_envs: int, num_cpus: int | None, backend: str | None) -> int:
    """Number of worker processes for ``num_envs`` env copies (0/1 = all in this process).

    libsumo runs one simulation per process, so with it every copy needs its own process:
    ``None`` then means ``num_envs``, and anything that would put two copies in one process
    is an error. With traci (or a non-SUMO ``env_fn``) ``None`` means 1.
    """
    if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if num_cpus is None:
        return num_envs if backend == "libsumo" else 1
    if not isinstance(num_cpus, int) or isinstance(num_cpus, bool) or num_cpus < 0:
        raise ValueError(f"num_cpus must be None or an int >= 0, got {num_cpus!r}")
    processes = min(max(num_cpus, 1), num_envs)
    if backend == "libsumo" and math.ceil(num_envs / processes) > 1:
        raise ValueError(
            f"num_envs={num_envs} with num_cpus={num_cpus} would run {math.ceil(num_envs / processes)} "
            "simulations in one process, but libsumo allows only one SUMO simulation per process: "
            f"use num_cpus={num_envs} (or num_cpus=None) or backend='traci'"
        )
    return num_cpus


def make_vec_env(
    num_envs: int = 1,
    num_cpus: int | None = None,
    seed: int | None = None,
    env_fn: Callable[[], ParallelEnv] | None = None,
    via: str | None = None,
    core_fn: Callable[[], Any] | None = None,
    **env_config: Any,
) -> VecEnv:
    """One SB3 VecEnv over ``num_envs`` copies of the env; one vector index per vehicle slot.

    Ready for ``MaskedPPO("MultiInputPolicy", venv, policy_kwargs=create_deep_set_policy_kwargs())``
    (plain ``PPO`` works too, but then learns from padding samples).

    :param num_envs: env copies; the VecEnv has ``num_envs * slots`` indices (slots: the core's
        ``n_slots`` on the core path, ``len(possible_agents)`` on the SuperSuit path).
    :param num_cpus: worker processes (0 or 1: all copies in this process). ``None``: one
        process per copy with libsumo, one process in total otherwise.
    :param seed: seed for the first reset (copy ``i`` gets ``seed + i``); ``PPO(seed=...)``
        overrides it.
    :param env_fn: zero-argument factory of a PettingZoo ParallelEnv (SuperSuit path only),
        used instead of ``roadsense_marl.parallel_env(**env_config)``; ``env_config`` may then
        only hold ``backend`` (for the process rule).
    :param via: ``"core"`` (default): :class:`~roadsense_marl.training.core_vec_env.CoreVecEnv`
        over ``roadsense_marl.env.core.ConvoyCore`` copies; ``"supersuit"``: the parallel env
        through FixedSlot → PettingZoo → SuperSuit (the default when ``env_fn`` is given).
    :param core_fn: zero-argument factory of a core (core path only), used instead of
        ``ConvoyCore(make_env_config(**env_config))``; ``env_config`` may then only hold ``backend``.
    :param env_config: keyword arguments of ``roadsense_marl.parallel_env`` / ``make_env_config``.

    Sets torch's intra-op threads to 1 (the networks are small: one thread is faster on a
    shared 2-core machine and leaves the other core to a SUMO worker).
    Raises ValueError/TypeError naming the bad argument before any process or SUMO starts.
    """
    import torch

    if via is None:
        via = "supersuit" if env_fn is not None else "core"
    if via not in VIA:
        raise ValueError(f"via must be one of {VIA}, got {via!r}")
    if via == "core" and env_fn is not None:
        raise TypeError("env_fn (a PettingZoo env factory) needs via='supersuit'; the core path takes core_fn")
    if via == "supersuit" and core_fn is not None:
        raise TypeError("core_fn needs via='core'; the SuperSuit path takes env_fn")
    factory = env_fn if via == "supersuit" else core_fn
    if factory is not None:
        extra = sorted(set(env_config) - {"backend"})
        if extra:
            name = "env_fn" if via == "supersuit" else "core_fn"
            raise TypeError(f"make_vec_env got {name} and env config key(s) {extra}; configure the env inside {name}")
        if not callable(factory):
            raise TypeError(f"{'env_fn' if env_fn is not None else 'core_fn'} must be a zero-argument callable, got {factory!r}")
        backend = env_config.get("backend")
    else:
        backend = env_config.get("backend", DEFAULT_BACKEND)
    resolved_cpus = resolve_num_cpus(num_envs, num_cpus, backend)
    if factory is None:
        from roadsense_marl.env import make_env_config
        from roadsense_marl.sim.backends import libsumo_owner_alive

        env_cfg = make_env_config(**env_config)  # validates every key before anything starts
        if backend == "libsumo" and libsumo_owner_alive():
            raise ValueError(
                "a libsumo simulation is already running in this process (an env that was reset and not "
                "closed); the vector env's libsumo copies would clash with it (forked workers inherit it). "
                "Close that env first, or use backend='traci'"
            )
    torch.set_num_threads(1)

    if via == "core":
        from roadsense_marl.training.core_vec_env import CoreVecEnv

        if core_fn is None:
            try:
                from roadsense_marl.env.core import ConvoyCore
            except ImportError as exc:
                raise ImportError(
                    f"via='core' needs roadsense_marl.env.core.ConvoyCore, which this install lacks ({exc}); "
                    "use via='supersuit'"
                ) from exc
            core_fn = functools.partial(ConvoyCore, env_cfg)
        return CoreVecEnv([core_fn] * num_envs, num_cpus=resolved_cpus, seed=seed)

    if env_fn is None:
        from roadsense_marl import parallel_env  # the env layer, imported only when used

        env = parallel_env(**env_config)
    else:
        env = env_fn()
    markov = ss.pettingzoo_env_to_vec_env_v1(FixedSlotParallelEnv(env))
    sb3 = ss.concat_vec_envs_v1(markov, num_vec_envs=num_envs, num_cpus=resolved_cpus, base_class="stable_baselines3")
    venv = SuperSuitVecEnv(sb3, num_copies=num_envs)
    if seed is not None:
        venv.seed(seed)
    return VehicleVecMonitor(venv)


# ─── logging ─────────────────────────────────────────────────────────────────


class PaddedFractionCallback(BaseCallback):
    """Logs ``rollout/padded_fraction``: the share of collected samples that were padding.

    A padded sample is one whose action drove no vehicle: ``info["acted"]`` False (both vector
    env paths; on the core path this includes the hazard vehicle while its motion is
    imposed), or, for envs without that key, ``info["padded"]`` from
    :class:`FixedSlotParallelEnv`. MaskedPPO spends rollout compute on it but learns nothing from it.
    Warns once when the share exceeds ``warn_above`` (e.g. a scenario whose vehicles are
    mostly not in the simulation), since training is then mostly wasted work.
    """

    def __init__(self, warn_above: float = 0.5, verbose: int = 0) -> None:
        super().__init__(verbose)
        if not 0.0 <= warn_above <= 1.0:
            raise ValueError(f"warn_above must be in [0, 1], got {warn_above!r}")
        self.warn_above = warn_above
        self.last_fraction: float | None = None
        self._padded = 0
        self._total = 0
        self._warned = False

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        self._padded += sum(not info.get(ACTED_KEY, not info.get(PADDED_KEY, False)) for info in infos)
        self._total += len(infos)
        return True

    def _on_rollout_end(self) -> None:
        if not self._total:
            return
        self.last_fraction = self._padded / self._total
        self.logger.record("rollout/padded_fraction", self.last_fraction)
        if self.last_fraction > self.warn_above and not self._warned:
            self._warned = True
            warnings.warn(
                f"{self.last_fraction:.0%} of the training samples are padding (absent agents), above "
                f"{self.warn_above:.0%}: most PPO work is wasted; use a scenario whose vehicles spend more "
                "of the episode in the simulation, or fewer possible agents",
                stacklevel=2,
            )
        self._padded = self._total = 0
