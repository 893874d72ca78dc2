"""A direct SB3 ``VecEnv`` over copies of the array core: every vehicle slot is one vector index.

    ConvoyCore copy 0 ─┐                      slots 0 .. S-1
    ConvoyCore copy 1 ─┼─> CoreVecEnv ─>      slots S .. 2S-1      (one batch, no PettingZoo/SuperSuit)
    ...               ─┘                      ...

``num_envs = copies x n_slots`` (``n_slots`` = the core's fixed slot count). Each step hands
the slice of the action batch that belongs to copy ``c`` to that core in one call and reads
its slot arrays back; nothing is built per agent except the list of info dicts SB3 requires.

What SB3 sees per vector index (slot):

* **done** in the step its agent ends (collision: terminal; arrival or max_steps: with
  ``info["TimeLimit.truncated"] = True``, so PPO bootstraps), with the agent's final
  observation in ``info["terminal_observation"]``; the slot then shows padding (all-zero
  observation: no ego, ``peer_mask`` all 0) until a new agent joins. A join also ends the
  slot's padding stretch (done, all-zero terminal observation, ``TimeLimit.truncated``
  False: padding is worth 0), so the new agent's first observation is an episode start, as
  on the SuperSuit path; both paths give the same observations, rewards and dones.
* **auto-reset** of a copy when ``core.episode_over``: every slot of it is done in that
  step and the returned observation is the new episode's first. Copy ``i`` is reset with
  ``seed + i`` after :meth:`CoreVecEnv.seed` (``PPO(seed=...)`` calls it), later resets
  unseeded, so each core's own SeedSequence continues (as the SuperSuit path does).
* ``info["reason"]`` (``"collision"``, ``"max_steps"`` or ``"arrived"``, as the ParallelEnv
  view names it) in the step an agent ends, for ``CollisionRateCallback``.
* ``info["acted"]``: whether the action sent in this step drove a vehicle (the core's
  ``acted``; False for padding and for the hazard vehicle while its motion is imposed).
  :class:`~roadsense_marl.training.ppo.MaskedPPO` learns only from those samples.
* ``info["episode"] = {"r": return, "l": steps, "t": seconds since creation}`` exactly as
  SB3's ``Monitor`` writes it, **only** in the step a real vehicle's episode ends (never for
  padding). Since the env emits Monitor's episode info itself, ``env_is_wrapped(Monitor)``
  answers True: ``ep_rew_mean`` and ``evaluate_policy`` count vehicles only. Do not wrap it
  in ``VecMonitor`` (that would count padding stretches as episodes again). Note that
  ``evaluate_policy`` waits for a set number of episodes on given slots, so with slots
  that never receive a vehicle (``max_vehicles`` above the scenario's peak) it never ends.

``num_cpus >= 2`` runs the copies in worker processes (forked; libsumo: one SUMO per
process); actions and slot arrays travel through shared memory, only a short command and
reply go through each worker's pipe. A worker that dies raises :class:`WorkerDiedError`
naming the worker, its pid, its copies, how it ended and what it was doing. ``close()``
closes every core and stops every worker (idempotent; also from ``__del__``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from roadsense_marl.training.ppo import ACTED_KEY

__all__ = ["CoreVecEnv", "WorkerDiedError"]

_FLAGS = ("done", "timelimit", "ended", "acted", "live")
from roadsense_marl.env.core import END_REASONS  # noqa: E402 - info["reason"], one owner for every view


class WorkerDiedError(RuntimeError):
    """A CoreVecEnv worker process ended while the vector env was using it."""


def _alloc(shape: tuple[int, ...], dtype: Any, shared: bool) -> np.ndarray:
    """A zeroed array, in memory shared with forked children when ``shared``."""
    dtype = np.dtype(dtype)
    if not shared:
        return np.zeros(shape, dtype)
    raw = mp.RawArray("b", max(1, int(np.prod(shape)) * dtype.itemsize))
    return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


class _Buffers:
    """The arrays every step writes, over all ``n = copies x slots`` vector indices."""

    def __init__(self, obs_space: gym.spaces.Dict, n: int, shared: bool) -> None:
        self.keys = tuple(obs_space.spaces)
        self.obs = {k: _alloc((n, *obs_space[k].shape), obs_space[k].dtype, shared) for k in self.keys}
        self.terminal_obs = {k: _alloc((n, *obs_space[k].shape), obs_space[k].dtype, shared) for k in self.keys}
        self.actions = _alloc((n,), np.float32, shared)
        self.reward = _alloc((n,), np.float64, shared)
        self.episode_return = _alloc((n,), np.float64, shared)  # of the episode that ended (valid where ended)
        self.episode_length = _alloc((n,), np.int64, shared)
        self.reason = _alloc((n,), np.int8, shared)  # index into END_REASONS (valid where ended)
        self.episode_step = _alloc((n,), np.int64, shared)  # the core's num_steps (for error messages)
        for name in _FLAGS:
            setattr(self, name, _alloc((n,), bool, shared))

    def view(self, start: int, stop: int) -> _Buffers:
        out = object.__new__(_Buffers)
        out.keys = self.keys
        out.obs = {k: v[start:stop] for k, v in self.obs.items()}
        out.terminal_obs = {k: v[start:stop] for k, v in self.terminal_obs.items()}
        for name in ("actions", "reward", "episode_return", "episode_length", "reason", "episode_step", *_FLAGS):
            setattr(out, name, getattr(self, name)[start:stop])
        return out


class _CopyRunner:
    """Steps one core and writes its slots' SB3 view (obs, done, terminal obs, episode stats) into buffers.

    Runs in the main process (``num_cpus <= 1``) or in a worker; the same code either way.
    """

    def __init__(self, core: Any, buf: _Buffers) -> None:
        self.core = core
        self.buf = buf
        n = len(buf.reward)
        self._return = np.zeros(n, np.float64)  # running return of the agent in each slot
        self._length = np.zeros(n, np.int64)

    def reset(self, seed: int | None) -> None:
        self.core.reset(seed=seed)
        self._return[:] = 0
        self._length[:] = 0
        b = self.buf
        for k in b.keys:
            b.obs[k][:] = self.core.obs[k]
        b.live[:] = self.core.live
        for name in ("done", "timelimit", "ended", "acted"):
            getattr(b, name)[:] = False
        b.reward[:] = 0
        b.episode_step[:] = self.core.num_steps

    def step(self) -> None:
        core, b = self.core, self.buf
        occupied = b.live.copy()  # slots holding an agent during this step
        core.step(b.actions)
        terminated, truncated = core.terminated, core.truncated
        ended = terminated | truncated
        if ended.any():
            b.reason[:] = core.record.end_reason
        reward = core.reward
        b.reward[:] = reward
        b.acted[:] = core.acted
        self._return += reward
        self._length += occupied
        if core.episode_over:
            # every agent still in a slot ends with the episode (the core flags it truncated); a
            # vehicle that joined in this very step never acted: its slot ends padding, no episode
            ended = (ended | occupied) & ~core.joined
            for k in b.keys:
                b.terminal_obs[k][:] = core.obs[k]
            timelimit = ended & ~terminated
            acted, reward = b.acted.copy(), b.reward.copy()
            episode_return, episode_length = self._return.copy(), self._length.copy()
            self.reset(None)  # unseeded: the core's own SeedSequence continues
            b.done[:] = True
            b.timelimit[:] = timelimit
            b.ended[:] = ended
            b.episode_return[:] = episode_return
            b.episode_length[:] = episode_length
            b.acted[:] = acted
            b.reward[:] = reward
            return
        joined = core.joined
        self._return[joined] = 0  # the join step's reward belongs to the padding sample before it
        done = ended | joined
        b.done[:] = done
        b.ended[:] = ended
        b.timelimit[:] = ended & ~terminated
        if ended.any():
            b.episode_return[ended] = self._return[ended]
            b.episode_length[ended] = self._length[ended]
            self._return[ended] = 0
            self._length[ended] = 0
        for k in b.keys:
            b.obs[k][:] = core.obs[k]
            if done.any():
                b.terminal_obs[k][ended] = core.obs[k][ended]
                b.terminal_obs[k][joined] = 0
                b.obs[k][ended] = 0  # the slot shows padding from now on
        b.live[:] = core.live
        b.episode_step[:] = core.num_steps

    def close(self) -> None:
        self.core.close()


# ─── worker processes ─────────────────────────────────────────────────────────


def _worker_main(
    conn: Connection,
    cmd_fd: int,
    done_fd: int,
    inherited: list[Any],
    core_fns: list[Callable[[], Any]],
    bufs: list[_Buffers],
) -> None:
    """Worker loop: build its cores, then serve commands.

    The per-step path is one byte each way over plain pipes (``b"s"`` in; ``b"k"`` done or
    ``b"e"`` failed, the exception then follows over ``conn``): actions and results are in
    shared memory, so nothing is pickled. ``b"m"`` announces a message on ``conn``:
    ("reset", seeds) / ("agents", None) / ("close", None), answered there as
    (status, command, payload[, traceback]). EOF on ``cmd_fd`` (the parent is gone) ends the loop.
    """
    for obj in inherited:  # the parent's ends of this and earlier workers' channels
        try:
            obj.close() if hasattr(obj, "close") else os.close(obj)
        except OSError:
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the main process, which closes us
    runners: list[_CopyRunner] = []
    try:
        runners = [_CopyRunner(fn(), buf) for fn, buf in zip(core_fns, bufs)]
        conn.send(("ok", "start", None))
        while True:
            byte = os.read(cmd_fd, 1)
            if not byte:
                return
            if byte == b"s":
                try:
                    for runner in runners:
                        runner.step()
                except Exception as exc:
                    conn.send(("error", "step", exc, traceback.format_exc()))
                    os.write(done_fd, b"e")
                else:
                    os.write(done_fd, b"k")
                continue
            cmd, arg = conn.recv()
            try:
                if cmd == "reset":
                    for runner, seed in zip(runners, arg):
                        runner.reset(seed)
                    conn.send(("ok", cmd, None))
                elif cmd == "agents":
                    conn.send(("ok", cmd, [list(r.core.agent_of_slot) for r in runners]))
                elif cmd == "close":
                    errors = []
                    for runner in runners:
                        try:
                            runner.close()
                        except Exception as exc:  # report, but close the others
                            errors.append(f"{type(exc).__name__}: {exc}")
                    conn.send(("ok", cmd, errors))
                    return
                else:
                    conn.send(("error", cmd, ValueError(f"unknown worker command {cmd!r}"), ""))
            except Exception as exc:
                conn.send(("error", cmd, exc, traceback.format_exc()))
    except (EOFError, OSError, KeyboardInterrupt):
        pass
    except Exception as exc:  # building the cores failed
        try:
            conn.send(("error", "start", exc, traceback.format_exc()))
        except OSError:
            pass
    finally:
        for runner in runners:
            try:
                runner.close()
            except Exception:
                pass
        conn.close()
        for fd in (cmd_fd, done_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class _Worker:
    def __init__(self, index: int, copies: list[int], process: mp.Process, conn: Connection, cmd_fd: int, done_fd: int) -> None:
        self.index, self.copies, self.process, self.conn = index, copies, process, conn
        self.cmd_fd, self.done_fd = cmd_fd, done_fd  # parent's ends: write commands, read step replies
        self.command = "start"
        self.alive = True

    def name(self) -> str:
        return f"worker {self.index} (pid {self.process.pid}, env copies {self.copies})"


# ─── the vector env ────────────────────────────────────────────────────────────


class CoreVecEnv(VecEnv):
    """SB3 VecEnv over ``num_copies`` cores; vector index ``c * n_slots + s`` is slot ``s`` of copy ``c``.

    :param core_fns: one zero-argument factory per copy returning a core with the interface of
        ``roadsense_marl.env.core.ConvoyCore`` (``n_slots``, ``observation_space`` (a Dict),
        ``action_space``, ``reset(seed)``, ``step(actions)``, slot arrays, ``episode_over``,
        ``close()``). Called in the worker when ``num_cpus >= 2``.
    :param num_cpus: worker processes; 0 or 1: every core in this process. Copies are split
        into ``min(num_cpus, copies)`` contiguous groups, one per worker.
    :param seed: seed of the first reset (copy ``i`` gets ``seed + i``).
    :param start_method: multiprocessing start method for workers (``"fork"`` shares the
        buffers without copying; ``"spawn"``/``"forkserver"`` need picklable ``core_fns``).

    Observations: the core's Dict space, ``float32[num_envs, ...]`` per key. Rewards
    ``float32[num_envs]``; dones ``bool[num_envs]``. See the module docstring for the info keys.
    Raises ValueError for actions of the wrong shape or non-finite actions of an occupied slot
    (naming the copy, slot and agent) before any core steps.
    """

    def __init__(
        self,
        core_fns: Sequence[Callable[[], Any]],
        num_cpus: int = 0,
        seed: int | None = None,
        start_method: str = "fork",
    ) -> None:
        if not core_fns:
            raise ValueError("CoreVecEnv needs at least one core factory (core_fns is empty)")
        if isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 0:
            raise ValueError(f"num_cpus must be an int >= 0, got {num_cpus!r}")
        self.num_copies = len(core_fns)
        self._closed = False
        self._runners: list[_CopyRunner] = []
        self._workers: list[_Worker] = []
        self._pending_seed: int | None = None
        self._broken: str | None = None
        self._t0 = time.perf_counter()
        self._steps_taken = 0
        n_workers = min(num_cpus, self.num_copies) if num_cpus >= 2 else 0

        if n_workers == 0:
            cores = []
            try:
                for fn in core_fns:
                    cores.append(fn())
            except BaseException:
                for core in cores:
                    core.close()
                raise
            probe = cores[0]
        else:
            probe = core_fns[0]()  # spaces and slot count without stepping (SUMO starts lazily in reset)
        try:
            self.n_slots = int(probe.n_slots)
            obs_space, act_space = probe.observation_space, probe.action_space
        finally:
            if n_workers:
                probe.close()
        if not isinstance(obs_space, gym.spaces.Dict):
            raise ValueError(f"CoreVecEnv needs a core with a Dict observation space, got {obs_space!r}")
        if not isinstance(act_space, gym.spaces.Box) or int(np.prod(act_space.shape)) != 1:
            raise ValueError(f"CoreVecEnv needs a core with a one-value Box action space, got {act_space!r}")
        super().__init__(self.num_copies * self.n_slots, obs_space, act_space)

        S = self.n_slots
        self._buf = _Buffers(obs_space, self.num_envs, shared=n_workers > 0)
        views = [self._buf.view(c * S, (c + 1) * S) for c in range(self.num_copies)]
        if n_workers == 0:
            self._runners = [_CopyRunner(core, view) for core, view in zip(cores, views)]
        else:
            self._start_workers(core_fns, views, n_workers, start_method)
        if seed is not None:
            self.seed(seed)

    # ── workers ──

    def _start_workers(self, core_fns, views, n_workers: int, start_method: str) -> None:
        ctx = mp.get_context(start_method)
        groups = np.array_split(np.arange(self.num_copies), n_workers)
        parent_ends: list[Any] = []
        try:
            for w, group in enumerate(groups):
                copies = [int(c) for c in group]
                parent_conn, child_conn = ctx.Pipe()
                cmd_r, cmd_w = os.pipe()
                done_r, done_w = os.pipe()
                parent_ends += [parent_conn, cmd_w, done_r]
                proc = ctx.Process(
                    target=_worker_main,
                    args=(child_conn, cmd_r, done_w, list(parent_ends), [core_fns[c] for c in copies], [views[c] for c in copies]),
                    name=f"CoreVecEnv-worker-{w}",
                    daemon=True,
                )
                try:
                    proc.start()
                finally:
                    child_conn.close()
                    os.close(cmd_r)
                    os.close(done_w)
                self._workers.append(_Worker(w, copies, proc, parent_conn, cmd_w, done_r))
            self._gather("start")
        except BaseException:
            self.close()
            raise

    def _send(self, cmd: str, args: Sequence[Any] | None = None) -> None:
        for i, worker in enumerate(self._workers):
            worker.command = cmd
            try:
                os.write(worker.cmd_fd, b"m")
                worker.conn.send((cmd, None if args is None else args[i]))
            except OSError:
                self._raise_died(worker)

    def _start_step(self) -> None:
        """One byte to every worker: step your cores on the actions in shared memory."""
        for worker in self._workers:
            worker.command = "step"
            try:
                os.write(worker.cmd_fd, b"s")
            except OSError:
                self._raise_died(worker)

    def _finish_step(self) -> None:
        """One byte back from every worker (b"k" done, b"e" failed; EOF: it died)."""
        failed: tuple[_Worker, Any] | None = None
        for worker in self._workers:
            try:
                byte = os.read(worker.done_fd, 1)
            except OSError:
                byte = b""
            if byte == b"e" and failed is None:
                failed = (worker, worker.conn.recv())
            elif byte not in (b"k", b"e"):
                self._raise_died(worker)
        if failed is not None:
            worker, (_, _, exc, tb) = failed
            self._raise_worker_error(worker, "step", exc, tb)

    def _gather(self, cmd: str) -> list[Any]:
        """Wait for every worker's reply; a dead worker raises WorkerDiedError, a worker error is re-raised."""
        replies: dict[int, Any] = {}
        waiting = {w.conn: w for w in self._workers}
        sentinels = {w.process.sentinel: w for w in self._workers}
        error: tuple[_Worker, BaseException, str] | None = None
        while waiting:
            ready = wait([*waiting, *(s for s, w in sentinels.items() if w.conn in waiting)])
            for obj in ready:
                if obj in waiting:
                    worker = waiting.pop(obj)
                    try:
                        status, replied_to, payload, *rest = worker.conn.recv()
                    except (EOFError, OSError):
                        self._raise_died(worker)
                    if replied_to != cmd:  # a reply left over from an earlier, interrupted command
                        waiting[obj] = worker
                        continue
                    if status == "ok":
                        replies[worker.index] = payload
                    elif error is None or worker.index < error[0].index:  # report the lowest worker's error
                        error = (worker, payload, rest[0] if rest else "")
                elif sentinels[obj].conn in waiting and not sentinels[obj].conn.poll():
                    self._raise_died(sentinels[obj])
        if error is not None:
            self._raise_worker_error(*error[:1], cmd, *error[1:])
        return [replies[w.index] for w in self._workers]

    def _raise_worker_error(self, worker: _Worker, cmd: str, exc: Any, tb: str) -> None:
        if isinstance(exc, BaseException):
            if _simple(exc):
                raise type(exc)(f"{exc} (in CoreVecEnv {worker.name()}, command {cmd!r})")
            raise exc
        raise RuntimeError(f"CoreVecEnv {worker.name()} failed in {cmd!r}:\n{tb}")

    def _raise_died(self, worker: _Worker) -> None:
        worker.process.join(1.0)
        worker.alive = False
        code = worker.process.exitcode
        if code is not None and code < 0:
            try:
                how = f"was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        elif code is None:
            how = "closed its pipe"
        else:
            how = f"exited with code {code}"
        steps = ", ".join(f"copy {c} at episode step {int(self._buf.episode_step[c * self.n_slots])}" for c in worker.copies)
        self._broken = (
            f"CoreVecEnv {worker.name()} {how} while running {worker.command!r}; last known state: {steps}, "
            f"{self._steps_taken} vector steps taken since creation. The vector env is unusable: close() it "
            "and build a new one"
        )
        raise WorkerDiedError(self._broken)

    # ── VecEnv API ──

    def seed(self, seed: int | None = None) -> list[int | None]:
        """Use ``seed + i`` for copy ``i`` at the next reset; returns the seed of every vector index."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self._pending_seed = None if seed is None else int(seed)
        if seed is None:
            return [None] * self.num_envs
        return [int(seed) + i // self.n_slots for i in range(self.num_envs)]

    def reset(self) -> VecEnvObs:
        self._check_open()
        seed, self._pending_seed = self._pending_seed, None
        seeds = [None if seed is None else seed + c for c in range(self.num_copies)]
        if self._runners:
            for runner, s in zip(self._runners, seeds):
                runner.reset(s)
        else:
            self._send("reset", [[seeds[c] for c in w.copies] for w in self._workers])
            self._gather("reset")
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return {k: v.copy() for k, v in self._buf.obs.items()}

    def step_async(self, actions: np.ndarray) -> None:
        self._check_open()
        a = np.asarray(actions, dtype=np.float32)
        if a.shape not in ((self.num_envs,), (self.num_envs, 1)):
            raise ValueError(
                f"actions must have shape ({self.num_envs},) or ({self.num_envs}, 1) "
                f"({self.num_copies} copies x {self.n_slots} slots), got {a.shape}"
            )
        a = a.reshape(self.num_envs)
        bad = ~np.isfinite(a) & self._buf.live
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            c, s = divmod(i, self.n_slots)
            raise ValueError(
                f"non-finite action {a[i]} for vector index {i} (env copy {c}, slot {s}, agent "
                f"{self._agent_of(c, s)!r}); actions of occupied slots must be finite. Nothing was stepped"
            )
        self._buf.actions[:] = a
        if self._workers:
            self._start_step()

    def step_wait(self) -> VecEnvStepReturn:
        if self._runners:
            for runner in self._runners:
                runner.step()
        else:
            self._finish_step()
        self._steps_taken += 1
        b = self._buf
        obs = {k: v.copy() for k, v in b.obs.items()}
        infos: list[dict[str, Any]] = [{ACTED_KEY: acted} for acted in b.acted.tolist()]
        for i in np.flatnonzero(b.done).tolist():
            infos[i]["terminal_observation"] = {k: v[i].copy() for k, v in b.terminal_obs.items()}
            infos[i]["TimeLimit.truncated"] = bool(b.timelimit[i])
        if b.ended.any():
            t = round(time.perf_counter() - self._t0, 6)
            for i in np.flatnonzero(b.ended).tolist():
                infos[i]["episode"] = {"r": round(float(b.episode_return[i]), 6), "l": int(b.episode_length[i]), "t": t}
                infos[i]["reason"] = END_REASONS[b.reason[i]]
        return obs, b.reward.astype(np.float32), b.done.copy(), infos

    def _agent_of(self, copy: int, slot: int) -> Any:
        if self._runners:
            return self._runners[copy].core.agent_of_slot[slot]
        worker = next(w for w in self._workers if copy in w.copies)
        os.write(worker.cmd_fd, b"m")
        worker.conn.send(("agents", None))
        status, replied_to, payload, *_ = worker.conn.recv()
        return payload[worker.copies.index(copy)][slot] if status == "ok" and replied_to == "agents" else None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this CoreVecEnv is closed; build a new one")
        if self._broken is not None:
            raise WorkerDiedError(self._broken)

    def close(self) -> None:
        """Close every core and stop every worker; safe to call twice. Re-raises the first close error."""
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []
        for runner in self._runners:
            try:
                runner.close()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        for worker in self._workers:
            if worker.alive and worker.process.is_alive():
                try:
                    os.write(worker.cmd_fd, b"m")
                    worker.conn.send(("close", None))
                    deadline = time.monotonic() + 30.0
                    while True:  # skip replies left unread after another worker failed
                        if not worker.conn.poll(max(0.0, deadline - time.monotonic())):
                            errors.append(f"worker {worker.index}: no reply to close within 30 s")
                            break
                        status, replied_to, payload, *_ = worker.conn.recv()
                        if replied_to == "close":
                            if status == "ok" and payload:
                                errors += [f"worker {worker.index}: {e}" for e in payload]
                            break
                except (EOFError, OSError):
                    pass
            worker.process.join(10.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
            for fd in (worker.cmd_fd, worker.done_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass
        if errors:
            raise RuntimeError("closing the CoreVecEnv failed:\n" + "\n".join(errors))

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # ── attribute access (SB3 API); there is no per-index gym.Env ──

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        n = len(self._get_indices(indices))
        if attr_name == "render_mode":
            return [None] * n
        if attr_name in ("n_slots", "num_copies"):
            return [getattr(self, attr_name)] * n
        raise AttributeError(f"CoreVecEnv has no per-slot attribute {attr_name!r} (available: render_mode, n_slots, num_copies)")

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"CoreVecEnv slots have no settable attributes (tried {attr_name!r})")

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        raise AttributeError(f"CoreVecEnv slots are not gym.Env objects; cannot call {method_name!r} on them")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """True for ``Monitor``: the env writes Monitor's ``info["episode"]`` itself (real vehicles only)."""
        return [wrapper_class is Monitor] * len(self._get_indices(indices))


def _simple(exc: BaseException) -> bool:
    """Whether ``type(exc)(message)`` rebuilds the exception (plain ValueError, RuntimeError, ...)."""
    return type(exc) in (ValueError, RuntimeError, TypeError, KeyError, IndexError)
