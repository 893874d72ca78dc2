"""Train the shared Deep Sets PPO policy over every vehicle (SuperSuit + SB3).

Read top to bottom: load the YAML config, apply command-line overrides, build the vector
env (one slot per possible vehicle, :func:`~roadsense_marl.training.make_vec_env`), build
PPO with the Deep Sets extractor, learn with checkpoints and logs, save everything into
the output folder:

- ``config.yaml``: the resolved training config (``env`` section = env keyword arguments);
- ``final_model.zip``: the trained policy (``PPO.load``);
- ``checkpoints/``: intermediate models; ``tb/``: TensorBoard logs;
- ``progress.csv``: SB3's log per rollout, with ``rollout/collision_rate`` (share of
  vehicle-episodes that ended in a collision) and ``rollout/padded_fraction``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any, Mapping

from roadsense_marl.paths import config_path

TRAIN_KEYS = ("total_timesteps", "seed", "out", "checkpoint_every", "torch_threads", "env", "vec_env", "policy", "ppo")
VEC_ENV_KEYS = ("num_envs", "num_cpus", "via")
DEFAULT_CONFIG = "marl_ppo"


def load_train_config(path: str | Path | None = None) -> dict[str, Any]:
    """Read a training YAML (a path, or a name in ``configs/train/``) and check its keys."""
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
        raise ValueError(f"training config {p} is not valid YAML: {exc}") from exc
    return check_train_config(data, source=str(p))


def check_train_config(data: Mapping[str, Any], source: str = "training config") -> dict[str, Any]:
    """Validate the top-level and ``vec_env`` keys; env, policy and PPO keys are checked by their owners."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{source} must be a mapping of keys")
    unknown = sorted(set(data) - set(TRAIN_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {source}; valid keys: {list(TRAIN_KEYS)}")
    out = {
        "env": {}, "vec_env": {}, "policy": {}, "ppo": {},
        "checkpoint_every": 0, "seed": 0, "out": "runs/marl_ppo", "torch_threads": 1,
    }
    out.update(copy.deepcopy(dict(data)))
    for section in ("env", "vec_env", "policy", "ppo"):
        if not isinstance(out[section], Mapping):
            raise ValueError(f"{section!r} in {source} must be a mapping, got {out[section]!r}")
    bad_vec = sorted(set(out["vec_env"]) - set(VEC_ENV_KEYS))
    if bad_vec:
        raise ValueError(f"unknown vec_env key(s) {bad_vec} in {source}; valid: {list(VEC_ENV_KEYS)}")
    total = out.get("total_timesteps")
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"total_timesteps must be a whole number >= 1, got {total!r}")
    if isinstance(out["seed"], bool) or not isinstance(out["seed"], int):
        raise ValueError(f"seed must be a whole number, got {out['seed']!r}")
    threads = out["torch_threads"]
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"torch_threads must be a whole number >= 1, got {threads!r}")
    every = out["checkpoint_every"]
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ValueError(f"checkpoint_every must be a whole number >= 0, got {every!r}")
    return out


def train(config: Mapping[str, Any] | str | Path | None = None, *, progress_bar: bool = False, verbose: int = 0) -> Path:
    """Train the shared policy; returns the output folder. See the module docstring for its contents."""
    import torch
    import yaml
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
    from stable_baselines3.common.logger import configure

    from roadsense_marl.env import make_env_config
    from roadsense_marl.policies import create_deep_set_policy_kwargs
    from roadsense_marl.training.callbacks import CollisionRateCallback
    from roadsense_marl.training.ppo import MaskedPPO
    from roadsense_marl.training.vec_env import PaddedFractionCallback, make_vec_env

    cfg = load_train_config(config) if not isinstance(config, Mapping) else check_train_config(config)
    env_cfg = make_env_config(**cfg["env"])  # validates the env section before anything starts
    policy_kwargs = create_deep_set_policy_kwargs(**cfg["policy"])
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    resolved = {**cfg, "env": env_cfg.to_dict()}
    (out / "config.yaml").write_text(yaml.safe_dump(_plain(resolved), sort_keys=False))

    # The networks are small: one torch thread is faster than two on a shared 2-core machine
    # (measured 3-4x), and leaves the other core to a SUMO worker.
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg["torch_threads"])
    venv = make_vec_env(seed=cfg["seed"], **cfg["vec_env"], **cfg["env"])
    torch.set_num_threads(cfg["torch_threads"])  # make_vec_env sets 1; the config decides
    try:
        try:
            model = MaskedPPO("MultiInputPolicy", venv, policy_kwargs=policy_kwargs, seed=cfg["seed"], verbose=verbose, device="cpu", **cfg["ppo"])
        except TypeError as exc:
            raise ValueError(f"bad ppo option in the training config: {exc}") from exc
        model.set_logger(configure(str(out / "tb"), ["csv", "tensorboard"] + (["stdout"] if verbose else [])))
        callbacks = [CollisionRateCallback(), PaddedFractionCallback()]
        if cfg["checkpoint_every"]:
            # CheckpointCallback counts vec-env steps; each is one sample per slot.
            every = max(1, cfg["checkpoint_every"] // venv.num_envs)
            callbacks.append(CheckpointCallback(every, str(out / "checkpoints"), name_prefix="model"))
        model.learn(total_timesteps=cfg["total_timesteps"], callback=CallbackList(callbacks), progress_bar=progress_bar)
        model.save(out / "final_model.zip")
    finally:
        venv.close()
        torch.set_num_threads(threads)
    progress = out / "tb" / "progress.csv"
    if progress.exists():
        (out / "progress.csv").write_bytes(progress.read_bytes())
    return out


def _plain(x: Any) -> Any:
    """YAML-safe copy (tuples to lists, everything else as text)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


# -- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="training YAML: a path or a name in configs/train/ (default: marl_ppo)")
    parser.add_argument("--total-timesteps", type=int, help="agent-steps to train for (samples over every vehicle slot)")
    parser.add_argument("--scenario", help="scenario name or .sumocfg path (see: roadsense-marl scenarios)")
    parser.add_argument("--num-envs", type=int, help="env copies (vector env width = copies x vehicles)")
    parser.add_argument("--num-cpus", type=int, help="worker processes (default: one per copy with libsumo)")
    parser.add_argument("--backend", choices=["libsumo", "traci"], help="SUMO backend")
    parser.add_argument("--seed", type=int, help="seed of the run (env resets and PPO)")
    parser.add_argument("--out", help="output folder (default from the config: runs/marl_ppo)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="print SB3's training log")


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The training config after applying the command-line overrides."""
    cfg = load_train_config(args.config)
    if args.total_timesteps is not None:
        cfg["total_timesteps"] = args.total_timesteps
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
    return check_train_config(cfg)


def run(args: argparse.Namespace) -> int:
    out = train(config_from_args(args), progress_bar=not args.no_progress, verbose=args.verbose)
    print(f"trained model: {out / 'final_model.zip'}")
    print(f"run folder:    {out}  (evaluate with: roadsense-marl evaluate {out})")
    return 0
