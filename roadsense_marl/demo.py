"""The project's main job in a few minutes: train the shared policy briefly, then evaluate it.

``roadsense-marl demo`` (``make demo``) trains shared Deep Sets PPO on ``convoy_6`` with
the measured ESP-NOW radio, then evaluates the model and the ``no-v2v`` / ``rule-v2v``
baselines on the same held-out seeds, writing ``metrics.json`` and plots.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--total-timesteps", type=int, default=60_000, help="agent-steps of training (default 60000)")
    parser.add_argument("--episodes", type=int, default=5, help="evaluation episodes per policy (default 5)")
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def run(args: argparse.Namespace) -> int:
    from roadsense_marl.evaluation import evaluate
    from roadsense_marl.training import load_train_config, train

    if args.total_timesteps < 1 or args.episodes < 1:
        raise ValueError("--total-timesteps and --episodes must be >= 1")
    out = Path(args.out)
    cfg = load_train_config("marl_ppo")
    cfg.update(total_timesteps=args.total_timesteps, seed=args.seed, out=str(out / "train"), checkpoint_every=0)
    print(f"[1/2] training shared Deep Sets PPO on {cfg['env']['scenario']} for {args.total_timesteps} agent-steps ...")
    run_dir = train(cfg, progress_bar=False)
    print(f"      model: {run_dir / 'final_model.zip'}")
    print(f"[2/2] evaluating it against no-v2v and rule-v2v on {args.episodes} held-out seeds ...")
    evaluate(run_dir, episodes=args.episodes, seed=10_000, out=str(out / "eval"), plots=not args.no_plots)
    print(f"results: {out / 'eval' / 'metrics.json'}")
    return 0
