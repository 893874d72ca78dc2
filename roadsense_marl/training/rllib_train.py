"""``roadsense-marl train --engine rllib``: the same YAML config, trained by Ray RLlib's multi-agent PPO.

The config is the SB3 one (:mod:`roadsense_marl.training.train`): ``env``, ``policy`` (the Deep Sets
options, the same network through :class:`~roadsense_marl.rllib.DeepSetRLModule`), ``ppo`` (SB3
names, translated by :data:`PPO_TO_RLLIB`), ``seed``, ``total_timesteps`` (agent-steps, counted over
every vehicle as with SB3), ``checkpoint_every`` (agent-steps). ``vec_env.num_envs`` becomes
``num_env_runners`` (one env, and so one libsumo simulation, per env-runner process) and
``ppo.n_steps`` x ``num_envs`` the env-steps per training batch (``train_batch_size_per_learner``).
An optional ``rllib:`` section sets any ``PPOConfig`` attribute over that (``num_env_runners``,
``train_batch_size_per_learner``, ``num_learners``, ...) plus ``address`` (a Ray cluster to join,
e.g. ``"auto"`` or ``"ray://head:10001"``; default: a local Ray) and ``num_cpus`` (local Ray only).

The run folder follows the run-folder policy (:mod:`roadsense_marl.training.runs`): ``config.yaml``
(resolved config, ``engine: rllib``, the env contract), ``run.json``, ``progress.csv`` (one row
per training iteration, ``time/total_timesteps`` = agent-steps), ``tb/`` (TensorBoard),
``checkpoints/rllib_<steps>_steps/`` and ``final_checkpoint/``: RLlib Algorithm checkpoints
(``algo.save``; ``Algorithm.from_checkpoint`` restores them), each with ``roadsense_contract.json``.
Checkpoints are written to a temporary folder and renamed into place. RLlib checkpoints are
pickles: load only checkpoints you trust.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

ENGINES = ("sb3", "rllib")
FINAL_CHECKPOINT = "final_checkpoint"
CKPT_PREFIX = "rllib_"
_CKPT_RE = re.compile(r"^rllib_(\d+)_steps$")
#: Keys of the ``rllib:`` section that are not PPOConfig attributes.
RAY_KEYS = ("address", "num_cpus")
#: SB3 PPO names (the ``ppo:`` section) and their RLlib ``PPOConfig`` counterparts.
PPO_TO_RLLIB = {
    "learning_rate": "lr", "gamma": "gamma", "gae_lambda": "lambda_", "clip_range": "clip_param",
    "ent_coef": "entropy_coeff", "vf_coef": "vf_loss_coeff", "max_grad_norm": "grad_clip",
    "n_epochs": "num_epochs", "batch_size": "minibatch_size",
}
#: SB3 PPO keys that have no RLlib counterpart (an error names them, unless at the value RLlib behaves as).
_NO_COUNTERPART = {"use_sde": False, "sde_sample_freq": -1, "normalize_advantage": True, "target_kl": None,
                   "clip_range_vf": None, "stats_window_size": 100}
#: Columns of progress.csv: (column, path in RLlib's result dict).
PROGRESS_COLUMNS = (
    ("rollout/ep_rew_mean", ("env_runners", "episode_return_mean")),
    ("rollout/ep_len_mean", ("env_runners", "episode_len_mean")),
    ("rollout/num_episodes", ("env_runners", "num_episodes")),
    ("train/loss", ("learners", "shared_policy", "total_loss")),
    ("train/policy_loss", ("learners", "shared_policy", "policy_loss")),
    ("train/value_loss", ("learners", "shared_policy", "vf_loss")),
    ("train/entropy", ("learners", "shared_policy", "entropy")),
    ("train/approx_kl", ("learners", "shared_policy", "mean_kl_loss")),
    ("train/explained_variance", ("learners", "shared_policy", "vf_explained_var")),
    ("time/iteration_s", ("time_this_iter_s",)),
)


def rllib_settings(cfg: Mapping[str, Any], source: str = "training config") -> tuple[dict[str, Any], dict[str, Any]]:
    """``(PPOConfig settings, ray.init settings)`` from a checked training config.

    Raises ValueError naming the key for an SB3-only ``ppo`` key (with a value RLlib cannot honour)
    or a bad ``rllib`` section.
    """
    from roadsense_marl.training.train import parse_learning_rate

    settings: dict[str, Any] = {}
    section = cfg.get("rllib") or {}
    for key, value in cfg["ppo"].items():
        if key == "learning_rate":
            lr, linear = parse_learning_rate(value)
            given = section.get("lr") if isinstance(section, Mapping) else None
            if linear and not isinstance(given, (list, tuple)):
                raise ValueError(
                    f"ppo.learning_rate={value!r} in {source} is a schedule over agent-steps; RLlib schedules the "
                    f"learning rate over env steps, so give the schedule in the rllib: section, e.g. rllib: "
                    f"{{lr: [[0, {lr:g}], [<env steps>, 0.0]]}} (env steps = agent-steps / vehicles on the road)"
                    + (f"; rllib.lr is {given!r}, a constant" if given is not None else ""))
            settings["lr"] = lr
        elif key in PPO_TO_RLLIB:
            settings[PPO_TO_RLLIB[key]] = value
        elif key in _NO_COUNTERPART and value != _NO_COUNTERPART[key]:
            raise ValueError(f"ppo.{key}={value!r} in {source} has no RLlib counterpart; drop it for --engine rllib "
                             "(or set the RLlib setting you mean in the rllib: section)")
    num_envs = int(cfg["vec_env"].get("num_envs") or 1)
    settings["num_env_runners"] = num_envs
    if "n_steps" in cfg["ppo"]:
        settings["train_batch_size_per_learner"] = int(cfg["ppo"]["n_steps"]) * num_envs
    settings["seed"] = cfg["seed"]
    if not isinstance(section, Mapping):
        raise ValueError(f"'rllib' in {source} must be a mapping of PPOConfig settings, got {section!r}")
    ray_init = {k: section[k] for k in RAY_KEYS if k in section}
    if ray_init.get("address") is not None and "num_cpus" in ray_init:
        raise ValueError(f"rllib.num_cpus in {source} applies to a local Ray only; drop it when rllib.address is set")
    settings.update({k: v for k, v in section.items() if k not in RAY_KEYS})
    return settings, ray_init


def check_rllib_config(cfg: Mapping[str, Any], env_cfg: Any, source: str = "training config") -> Any:
    """The :class:`PPOConfig` of a training config (everything checked, nothing started)."""
    try:
        from roadsense_marl.rllib import ppo_config
    except ImportError as exc:
        raise ValueError(f"--engine rllib needs Ray RLlib: pip install 'roadsense-marl[rllib]' ({exc})") from None
    settings, _ = rllib_settings(cfg, source)
    try:
        return ppo_config(env_cfg.to_dict(), policy=cfg["policy"], **settings)
    except ValueError as exc:
        raise ValueError(f"{exc} (in {source})") from None


# ---- checkpoints ---------------------------------------------------------------------------------

def checkpoint_dir(run: str | Path, steps: int) -> Path:
    return Path(run) / "checkpoints" / f"{CKPT_PREFIX}{int(steps)}_steps"


def is_rllib_checkpoint(path: str | Path) -> bool:
    """An RLlib Algorithm checkpoint folder written by this module (``rllib_checkpoint.json`` + contract)."""
    p = Path(path)
    return p.is_dir() and (p / "rllib_checkpoint.json").is_file()


def latest_checkpoint(run: str | Path) -> tuple[Path, int] | None:
    """``(path, agent-steps)`` of a run's checkpoint with the most steps (periodic or final)."""
    from roadsense_marl.training.runs import read_state

    p = Path(run)
    found: list[tuple[int, int, Path]] = []
    ckdir = p / "checkpoints"
    if ckdir.is_dir():
        for q in ckdir.iterdir():
            m = _CKPT_RE.match(q.name)
            if m and is_rllib_checkpoint(q):
                found.append((int(m.group(1)), 0, q))
    if is_rllib_checkpoint(p / FINAL_CHECKPOINT):
        steps = read_state(p).get("final_num_timesteps")
        if isinstance(steps, int):
            found.append((steps, 1, p / FINAL_CHECKPOINT))
    if not found:
        return None
    steps, _, path = max(found)
    return path, steps


