"""Run fixed-seed episodes with a policy, record what the metrics need, write ``metrics.json``.

:func:`evaluate` is the Python entry behind ``roadsense-marl evaluate``: the same seeds for
the policy under test and for both baselines, optionally under several radio profiles, then
metrics, a terminal summary and plots.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from roadsense_marl.evaluation.baselines import BASELINES, Policy, make_baseline
from roadsense_marl.evaluation.metrics import (
    DEFINITIONS,
    HARD_BRAKE_LABEL,
    EpisodeRecord,
    aggregate,
    episode_metrics,
    expected_delivery_ratio,
)

RADIO_SWEEP = ("ideal", "measured", "degraded")
EPISODE_SHAPES = ("config", "training", "standard")
POLICIES = ("model",) + BASELINES


# ---- recording -------------------------------------------------------------------------------

def run_episode(env: Any, policy: Policy, seed: int) -> EpisodeRecord:
    """Play one episode from ``env.reset(seed)`` to its end with ``policy``; return its record.

    Reads only the env's public per-step record (``env.record``, a
    :class:`~roadsense_marl.env.core.StepRecord`) and the observations, by feature name.
    Columns are ``possible_agents``; slots are mapped through ``record.agent_index``.
    """
    from roadsense_marl.env.observations import unscale

    agents = tuple(env.possible_agents)
    m = len(agents)
    obs, _ = env.reset(seed=seed)
    rec = env.record
    names = tuple(rec.reward_components)
    n_comp = len(names)
    present, gap, decel, lead, rew, comps, vis, speed, accel = [], [], [], [], [], [], [], [], []
    collided_step = np.full(m, -1, dtype=np.int64)
    links: list[tuple[np.ndarray, ...]] = []
    ages: list[np.ndarray] = []
    obs_buf = env.core.obs
    while env.agents:
        t = env.num_steps
        # before the step: who follows whom (columns = possible agents)
        idx = rec.agent_index
        on = rec.slots
        lb = np.full(m, -1, dtype=np.int64)
        lead_slot = rec.leader_slot[on]
        lb[idx[on]] = np.where(lead_slot >= 0, idx[np.maximum(lead_slot, 0)], -1)
        acting_before = env.core.live.copy()
        obs, _, _, _, _ = env.step(policy(env, obs))

        idx = rec.agent_index  # ended agents keep their slot until the next step
        d = np.full(m, np.nan)
        a = np.flatnonzero(np.isfinite(rec.decel_cmd))
        d[idx[a]] = rec.decel_cmd[a]
        out = np.flatnonzero((acting_before | rec.joined) & (idx >= 0))
        r = np.full(m, np.nan)
        r[idx[out]] = rec.reward[out]
        c = np.full((m, n_comp), np.nan)
        if n_comp:
            c[idx[out]] = np.stack([rec.reward_components[k][out] for k in names], axis=1)
        on = rec.slots
        cols = idx[on]
        pr = np.zeros(m, dtype=bool)
        pr[cols] = True
        g, v, sp, ac = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
        g[cols] = rec.gap[on]
        sp[cols] = rec.speed[on]
        ac[cols] = rec.states.accel  # rows of states are the slots `on`, in order
        if "n_visible" in rec.row_extras:
            v[cols] = rec.extra("n_visible")[on]
        if "peers" in obs_buf and len(on):
            mask = obs_buf["peer_mask"][on] > 0
            if mask.any():
                ages.append(unscale(obs_buf["peers"][on][mask], "peers", "age"))
        hit = np.flatnonzero(rec.terminated)
        collided_step[idx[hit]] = t
        ll = rec.links
        if ll is not None and len(ll):
            dist = np.asarray(ll.distance_m, dtype=np.float64)
            links.append(
                (
                    np.full(len(ll), t, dtype=np.int64),
                    idx[np.asarray(ll.sender, dtype=np.int64)],
                    idx[np.asarray(ll.receiver, dtype=np.int64)],
                    dist,
                    np.asarray(ll.delivered, dtype=bool),
                    expected_delivery_ratio(rec.radio_params, dist),
                    rec.cbr[np.asarray(ll.receiver, dtype=np.int64)],
                )
            )
        present.append(pr)
        gap.append(g)
        decel.append(d)
        lead.append(lb)
        rew.append(r)
        comps.append(c)
        vis.append(v)
        speed.append(sp)
        accel.append(ac)

    cat = [np.concatenate(col) for col in zip(*links)] if links else [
        np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0, bool), np.empty(0),
        np.empty(0),
    ]
    hz = rec.hazard_vehicle
    return EpisodeRecord(
        seed=int(seed),
        step_length=float(env.step_length),
        agents=agents,
        present=np.array(present, dtype=bool).reshape(-1, m),
        gap=np.array(gap).reshape(-1, m),
        decel_cmd=np.array(decel).reshape(-1, m),
        leader_before=np.array(lead, dtype=np.int64).reshape(-1, m),
        reward=np.array(rew).reshape(-1, m),
        components=np.array(comps).reshape(-1, m, n_comp),
        component_names=names,
        n_visible=np.array(vis).reshape(-1, m),
        collided_step=collided_step,
        onset_step=rec.hazard_onset_step,
        hazard_slot=agents.index(hz) if hz is not None else -1,
        link_step=cat[0],
        link_sender=cat[1],
        link_receiver=cat[2],
        link_distance=cat[3],
        link_delivered=cat[4],
        link_expected_pdr=cat[5],
        link_cbr=cat[6],
        message_age_ms=np.concatenate(ages) if ages else np.empty(0),
        speed=np.array(speed).reshape(-1, m),
        accel=np.array(accel).reshape(-1, m),
        release_step=_release_step(env),
    )


def _release_step(env: Any) -> int | None:
    """The step at which this episode's hazard vehicle is handed back (None: never released or no hazard)."""
    plan = getattr(getattr(getattr(env, "core", None), "hazard", None), "plan", None)
    step = getattr(plan, "release_step", None)
    return None if step is None else int(step)


