"""The project's main job in a few minutes: train the shared policy briefly, then evaluate it.

``roadsense-marl demo`` (``make demo``) trains shared Deep Sets PPO on ``convoy_6`` with
the measured ESP-NOW radio (``configs/train/marl_ppo.yaml``: 400-step training episodes with the
hazard at 6..12 s), then evaluates the model and the ``no-v2v`` / ``rule-v2v`` baselines on the
same 20 held-out seeds on the env's standard episode (500 steps, hazard at 15..25 s) in 2 worker
processes, writing ``metrics.json`` and plots, and ends with a plain verdict (:func:`verdict`):
whether the model is at least as safe as ``rule-v2v`` (McNemar's exact test on the same seeds)
and faster (the paired 95 % interval of the mean-speed difference above 0), or what it is not.

Measured on 2 cores shared with another run, env contract v4 (500k agent-steps): the whole run took
7 minutes; one run: 0/20 collision episodes (rule-v2v 0/20, no-v2v 17/20), +1.31 m/s faster than
the rule [+0.81, +1.80]. Twenty episodes show large differences only:
the learning-quality benchmark (``pytest benchmarks/test_learning_quality.py --run-slow``) is the
claim (3 training seeds x 500 episodes).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

#: The evaluation episode: the env's default length and its whole default ``hazard`` section, whatever
#: episodes and hazards training used (a partial section would keep a training config's other hazard keys).
EVAL_EPISODE: dict[str, Any] = {"max_steps": 500, "hazard": {
    "probability": 1.0, "onset_window_s": [15.0, 25.0], "decel_range": [3.0, 10.0], "duration_range": [0.5, 1.5],
    "release_prob": 0.4, "release_after_range": [2.0, 5.0], "override_delay_s": 0.3}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--total-timesteps", type=int, default=None,
                        help="agent-steps of training (default: the shipped recipe's total_timesteps, 500k)")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per policy (default 20)")
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--workers", type=int, default=2,
                        help="evaluation worker processes (default 2; results are identical to a serial run)")


def verdict(metrics: dict[str, Any]) -> list[str]:
    """Plain lines: does the model drive, and is it at least as safe as ``rule-v2v`` and faster?

    Safety is judged on the same seeds by McNemar's exact test on collision episodes (at least as
    safe: no more episodes where only the model crashed than episodes where only the rule did),
    speed by the paired 95 % interval of the per-seed mean-speed difference (faster: the whole
    interval above 0). The last line starts with ``verdict:`` and says plainly what the model is not.
    """
    by = {r["policy"]: r for r in metrics["results"]}
    if not {"model", "no-v2v", "rule-v2v"} <= set(by):
        return []
    m, n, r = (by[k]["aggregate"] for k in ("model", "no-v2v", "rule-v2v"))

    def num(x: Any) -> float:
        return float(x) if x is not None else math.nan

    vm, vn = num(m["mean_speed_mps"]["mean"]), num(n["mean_speed_mps"]["mean"])
    cm, cn, cr = (num(a["collision_rate"]["rate"]) for a in (m, n, r))
    drives = math.isfinite(vm) and math.isfinite(vn) and vm >= 0.5 * vn
    lines = [
        f"model drives at {vm:.1f} m/s (no-v2v {vn:.1f}, rule-v2v {num(r['mean_speed_mps']['mean']):.1f})"
        if drives else f"model does NOT drive: mean speed {vm:.1f} vs {vn:.1f} m/s for no-v2v (it parks the convoy)",
        f"collision rate: model {cm:.2f}, no-v2v {cn:.2f}, rule-v2v {cr:.2f}",
    ]
    if drives and cm < cn:
        lines.append("the model uses the V2V warning (fewer crashes than no-v2v)")
    elif drives:
        lines.append("the model does not yet crash less than no-v2v: train longer (roadsense-marl train)")
    from roadsense_marl.evaluation.metrics import at_least_as_safe

    paired = (by["model"].get("paired") or {}).get("rule-v2v")
    if paired is None:
        lines.append("verdict: unknown: no paired comparison with rule-v2v on the same seeds")
        return lines
    col, sp = paired["collision"], paired["mean_speed_mps"]
    pairs = paired["pairs"]
    not_ok = []
    if at_least_as_safe(paired):
        lines.append(f"safety: at least as safe as rule-v2v: {col['policy']} vs {col['baseline']} collision episodes "
                     f"on the same {pairs} seeds (McNemar exact p = {col['p']:.3g})")
    elif col["p_worse"] < 0.05:
        lines.append(f"safety: LESS safe than rule-v2v: {col['policy']} vs {col['baseline']} collision episodes on the "
                     f"same {pairs} seeds (only the model crashed in {col['b']}, only the rule in {col['c']}; "
                     f"McNemar one-sided p = {col['p_worse']:.3g})")
        not_ok.append("less safe than rule-v2v")
    else:
        lines.append(f"safety: NOT shown as safe as rule-v2v: {col['policy']} vs {col['baseline']} collision episodes "
                     f"on the same {pairs} seeds (only the model crashed in {col['b']}, only the rule in {col['c']}; "
                     f"McNemar one-sided p = {col['p_worse']:.3g}: not significant, but more crashes)")
        not_ok.append("not as safe as rule-v2v (more collision episodes)")
    lo, hi, d = sp.get("lo"), sp.get("hi"), sp.get("mean")
    if lo is None or hi is None or d is None or not (math.isfinite(lo) and math.isfinite(hi)):
        lines.append("speed: no paired speed interval (fewer than 2 paired episodes)")
        not_ok.append("not shown faster (too few episodes)")
    else:
        iv = f"{d:+.2f} m/s, 95 % interval [{lo:+.2f}, {hi:+.2f}] over {sp['n']} paired seeds"
        if sp["better"]:
            lines.append(f"speed: faster than rule-v2v: {iv}")
        elif sp["worse"]:
            lines.append(f"speed: SLOWER than rule-v2v: {iv}")
            not_ok.append("slower than rule-v2v")
        else:
            lines.append(f"speed: NOT shown faster than rule-v2v: {iv} (includes 0)")
            not_ok.append("not shown faster than rule-v2v")
    if not_ok:
        lines.append("verdict: the model is NOT at least as safe as rule-v2v and faster: it is " + "; ".join(not_ok))
    else:
        lines.append("verdict: the model is at least as safe as rule-v2v and faster")
    return lines


def run(args: argparse.Namespace) -> int:
    from roadsense_marl.evaluation import evaluate
    from roadsense_marl.training import load_train_config, train

    if (args.total_timesteps is not None and args.total_timesteps < 1) or args.episodes < 1:
        raise ValueError("--total-timesteps and --episodes must be >= 1")
    workers = getattr(args, "workers", 1)
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    out = Path(args.out)
    cfg = load_train_config("marl_ppo")
    steps = cfg["total_timesteps"] if args.total_timesteps is None else args.total_timesteps
    cfg.update(total_timesteps=steps, seed=args.seed, out=str(out / "train"), checkpoint_every=0)
    print(f"[1/2] training shared Deep Sets PPO on {cfg['env']['scenario']} for {steps} agent-steps ...")
    run_dir = train(cfg, progress_bar=False, overwrite=True)  # the demo replaces its own earlier run
    print(f"      model: {run_dir / 'final_model.zip'}")
    print(f"[2/2] evaluating it against no-v2v and rule-v2v on {args.episodes} held-out seeds ...")
    metrics = evaluate(run_dir, episodes=args.episodes, seed=10_000, out=str(out / "eval"), plots=not args.no_plots,
                       env_kwargs=EVAL_EPISODE, workers=workers)
    for line in verdict(metrics):
        print(line)
    print(f"results: {out / 'eval' / 'metrics.json'}")
    return 0