def read_checkpoint_record(path: str | Path) -> dict[str, Any] | None:
    """The ``roadsense_contract.json`` of an RLlib checkpoint folder (None when absent)."""
    f = Path(path) / "roadsense_contract.json"
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{f} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("contract"), dict):
        raise ValueError(f"{f} must hold an object with a 'contract' object")
    return data


def save_checkpoint(algo: Any, path: Path, record: Mapping[str, Any], steps: int) -> Path:
    """``algo.save`` into a temporary folder beside ``path``, add the contract, rename into place."""
    from roadsense_marl.training.runs import _plain

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        algo.save(str(tmp))
        (tmp / "roadsense_contract.json").write_text(json.dumps({**_plain(record), "num_timesteps": int(steps)}, indent=1))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


@contextlib.contextmanager
def quiet_ray_logs(quiet: bool = True):
    """Ray's Python loggers at ERROR inside the block (RLlib logs deprecation notices about its own
    internals at WARNING on every build and load); restored after."""
    import logging

    loggers = [logging.getLogger(name) for name in ("ray", "ray.rllib")]  # RLlib sets its own level
    before = [lg.level for lg in loggers]
    if quiet:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, before):
            lg.setLevel(level)


def load_module(checkpoint: str | Path) -> Any:
    """The shared Deep Sets RLModule of an RLlib Algorithm checkpoint (on the CPU, for inference).

    Loads only the module (``RLModule.from_checkpoint``), not the algorithm: no Ray, no env runners.
    RLlib checkpoints are pickles: load only checkpoints you trust.
    """
    try:
        from ray.rllib.core.rl_module.rl_module import RLModule
    except ImportError as exc:
        raise ValueError(f"{str(checkpoint)!r} is an RLlib checkpoint; loading it needs Ray RLlib: "
                         f"pip install 'roadsense-marl[rllib]' ({exc})") from None
    from roadsense_marl.rllib import SHARED_POLICY

    p = Path(checkpoint) / "learner_group" / "learner" / "rl_module" / SHARED_POLICY
    if not p.is_dir():
        raise ValueError(f"{str(checkpoint)!r} holds no module {SHARED_POLICY!r} (expected {p})")
    with quiet_ray_logs():
        module = RLModule.from_checkpoint(str(p))
    module.eval()
    return module


