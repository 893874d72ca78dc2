"""Per-episode tables for a researcher's own analysis: ``episodes.csv`` and ``followers.csv``.

``episodes.csv`` has one row per (policy, radio profile, seed); ``followers.csv`` one row per
follower of the hazard vehicle in each episode (its reaction and whether it crashed). Both are
plain CSV (comma-separated, header row, ``.`` decimals, empty cell = not applicable, e.g. the
reaction time of a follower that never braked); they load with ``pandas.read_csv`` or the
``csv`` module. Column meanings follow ``metrics.json``'s ``definitions``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

__all__ = ["EPISODE_COLUMNS", "FOLLOWER_COLUMNS", "episode_rows", "follower_rows", "write_tables"]

#: Columns of ``episodes.csv`` (units in the names: m, s, m/s).
EPISODE_COLUMNS = (
    "scenario", "policy", "radio", "seed", "steps", "agents", "collision", "crashes", "n_collided_agents",
    "min_gap_m", "close_gap_share", "mean_speed_mps", "stopped_share", "hazard_vehicle", "hazard_onset_step",
    "followers", "followers_received", "followers_reacted", "reaction_time_mean_s", "reaction_time_min_s",
    "pdr", "message_age_mean_ms", "peers_visible_mean", "reward_mean",
    "hazard_released", "direct_hard_brake_within_1s", "follower_speed_deficit_mps", "follower_stopped_share",
)
#: Columns of ``followers.csv``.
FOLLOWER_COLUMNS = (
    "scenario", "policy", "radio", "seed", "hazard_vehicle", "hazard_onset_step", "follower", "received",
    "reacted", "reaction_step", "reaction_time_s", "collided", "direct", "hard_brake_time_s",
)


def _cell(x: Any) -> Any:
    """CSV cell: None and non-finite numbers are empty, bools are 0/1, floats keep full precision."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, float):
        return repr(x) if math.isfinite(x) else ""
    return x


def episode_rows(results: Sequence[dict[str, Any]], scenario: str) -> list[dict[str, Any]]:
    """One dict per episode of every ``results`` entry (``evaluate``'s per policy x radio results)."""
    rows = []
    for r in results:
        for e in r["episodes"]:
            fol = e["followers"]
            times = [f["reaction_time_s"] for f in fol if f["reacted"]]
            rows.append(
                {
                    "scenario": scenario,
                    "policy": r["policy"],
                    "radio": r["radio"],
                    "seed": e["seed"],
                    "steps": e["steps"],
                    "agents": e["agents"],
                    "collision": e["collision"],
                    "crashes": e["crashes"],
                    "n_collided_agents": e["n_collided_agents"],
                    "min_gap_m": e["min_gap_m"],
                    "close_gap_share": e["close_gap_share"],
                    "mean_speed_mps": e.get("mean_speed_mps"),
                    "stopped_share": e.get("stopped_share"),
                    "hazard_vehicle": e["hazard_vehicle"],
                    "hazard_onset_step": e["hazard_onset_step"],
                    "followers": len(fol),
                    "followers_received": sum(f["received"] for f in fol),
                    "followers_reacted": len(times),
                    "reaction_time_mean_s": sum(times) / len(times) if times else None,
                    "reaction_time_min_s": min(times) if times else None,
                    "pdr": e["pdr"],
                    "message_age_mean_ms": e["message_age"].get("mean_ms"),
                    "peers_visible_mean": e["peers_visible_mean"],
                    "reward_mean": e["reward_mean"],
                    "hazard_released": e.get("hazard_released"),
                    "direct_hard_brake_within_1s": e.get("direct_hard_brake_within_1s"),
                    "follower_speed_deficit_mps": e.get("follower_speed_deficit_mps"),
                    "follower_stopped_share": e.get("follower_stopped_share"),
                }
            )
    return rows


def follower_rows(results: Sequence[dict[str, Any]], scenario: str) -> list[dict[str, Any]]:
    """One dict per follower of the hazard vehicle per episode."""
    rows = []
    for r in results:
        for e in r["episodes"]:
            for f in e["followers"]:
                rows.append(
                    {
                        "scenario": scenario,
                        "policy": r["policy"],
                        "radio": r["radio"],
                        "seed": e["seed"],
                        "hazard_vehicle": e["hazard_vehicle"],
                        "hazard_onset_step": e["hazard_onset_step"],
                        "follower": f["agent"],
                        "received": f["received"],
                        "reacted": f["reacted"],
                        "reaction_step": f["reaction_step"],
                        "reaction_time_s": f["reaction_time_s"],
                        "collided": f["collided"],
                        "direct": f.get("direct"),
                        "hard_brake_time_s": f.get("hard_brake_time_s"),
                    }
                )
    return rows


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row[k]) for k in columns})
    return path


def write_tables(out_dir: str | Path, results: Sequence[dict[str, Any]], scenario: str) -> list[Path]:
    """Write ``episodes.csv`` and ``followers.csv`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    return [
        _write_csv(out / "episodes.csv", EPISODE_COLUMNS, episode_rows(results, scenario)),
        _write_csv(out / "followers.csv", FOLLOWER_COLUMNS, follower_rows(results, scenario)),
    ]
