"""Evaluate a trained model or a baseline on fixed seeds: metrics.json, per-episode CSV tables, a summary table and plots.

``roadsense-marl evaluate MODEL`` (an SB3 PPO .zip, a training run folder with
final_model.zip, config.yaml and progress.csv, or a folder written by ``roadsense-marl export``)
or ``--policy no-v2v|rule-v2v`` without a model.

Load only models you trust: an SB3 ``.zip`` is unpickled on load, so a crafted file runs code
on your machine. A folder from ``roadsense-marl export`` holds only tensors and JSON and is
loaded with ``torch.load(weights_only=True)``. A model made under another env contract
(observation features, action mode, radio noise, reward, env version) is refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``roadsense-marl evaluate`` (nothing heavy is imported here)."""
    parser.epilog = (
        "Model trust: load only models you trust. An SB3 .zip (and a run folder's final_model.zip) is "
        "unpickled on load, so a crafted file runs code on your machine. A folder written by "
        "'roadsense-marl export' holds only tensors and JSON and runs no code on load. "
        "A model made under another env contract (features, action mode, radio noise, reward, env version) is refused."
    )
    parser.add_argument(
        "model", nargs="?", metavar="MODEL", default=None,
        help="SB3 PPO .zip saved by training (load only models you trust: it is unpickled), a training run "
        "folder (uses final_model.zip, the env config in config.yaml and plots progress.csv), a folder "
        "from 'roadsense-marl export' (weights only, runs no code on load), or 'pretrained' (the policy "
        "shipped with the package)",
    )
    parser.add_argument(
        "--policy", choices=("model", "no-v2v", "rule-v2v"), default=None,
        help="what to evaluate: the MODEL (default when MODEL is given) or a baseline needing no model",
    )
    parser.add_argument("--scenario", default=None, help="scenario name or .sumocfg path (default: convoy_6 or the run's)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per policy and radio profile (default 20)")
    parser.add_argument("--seed", type=int, default=1000, help="first seed; episodes use seed, seed+1, ... (default 1000)")
    parser.add_argument("--out", default="eval", help="output folder for metrics.json and plots (default ./eval)")
    parser.add_argument(
        "--radio", default=None, metavar="measured|ideal|degraded|PATH",
        help="radio profile or ESP-NOW parameter file (default: the env config's, measured)",
    )
    parser.add_argument("--radio-sweep", action="store_true", help="evaluate under the ideal, measured and degraded radio profiles")
    parser.add_argument(
        "--baselines", action=argparse.BooleanOptionalAction, default=True,
        help="also run no-v2v and rule-v2v on the same seeds (default on)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the plots (PNG and PDF)")
    parser.add_argument(
        "--record", type=int, default=0, metavar="N",
        help="also write videos of the first N episodes of every policy and radio to OUT/videos/ (default 0)",
    )
    parser.add_argument("--record-format", choices=("mp4", "gif"), default="mp4", help="video format for --record (default mp4)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--backend", choices=("libsumo", "traci"), default=None, help="SUMO backend (default libsumo)")
    parser.add_argument("--max-steps", type=int, default=None, help="episode length limit in steps (default 500)")
    parser.add_argument("--config", default=None, help="env YAML config (a path or a name in configs/env/)")


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; user mistakes raise ValueError/FileNotFoundError (printed as one line)."""
    if args.model is not None and args.policy in ("no-v2v", "rule-v2v"):
        raise ValueError(f"--policy {args.policy} runs without a model; drop MODEL {args.model!r} or use --policy model")
    if (args.model is not None and args.model != "pretrained" and not Path(args.model).exists()
            and not Path(args.model + ".zip").exists()):
        raise FileNotFoundError(
            f"model file not found: {args.model!r} (give an SB3 .zip, a training run folder, an exported policy folder "
            "or 'pretrained')"
        )
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if args.record < 0:
        raise ValueError(f"--record must be >= 0, got {args.record}")
    if args.radio_sweep and args.radio is not None:
        raise ValueError("--radio and --radio-sweep exclude each other (the sweep runs ideal, measured and degraded)")
    from roadsense_marl.training.runs import check_writable_dir

    check_writable_dir(args.out)  # before any episode runs
    radio = args.radio
    if radio is not None and radio not in ("measured", "ideal", "degraded", "defaults") and not Path(radio).is_file():
        raise FileNotFoundError(f"radio parameter file not found: {radio!r} (or use measured, ideal, degraded)")
    if radio is not None and Path(radio).is_file():
        from roadsense_marl.espnow import load_params

        load_params(radio)  # a bad parameter file is refused before any folder or episode

    from roadsense_marl.evaluation.runner import evaluate

    evaluate(
        args.model,
        policy=args.policy,
        scenario=args.scenario,
        episodes=args.episodes,
        seed=args.seed,
        out=args.out,
        radio=radio,
        radio_sweep=args.radio_sweep,
        baselines=args.baselines,
        plots=not args.no_plots,
        backend=args.backend,
        max_steps=args.max_steps,
        config=args.config,
        record=args.record,
        record_format=args.record_format,
        progress_bar=not args.no_progress,
    )
    return 0