# ---- training ------------------------------------------------------------------------------------

def _get(result: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(result, Mapping) or k not in result:
            return None
        result = result[k]
    return result


def _progress_row(result: Mapping[str, Any], steps: int, iteration: int) -> dict[str, Any]:
    row: dict[str, Any] = {"time/total_timesteps": steps, "time/iterations": iteration}
    for column, path in PROGRESS_COLUMNS:
        v = _get(result, path)
        row[column] = "" if v is None else float(v)
    sampled = _get(result, ("env_runners", "num_agent_steps_sampled_lifetime")) or {}
    row["rollout/agents_sampled"] = sum(1 for n in sampled.values() if n)
    return row


def _write_progress(out: Path, rows: list[dict[str, Any]]) -> None:
    from roadsense_marl.training.runs import PROGRESS_FILE, atomic_write_text

    columns: list[str] = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / PROGRESS_FILE, buf.getvalue())


def _old_rows(out: Path, start_steps: int) -> list[dict[str, Any]]:
    from roadsense_marl.training.runs import PROGRESS_FILE

    f = out / PROGRESS_FILE
    if start_steps <= 0 or not f.is_file():
        return []
    with f.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if float(r.get("time/total_timesteps") or "nan") <= start_steps]


def run_rllib(cfg: dict[str, Any], env_cfg: Any, out: Path, *, start: tuple[Path, int] | None, overwrite: bool,
              progress_bar: bool, verbose: int) -> Path:
    """Train (or continue from ``start``) until ``cfg["total_timesteps"]`` agent-steps; see the module docstring.

    Everything is validated and the algorithm built before the folder is changed. Ctrl-C saves a
    checkpoint, progress and run state and raises :class:`~roadsense_marl.training.train.TrainingInterrupted`.
    """
    with quiet_ray_logs(not verbose):
        config = check_rllib_config(cfg, env_cfg)  # first: names the missing extra before anything else

    import ray
    import torch
    import yaml

    from roadsense_marl.rllib import SHARED_POLICY
    from roadsense_marl.training.runs import CONFIG_FILE, atomic_write_text, clear_run_folder, env_contract, write_state
    from roadsense_marl.training.train import TrainingInterrupted, _plain

    _, ray_init = rllib_settings(cfg)
    contract = env_contract(env_cfg)
    record = {"contract": contract, "env": _plain(env_cfg.to_dict()), "policy": _plain(cfg["policy"]), "engine": "rllib"}
    start_steps = start[1] if start else 0
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg["torch_threads"])
    started_ray = False
    algo = None
    quiet = quiet_ray_logs(not verbose)
    quiet.__enter__()
    try:
        if not ray.is_initialized():
            if ray_init.get("address"):
                ray.init(address=ray_init["address"], log_to_driver=bool(verbose))
            else:
                ray.init(num_cpus=ray_init.get("num_cpus"), include_dashboard=False, log_to_driver=bool(verbose),
                         configure_logging=bool(verbose))
            started_ray = True
        if start is None:
            algo = config.build_algo()
        else:
            from ray.rllib.algorithms.algorithm import Algorithm

            algo = Algorithm.from_checkpoint(str(start[0]))
        # Everything is validated and built: only now is the folder changed.
        if overwrite:
            clear_run_folder(out)
        out.mkdir(parents=True, exist_ok=True)
        resolved = {**cfg, "engine": "rllib", "out": str(out), "env": env_cfg.to_dict(), "contract": contract}
        atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(_plain(resolved), sort_keys=False))
        write_state(out, status="running", pid=os.getpid(), engine="rllib", total_timesteps=cfg["total_timesteps"],
                    resumed_from=(str(start[0].relative_to(out)) if start else None), resumed_at=start_steps)
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(str(out / "tb" / ("rllib" if start is None else f"rllib_resume_{start_steps}")))
        rows = _old_rows(out, start_steps)
        steps = start_steps
        iteration = int(float(rows[-1].get("time/iterations") or 0)) if rows else 0
        every = cfg["checkpoint_every"]
        next_ckpt = (steps // every + 1) * every if every else None
        from tqdm import tqdm

        bar = tqdm(total=cfg["total_timesteps"], initial=steps, unit="step", desc="train (rllib)", disable=not progress_bar,
                   leave=False, dynamic_ncols=True)
        try:
            while steps < cfg["total_timesteps"]:
                result = algo.train()
                iteration += 1
                sampled = int(_get(result, ("env_runners", "num_module_steps_sampled", SHARED_POLICY)) or 0)
                if sampled <= 0:
                    raise RuntimeError("an RLlib training iteration sampled no agent-steps (did an env runner fail? "
                                       "see the Ray logs, or set ROADSENSE_TRACEBACK=1)")
                steps += sampled
                bar.update(sampled)
                row = _progress_row(result, steps, iteration)
                rows.append(row)
                for k, v in row.items():
                    if isinstance(v, float) and math.isfinite(v):
                        tb.add_scalar(k, v, steps)
                _write_progress(out, rows)
                if verbose:
                    print(f"iteration {iteration}: {steps} agent-steps, return {row['rollout/ep_rew_mean']}, "
                          f"loss {row['train/loss']}")
                if next_ckpt is not None and steps >= next_ckpt:
                    path = save_checkpoint(algo, checkpoint_dir(out, steps), record, steps)
                    write_state(out, latest_model=str(path.relative_to(out)), num_timesteps=steps)
                    next_ckpt = (steps // every + 1) * every
        except KeyboardInterrupt:
            path = save_checkpoint(algo, checkpoint_dir(out, steps), record, steps)
            if rows:
                _write_progress(out, rows)
            write_state(out, status="interrupted", latest_model=str(path.relative_to(out)), num_timesteps=steps)
            raise TrainingInterrupted(
                f"checkpoint at {steps} steps saved to {path}; continue with: roadsense-marl train --resume {out}"
            ) from None
        except Exception as exc:
            with contextlib.suppress(Exception):
                write_state(out, status="failed", error=f"{type(exc).__name__}: {exc}"[:500], num_timesteps=steps)
            raise
        finally:
            bar.close()
            tb.close()
        save_checkpoint(algo, out / FINAL_CHECKPOINT, record, steps)
        write_state(out, status="finished", latest_model=FINAL_CHECKPOINT, num_timesteps=steps, final_num_timesteps=steps)
    finally:
        try:
            if algo is not None:
                with contextlib.suppress(Exception):
                    algo.stop()
            if started_ray:
                ray.shutdown()
        finally:
            torch.set_num_threads(threads)
            quiet.__exit__(None, None, None)
    return out
