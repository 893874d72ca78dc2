"""Several training seeds: evaluate each trained model on the same held-out seeds, report mean and range.

One training seed is an anecdote. :func:`evaluate_seeds` evaluates >= 3 trained models (run
folders or model files trained with different seeds under the same env) on the same evaluation
seeds, runs the ``no-v2v`` and ``rule-v2v`` baselines once on those seeds, pairs every model
with them (:func:`~roadsense_marl.evaluation.metrics.paired_comparison`), and
:func:`across_seeds` reduces the per-model results to one row per training seed plus the mean,
minimum and maximum of each headline figure across the seeds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from roadsense_marl.evaluation.metrics import HARD_BRAKE_LABEL

#: Headline figures: (label, path into a result dict, format). A path step of "paired:<baseline>"
#: reads the result's paired comparison with that baseline.
HEADLINE: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("collision episodes", ("aggregate", "collision_rate", "k"), "{:.0f}"),
    ("collision rate", ("aggregate", "collision_rate", "rate"), "{:.3f}"),
    (f"direct follower {HARD_BRAKE_LABEL}", ("aggregate", "direct_hard_brake_within_1s", "rate"), "{:.3f}"),
    (f"further followers {HARD_BRAKE_LABEL}", ("aggregate", "further_hard_brake_within_1s", "rate"), "{:.3f}"),
    ("mean speed (m/s)", ("aggregate", "mean_speed_mps", "mean"), "{:.2f}"),
    ("followers' speed deficit (m/s)", ("aggregate", "follower_speed_deficit_mps", "mean"), "{:.3f}"),
    ("followers' stopped share", ("aggregate", "follower_stopped_share", "mean"), "{:.3f}"),
    ("stopped share", ("aggregate", "stopped_share", "mean"), "{:.3f}"),
    ("min gap (m)", ("aggregate", "min_gap_m", "min"), "{:.2f}"),
    ("speed vs rule-v2v (m/s, paired)", ("paired:rule-v2v", "mean_speed_mps", "mean"), "{:+.3f}"),
    ("deficit vs rule-v2v (m/s, paired)", ("paired:rule-v2v", "follower_speed_deficit_mps", "mean"), "{:+.3f}"),
    ("followers' stopped share vs rule-v2v (paired)", ("paired:rule-v2v", "follower_stopped_share", "mean"), "{:+.4f}"),
    ("McNemar p vs rule-v2v (collisions)", ("paired:rule-v2v", "collision", "p"), "{:.3g}"),
)


def _get(result: dict[str, Any], path: Sequence[str]) -> float:
    cur: Any = result
    for step in path:
        if step.startswith("paired:"):
            cur = (cur.get("paired") or {}).get(step.split(":", 1)[1])
        else:
            cur = cur.get(step) if isinstance(cur, dict) else None
        if cur is None:
            return math.nan
    try:
        return float(cur)
    except (TypeError, ValueError):
        return math.nan


def across_seeds(per_seed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-seed rows and the mean / min / max across seeds of every :data:`HEADLINE` figure.

    :param per_seed: ``{training seed label: the model's result}`` (an entry of ``evaluate()``'s
        ``results`` with ``aggregate`` and, optionally, ``paired``).
    :returns: ``{"seeds": [labels], "rows": {label: {figure: value}}, "summary": {figure: {mean, min, max, n}}}``;
        NaN (JSON null) where a figure is undefined; the summary is over the seeds where it is defined.
    :raises ValueError: no seeds given.
    """
    if not per_seed:
        raise ValueError("across_seeds needs at least one training seed's result")
    rows = {label: {name: _get(res, path) for name, path, _ in HEADLINE} for label, res in per_seed.items()}
    summary = {}
    for name, _, _ in HEADLINE:
        vals = [rows[s][name] for s in rows if math.isfinite(rows[s][name])]
        summary[name] = {
            "mean": sum(vals) / len(vals) if vals else math.nan,
            "min": min(vals) if vals else math.nan,
            "max": max(vals) if vals else math.nan,
            "n": len(vals),
        }
    return {"seeds": list(per_seed), "rows": rows, "summary": summary}


def across_seeds_markdown(table: dict[str, Any]) -> str:
    """A markdown table: one row per headline figure, one column per training seed, then mean and range."""
    seeds = table["seeds"]
    lines = ["| figure | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | range |",
             "|---|" + "---|" * (len(seeds) + 2)]

    def fmt(f: str, x: float) -> str:
        return f.format(x) if x is not None and math.isfinite(x) else "-"

    for name, _, f in HEADLINE:
        s = table["summary"][name]
        cells = [fmt(f, table["rows"][k][name]) for k in seeds]
        rng = f"{fmt(f, s['min'])} .. {fmt(f, s['max'])}" if s["n"] else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {fmt(f, s['mean'])} | {rng} |")
    return "\n".join(lines) + "\n"


