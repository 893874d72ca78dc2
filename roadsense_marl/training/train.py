"""Train the shared Deep Sets PPO policy over every vehicle (SuperSuit + SB3).

Read top to bottom: load the YAML config, apply command-line overrides, validate all of it
(env, policy and PPO keys) and the output folder, build the vector env (one slot per
possible vehicle, :func:`~roadsense_marl.training.make_vec_env`) and PPO with the Deep Sets
extractor, and only then write into the run folder (see :mod:`roadsense_marl.training.runs`):

- ``config.yaml``: the resolved training config (``env`` section = env keyword arguments) and
  ``contract`` (env id/version, observation/action contract) of the models beside it;
- ``final_model.zip``: the trained policy (``PPO.load``; load only models you trust);
- ``checkpoints/model_<steps>_steps.zip``: intermediate models and the one saved on Ctrl-C;
- ``run.json``: status and step count; ``tb/``: TensorBoard logs;
- ``progress.csv``: SB3's log per rollout, with ``rollout/collision_rate`` (share of
  vehicle-episodes that ended in a collision), ``rollout/padded_fraction`` and
  ``train/explained_variance`` (the critic's, over the samples learned from).

``critic_check`` (``after_updates``, ``min_explained_variance``, ``window``): after that many PPO
updates the mean explained variance of the last ``window`` updates must reach the minimum, or the
run stops with a one-line :class:`~roadsense_marl.training.callbacks.CriticNotLearningError` (the
model so far is saved, ``run.json`` says why); ``after_updates: 0`` (the default) turns it off.
``run.json`` records the check's value (``critic_check_explained_variance``).

An existing run is changed only on request: ``--resume RUN`` continues it from its latest
model, ``--overwrite`` replaces it. Ctrl-C saves the current model and progress, stops the
workers and SUMO and exits with 130 after one line.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import re
from pathlib import Path
from typing import Any, Mapping

from roadsense_marl.paths import config_path

TRAIN_KEYS = ("total_timesteps", "seed", "out", "checkpoint_every", "torch_threads", "engine", "env", "vec_env", "policy",
              "ppo", "rllib", "critic_check")
CRITIC_CHECK_KEYS = ("after_updates", "min_explained_variance", "window")
#: Off unless the config asks for it (the shipped marl_ppo.yaml does).
CRITIC_CHECK_DEFAULT = {"after_updates": 0, "min_explained_variance": 0.0, "window": 5}
#: Written into a run's config.yaml by training; accepted (and recomputed) when such a file is reused as a config.
RECORD_KEYS = ("contract",)
VEC_ENV_KEYS = ("num_envs", "num_cpus", "via")
DEFAULT_CONFIG = "marl_ppo"


def load_train_config(path: str | Path | None = None) -> dict[str, Any]:
    """Read a training YAML (a path, or a name in ``configs/train/``) and check its keys."""
    data, source = read_train_yaml(path)
    return check_train_config(data, source=source)


def read_train_yaml(path: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """``(raw mapping, file path)`` of a training YAML, not yet checked (command-line values may
    still complete it). FileNotFoundError / ValueError name the file."""
    import yaml

    if path is None:
        path = DEFAULT_CONFIG
    p = Path(path)
    if not p.exists() and not p.suffix:
        p = config_path("train", f"{path}.yaml")
    if not p.is_file():
        shipped = sorted(q.stem for q in config_path("train").glob("*.yaml"))
        raise FileNotFoundError(f"training config {str(path)!r} not found; shipped configs: {shipped}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines())
        raise ValueError(f"training config {p} is not valid YAML: {detail}") from None
    if not isinstance(data, dict):
        raise ValueError(f"training config {p} must be a mapping of keys, got {type(data).__name__}")
    return data, str(p)


def check_train_config(data: Mapping[str, Any], source: str = "training config") -> dict[str, Any]:
    """Validate the top-level, ``vec_env``, ``policy`` and ``ppo`` keys (the env section: :func:`resolve_config`).

    Errors are ``ValueError`` naming the key, ``source`` and what would be valid.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{source} must be a mapping of keys")
    data = {k: v for k, v in data.items() if k not in RECORD_KEYS}
    unknown = sorted(set(data) - set(TRAIN_KEYS), key=str)
    if unknown:
        raise ValueError(
            f"unknown key {unknown[0]!r} in {source}.{_suggest(str(unknown[0]), TRAIN_KEYS)} Valid keys: {', '.join(TRAIN_KEYS)}"
        )
    out = {
        "env": {}, "vec_env": {}, "policy": {}, "ppo": {},
        "checkpoint_every": 0, "seed": 0, "out": "runs/marl_ppo", "torch_threads": 1, "engine": "sb3",
    }
    out.update(copy.deepcopy(dict(data)))
    if out["engine"] not in ("sb3", "rllib"):
        raise ValueError(f"engine in {source} must be 'sb3' or 'rllib', got {out['engine']!r}")
    out.setdefault("rllib", {})
    if out["rllib"] is None:
        out["rllib"] = {}
    for section in ("env", "vec_env", "policy", "ppo", "rllib"):
        if not isinstance(out[section], Mapping):
            raise ValueError(f"{section!r} in {source} must be a mapping, got {out[section]!r}")
    bad_vec = sorted(set(out["vec_env"]) - set(VEC_ENV_KEYS), key=str)
    if bad_vec:
        raise ValueError(
            f"unknown vec_env key {bad_vec[0]!r} in {source}.{_suggest(str(bad_vec[0]), VEC_ENV_KEYS)} Valid: {', '.join(VEC_ENV_KEYS)}"
        )
    if not isinstance(out["out"], (str, Path)) or not str(out["out"]):
        raise ValueError(f"out must be a folder path, got {out['out']!r}")
    check_policy_config(out["policy"], source)
    check_ppo_config(out["ppo"], source)
    total = out.get("total_timesteps")
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(
            f"total_timesteps must be a whole number >= 1, got {total!r} (in {source}; or give --total-timesteps)"
        )
    if isinstance(out["seed"], bool) or not isinstance(out["seed"], int):
        raise ValueError(f"seed must be a whole number, got {out['seed']!r}")
    threads = out["torch_threads"]
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"torch_threads must be a whole number >= 1, got {threads!r}")
    every = out["checkpoint_every"]
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ValueError(f"checkpoint_every must be a whole number >= 0, got {every!r}")
    out["critic_check"] = check_critic_check(out.get("critic_check"), source)
    return out


