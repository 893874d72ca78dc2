"""Shared policies stored as plain weights plus a JSON manifest, and the policy shipped with the package.

A policy folder holds two files:

- ``policy.pt``: the SB3 actor-critic's ``state_dict`` (tensors only), read with
  ``torch.load(..., weights_only=True)``, so loading runs no code from the file (unlike an SB3
  ``.zip``, whose spaces and schedules are pickled);
- ``policy.json``: the manifest: format version, the env contract version
  (:data:`roadsense_marl.env.version.ENV_VERSION`) it was trained under, the Deep Sets
  options (:func:`roadsense_marl.policies.create_deep_set_policy_kwargs`), the observation and
  action shapes, the env config, the command that produced it and, optionally, its evaluation
  metrics.

``roadsense-marl export RUN_FOLDER --out DIR`` writes such a folder from a training run.
``MODEL`` = ``pretrained`` in ``evaluate`` and ``record`` means the folder shipped inside the
package (:data:`SHIPPED_DIR`); it is only loaded when its env contract version equals the env's,
so a policy trained under an older observation/action/reward/radio contract is never used
silently.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "PRETRAINED_NAME",
    "SHIPPED_DIR",
    "WEIGHTS",
    "check_env_version",
    "export_policy",
    "is_policy_folder",
    "load_policy",
    "read_manifest",
    "shipped_policy_dir",
]

FORMAT_VERSION = 1
MANIFEST = "policy.json"
WEIGHTS = "policy.pt"
#: The MODEL name that means the policy shipped with the package.
PRETRAINED_NAME = "pretrained"
#: Where the shipped policy lives (package data; empty until one is trained and exported there).
SHIPPED_DIR = Path(__file__).resolve().parent / "pretrained"
#: The documented way to produce the shipped policy (from the shipped training config).
RETRAIN_COMMAND = (
    "roadsense-marl train --config marl_ppo --out runs/pretrained && "
    f"roadsense-marl export runs/pretrained --out {SHIPPED_DIR}"
)
_REQUIRED = ("format_version", "env_version", "policy", "observation_shapes", "action_shape", "env_config", "command")


def is_policy_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder with a ``policy.json`` manifest."""
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


def shipped_policy_dir() -> Path:
    """The shipped policy's folder.

    :raises FileNotFoundError: no policy is shipped in this install, with the command that makes one.
    """
    if not is_policy_folder(SHIPPED_DIR):
        raise FileNotFoundError(
            f"no pretrained policy is shipped with this version of roadsense-marl ({SHIPPED_DIR / MANIFEST} is missing); "
            f"train and export one with: {RETRAIN_COMMAND}"
        )
    return SHIPPED_DIR


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The validated manifest of a policy folder.

    :raises FileNotFoundError: no ``policy.json`` or no ``policy.pt`` in ``folder``.
    :raises ValueError: not JSON, a missing key, or an unknown format version (naming the file and key).
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a policy folder: {MANIFEST} not found")
    if not (folder / WEIGHTS).is_file():
        raise FileNotFoundError(f"policy folder {str(folder)!r} has {MANIFEST} but no {WEIGHTS}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: must hold a JSON object with keys {', '.join(_REQUIRED)}")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; a manifest has {', '.join(_REQUIRED)}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {manifest['format_version']!r} is not supported (this roadsense-marl reads {FORMAT_VERSION})"
        )
    return manifest


def check_env_version(manifest: Mapping[str, Any], where: str | Path = "policy") -> None:
    """Refuse a policy trained under another env contract.

    :raises ValueError: ``manifest["env_version"]`` differs from
        :data:`roadsense_marl.env.version.ENV_VERSION`, naming both and how to retrain.
    """
    from roadsense_marl.env.version import ENV_VERSION

    got = manifest.get("env_version")
    if got != ENV_VERSION:
        raise ValueError(
            f"{where} was trained under env contract v{got}, but this env is v{ENV_VERSION} (observations, actions, "
            f"rewards or the radio changed; see CHANGELOG.md): retrain it, e.g. {RETRAIN_COMMAND}"
        )