def run_policy(env: Any, policy: Policy, seeds: Sequence[int]) -> list[EpisodeRecord]:
    """One record per seed, in order."""
    return [run_episode(env, policy, int(s)) for s in seeds]


def _run_seeds(
    env: Any, policy: Policy, seeds: Sequence[int], bar: Any, n_record: int, video_dir: Path, stem: str, fmt: str
) -> list[EpisodeRecord]:
    """:func:`run_policy` with a progress bar, recording the first ``n_record`` episodes as videos."""
    from roadsense_marl.evaluation.record import EpisodeRecorder, real_time_fps, write_video

    out = []
    for i, s in enumerate(seeds):
        if i < n_record:
            rec = EpisodeRecorder(env, caption=f"{stem.replace('_', '   ', 1)} radio   seed {int(s)}")
            out.append(run_episode(rec, policy, int(s)))
            write_video(rec.frames, video_dir / f"{stem}_seed{int(s)}.{fmt}", real_time_fps(env))
        else:
            out.append(run_episode(env, policy, int(s)))
        bar.update(1)
    return out


# ---- model policies --------------------------------------------------------------------------

def resolve_model(model: str | Path) -> tuple[Path, dict[str, Any] | None, Path | None]:
    """``(model path, env config from the run or model or None, progress.csv or None)``.

    ``model`` is an SB3 ``.zip``, a training run folder holding ``final_model.zip``, a folder
    exported by ``roadsense-marl export`` (``policy.json`` + ``policy.pt``; returned as the folder),
    or ``"pretrained"``, the policy shipped with the package (:mod:`roadsense_marl.pretrained`).
    The env contract the model was made under is :func:`model_contract`.
    """
    from roadsense_marl.training.runs import is_exported_policy, read_exported_config, read_model_record, read_run_config

    from roadsense_marl.pretrained import resolve_pretrained

    from roadsense_marl.training.rllib_train import FINAL_CHECKPOINT, is_rllib_checkpoint, read_checkpoint_record

    p = Path(resolve_pretrained(model))
    if is_exported_policy(p):
        return p, read_exported_config(p).get("env"), None
    if is_rllib_checkpoint(p):
        return p, (read_checkpoint_record(p) or {}).get("env"), None
    if p.is_dir() and (p / "config.yaml").is_file() and read_run_config(p).get("engine") == "rllib":
        ckpt = p / FINAL_CHECKPOINT
        if not is_rllib_checkpoint(ckpt):
            from roadsense_marl.training.rllib_train import latest_checkpoint

            latest = latest_checkpoint(p)
            hint = (f"; its latest checkpoint is {latest[0]} (evaluate that folder), or continue the run with: "
                    f"roadsense-marl train --resume {p}") if latest else ""
            raise FileNotFoundError(f"RLlib training run folder {str(p)!r} has no {FINAL_CHECKPOINT}{hint}")
        env_cfg = read_run_config(p).get("env")
        if env_cfg is not None and not isinstance(env_cfg, dict):
            raise ValueError(f"{p / 'config.yaml'}: key 'env' must be a mapping of env config keys")
        progress = p / "progress.csv"
        return ckpt, env_cfg, progress if progress.is_file() else None
    if p.is_dir():
        zip_path = p / "final_model.zip"
        if not zip_path.is_file():
            from roadsense_marl.training.runs import latest_model

            found = sorted(q.name for q in p.glob("*.zip"))
            latest = latest_model(p)
            hint = (f"; its latest checkpoint is {latest[0]} (evaluate that file), or continue the run with: "
                    f"roadsense-marl train --resume {p}") if latest else ""
            raise FileNotFoundError(
                f"training run folder {str(p)!r} has no final_model.zip (zip files there: {found or 'none'}){hint}"
            )
        env_cfg = None
        if (p / "config.yaml").is_file():
            data = read_run_config(p)
            env_cfg = data.get("env")
            if env_cfg is not None and not isinstance(env_cfg, dict):
                raise ValueError(f"{p / 'config.yaml'}: key 'env' must be a mapping of env config keys")
        progress = p / "progress.csv"
        return zip_path, env_cfg, progress if progress.is_file() else None
    if not p.is_file():
        alt = p.with_suffix(".zip") if p.suffix != ".zip" else None
        if alt is not None and alt.is_file():
            p = alt
        else:
            raise FileNotFoundError(f"model file not found: {str(p)!r} (give an SB3 .zip, a training run folder or an exported policy folder)")
    record = read_model_record(p)
    return p, (record or {}).get("env"), None