def check_critic_check(section: Any, source: str = "training config") -> dict[str, Any]:
    """The ``critic_check`` section over its defaults; errors name the key and what would be valid."""
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise ValueError(f"'critic_check' in {source} must be a mapping of {', '.join(CRITIC_CHECK_KEYS)}, got {section!r}")
    for key in section:
        if key not in CRITIC_CHECK_KEYS:
            raise ValueError(f"unknown critic_check key {key!r} in {source}.{_suggest(str(key), CRITIC_CHECK_KEYS)} "
                             f"Valid: {', '.join(CRITIC_CHECK_KEYS)}")
    out = {**CRITIC_CHECK_DEFAULT, **section}
    _number("critic_check.after_updates", out["after_updates"], lo=0, integer=True, section="")
    _number("critic_check.window", out["window"], lo=1, integer=True, section="")
    _number("critic_check.min_explained_variance", out["min_explained_variance"], hi=1.0, section="")
    return out


# -- validation of the PPO and policy sections ------------------------------------------------

def _number(key: str, value: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
            integer: bool = False, none_ok: bool = False, section: str = "ppo.") -> None:
    import math

    key = section + key

    if value is None and none_ok:
        return
    kind = "a whole number" if integer else "a number"
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    if not ok or (not integer and not math.isfinite(value)):
        raise ValueError(f"{key} must be {kind}{' or null' if none_ok else ''}, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ValueError(f"{key} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{key} must be <= {hi}, got {value!r}")


#: Prefix of a linearly annealed learning rate, ``"lin_<initial>"`` (the rl-baselines3-zoo syntax).
LINEAR_PREFIX = "lin_"


_RATE_TEXT = re.compile(r"(lin_)?((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)")


def parse_learning_rate(value: Any, key: str = "ppo.learning_rate") -> tuple[float, bool]:
    """``(initial learning rate, linearly annealed)`` of a config's ``learning_rate``.

    ``value`` is a number > 0 (constant; also as text such as ``"1e-3"``, which YAML 1.1 reads as a
    string) or ``"lin_<number>"``: from that number at the start of training linearly down to 0 at
    ``total_timesteps`` (rl-baselines3-zoo's syntax; SB3's
    :class:`~stable_baselines3.common.utils.LinearSchedule`). Raises ValueError naming ``key`` and
    what is valid.
    """
    import math
    import numbers

    import numpy as np

    valid = f"a number > 0 or {LINEAR_PREFIX!r} + a number > 0 (linear decay to 0), e.g. 0.001 or 'lin_0.001'"
    linear = False
    lr = math.nan
    if isinstance(value, str):
        m = _RATE_TEXT.fullmatch(value)
        if m:
            linear, lr = m.group(1) is not None, float(m.group(2))
    elif isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        try:
            lr = float(value)
        except OverflowError:
            lr = math.inf
    if not (math.isfinite(lr) and lr > 0.0):
        raise ValueError(f"{key} must be {valid}, got {value!r}")
    return lr, linear


def sb3_learning_rate(value: Any) -> Any:
    """The ``learning_rate`` SB3's PPO takes for a config value: a float, or for ``"lin_<x>"`` SB3's
    ``LinearSchedule(x, 0.0, 1.0)`` of the remaining progress (x at the start, 0 at the end of
    ``learn``). A resumed run keeps the schedule saved in its model, SB3 counting progress over the
    whole run: resumed to the same total it carries on; to a larger total it is spread over the new
    total, so the rate rises again from 0 to x * (1 - steps done / new total)."""
    lr, linear = parse_learning_rate(value)
    if not linear:
        return lr
    from stable_baselines3.common.utils import LinearSchedule

    return LinearSchedule(lr, 0.0, 1.0)


#: Checks for the PPO keyword arguments a YAML config can set (SB3 2.x names).
PPO_RULES: dict[str, Any] = {
    "learning_rate": lambda v: parse_learning_rate(v),
    "n_steps": lambda v: _number("n_steps", v, lo=1, integer=True),
    "batch_size": lambda v: _number("batch_size", v, lo=2, integer=True),
    "n_epochs": lambda v: _number("n_epochs", v, lo=1, integer=True),
    "gamma": lambda v: _number("gamma", v, lo=0.0, hi=1.0),
    "gae_lambda": lambda v: _number("gae_lambda", v, lo=0.0, hi=1.0),
    "clip_range": lambda v: _number("clip_range", v, lo=0.0, lo_open=True),
    "clip_range_vf": lambda v: _number("clip_range_vf", v, lo=0.0, lo_open=True, none_ok=True),
    "normalize_advantage": lambda v: _flag("normalize_advantage", v),
    "ent_coef": lambda v: _number("ent_coef", v, lo=0.0),
    "vf_coef": lambda v: _number("vf_coef", v, lo=0.0),
    "max_grad_norm": lambda v: _number("max_grad_norm", v, lo=0.0, lo_open=True),
    "use_sde": lambda v: _flag("use_sde", v),
    "sde_sample_freq": lambda v: _number("sde_sample_freq", v, lo=-1, integer=True),
    "target_kl": lambda v: _number("target_kl", v, lo=0.0, lo_open=True, none_ok=True),
    "stats_window_size": lambda v: _number("stats_window_size", v, lo=1, integer=True),
}
#: PPO arguments the training sets itself.
PPO_RESERVED = ("policy", "env", "policy_kwargs", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model")


def _flag(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"ppo.{key} must be true or false, got {value!r}")


def _suggest(key: str, valid: Any) -> str:
    from roadsense_marl.espnow.params import suggest

    return suggest(key, valid)


def check_ppo_config(ppo: Mapping[str, Any], source: str = "training config") -> None:
    """Every ``ppo`` key known and of a valid value; errors name the key and what would be valid."""
    for key, value in ppo.items():
        if key in PPO_RESERVED:
            raise ValueError(f"ppo.{key} in {source} is set by the training itself; remove it")
        rule = PPO_RULES.get(key)
        if rule is None:
            raise ValueError(f"unknown ppo key {key!r} in {source}.{_suggest(key, PPO_RULES)} Valid: {', '.join(PPO_RULES)}")
        try:
            rule(value)
        except ValueError as exc:
            raise ValueError(f"{exc} (in {source})") from None


def check_policy_config(policy: Mapping[str, Any], source: str = "training config") -> dict[str, Any]:
    """``policy_kwargs`` from the ``policy`` section; an unknown key or bad value names the key."""
    from roadsense_marl.policies import _OPTION_NAMES, create_deep_set_policy_kwargs

    valid = ("peer_embed_dim", "net_arch", "log_std_init", *_OPTION_NAMES)
    for key in policy:
        if key not in valid:
            raise ValueError(f"unknown policy key {key!r} in {source}.{_suggest(key, valid)} Valid: {', '.join(valid)}")
    try:
        return create_deep_set_policy_kwargs(**policy)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"policy section of {source}: {exc}") from None


def resolve_config(config: Mapping[str, Any] | str | Path | None) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """``(training config, EnvConfig, policy_kwargs)``, everything validated; nothing is written."""
    from roadsense_marl.env import make_env_config

    cfg = load_train_config(config) if not isinstance(config, Mapping) else check_train_config(config)
    env_cfg = make_env_config(**cfg["env"])
    from roadsense_marl.sim import resolve_scenario

    resolve_scenario(env_cfg.scenario, **env_cfg.scenario_kwargs)  # an unknown scenario fails now
    policy_kwargs = check_policy_config(cfg["policy"])
    return cfg, env_cfg, policy_kwargs


# -- training ------------------------------------------------------------------------------------

class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the current model and progress were saved (message says where)."""


def train(
    config: Mapping[str, Any] | str | Path | None = None,
    *,
    progress_bar: bool = False,
    verbose: int = 0,
    overwrite: bool = False,
) -> Path:
    """Train the shared policy into a new run folder; returns it. See the module docstring for its contents.

    The whole config is validated and the output folder checked before anything is written. An
    existing run folder is an error unless ``overwrite=True`` (then replaced once PPO is built);
    continue a run with :func:`resume`. On Ctrl-C the current model is saved as a checkpoint,
    ``progress.csv`` and ``run.json`` are written, workers and SUMO are closed and
    :class:`TrainingInterrupted` is raised.
    """
    from roadsense_marl.training.runs import check_new_run_folder

    cfg, env_cfg, policy_kwargs = resolve_config(config)
    out = check_new_run_folder(cfg["out"], overwrite=overwrite)
    if cfg["engine"] == "rllib":
        from roadsense_marl.training.rllib_train import run_rllib

        return run_rllib(cfg, env_cfg, out, start=None, overwrite=overwrite, progress_bar=progress_bar, verbose=verbose)
    return _run(cfg, env_cfg, policy_kwargs, out, start=None, overwrite=overwrite, progress_bar=progress_bar, verbose=verbose)


def resume(run: str | Path, *, total_timesteps: int | None = None, progress_bar: bool = False, verbose: int = 0) -> Path:
    """Continue the run in ``run`` from its latest model (checkpoint or final) with its own config.

    The step count carries on (``progress.csv`` continues from the resumed step). ``total_timesteps``
    may raise the run's target; the rest of ``config.yaml`` is used as it is. Raises
    ``RunFolderError``/``ContractMismatch`` (both ``ValueError``) naming the problem.
    """
    from roadsense_marl.training.runs import (
        RunFolderError, check_contract, check_not_running, env_contract, latest_model, read_model_record,
        read_run_config,
    )

    run = Path(run)
    if not run.is_dir():
        raise RunFolderError(f"--resume {str(run)!r}: no such run folder")
    check_not_running(run)
    data = read_run_config(run)
    recorded = data.pop("contract", None)
    data["out"] = str(run)
    if total_timesteps is not None:
        data["total_timesteps"] = total_timesteps
    cfg, env_cfg, policy_kwargs = resolve_config(check_train_config(data, source=str(run / "config.yaml")))
    current = env_contract(env_cfg)
    if recorded is None:
        raise RunFolderError(f"{run / 'config.yaml'} records no env contract; it was not written by this version")
    check_contract(recorded, current, what=f"run {str(run)!r}", recorded_as="run", current_as="this version")
    rllib = cfg["engine"] == "rllib"
    if rllib:
        from roadsense_marl.training.rllib_train import latest_checkpoint, read_checkpoint_record

        found = latest_checkpoint(run)
    else:
        found = latest_model(run)
    if found is None:
        raise RunFolderError(f"run {str(run)!r} has no model to resume from (no checkpoints, no "
                             f"{'final_checkpoint' if rllib else 'final_model.zip'})")
    path, steps = found
    record = read_checkpoint_record(path) if rllib else read_model_record(path)
    if record is not None:
        check_contract(record["contract"], recorded, what=f"{str(path)!r}", recorded_as="model", current_as="config.yaml")
    if steps >= cfg["total_timesteps"]:
        raise RunFolderError(
            f"run {str(run)!r} is already at {steps} steps (total_timesteps {cfg['total_timesteps']}); "
            f"give --total-timesteps above {steps} to train further"
        )
    if rllib:
        from roadsense_marl.training.rllib_train import run_rllib

        return run_rllib(cfg, env_cfg, run, start=(path, steps), overwrite=False, progress_bar=progress_bar, verbose=verbose)
    return _run(cfg, env_cfg, policy_kwargs, run, start=(path, steps), overwrite=False,
                progress_bar=progress_bar, verbose=verbose)


def _make_venv(cfg: Mapping[str, Any]) -> Any:
    """The vector env, with SIGINT ignored in its worker processes.

    Ctrl-C in a terminal reaches the whole process group; workers that died on it would leave
    their env unclosed and the pipes half-read. Ignoring it in the workers leaves the main
    process to stop them in order (close every env, then terminate).
    """
    import signal
    import threading

    from roadsense_marl.training.vec_env import make_vec_env

    if threading.current_thread() is not threading.main_thread():
        return make_vec_env(seed=cfg["seed"], **cfg["vec_env"], **cfg["env"])
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return make_vec_env(seed=cfg["seed"], **cfg["vec_env"], **cfg["env"])
    finally:
        signal.signal(signal.SIGINT, previous)


def _dead_workers(venv: Any, wait_s: float = 2.0) -> list[str]:
    """Descriptions of the vector env's worker processes that have exited.

    A broken pipe is seen a moment before the dying worker can be reaped, so this waits up to
    ``wait_s`` for at least one worker to have an exit code.
    """
    import signal
    import time

    v, seen = venv, 0
    while v is not None and seen < 10:
        seen += 1
        for holder in (getattr(v, "_vector", None), v):
            procs = getattr(holder, "procs", None)
            if procs:
                deadline = time.monotonic() + wait_s
                while all(p.exitcode is None for p in procs) and time.monotonic() < deadline:
                    time.sleep(0.02)
                out = []
                for i, proc in enumerate(procs):
                    code = proc.exitcode
                    if code is None:
                        continue
                    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                    out.append(f"worker {i} (pid {proc.pid}, {how})")
                return out
        v = getattr(v, "venv", None)
    return []


def _checkpoints(every: int, out: Path, record: Mapping[str, Any]) -> Any:
    """A callback saving the model (with its contract) every ``every`` agent-steps of the whole run."""
    from stable_baselines3.common.callbacks import BaseCallback

    from roadsense_marl.training.runs import checkpoint_path, save_model, write_state

    class Checkpoints(BaseCallback):
        def _on_training_start(self) -> None:
            self.next = (self.num_timesteps // every + 1) * every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                path = save_model(self.model, checkpoint_path(out, self.num_timesteps), record)
                write_state(out, latest_model=str(path.relative_to(out)), num_timesteps=int(self.num_timesteps))
                self.next = (self.num_timesteps // every + 1) * every
            return True

    return Checkpoints()


def _run(cfg: dict[str, Any], env_cfg: Any, policy_kwargs: dict[str, Any], out: Path, *,
         start: tuple[Path, int] | None, overwrite: bool, progress_bar: bool, verbose: int) -> Path:
    import warnings

    import torch
    import yaml
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.logger import configure

    from roadsense_marl.cli import RunFailure
    from roadsense_marl.training.callbacks import CollisionRateCallback, CriticCheckCallback, CriticNotLearningError
    from roadsense_marl.training.runs import (
        CONFIG_FILE, FINAL_MODEL, atomic_write_text, clear_run_folder, env_contract, merge_progress, save_model,
        write_state,
    )
    from roadsense_marl.training.core_vec_env import WorkerDiedError
    from roadsense_marl.training.ppo import MaskedPPO
    from roadsense_marl.training.vec_env import PaddedFractionCallback

    contract = env_contract(env_cfg)
    record = {"contract": contract, "env": _plain(env_cfg.to_dict()), "policy": _plain(cfg["policy"])}
    start_steps = start[1] if start else 0
    # The networks are small: one torch thread is faster than two on a shared 2-core machine
    # (measured 3-4x), and leaves the other core to a SUMO worker.
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg["torch_threads"])
    venv = None
    failed: BaseException | None = None
    try:
        venv = _make_venv(cfg)
        torch.set_num_threads(cfg["torch_threads"])  # make_vec_env sets 1; the config decides
        if start is None:
            try:
                ppo = dict(cfg["ppo"])
                if "learning_rate" in ppo:
                    ppo["learning_rate"] = sb3_learning_rate(ppo["learning_rate"])
                model = MaskedPPO("MultiInputPolicy", venv, policy_kwargs=policy_kwargs, seed=cfg["seed"], verbose=verbose,
                            device="cpu", **ppo)
            except (TypeError, AssertionError, ValueError) as exc:
                raise ValueError(f"bad ppo option in the training config: {exc}") from None
        else:
            model = MaskedPPO.load(str(start[0]), env=venv, device="cpu", verbose=verbose)
            model._last_obs = None  # reset the fresh workers' envs at the start of learn()
            venv.seed(cfg["seed"] + start_steps)  # a new, reproducible stream for the continued run
            model.set_random_seed(cfg["seed"] + start_steps)
        # Everything is validated and built: only now is the folder changed.
        if overwrite:
            clear_run_folder(out)
        out.mkdir(parents=True, exist_ok=True)
        resolved = {**cfg, "out": str(out), "env": env_cfg.to_dict(), "contract": contract}
        atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(_plain(resolved), sort_keys=False))
        segment = out / "tb" if start is None else out / "tb" / f"resume_{start_steps}"
        model.set_logger(configure(str(segment), ["csv", "tensorboard"] + (["stdout"] if verbose else [])))
        write_state(out, status="running", pid=os.getpid(), total_timesteps=cfg["total_timesteps"],
                    resumed_from=(str(start[0].relative_to(out)) if start else None), resumed_at=start_steps)
        check = cfg["critic_check"]
        critic = CriticCheckCallback(check["after_updates"], check["min_explained_variance"], check["window"])
        callbacks = [CollisionRateCallback(), PaddedFractionCallback(), critic]
        if cfg["checkpoint_every"]:
            callbacks.append(_checkpoints(cfg["checkpoint_every"], out, record))
        try:
            model.learn(total_timesteps=cfg["total_timesteps"] - start_steps, callback=CallbackList(callbacks),
                        progress_bar=progress_bar, reset_num_timesteps=start is None)
        except KeyboardInterrupt as exc:
            failed = exc
            path = _save_after_stop(model, out, segment, start_steps, record, "interrupted")
            raise TrainingInterrupted(
                f"model at {model.num_timesteps} steps saved to {path}; continue with: roadsense-marl train --resume {out}"
            ) from None
        except (EOFError, BrokenPipeError, ConnectionResetError, WorkerDiedError) as exc:
            failed = exc
            dead = [str(exc)] if isinstance(exc, WorkerDiedError) else (_dead_workers(venv) or ["a worker (which one is unknown)"])
            path = _save_after_stop(model, out, segment, start_steps, record, "failed")
            raise RunFailure(
                f"vector-env worker process died: {', '.join(dead)} during training at step {model.num_timesteps}; "
                f"the model was saved to {path}; continue with: roadsense-marl train --resume {out}"
            ) from None
        except CriticNotLearningError as exc:
            failed = exc
            with contextlib.suppress(Exception):
                path = _save_after_stop(model, out, segment, start_steps, record, "failed")
            with contextlib.suppress(Exception):
                write_state(out, error=str(exc)[:500], critic_check_explained_variance=critic.checked)
            raise RunFailure(f"{exc}; the model so far was saved in {out}") from None
        except Exception as exc:  # anything else: keep the model, record the failure, re-raise the error
            failed = exc
            with contextlib.suppress(Exception):
                _save_after_stop(model, out, segment, start_steps, record, "failed")
            with contextlib.suppress(Exception):
                write_state(out, error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        model.logger.close()
        save_model(model, out / FINAL_MODEL, record)
        merge_progress(out, segment / "progress.csv", start_steps)
        write_state(out, status="finished", latest_model=FINAL_MODEL, num_timesteps=int(model.num_timesteps),
                    final_num_timesteps=int(model.num_timesteps), critic_check_explained_variance=critic.checked)
    except BaseException as exc:
        failed = exc
        raise
    finally:
        try:
            if venv is not None:
                if failed is None:
                    venv.close()
                else:  # a close error must not replace the interrupt or the first error
                    with contextlib.suppress(Exception), warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        venv.close()
        finally:
            torch.set_num_threads(threads)
    return out


def _save_after_stop(model: Any, out: Path, segment: Path, start_steps: int, record: Mapping[str, Any], status: str) -> Path:
    """Save the current model as a checkpoint, progress.csv and run.json after Ctrl-C or a failure."""
    from roadsense_marl.training.runs import checkpoint_path, merge_progress, save_model, write_state

    path = save_model(model, checkpoint_path(out, model.num_timesteps), record)
    with contextlib.suppress(Exception):
        model.logger.close()
    merge_progress(out, segment / "progress.csv", start_steps)
    write_state(out, status=status, latest_model=str(path.relative_to(out)), num_timesteps=int(model.num_timesteps))
    return path


def _plain(x: Any) -> Any:
    """YAML-safe copy (one definition: :func:`roadsense_marl.training.runs._plain`)."""
    from roadsense_marl.training.runs import _plain as plain

    return plain(x)


# -- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="training YAML: a path or a name in configs/train/ (default: marl_ppo)")
    parser.add_argument("--engine", choices=["sb3", "rllib"], help="training engine (default from the config: sb3); "
                        "rllib: Ray RLlib multi-agent PPO with the same config (needs roadsense-marl[rllib])")
    parser.add_argument("--total-timesteps", type=int, help="agent-steps to train for (samples over every vehicle slot); "
                        "with --resume: the run's new total")
    parser.add_argument("--scenario", help="scenario name or .sumocfg path (see: roadsense-marl scenarios)")
    parser.add_argument("--num-envs", type=int, help="env copies (vector env width = copies x vehicles)")
    parser.add_argument("--num-cpus", type=int, help="worker processes (default: one per copy with libsumo)")
    parser.add_argument("--backend", choices=["libsumo", "traci"], help="SUMO backend")
    parser.add_argument("--seed", type=int, help="seed of the run (env resets and PPO)")
    parser.add_argument("--out", help="output folder (default from the config: runs/marl_ppo); an existing run there "
                        "is an error unless --resume or --overwrite")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", metavar="RUN", help="continue the run folder RUN from its latest checkpoint with its "
                      "own config (only --total-timesteps may change); the step count carries on")
    mode.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="print SB3's training log")


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The training config after applying the command-line overrides (checked once, with them)."""
    cfg, source = read_train_yaml(args.config or DEFAULT_CONFIG)
    for section in ("env", "vec_env"):
        if cfg.get(section) is None:
            cfg[section] = {}
        elif not isinstance(cfg[section], dict):
            raise ValueError(f"{section!r} in {source} must be a mapping, got {cfg[section]!r}")
    if args.total_timesteps is not None:
        cfg["total_timesteps"] = args.total_timesteps
    if args.engine is not None:
        cfg["engine"] = args.engine
    if args.seed is not None:
        cfg["seed"] = args.seed
    if args.out is not None:
        cfg["out"] = args.out
    if args.scenario is not None:
        cfg["env"]["scenario"] = args.scenario
    if args.backend is not None:
        cfg["env"]["backend"] = args.backend
    if args.num_envs is not None:
        cfg["vec_env"]["num_envs"] = args.num_envs
    if args.num_cpus is not None:
        cfg["vec_env"]["num_cpus"] = args.num_cpus
    return check_train_config(cfg, source=source)


def run(args: argparse.Namespace) -> int:
    if args.resume is not None:
        fixed = [f"--{k.replace('_', '-')}" for k in ("config", "engine", "scenario", "num_envs", "num_cpus", "backend", "seed", "out")
                 if getattr(args, k) is not None]
        if fixed:
            raise ValueError(f"--resume continues the run with its own config.yaml; drop {', '.join(fixed)} "
                             "(only --total-timesteps may change)")
        out = resume(args.resume, total_timesteps=args.total_timesteps, progress_bar=not args.no_progress,
                     verbose=args.verbose)
    else:
        out = train(config_from_args(args), progress_bar=not args.no_progress, verbose=args.verbose,
                    overwrite=args.overwrite)
    from roadsense_marl.training.runs import read_state

    final = read_state(out).get("latest_model") or "final_model.zip"
    print(f"trained model: {out / final}")
    print(f"run folder:    {out}  (evaluate with: roadsense-marl evaluate {out})")
    return 0
