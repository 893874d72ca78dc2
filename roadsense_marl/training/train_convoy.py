"""Train the single-ego Deep Sets policy of the original specification.

``python -m roadsense_marl.training.train_convoy [--total-timesteps N] [--models-dir DIR] ...``

The ego (``V001``, the rear car of ``convoy_3``) is the only learning agent in
``RoadSense-Convoy-v4``; every other vehicle is driven by SUMO and broadcasts over the same
emulated ESP-NOW radio as in the multi-agent env. Constants below are the original
specification's; every one can be overridden on the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TOTAL_TIMESTEPS = 100_000
ENTROPY_COEF = 0.01
LEARNING_RATE = 3e-4
N_STEPS = 2048
BATCH_SIZE = 64
PEER_EMBED_DIM = 32
CHECKPOINT_EVERY = 10_000
SCENARIO = "convoy_3"
EGO_ID = "V001"
MODELS_DIR = "models"
LOG_DIR = "logs"
FINAL_MODEL_NAME = "deep_sets_final"


def train_convoy(
    total_timesteps: int = TOTAL_TIMESTEPS,
    *,
    ent_coef: float = ENTROPY_COEF,
    learning_rate: float = LEARNING_RATE,
    n_steps: int = N_STEPS,
    batch_size: int = BATCH_SIZE,
    peer_embed_dim: int = PEER_EMBED_DIM,
    checkpoint_every: int = CHECKPOINT_EVERY,
    scenario: str = SCENARIO,
    ego_id: str = EGO_ID,
    models_dir: str | Path = MODELS_DIR,
    log_dir: str | Path = LOG_DIR,
    seed: int | None = 0,
    backend: str = "libsumo",
    progress_bar: bool = False,
) -> Path:
    """Train PPO on the single-ego env; returns the path of ``deep_sets_final.zip``."""
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CheckpointCallback

    import roadsense_marl  # noqa: F401 - registers RoadSense-Convoy-v4
    from roadsense_marl.policies import create_deep_set_policy_kwargs

    import torch

    torch.set_num_threads(1)  # small networks: one thread beats two on a shared 2-core machine
    models_dir, log_dir = Path(models_dir), Path(log_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = gym.make("RoadSense-Convoy-v4", scenario=scenario, ego_id=ego_id, backend=backend)
    try:
        model = PPO(
            "MultiInputPolicy",
            env,
            policy_kwargs=create_deep_set_policy_kwargs(peer_embed_dim=peer_embed_dim),
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=min(batch_size, n_steps),
            ent_coef=ent_coef,
            tensorboard_log=str(log_dir),
            seed=seed,
            device="cpu",
            verbose=0,
        )
        checkpoints = CheckpointCallback(max(1, checkpoint_every), str(models_dir / "checkpoints"), name_prefix="deep_sets")
        model.learn(total_timesteps=total_timesteps, callback=checkpoints, progress_bar=progress_bar)
        final = models_dir / f"{FINAL_MODEL_NAME}.zip"
        model.save(final)
    finally:
        env.close()
    return final


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m roadsense_marl.training.train_convoy", description=__doc__.splitlines()[0])
    p.add_argument("--total-timesteps", type=int, default=TOTAL_TIMESTEPS)
    p.add_argument("--ent-coef", type=float, default=ENTROPY_COEF)
    p.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    p.add_argument("--n-steps", type=int, default=N_STEPS)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--peer-embed-dim", type=int, default=PEER_EMBED_DIM)
    p.add_argument("--checkpoint-every", type=int, default=CHECKPOINT_EVERY)
    p.add_argument("--scenario", default=SCENARIO)
    p.add_argument("--ego-id", default=EGO_ID)
    p.add_argument("--models-dir", default=MODELS_DIR)
    p.add_argument("--log-dir", default=LOG_DIR)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["libsumo", "traci"], default="libsumo")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    for name in ("total_timesteps", "n_steps", "batch_size", "peer_embed_dim", "checkpoint_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    try:
        final = train_convoy(
            args.total_timesteps,
            ent_coef=args.ent_coef,
            learning_rate=args.learning_rate,
            n_steps=args.n_steps,
            batch_size=args.batch_size,
            peer_embed_dim=args.peer_embed_dim,
            checkpoint_every=args.checkpoint_every,
            scenario=args.scenario,
            ego_id=args.ego_id,
            models_dir=args.models_dir,
            log_dir=args.log_dir,
            seed=args.seed,
            backend=args.backend,
            progress_bar=not args.no_progress,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"train_convoy: error: {exc}", file=sys.stderr)
        return 2
    print(f"final model: {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
