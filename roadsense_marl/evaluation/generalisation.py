"""Generalisation: one shared policy and the baselines across scenarios x radio profiles.

``roadsense-marl evaluate --generalisation [MODEL]`` (``make generalisation``) evaluates the
policy (default: the pretrained model shipped with the package) and ``no-v2v`` / ``rule-v2v`` on
the same seeds on ``convoy_3``, ``convoy_6`` and ``highway`` (generated: several lanes, joins and
leaves) under the ``ideal``, ``measured`` and ``degraded`` radios, and writes
``generalisation.md`` (the table the README includes) and ``generalisation.json`` (every cell's
aggregate and paired comparisons). A cell "holds" when the policy is at least as safe as
``rule-v2v`` by McNemar (no more episodes where only the policy crashed than where only the rule
did) and its followers' speed deficit is not worse than the rule's by the paired interval.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from roadsense_marl.evaluation.metrics import HARD_BRAKE_LABEL, at_least_as_safe

SCENARIOS = ("convoy_3", "convoy_6", "highway")


def _cell(agg: dict[str, Any], key: str, fmt: str) -> str:
    x = (agg.get(key) or {}).get("rate" if "rate" in (agg.get(key) or {}) else "mean")
    return fmt.format(x) if x is not None and math.isfinite(x) else "-"


def holds(paired_rule: dict[str, Any] | None, aggregate: dict[str, Any] | None = None) -> str:
    """``"holds"`` / ``"fails: ..."`` for one cell from the policy's paired comparison with rule-v2v;
    ``"no hazard: nothing to judge"`` when no episode of the cell (``aggregate``) had a hazard with a
    follower (e.g. episodes that end before the onset)."""
    if not paired_rule:
        return "-"
    col = paired_rule["collision"]
    if aggregate is not None and not (aggregate.get("direct_hard_brake_within_1s") or {}).get("n"):
        return "no hazard: nothing to judge"
    why = []
    if not at_least_as_safe(paired_rule):
        why.append(f"more crash episodes than rule-v2v ({col['policy']} vs {col['baseline']})")
    if paired_rule["follower_speed_deficit_mps"].get("worse"):
        why.append("larger speed deficit")
    return "holds" if not why else "fails: " + ", ".join(why)


def generalisation_markdown(doc: dict[str, Any]) -> str:
    """The table: one row per scenario x radio x policy."""
    lines = [
        f"Policy `{doc['model']}`; {doc['episodes']} episodes per cell on seeds {doc['seeds'][0]}..{doc['seeds'][1]} "
        f"(the same seeds for every policy in a row group); episode shape: {doc.get('episode_shape', 'config')}.",
        "",
        f"| scenario | radio | policy | collision episodes | direct follower {HARD_BRAKE_LABEL} | mean speed (m/s) "
        "| followers' speed deficit (m/s) | followers' stopped share | vs rule-v2v |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in doc["cells"]:
        for r in c["results"]:
            a = r["aggregate"]
            col = a["collision_rate"]
            lines.append(
                f"| {c['scenario']} | {c['radio']} | {r['policy']} | {col['k']}/{col['n']} | "
                f"{_cell(a, 'direct_hard_brake_within_1s', '{:.2f}')} | {_cell(a, 'mean_speed_mps', '{:.1f}')} | "
                f"{_cell(a, 'follower_speed_deficit_mps', '{:.2f}')} | {_cell(a, 'follower_stopped_share', '{:.3f}')} | "
                f"{holds((r.get('paired') or {}).get('rule-v2v'), a) if r['policy'] == 'model' else ''} |"
            )
    return "\n".join(lines) + "\n"


def generalisation(
    model: str | Path = "pretrained",
    *,
    scenarios: Sequence[str] = SCENARIOS,
    radios: Sequence[str] = ("ideal", "measured", "degraded"),
    episodes: int = 50,
    seed: int = 20_000,
    out: str | Path = "eval_generalisation",
    workers: int = 1,
    verbose: bool = True,
    progress_bar: bool | None = None,
    episode_shape: str = "standard",
    **evaluate_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate ``model`` and both baselines on every scenario x radio; write the markdown and JSON tables.

    Each cell is one :func:`~roadsense_marl.evaluation.runner.evaluate` call (its own output in
    ``out/<scenario>_<radio>/``, plots off), by default on the env's standard episode
    (``episode_shape="standard"``, whatever episodes the model was trained on); ``evaluate_kwargs``
    are passed on (e.g. ``max_steps``).
    Returns the JSON document (``cells``: scenario, radio, per-policy aggregate and paired comparisons).

    :raises ValueError: an empty scenario or radio list (before anything runs); bad scenario names
        are refused by ``evaluate`` before its first episode.
    """
    from roadsense_marl.evaluation.runner import _jsonable, evaluate
    from roadsense_marl.training.runs import atomic_write_text, check_writable_dir

    if not scenarios or not radios:
        raise ValueError(f"generalisation needs at least one scenario and one radio, got {list(scenarios)} x {list(radios)}")
    check_writable_dir(out)
    out_dir = Path(out)
    cells = []
    for sc in scenarios:
        for rad in radios:
            m = evaluate(model, scenario=sc, radio=rad, episodes=episodes, seed=seed, out=out_dir / f"{sc}_{rad}",
                         plots=False, episode_shape=episode_shape, workers=workers, verbose=False,
                         progress_bar=verbose if progress_bar is None else progress_bar, **evaluate_kwargs)
            cells.append({
                "scenario": sc,
                "radio": rad,
                "results": [{k: r[k] for k in ("policy", "aggregate", "paired") if k in r} for r in m["results"]],
                "findings": m["findings"],
            })
            if verbose:
                print(f"{sc} x {rad}: done")
    doc = _jsonable({"model": str(model), "episodes": episodes, "seeds": [seed, seed + episodes - 1],
                     "episode_shape": episode_shape, "cells": cells})
    atomic_write_text(out_dir / "generalisation.json", json.dumps(doc, indent=1))
    md = generalisation_markdown(doc)
    atomic_write_text(out_dir / "generalisation.md", md)
    if verbose:
        print(md)
        print(f"tables: {out_dir / 'generalisation.md'}, {out_dir / 'generalisation.json'}")
    return doc


__all__ = ["SCENARIOS", "generalisation", "generalisation_markdown", "holds"]


README_START = "<!-- generalisation table: start (make generalisation) -->"
README_END = "<!-- generalisation table: end -->"


def splice_readme(readme: str | Path, table_md: str) -> None:
    """Replace the text between :data:`README_START` and :data:`README_END` in ``readme`` with ``table_md``.

    :raises ValueError: the markers are missing or out of order (the README is left unchanged).
    """
    p = Path(readme)
    text = p.read_text()
    i, j = text.find(README_START), text.find(README_END)
    if i < 0 or j < i:
        raise ValueError(f"{p}: needs the lines {README_START!r} and then {README_END!r} around the table")
    p.write_text(text[: i + len(README_START)] + "\n\n" + table_md.strip() + "\n\n" + text[j:])


if __name__ == "__main__":  # python -m roadsense_marl.evaluation.generalisation README.md TABLE.md
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m roadsense_marl.evaluation.generalisation README.md generalisation.md")
    try:
        splice_readme(sys.argv[1], Path(sys.argv[2]).read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"error: {exc}")
