"""Evaluation plots (matplotlib, Agg backend, PNG files next to ``metrics.json``).

- ``gap_over_time.png``: every follower's true gap in one hazard episode, onset and reactions marked;
- ``radio.png``: delivery ratio vs distance (emulated with Wilson intervals vs the configured
  loss model) and the message-age histogram, per radio profile;
- ``comparison.png``: collision rate and reaction time of every policy (95 % intervals);
- ``radio_sweep.png`` (with a sweep): the same two figures against radio profile;
- ``training_curves.png`` (with a training run's ``progress.csv``): episode reward and
  collision rate against timesteps.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from roadsense_marl.evaluation.metrics import EpisodeRecord, hazard_followers, reaction_steps

DPI = 100


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")
    _plt().close(fig)
    return path


def _pick_hazard_episode(records: Sequence[EpisodeRecord]) -> EpisodeRecord | None:
    for rec in records:
        if rec.onset_step is not None and rec.hazard_slot >= 0 and rec.onset_step < rec.n_steps:
            if hazard_followers(rec.leader_before[rec.onset_step], rec.hazard_slot).any():
                return rec
    return None


def plot_gap_over_time(rec: EpisodeRecord, path: Path, title: str = "") -> Path:
    """True gap of every follower of the hazard vehicle, with onset and each reaction marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    onset = int(rec.onset_step)  # type: ignore[arg-type]
    fol = np.flatnonzero(hazard_followers(rec.leader_before[onset], rec.hazard_slot))
    react = reaction_steps(rec.decel_cmd, onset)
    t = (np.arange(rec.n_steps) + 1) * rec.step_length
    for j in fol:
        g = np.where(rec.present[:, j], rec.gap[:, j], np.nan)
        g = np.where(np.isfinite(g), g, np.nan)
        (line,) = ax.plot(t, g, lw=1.4, label=rec.agents[j])
        if react[j] >= 0:
            k = int(react[j])
            y = g[k] if np.isfinite(g[k]) else np.nanmin(g) if np.isfinite(g).any() else 0.0
            ax.plot(t[k], y, "o", color=line.get_color(), ms=7, mec="black")
        if rec.collided_step[j] >= 0:
            k = int(rec.collided_step[j])
            ax.plot(t[k], 0.0, "x", color=line.get_color(), ms=10, mew=2.5)
    ax.axvline((onset + 1) * rec.step_length, color="red", ls="--", lw=1.2, label="hazard onset")
    ax.axhline(10.0, color="grey", ls=":", lw=1, label="10 m")
    ax.plot([], [], "o", color="grey", mec="black", label="reaction (brake > 0.5 m/s²)")
    ax.plot([], [], "x", color="grey", mew=2.5, label="collision")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("true gap to leader (m)")
    ax.set_ylim(bottom=0)
    hz = rec.agents[rec.hazard_slot]
    ax.set_title(title or f"followers of {hz}, seed {rec.seed}")
    ax.legend(fontsize=8, ncol=2, loc="best")
    return _save(fig, path)