def model_contract(model: str | Path) -> tuple[dict[str, Any] | None, str]:
    """``(env contract recorded with the model or None, what to call it in messages)``.

    A run folder's ``config.yaml`` must describe its ``final_model.zip``: when both record a
    contract and they differ, that is an error.
    """
    from roadsense_marl.training.runs import (
        check_contract, is_exported_policy, read_exported_config, read_model_record, read_run_config,
    )

    from roadsense_marl.training.rllib_train import FINAL_CHECKPOINT, is_rllib_checkpoint, read_checkpoint_record

    p = Path(model)
    if is_exported_policy(p):
        return read_exported_config(p)["contract"], f"exported policy {str(p)!r}"
    if is_rllib_checkpoint(p):
        return (read_checkpoint_record(p) or {}).get("contract"), f"RLlib checkpoint {str(p)!r}"
    if p.is_dir() and is_rllib_checkpoint(p / FINAL_CHECKPOINT):
        record = read_checkpoint_record(p / FINAL_CHECKPOINT)
        cfg_contract = read_run_config(p).get("contract") if (p / "config.yaml").is_file() else None
        if record is not None and cfg_contract is not None:
            check_contract(record["contract"], cfg_contract, what=f"{str(p / FINAL_CHECKPOINT)!r}", recorded_as="model",
                           current_as="config.yaml beside it")
        return (cfg_contract if cfg_contract is not None else (record or {}).get("contract")), f"run {str(p)!r}"
    if p.is_dir():
        zip_path = p / "final_model.zip"
        record = read_model_record(zip_path)
        cfg_contract = read_run_config(p).get("contract") if (p / "config.yaml").is_file() else None
        if record is not None and cfg_contract is not None:
            check_contract(record["contract"], cfg_contract, what=f"{str(zip_path)!r}", recorded_as="model",
                           current_as="config.yaml beside it")
        contract = cfg_contract if cfg_contract is not None else (record or {}).get("contract")
        return contract, f"run {str(p)!r}"
    record = read_model_record(p)
    return (record or {}).get("contract"), f"model {str(p)!r}"


def model_policy(model: Any) -> Policy:
    """A shared policy from an SB3 model: one batched ``predict`` per step for all live agents."""

    def policy(env: Any, obs: dict) -> dict:
        agents = env.agents
        if not agents:
            return {}
        batch = {k: np.stack([obs[a][k] for a in agents]) for k in ("ego", "peers", "peer_mask")}
        act, _ = model.predict(batch, deterministic=True)
        act = np.asarray(act, dtype=np.float32).reshape(len(agents), -1)
        return {a: act[i] for i, a in enumerate(agents)}

    return policy


def load_model_policy(path: Path, env: Any) -> Policy:
    """Load a model on the CPU and check it fits the env's spaces.

    An exported folder (``policy.json`` + ``policy.pt``) is loaded with
    ``torch.load(weights_only=True)``: no code from the files runs. An SB3 ``.zip`` is loaded
    with ``PPO.load``, which unpickles parts of the file: a crafted ``.zip`` can run code, so
    load only models you trust.
    """
    from stable_baselines3 import PPO

    from roadsense_marl.training.runs import is_exported_policy, load_exported_policy

    from roadsense_marl.training.rllib_train import is_rllib_checkpoint

    if is_exported_policy(path):
        a0 = env.possible_agents[0]
        return model_policy(load_exported_policy(path, env.observation_space(a0), env.action_space(a0)))
    if is_rllib_checkpoint(path):
        from roadsense_marl.training.rllib_train import load_module

        module = load_module(path)
        a0 = env.possible_agents[0]
        want_obs, want_act = env.observation_space(a0), env.action_space(a0)
        got = getattr(module.observation_space, "spaces", None)
        if got is None or any(k not in got or got[k].shape != want_obs.spaces[k].shape for k in want_obs.spaces):
            raise ValueError(f"RLlib checkpoint {str(path)!r} expects observations {module.observation_space}, "
                             f"the env gives {want_obs} (max_peers must match training)")
        if module.action_space.shape != want_act.shape:
            raise ValueError(f"RLlib checkpoint {str(path)!r} has action space {module.action_space}, the env has {want_act}")
        from roadsense_marl.rllib import module_policy

        return module_policy(module)
    try:
        model = PPO.load(str(path), device="cpu")
    except Exception as exc:  # a zip that is not an SB3 PPO save
        raise ValueError(f"could not load {str(path)!r} as an SB3 PPO model: {exc}") from exc
    a0 = env.possible_agents[0]
    want_obs, want_act = env.observation_space(a0), env.action_space(a0)
    got = getattr(model.observation_space, "spaces", None)
    if got is None or set(got) != set(want_obs.spaces) or any(
        got[k].shape != want_obs.spaces[k].shape for k in want_obs.spaces
    ):
        raise ValueError(
            f"model {str(path)!r} expects observations {model.observation_space}, the env gives {want_obs} "
            "(max_peers must match training)"
        )
    if model.action_space.shape != want_act.shape:
        raise ValueError(f"model {str(path)!r} has action space {model.action_space}, the env has {want_act}")
    return model_policy(model)


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """Run torch single-threaded inside the block (restored after).

    One step's batch is a handful of agents: intra-op threads only add synchronisation, and on a
    busy 2-core machine a tiny forward pass measured 50x slower with 2 threads than with 1.
    """
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---- parallel workers ------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}  # per worker process: the one env (libsumo: one simulation per process) and policies