def _training_seed(model: Any) -> int | None:
    """The training seed a run folder's ``config.yaml`` records (None: not a run folder, or none)."""
    from roadsense_marl.training.runs import read_run_config

    p = Path(str(model))
    if not (p.is_dir() and (p / "config.yaml").is_file()):
        return None
    seed = read_run_config(p).get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def evaluate_seeds(
    models: Sequence[str | Path],
    *,
    labels: Sequence[str] | None = None,
    episodes: int = 500,
    seed: int = 900_000,
    out: str | Path = "eval_seeds",
    workers: int = 1,
    min_models: int = 3,
    verbose: bool = True,
    **evaluate_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate every model on the same ``episodes`` seeds; baselines once; pair each model with them.

    Writes ``out/seed_<label>/`` (each model's ``evaluate`` output; the baselines' in the first),
    ``out/across_seeds.json`` (per-seed results' aggregates and paired comparisons, plus
    :func:`across_seeds`) and ``out/across_seeds.md``. ``evaluate_kwargs`` go to
    :func:`~roadsense_marl.evaluation.runner.evaluate` (e.g. ``env_kwargs``, ``radio``, ``plots``).
    ``labels`` name the columns (default: each run folder's training seed from its ``config.yaml``
    when every model has a distinct one, else 0, 1, 2, ...).

    :raises ValueError: fewer than ``min_models`` models, labels that do not match, the same model
        given twice or models trained on different env configs (both before any episode), or models
        whose evaluated env configs (what the baselines run on) differ.
    """
    from roadsense_marl.evaluation.metrics import paired_comparison
    from roadsense_marl.evaluation.runner import BASELINES, _jsonable, evaluate, resolve_model
    from roadsense_marl.training.runs import atomic_write_text

    models = list(models)
    if len(models) < min_models:
        raise ValueError(f"evaluating across training seeds needs at least {min_models} trained models, got {len(models)}")
    # before any episode: distinct models, one env config, labels from the runs' training seeds
    resolved = [resolve_model(m) for m in models]
    paths = [str(Path(r[0]).resolve()) for r in resolved]
    for i, q in enumerate(paths):
        if q in paths[:i]:
            raise ValueError(f"model {str(models[i])!r} is the same model as {str(models[paths.index(q)])!r}: "
                             "training seeds must be different models")
    envs = [r[1] for r in resolved]
    if all(isinstance(e, dict) for e in envs):
        for m, e in zip(models[1:], envs[1:]):
            diff = sorted(k for k in set(envs[0]) | set(e) if envs[0].get(k) != e.get(k))
            if diff:
                raise ValueError(f"model {str(m)!r} was trained on another env than {str(models[0])!r} (differing keys: "
                                 f"{diff}); training seeds must share one env config")
    if labels is None:
        seeds = [_training_seed(m) for m in models]
        labels = seeds if None not in seeds and len(set(seeds)) == len(seeds) else list(range(len(models)))
    labels = [str(x) for x in labels]
    if len(labels) != len(models) or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be {len(models)} distinct names, one per model, got {labels!r}")
    out_dir = Path(out)
    per: dict[str, dict[str, Any]] = {}
    base_results: list[dict[str, Any]] = []
    env_cfg = None
    for i, (label, model) in enumerate(zip(labels, models)):
        m = evaluate(model, episodes=episodes, seed=seed, out=out_dir / f"seed_{label}", workers=workers,
                     baselines=(i == 0), verbose=verbose, **evaluate_kwargs)
        if env_cfg is None:
            env_cfg = m["env_config"]
            base_results = [r for r in m["results"] if r["policy"] in BASELINES]
        elif m["env_config"] != env_cfg:
            diff = sorted(k for k in set(env_cfg) | set(m["env_config"]) if env_cfg.get(k) != m["env_config"].get(k))
            raise ValueError(f"model {str(model)!r} (seed {label}) was evaluated on another env than the first model "
                             f"(differing keys: {diff}); training seeds must share one env config")
        res = next(r for r in m["results"] if r["policy"] == "model")
        res["paired"] = {b["policy"]: paired_comparison(res["episodes"], b["episodes"]) for b in base_results}
        per[label] = res
    table = across_seeds(per)
    doc = {
        "models": [str(x) for x in models],
        "labels": labels,
        "seeds": [seed, seed + episodes - 1],
        "env_config": env_cfg,
        "baselines": {b["policy"]: {"aggregate": b["aggregate"]} for b in base_results},
        "per_seed": {k: {"aggregate": r["aggregate"], "paired": r["paired"]} for k, r in per.items()},
        "across_seeds": table,
    }
    atomic_write_text(out_dir / "across_seeds.json", json.dumps(_jsonable(doc), indent=1))
    atomic_write_text(out_dir / "across_seeds.md", across_seeds_markdown(table))
    if verbose:
        print(across_seeds_markdown(table))
    return {**doc, "results": per, "baseline_results": base_results}


__all__ = ["HEADLINE", "across_seeds", "across_seeds_markdown", "evaluate_seeds"]