def plot_radio(runs: Sequence[tuple[str, dict[str, Any], Sequence[EpisodeRecord]]], path: Path) -> Path:
    """Left: PDR by distance bin, emulated (bars, Wilson) vs configured (markers); right: age histogram."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    n = len(runs)
    width = 0.8 / max(n, 1)
    labels: list[str] = []
    for i, (label, agg, records) in enumerate(runs):
        bins = agg["pdr_by_distance"]
        labels = [b["bin"] for b in bins]
        x = np.arange(len(bins)) + (i - (n - 1) / 2) * width
        pdr = np.array([_num(b["pdr"]) for b in bins])
        lo = np.array([_num(b["pdr_lo"]) for b in bins])
        hi = np.array([_num(b["pdr_hi"]) for b in bins])
        exp = np.array([_num(b["expected_pdr"]) for b in bins])
        err = np.clip(np.vstack([np.nan_to_num(pdr - lo), np.nan_to_num(hi - pdr)]), 0.0, None)
        bars = ax1.bar(x, np.nan_to_num(pdr), width, yerr=err, capsize=3, label=f"{label}: emulated", alpha=0.8)
        ax1.plot(x, exp, "D", color="black", mfc=bars.patches[0].get_facecolor(), ms=7, label=f"{label}: configured")
        for xi, b in zip(x, bins):
            if b["links"] == 0:
                ax1.text(xi, 0.02, "no links", rotation=90, ha="center", va="bottom", fontsize=7)
        ages = np.concatenate([r.message_age_ms for r in records]) if records else np.empty(0)
        if ages.size:
            ax2.hist(ages, bins=np.arange(0, 525, 25), histtype="step", lw=1.6, label=f"{label} (mean {ages.mean():.0f} ms)")
    ax1.set_xticks(np.arange(len(labels)))
    ax1.set_xticklabels(labels)
    ax1.set_ylim(0, 1.05)
    ax1.set_xlabel("sender-receiver distance")
    ax1.set_ylabel("packet delivery ratio")
    ax1.set_title("delivery ratio vs distance")
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    ax2.set_xlabel("message age at observation (ms)")
    ax2.set_ylabel("peer observations")
    ax2.set_title("message age")
    ax2.legend(fontsize=8)
    return _save(fig, path)


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def _bars(ax: Any, names: list[str], vals: list[float], los: list[float], his: list[float], ylabel: str) -> None:
    v = np.array([_num(x) for x in vals])
    lo = np.array([_num(x) for x in los])
    hi = np.array([_num(x) for x in his])
    err = np.clip(np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]), 0.0, None)
    colors = [{"no-v2v": "#999999", "rule-v2v": "#4c72b0"}.get(n.split(" ")[0], "#dd8452") for n in names]
    ax.bar(np.arange(len(names)), np.nan_to_num(v), yerr=err, capsize=4, color=colors)
    for i, x in enumerate(v):
        ax.text(i, 0, "n/a" if not np.isfinite(x) else f"{x:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=15, fontsize=8)
    ax.set_ylabel(ylabel)


def plot_comparison(results: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Collision rate (Wilson 95 %) and mean reaction time (t 95 %) per policy."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    names = [r["policy"] for r in results]
    cr = [r["aggregate"]["collision_rate"] for r in results]
    rt = [r["aggregate"]["reaction_time_s"] for r in results]
    _bars(ax1, names, [c["rate"] for c in cr], [c["lo"] for c in cr], [c["hi"] for c in cr], "episodes with a collision")
    ax1.set_ylim(0, 1.05)
    ax1.set_title("collision rate")
    _bars(ax2, names, [c["mean"] for c in rt], [c["lo"] for c in rt], [c["hi"] for c in rt], "reaction time (s)")
    ax2.set_title("follower reaction time")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_radio_sweep(results: Sequence[dict[str, Any]], path: Path) -> Path:
    """Collision rate and reaction time against radio profile, one line per policy."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    radios = list(dict.fromkeys(r["radio"] for r in results))
    x = np.arange(len(radios))
    for pol in dict.fromkeys(r["policy"] for r in results):
        rows = {r["radio"]: r["aggregate"] for r in results if r["policy"] == pol}
        for ax, key, val in ((ax1, "collision_rate", "rate"), (ax2, "reaction_time_s", "mean")):
            v = np.array([_num(rows[q][key][val]) if q in rows else math.nan for q in radios])
            lo = np.array([_num(rows[q][key]["lo"]) if q in rows else math.nan for q in radios])
            hi = np.array([_num(rows[q][key]["hi"]) if q in rows else math.nan for q in radios])
            ax.errorbar(x, v, yerr=np.clip(np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]), 0.0, None), marker="o", capsize=4, label=pol)
    for ax, lab in ((ax1, "episodes with a collision"), (ax2, "reaction time (s)")):
        ax.set_xticks(x)
        ax.set_xticklabels(radios)
        ax.set_xlabel("radio profile")
        ax.set_ylabel(lab)
        ax.legend(fontsize=8)
    ax1.set_ylim(-0.05, 1.05)
    ax1.set_title("collision rate vs link quality")
    ax2.set_title("reaction time vs link quality")
    return _save(fig, path)


def read_progress_csv(path: Path) -> dict[str, np.ndarray]:
    """SB3 ``progress.csv`` as columns of floats (empty cells -> NaN)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    out = {}
    for key in rows[0]:
        vals = []
        for r in rows:
            try:
                vals.append(float(r.get(key) or "nan"))
            except ValueError:
                vals.append(math.nan)
        out[key] = np.array(vals)
    return out


def plot_training_curves(progress_csv: Path, path: Path) -> Path | None:
    """Episode reward and collision rate against timesteps (None when the log lacks them)."""
    cols = read_progress_csv(progress_csv)
    steps = cols.get("time/total_timesteps")
    if steps is None:
        return None
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, lab in ((ax1, "rollout/ep_rew_mean", "episode reward (mean)"), (ax2, "rollout/collision_rate", "collision rate")):
        y = cols.get(key)
        if y is not None and np.isfinite(y).any():
            ok = np.isfinite(y) & np.isfinite(steps)
            ax.plot(steps[ok], y[ok], marker=".")
        else:
            ax.text(0.5, 0.5, f"{key} not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("timesteps")
        ax.set_ylabel(lab)
    ax1.set_title("training: reward")
    ax2.set_title("training: collisions")
    return _save(fig, path)


def write_plots(
    out_dir: Path,
    results: Sequence[dict[str, Any]],
    records: dict[tuple[str, str], Sequence[EpisodeRecord]],
    progress_csv: Path | None = None,
) -> list[Path]:
    """Every plot the results support; returns the written paths."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    main_policy = results[0]["policy"]
    radios = list(dict.fromkeys(r["radio"] for r in results))
    primary = "measured" if "measured" in radios else radios[0]
    # The gap plot is about reactions: the policy under test, else rule-v2v, else what ran.
    for pol in (main_policy if main_policy != "no-v2v" else "rule-v2v", main_policy):
        rec = _pick_hazard_episode(records.get((pol, primary), []))
        if rec is not None:
            written.append(plot_gap_over_time(rec, out_dir / "gap_over_time.png", f"{pol}, {primary} radio: followers of "
                                              f"{rec.agents[rec.hazard_slot]}, seed {rec.seed}"))
            break
    radio_runs = [(r["radio"], r["aggregate"], records[(main_policy, r["radio"])]) for r in results if r["policy"] == main_policy]
    written.append(plot_radio(radio_runs, out_dir / "radio.png"))
    written.append(plot_comparison([r for r in results if r["radio"] == primary], out_dir / "comparison.png", f"{primary} radio"))
    if len(radios) > 1:
        written.append(plot_radio_sweep(results, out_dir / "radio_sweep.png"))
    if progress_csv is not None:
        p = plot_training_curves(Path(progress_csv), out_dir / "training_curves.png")
        if p is not None:
            written.append(p)
    return written