def _worker_init() -> None:
    """Workers ignore Ctrl-C: the parent catches it and terminates them (no half-dead pool)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_chunk(task: tuple[Any, str, Any, list[int]]) -> tuple[list[EpisodeRecord], str, float]:
    """Run one chunk of seeds in a worker: ``(records in seed order, radio source, seconds)``.

    The env is kept between chunks with the same config and replaced (closed first) otherwise.
    """
    from roadsense_marl.env.convoy_env import RoadSenseParallelEnv

    cfg, name, model_path, seeds = task
    t0 = time.perf_counter()
    key = repr(cfg)
    if _WORKER.get("key") != key:
        old = _WORKER.pop("env", None)
        if old is not None:
            old.close()
        _WORKER.update(key=key, env=RoadSenseParallelEnv(config=cfg), policies={})
    env = _WORKER["env"]
    pols = _WORKER["policies"]
    if name not in pols:
        pols[name] = load_model_policy(model_path, env) if name == "model" else (
            make_baseline(name) if isinstance(name, str) else name)
    with _torch_threads(1 if name == "model" else None):
        records = [run_episode(env, pols[name], int(s)) for s in seeds]
    return records, str(env.radio.nominal_params.source), time.perf_counter() - t0


def chunk_seeds(seeds: Sequence[int], workers: int, per_worker: int = 4) -> list[list[int]]:
    """Consecutive chunks of ``seeds`` (about ``per_worker`` per worker, for load balance), in order."""
    n = len(seeds)
    size = max(1, math.ceil(n / (workers * per_worker)))
    return [list(seeds[i : i + size]) for i in range(0, n, size)]


def _worker_main(tasks: Any, results: Any) -> None:
    """Worker process loop: take ``(index, task)`` until ``None``; put ``(index, ok, payload)``.

    An exception is sent back (as itself if it pickles, else as a RuntimeError with its text) and
    the worker stops.
    """
    import pickle

    _worker_init()
    try:
        while True:
            item = tasks.get()
            if item is None:
                return
            i, task = item
            try:
                results.put((i, True, _worker_chunk(task)))
            except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
                try:
                    pickle.dumps(exc)
                    payload: BaseException = exc
                except Exception:  # noqa: BLE001
                    payload = RuntimeError(f"{type(exc).__name__}: {exc}")
                results.put((i, False, payload))
                return
    finally:
        env = _WORKER.pop("env", None)
        if env is not None:
            env.close()


def _stop_workers(procs: Sequence[Any], graceful: bool) -> None:
    """Join the workers (``graceful``: give them time to finish) and terminate, then kill, any left.
    Workers that never started (a failure while starting an earlier one) are skipped."""
    procs = [p for p in procs if p.pid is not None]
    if graceful:
        for p in procs:
            p.join(timeout=30)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join()


def run_parallel(
    jobs: Sequence[tuple[Any, Any, Any]], seeds: Sequence[int], workers: int, bar: Any = None
) -> list[tuple[list[EpisodeRecord], str, float]]:
    """Run every job ``(EnvConfig, policy name, model path)`` on ``seeds`` in ``workers`` processes.

    Seeds are split into consecutive chunks; results are gathered in job and seed order, so the
    records are those of a serial run (every episode depends only on its seed). Processes are
    started with ``spawn`` (libsumo allows one simulation per process and must not be forked), so
    a script calling this needs the usual ``if __name__ == "__main__":`` guard. On an error in a
    worker (re-raised here), a worker that dies, or an interrupt, every worker is terminated and
    joined before the exception propagates: none is left running. Returns per job
    ``(records, radio source, seconds summed over its chunks)``. A policy name is ``"model"`` or a
    baseline name; any other picklable callable ``policy(env, obs)`` is run as is.

    :raises RuntimeError: a worker process died without reporting (exit code in the message).
    """
    import multiprocessing
    import queue

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    chunks = chunk_seeds(seeds, workers)
    tasks = [(cfg, name, model_path, ch) for (cfg, name, model_path) in jobs for ch in chunks]
    ctx = multiprocessing.get_context("spawn")
    task_q, result_q = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(task_q, result_q), daemon=True)
             for _ in range(min(workers, len(tasks)))]
    done: dict[int, tuple[list[EpisodeRecord], str, float]] = {}
    ok = False
    try:
        for p in procs:
            p.start()
        for i, t in enumerate(tasks):
            task_q.put((i, t))
        for _ in procs:
            task_q.put(None)
        while len(done) < len(tasks):
            try:
                i, good, payload = result_q.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        f"evaluation worker pid {dead[0].pid} died with exit code {dead[0].exitcode} before reporting "
                        "(out of memory, a crash in SUMO, or a script calling evaluate(workers>1) without an "
                        "'if __name__ == \"__main__\":' guard)"
                    ) from None
                if all(p.exitcode == 0 for p in procs):
                    raise RuntimeError(f"evaluation workers all exited with {len(tasks) - len(done)} chunks unreported")
                continue
            if not good:
                raise payload
            done[i] = payload
            if bar is not None:
                bar.update(len(payload[0]))
        ok = True
    finally:
        task_q.cancel_join_thread()
        _stop_workers(procs, graceful=ok)
    k = len(chunks)
    out = []
    for j in range(len(jobs)):
        mine = [done[j * k + c] for c in range(k)]
        out.append(([r for p in mine for r in p[0]], mine[0][1], sum(p[2] for p in mine)))
    return out


def add_paired(results: list[dict[str, Any]], policy: str) -> None:
    """Add ``paired`` to each result of ``policy``: :func:`~roadsense_marl.evaluation.metrics.paired_comparison`
    against every baseline evaluated under the same radio on the same seeds."""
    from roadsense_marl.evaluation.metrics import paired_comparison

    for r in results:
        if r["policy"] != policy:
            continue
        r["paired"] = {
            b["policy"]: paired_comparison(r["episodes"], b["episodes"])
            for b in results
            if b["radio"] == r["radio"] and b["policy"] != policy and b["policy"] in BASELINES
        }


def standard_episode() -> dict[str, Any]:
    """The env's default episode length and hazard (``max_steps`` and the whole ``hazard`` section of
    the default :class:`~roadsense_marl.env.config.EnvConfig`): what a model trained on shorter
    episodes is evaluated on."""
    from roadsense_marl.env.config import make_env_config

    d = make_env_config().to_dict()
    return {"max_steps": d["max_steps"], "hazard": d["hazard"]}


def training_episode(train_config: Any = "marl_ppo") -> dict[str, Any]:
    """The env overrides that shape a training episode (``max_steps`` and ``hazard``) of a training
    config (a name in configs/train/, a path or a mapping; default the shipped recipe)."""
    from roadsense_marl.training import load_train_config

    cfg = dict(train_config) if isinstance(train_config, dict) else load_train_config(train_config)
    env = cfg.get("env") or {}
    return {k: env[k] for k in ("max_steps", "hazard") if k in env}


# ---- evaluate --------------------------------------------------------------------------------

def _radio_label(radio: Any) -> str:
    if isinstance(radio, str):
        return radio if radio in RADIO_SWEEP or radio == "defaults" else Path(radio).stem
    return "custom"


def _versions() -> dict[str, str]:
    import gymnasium
    import pettingzoo

    import roadsense_marl

    out = {
        "roadsense_marl": roadsense_marl.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gymnasium": gymnasium.__version__,
        "pettingzoo": pettingzoo.__version__,
    }
    try:
        import sumolib  # noqa: F401
        from importlib.metadata import version

        out["eclipse-sumo"] = version("eclipse-sumo")
    except Exception:  # noqa: BLE001 - version info is best effort
        pass
    try:
        import stable_baselines3
        import torch

        out["stable_baselines3"] = stable_baselines3.__version__
        out["torch"] = torch.__version__
    except Exception:  # noqa: BLE001
        pass
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return f if math.isfinite(f) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def compare_to_rule(results: list[dict[str, Any]]) -> list[str]:
    """Plain findings: where a learned policy is worse (or not) than ``rule-v2v`` on the same seeds."""
    findings = []
    for r in results:
        if r["aggregate"]["followers"] == 0:
            findings.append(
                f"{r['policy']} ({r['radio']} radio): no hazard with followers happened in any episode, so there is "
                "nothing to react to (does the episode, max_steps or max_time_s, reach beyond hazard.onset_window_s?)"
            )
            break
    rule = {r["radio"]: r["aggregate"] for r in results if r["policy"] == "rule-v2v"}
    for r in results:
        if r["policy"] in BASELINES or r["radio"] not in rule:
            continue
        a, b = r["aggregate"], rule[r["radio"]]
        name = f"{r['policy']} ({r['radio']} radio)"
        ca, cb = a["collision_rate"]["rate"], b["collision_rate"]["rate"]
        if ca > cb:
            findings.append(f"{name} is WORSE than rule-v2v on collision rate: {ca:.3f} vs {cb:.3f}")
        elif ca < cb:
            findings.append(f"{name} is better than rule-v2v on collision rate: {ca:.3f} vs {cb:.3f}")
        else:
            findings.append(f"{name} ties rule-v2v on collision rate: {ca:.3f}")
        ra, rb = a["reaction_time_s"]["mean"], b["reaction_time_s"]["mean"]
        if math.isfinite(rb) and (not math.isfinite(ra) or ra > rb):
            findings.append(
                f"{name} is WORSE than rule-v2v on mean reaction time: "
                f"{'no follower reacted' if not math.isfinite(ra) else f'{ra:.2f} s'} vs {rb:.2f} s"
            )
        fa, fb = a["follower_reacted_rate"]["rate"], b["follower_reacted_rate"]["rate"]
        if math.isfinite(fb) and (not math.isfinite(fa) or fa < fb):
            findings.append(f"{name} is WORSE than rule-v2v on followers reacting: {fa:.3f} vs {fb:.3f}")
    return findings


STOPS_TRAFFIC_RATIO = 0.5  # a policy below this share of no-v2v's mean speed "stops the traffic"


def compare_speed(results: list[dict[str, Any]], ratio: float = STOPS_TRAFFIC_RATIO) -> list[str]:
    """Plain warnings: a policy whose mean speed is below ``ratio`` x the ``no-v2v`` baseline's on the same seeds.

    Zero collisions and instant "reactions" are hollow when the policy parks the convoy; the
    ``no-v2v`` baseline drives with SUMO's car-following, so its mean speed is the reference.
    """
    ref = {r["radio"]: r["aggregate"]["mean_speed_mps"]["mean"] for r in results if r["policy"] == "no-v2v"}
    out = []
    for r in results:
        base = ref.get(r["radio"])
        mine = r["aggregate"]["mean_speed_mps"]["mean"]
        if r["policy"] == "no-v2v" or base is None or mine is None:
            continue
        if not (math.isfinite(base) and math.isfinite(mine)) or base <= 0:
            continue
        if mine < ratio * base:
            out.append(
                f"WARNING: {r['policy']} ({r['radio']} radio): model stops the traffic: mean speed {mine:.1f} vs "
                f"{base:.1f} m/s for no-v2v (stopped {r['aggregate']['stopped_share']['mean']:.0%} of agent-time); "
                "its collision and reaction figures are not evidence of safe driving"
            )
    return out


def evaluate(
    model: str | Path | None = None,
    *,
    policy: str | None = None,
    scenario: str | None = None,
    episodes: int = 20,
    seed: int = 1000,
    out: str | Path = "eval",
    radio: Any = None,
    radio_sweep: bool = False,
    baselines: bool = True,
    plots: bool = True,
    backend: str | None = None,
    max_steps: int | None = None,
    config: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    verbose: bool = True,
    record: int = 0,
    record_format: str = "mp4",
    progress_bar: bool | None = None,
    workers: int = 1,
    episode_shape: str = "config",
) -> dict[str, Any]:
    """Evaluate a model (or a baseline) on ``episodes`` seeds ``seed, seed+1, ...``.

    Writes ``out/metrics.json``, the per-episode tables ``out/episodes.csv`` and
    ``out/followers.csv`` (:mod:`roadsense_marl.evaluation.tables`), plots (PNG and PDF) unless
    ``plots=False``, prints a summary table when ``verbose``, and returns the metrics dict.
    ``policy`` is ``"model"`` (needs ``model``), ``"no-v2v"`` or ``"rule-v2v"``; with
    ``baselines`` both baselines also run on the same seeds. ``radio_sweep`` evaluates under
    ideal, measured and degraded radio profiles. ``record`` > 0 writes videos of the first
    ``record`` episodes of every policy and radio to ``out/videos/<policy>_<radio>_seed<seed>.<record_format>``
    (``"mp4"`` or ``"gif"``); recording does not change the episodes. ``progress_bar`` shows a
    progress bar over episodes on stderr (default: when ``verbose``). ``workers`` > 1 runs the
    episodes in that many worker processes (:func:`run_parallel`; the records and metrics are
    bit-identical to a serial run; not with ``record``). ``episode_shape`` ``"training"`` applies
    the shipped training recipe's episode length and hazard timing (:func:`training_episode`) on top
    of the config, ``"standard"`` the env's default episode (:func:`standard_episode`), ``"config"``
    (default) evaluates the config as given (a run folder: the episodes it was trained on). The policy's results hold
    ``paired``: paired comparisons with each baseline on the same seeds
    (:func:`~roadsense_marl.evaluation.metrics.paired_comparison`).
    """
    from roadsense_marl.env.config import make_env_config
    from roadsense_marl.env.convoy_env import RoadSenseParallelEnv

    policy = policy or ("model" if model is not None else None)
    if policy is None:
        raise ValueError("nothing to evaluate: give a MODEL path or --policy no-v2v|rule-v2v")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; valid: {', '.join(POLICIES)}")
    if policy == "model" and model is None:
        raise ValueError("policy 'model' needs a MODEL path (an SB3 .zip or a training run folder)")
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a whole number >= 1, got {episodes!r}")
    if isinstance(record, bool) or not isinstance(record, int) or record < 0:
        raise ValueError(f"record must be a whole number >= 0 (episodes to record per policy), got {record!r}")
    if record_format not in ("mp4", "gif"):
        raise ValueError(f"record_format must be 'mp4' or 'gif', got {record_format!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    if workers > 1 and record:
        raise ValueError("record (videos) runs in this process: use workers=1 with record, or record=0")
    if episode_shape not in EPISODE_SHAPES:
        raise ValueError(f"episode_shape must be one of {', '.join(map(repr, EPISODE_SHAPES))}, got {episode_shape!r}")

    from roadsense_marl.training.runs import atomic_write_text, check_contract, check_writable_dir, env_contract

    check_writable_dir(out)  # before the first episode, not after the last
    model_path = progress = None
    run_env_cfg: dict[str, Any] | None = None
    if policy == "model":
        model_path, run_env_cfg, progress = resolve_model(model)  # type: ignore[arg-type]

    overrides: dict[str, Any] = (training_episode() if episode_shape == "training"
                                 else standard_episode() if episode_shape == "standard" else {})
    overrides.update(env_kwargs or {})
    for key, val in (("scenario", scenario), ("backend", backend), ("max_steps", max_steps)):
        if val is not None:
            overrides[key] = val
    if record:
        overrides["render_mode"] = "rgb_array"  # frames only read the state: the episodes stay the same
    base = config if config is not None else run_env_cfg
    base_cfg = make_env_config(base, **overrides)  # validates early: unknown scenario keys, bad values
    from roadsense_marl.sim import resolve_scenario

    resolve_scenario(base_cfg.scenario, **base_cfg.scenario_kwargs)  # unknown scenario -> clear error now
    if policy == "model":
        # The model's contract against the env it will drive (radio profiles chosen with
        # radio/radio_sweep are a deliberate robustness test and are not compared).
        recorded, what = model_contract(model if Path(model).is_dir() else model_path)  # type: ignore[arg-type]
        check_contract(recorded, env_contract(base_cfg), what=what)

    radios: list[Any] = list(RADIO_SWEEP) if radio_sweep else [radio if radio is not None else base_cfg.radio]
    policy_names = [policy] + ([b for b in BASELINES if b != policy] if baselines else [])
    seeds = [seed + i for i in range(episodes)]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    results: list[dict[str, Any]] = []
    all_records: dict[tuple[str, str], list[EpisodeRecord]] = {}
    t0 = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(
        total=len(radios) * len(policy_names) * episodes, unit="episode", desc="evaluate",
        disable=not (verbose if progress_bar is None else progress_bar), leave=False, dynamic_ncols=True,
    )
    cfgs = [make_env_config(base_cfg, radio=rad) for rad in radios]
    if workers > 1:
        gathered = run_parallel(
            [(cfg, name, model_path) for cfg in cfgs for name in policy_names], seeds, workers, bar=bar
        )
    for ri, (rad, cfg) in enumerate(zip(radios, cfgs)):
        env = RoadSenseParallelEnv(config=cfg) if workers == 1 else None
        try:
            for pi, name in enumerate(policy_names):
                label = _radio_label(rad)
                t1 = time.perf_counter()
                if env is not None:
                    pol = load_model_policy(model_path, env) if name == "model" else make_baseline(name)  # type: ignore[arg-type]
                    bar.set_postfix_str(f"{name}, {label} radio")
                    with _torch_threads(1 if name == "model" else None):
                        records = _run_seeds(env, pol, seeds, bar, record, out_dir / "videos", f"{name}_{label}",
                                             record_format)
                    source = str(env.radio.nominal_params.source)
                else:
                    records, source, worker_s = gathered[ri * len(policy_names) + pi]
                    t1 -= worker_s  # summed over the workers' chunks
                eps = [episode_metrics(r) for r in records]
                all_records[(name, label)] = records
                results.append(
                    {
                        "policy": name,
                        "radio": label,
                        "radio_source": source,
                        "wall_time_s": time.perf_counter() - t1,
                        "aggregate": aggregate(records, eps),
                        "episodes": eps,
                    }
                )
        finally:
            if env is not None:
                env.close()
    add_paired(results, policy)
    bar.close()

    metrics = {
        "scenario": base_cfg.scenario,
        "policy": policy,
        "model": str(model_path) if model_path else None,
        "seeds": seeds,
        "radios": [_radio_label(r) for r in radios],
        "episode_shape": episode_shape,
        "workers": workers,
        "env_config": base_cfg.to_dict(),
        "versions": _versions(),
        "definitions": DEFINITIONS,
        "wall_time_s": time.perf_counter() - t0,
        "findings": compare_speed(results) + compare_to_rule(results),
        "results": results,
        "plots": [],
        "tables": [],
        "videos": sorted(str(p) for p in (out_dir / "videos").glob(f"*.{record_format}")) if record else [],
    }
    from roadsense_marl.evaluation.tables import write_tables

    metrics["tables"] = [str(p) for p in write_tables(out_dir, results, base_cfg.scenario)]
    if plots:
        from roadsense_marl.evaluation.plots import write_plots

        metrics["plots"] = [str(p) for p in write_plots(out_dir, results, all_records, progress_csv=progress,
                                                         domain_randomization=base_cfg.domain_randomization)]
    metrics = _jsonable(metrics)
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=1))  # never half a file
    if verbose:
        print(summary_table(metrics))
        print(f"metrics: {out_dir / 'metrics.json'}")
        print(f"per-episode tables: {', '.join(metrics['tables'])}")
        if metrics["videos"]:
            print(f"videos: {len(metrics['videos'])} in {out_dir / 'videos'}")
    return metrics


# ---- terminal summary ------------------------------------------------------------------------

def _fmt_rate(r: dict) -> str:
    if r.get("rate") is None:
        return "-"
    lo, hi = r.get("lo"), r.get("hi")
    ci = f" [{lo:.2f},{hi:.2f}]" if lo is not None and hi is not None else ""
    return f"{r['rate']:.2f}{ci} ({r['k']}/{r['n']})"


def _fmt_mean(r: dict, unit: str = "", digits: int = 2) -> str:
    if r.get("mean") is None:
        return "-"
    ci = f" ±{(r['hi'] - r['lo']) / 2:.{digits}f}" if r.get("lo") is not None and r.get("hi") is not None else ""
    return f"{r['mean']:.{digits}f}{ci}{unit}"


def summary_table(metrics: dict[str, Any]) -> str:
    """A short policy x metric table, then the findings (a learned policy worse than rule-v2v is said plainly)."""
    cols = ["policy", "radio", "collision rate [95% CI]", "agents crashed", "reacted", "reaction time",
            "received", f"direct {HARD_BRAKE_LABEL}", "deficit", "fol. stopped",
            "min gap", "gap<10m", "mean speed", "stopped", "PDR", "age mean/p95", "reward"]
    rows = [cols]
    for r in metrics["results"]:
        a = r["aggregate"]
        age = a["message_age"]
        rows.append(
            [
                r["policy"],
                r["radio"],
                _fmt_rate(a["collision_rate"]),
                f"{a['agent_collision_rate']['k']}/{a['agent_collision_rate']['n']}",
                _fmt_rate(a["follower_reacted_rate"]).split(" [")[0] + f" ({a['follower_reacted_rate']['k']}/{a['follower_reacted_rate']['n']})",
                _fmt_mean(a["reaction_time_s"], " s"),
                _fmt_rate(a["follower_received_rate"]).split(" [")[0],
                _fmt_rate(a["direct_hard_brake_within_1s"]) if "direct_hard_brake_within_1s" in a else "-",
                _fmt_mean(a.get("follower_speed_deficit_mps", {}), " m/s", 2),
                _fmt_mean(a.get("follower_stopped_share", {}), "", 3),
                "-" if a["min_gap_m"]["min"] is None else f"{a['min_gap_m']['min']:.1f} m",
                _fmt_mean(a["close_gap_share"], "", 3),
                _fmt_mean(a.get("mean_speed_mps", {}), " m/s", 1),
                _fmt_mean(a.get("stopped_share", {}), "", 2),
                "-" if a["pdr"]["rate"] is None else f"{a['pdr']['rate']:.3f}",
                "-" if age["mean_ms"] is None else f"{age['mean_ms']:.0f}/{age['p95_ms']:.0f} ms",
                _fmt_mean(a["reward_mean"]),
            ]
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(cols))]
    lines = [f"{metrics['scenario']}: {len(metrics['seeds'])} episodes per row, seeds {metrics['seeds'][0]}..{metrics['seeds'][-1]}"]
    for k, row in enumerate(rows):
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    for r in metrics["results"]:
        lines.extend(paired_lines(r))
    lines.extend(metrics.get("findings", []))
    return "\n".join(lines)


_PAIRED_NAMES = {
    "mean_speed_mps": ("mean speed", "m/s"),
    "follower_speed_deficit_mps": ("followers' speed deficit", "m/s"),
    "stopped_share": ("stopped share", ""),
    "follower_stopped_share": ("followers' stopped share", ""),
    "min_gap_m": ("min gap", "m"),
}


def paired_lines(result: dict[str, Any]) -> list[str]:
    """Plain lines for a result's ``paired`` comparisons (McNemar for collisions, paired differences)."""
    out = []
    for base, c in (result.get("paired") or {}).items():
        col = c["collision"]
        head = (f"{result['policy']} vs {base} ({result['radio']} radio, {c['pairs']} paired seeds): collision episodes "
                f"{col['policy']} vs {col['baseline']} (McNemar exact: only {result['policy']} {col['b']}, only {base} "
                f"{col['c']}, p = {col['p']:.3g})")
        parts = []
        for key, (name, unit) in _PAIRED_NAMES.items():
            d = c.get(key) or {}
            if d.get("mean") is None or d.get("lo") is None:
                continue
            verdict = "better" if d["better"] else "worse" if d["worse"] else "no clear difference"
            parts.append(f"{name} {d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]{(' ' + unit) if unit else ''} ({verdict})")
        out.append(head + ("; difference (95 % t interval): " + "; ".join(parts) if parts else ""))
    return out


__all__: list[str] = [
    "RADIO_SWEEP",
    "compare_speed",
    "compare_to_rule",
    "add_paired",
    "chunk_seeds",
    "evaluate",
    "load_model_policy",
    "paired_lines",
    "run_parallel",
    "standard_episode",
    "training_episode",
    "model_contract",
    "model_policy",
    "resolve_model",
    "run_episode",
    "run_policy",
    "summary_table",
]
