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
        "model", nargs="*", metavar="MODEL", default=None,
        help="SB3 PPO .zip saved by training (load only models you trust: it is unpickled), a training run "
        "folder (uses final_model.zip, the env config in config.yaml and plots progress.csv), a folder "
        "from 'roadsense-marl export' (weights only, runs no code on load), or 'pretrained' (the policy "
        "shipped with the package). Several MODELs (>= 3 training seeds of one recipe) are evaluated on the "
        "same seeds and reported per seed and as mean and range (OUT/across_seeds.md, .json)",
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
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes for the episodes (default 1; metrics are identical to a serial run)")
    parser.add_argument(
        "--episode-shape", choices=("config", "training", "standard"), default=None,
        help="'training': the shipped training recipe's episodes (its max_steps and hazard timing); 'standard': "
        "the env's default episode (500 steps); 'config': the env config as given (a run folder: its training "
        "episodes). Default: config, and standard with --generalisation",
    )
    parser.add_argument(
        "--generalisation", action="store_true",
        help="evaluate MODEL (default: pretrained) and the baselines on convoy_3, convoy_6 and highway under the "
        "ideal, measured and degraded radios; writes OUT/generalisation.md and .json",
    )


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; user mistakes raise ValueError/FileNotFoundError (printed as one line)."""
    models = list(args.model or [])
    for m in models:
        if m != "pretrained" and not Path(m).exists() and not Path(m + ".zip").exists():
            raise FileNotFoundError(
                f"model file not found: {m!r} (give an SB3 .zip, a training run folder, an exported policy folder "
                "or 'pretrained')"
            )
    if models and args.policy in ("no-v2v", "rule-v2v"):
        raise ValueError(f"--policy {args.policy} runs without a model; drop MODEL {models[0]!r} or use --policy model")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if args.record < 0:
        raise ValueError(f"--record must be >= 0, got {args.record}")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.workers > 1 and args.record:
        raise ValueError("--record runs in this process: drop --workers or --record")
    if args.radio_sweep and args.radio is not None:
        raise ValueError("--radio and --radio-sweep exclude each other (the sweep runs ideal, measured and degraded)")
    if args.generalisation:
        for flag, bad in (("--radio", args.radio is not None), ("--radio-sweep", args.radio_sweep),
                          ("--scenario", args.scenario is not None), ("--policy", args.policy is not None),
                          ("--record", bool(args.record)), ("several MODELs", len(models) > 1)):
            if bad:
                raise ValueError(f"--generalisation runs every scenario and radio itself; drop {flag}")
    if len(models) > 1 and (args.policy is not None or args.record or args.radio_sweep or not args.baselines):
        raise ValueError("several MODELs (training seeds) are evaluated with --policy model, with the baselines, "
                         "without --record and --radio-sweep")
    shape_given = args.episode_shape or ("standard" if args.generalisation else None)
    if args.max_steps is not None and shape_given in ("training", "standard"):
        why = "--generalisation uses the standard episode" if args.generalisation and not args.episode_shape else (
            f"--episode-shape {shape_given} sets the episode length")
        raise ValueError(f"--max-steps {args.max_steps} and {why}: give one of them (--episode-shape config keeps "
                         "--max-steps)")
    if len(models) == 2:
        raise ValueError("evaluating across training seeds needs at least 3 MODELs (one per training seed), got 2")
    from roadsense_marl.training.runs import check_writable_dir

    check_writable_dir(args.out)  # before any episode runs
    radio = args.radio
    if radio is not None and radio not in ("measured", "ideal", "degraded", "defaults") and not Path(radio).is_file():
        raise FileNotFoundError(f"radio parameter file not found: {radio!r} (or use measured, ideal, degraded)")
    if radio is not None and Path(radio).is_file():
        from roadsense_marl.espnow import load_params

        load_params(radio)  # a bad parameter file is refused before any folder or episode

    shape = args.episode_shape or ("standard" if args.generalisation else "config")
    common = dict(backend=args.backend, max_steps=args.max_steps, config=args.config, workers=args.workers,
                  episode_shape=shape)
    if args.generalisation:
        from roadsense_marl.evaluation.generalisation import generalisation

        generalisation(models[0] if models else "pretrained", episodes=args.episodes, seed=args.seed, out=args.out,
                       progress_bar=not args.no_progress, **common)
        return 0
    if len(models) > 1:
        from roadsense_marl.evaluation.seeds import evaluate_seeds

        evaluate_seeds(models, episodes=args.episodes, seed=args.seed, out=args.out, scenario=args.scenario,
                       radio=radio, plots=not args.no_plots, progress_bar=not args.no_progress, **common)
        return 0

    from roadsense_marl.evaluation.runner import evaluate

    evaluate(
        models[0] if models else None,
        policy=args.policy,
        scenario=args.scenario,
        episodes=args.episodes,
        seed=args.seed,
        out=args.out,
        radio=radio,
        radio_sweep=args.radio_sweep,
        baselines=args.baselines,
        plots=not args.no_plots,
        record=args.record,
        record_format=args.record_format,
        progress_bar=not args.no_progress,
        **common,
    )
    return 0