def _policy_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    import torch.nn as nn

    from roadsense_marl.policies import create_deep_set_policy_kwargs

    opts = dict(options)
    act = opts.get("activation_fn")
    if isinstance(act, str):
        cls = getattr(nn, act, None)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(f"policy option activation_fn {act!r} is not a torch.nn activation (e.g. ReLU, Tanh)")
        opts["activation_fn"] = cls
    for key in ("phi_hidden", "rho_hidden"):
        if isinstance(opts.get(key), list):
            opts[key] = tuple(opts[key])
    try:
        return create_deep_set_policy_kwargs(**opts)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _json_options(options: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in options.items():
        if isinstance(v, type):
            v = v.__name__
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    json.dumps(out)  # raises TypeError on anything JSON cannot hold
    return out


def export_policy(
    model: Any,
    out_dir: str | Path,
    *,
    policy_options: Mapping[str, Any],
    env_config: Mapping[str, Any],
    command: str,
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model``'s policy (an SB3 PPO with the Deep Sets extractor) as ``policy.pt`` + ``policy.json``.

    :param policy_options: the options the model was built with (``create_deep_set_policy_kwargs``'s).
    :param env_config: the env config it was trained with (recorded, and used by ``evaluate pretrained``).
    :param command: the command that produced the model (recorded for whoever retrains it).
    :param metrics: optional evaluation summary to keep beside the weights.
    :returns: ``out_dir``.
    """
    import torch

    from roadsense_marl.env.version import ENV_VERSION

    obs_space = model.observation_space
    manifest = {
        "format_version": FORMAT_VERSION,
        "env_version": ENV_VERSION,
        "policy": _json_options(policy_options),
        "observation_shapes": {k: list(s.shape) for k, s in obs_space.spaces.items()},
        "action_shape": list(model.action_space.shape),
        "action_low": np.asarray(model.action_space.low, dtype=float).tolist(),
        "action_high": np.asarray(model.action_space.high, dtype=float).tolist(),
        "env_config": json.loads(json.dumps(dict(env_config), default=str)),
        "command": command,
        "metrics": dict(metrics) if metrics is not None else None,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.policy.state_dict().items()}
    torch.save(state, out / WEIGHTS)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def load_policy(folder: str | Path, env: Any) -> Callable[[Any, dict], dict]:
    """A shared policy (``policy(env, obs) -> actions``, one batched forward pass per step) from a policy folder.

    Checks, before building anything: the manifest, the env contract version, and that the
    env's observation and action shapes are the ones the policy was trained on.

    :raises ValueError / FileNotFoundError: as :func:`read_manifest` and :func:`check_env_version`;
        shapes that differ; weights that do not fit the network.
    """
    import torch
    from gymnasium import spaces
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    from roadsense_marl.evaluation.runner import model_policy

    folder = Path(folder)
    manifest = read_manifest(folder)
    check_env_version(manifest, folder)
    a0 = env.possible_agents[0]
    obs_space, act_space = env.observation_space(a0), env.action_space(a0)
    want = {k: list(s.shape) for k, s in obs_space.spaces.items()}
    if want != manifest["observation_shapes"] or list(act_space.shape) != manifest["action_shape"]:
        raise ValueError(
            f"policy {str(folder)!r} was trained on observations {manifest['observation_shapes']} and actions "
            f"{manifest['action_shape']}, the env gives {want} and {list(act_space.shape)} (max_peers must match training)"
        )
    policy = MultiInputActorCriticPolicy(
        spaces.Dict(obs_space.spaces), act_space, lr_schedule=lambda _: 0.0, **_policy_kwargs(manifest["policy"])
    )
    import pickle

    try:
        state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{folder / WEIGHTS} is not a plain tensor file (loading runs no code): {first}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{folder / WEIGHTS} must hold a state_dict: a mapping of names to tensors")
    try:
        policy.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{folder / WEIGHTS} does not fit the network described in {MANIFEST}: {exc}") from None
    policy.set_training_mode(False)
    return model_policy(policy)


# ---- command line: roadsense-marl export ------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``roadsense-marl export``."""
    parser.add_argument("run", metavar="RUN_FOLDER", help="training run folder (final_model.zip and config.yaml)")
    parser.add_argument("--out", required=True, help="policy folder to write (policy.pt and policy.json)")
    parser.add_argument("--metrics", default=None, help="metrics.json of an evaluation to keep beside the weights")


def run(args: argparse.Namespace) -> int:
    """Export a training run's final model as weights + manifest."""
    import yaml

    run_dir = Path(args.run)
    zip_path, cfg_path = run_dir / "final_model.zip", run_dir / "config.yaml"
    for p in (zip_path, cfg_path):
        if not p.is_file():
            raise FileNotFoundError(f"{str(run_dir)!r} is not a training run folder: {p.name} not found")
    cfg = yaml.safe_load(cfg_path.read_text()) or {}
    if not isinstance(cfg, dict) or not isinstance(cfg.get("policy"), dict) or not isinstance(cfg.get("env"), dict):
        raise ValueError(f"{cfg_path}: needs 'policy' and 'env' sections (written by roadsense-marl train)")
    metrics = None
    if args.metrics is not None:
        if not Path(args.metrics).is_file():
            raise FileNotFoundError(f"metrics file not found: {args.metrics!r}")
        full = json.loads(Path(args.metrics).read_text())
        metrics = {k: full.get(k) for k in ("scenario", "seeds", "radios", "findings")}
        metrics["aggregate"] = {f"{r['policy']}/{r['radio']}": r["aggregate"] for r in full.get("results", [])}
    from stable_baselines3 import PPO

    model = PPO.load(str(zip_path), device="cpu")
    out = export_policy(
        model, args.out, policy_options=cfg["policy"], env_config=cfg["env"],
        command=f"roadsense-marl train (config {cfg_path}), then roadsense-marl export {run_dir}", metrics=metrics,
    )
    print(f"policy: {out / WEIGHTS} and {out / MANIFEST}")
    return 0
