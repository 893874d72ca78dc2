"""Evaluation plots (matplotlib, Agg backend), each written as PNG (screen) and PDF (papers) next to ``metrics.json``.

- ``gap_over_time``: every follower's true gap in one hazard episode; below it, one row per
  follower with its reaction and collision marked (markers never overlap);
- ``radio``: delivery ratio vs distance (emulated, Wilson intervals; the configured loss model;
  the field recording's bins) with a note on why the pooled ratio differs from the recording's
  overall figure, and the message-age histogram, per radio profile;
- ``comparison``: collision rate and reaction time of every policy, with value labels;
- ``radio_sweep`` (with a sweep): the same two metrics against radio profile;
- ``training_curves`` (with a training run's ``progress.csv``): episode reward and collision
  rate against timesteps.

Every figure states the number of episodes (and seeds) it is drawn from and what each
interval means; intervals are clipped at their physical bounds (rates to [0, 1], times at 0).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from roadsense_marl.evaluation.metrics import EpisodeRecord, hazard_followers, reaction_steps

DPI = 120
#: Formats every figure is written in (PNG for screens, PDF vector for papers).
FORMATS = ("png", "pdf")
FOOTNOTE_SIZE = 7.5
POLICY_COLOURS = {"no-v2v": "#999999", "rule-v2v": "#4c72b0"}
MODEL_COLOUR = "#dd8452"

WILSON = "95 % Wilson score interval"
STUDENT_T = "95 % Student t interval"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, footnote: str = "") -> list[Path]:
    """Write ``path`` with every suffix of :data:`FORMATS`; the footnote goes under the axes."""
    if footnote:
        footnote = "\n".join(_wrap(line, int(fig.get_figwidth() * 17)) for line in footnote.split("\n"))
        lines = footnote.count("\n") + 1
        # Reserve the footnote's height (points -> figure fraction) below the axes.
        bottom = (lines * FOOTNOTE_SIZE * 1.3 + 8.0) / (fig.get_figheight() * 72.0)
        fig.text(0.01, 0.008, footnote, ha="left", va="bottom", fontsize=FOOTNOTE_SIZE, color="#333333")
        fig.tight_layout(rect=(0, bottom, 1, 1))
    else:
        fig.tight_layout()
    out = []
    for fmt in FORMATS:
        p = Path(path).with_suffix(f".{fmt}")
        fig.savefig(p, dpi=DPI, format=fmt)
        out.append(p)
    _plt().close(fig)
    return out


def _seed_text(seeds: Sequence[int]) -> str:
    seeds = sorted(int(s) for s in seeds)
    if not seeds:
        return "no episodes"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        span = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}..{seeds[-1]}"
    else:
        span = "seeds " + ", ".join(map(str, seeds[:6])) + (", ..." if len(seeds) > 6 else "")
    return f"n = {len(seeds)} episode{'s' if len(seeds) != 1 else ''} ({span})"


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def _errors(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Asymmetric error-bar lengths with the interval clipped to ``bounds`` (NaN -> no bar)."""
    lo = np.clip(lo, *bounds)
    hi = np.clip(hi, *bounds)
    return np.clip(np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]), 0.0, None)


def _pick_hazard_episode(records: Sequence[EpisodeRecord]) -> EpisodeRecord | None:
    for rec in records:
        if rec.onset_step is not None and rec.hazard_slot >= 0 and rec.onset_step < rec.n_steps:
            if hazard_followers(rec.leader_before[rec.onset_step], rec.hazard_slot).any():
                return rec
    return None


# ---- gap over time ---------------------------------------------------------------------------


def plot_gap_over_time(rec: EpisodeRecord, path: Path, title: str = "", n_episodes: int | None = None) -> list[Path]:
    """True gap of every follower of the hazard vehicle; below, one row per follower with its
    reaction (circle) and collision (cross), so markers of simultaneous events never overlap."""
    plt = _plt()
    onset = int(rec.onset_step)  # type: ignore[arg-type]
    fol = np.flatnonzero(hazard_followers(rec.leader_before[onset], rec.hazard_slot))
    react = reaction_steps(rec.decel_cmd, onset)
    t = (np.arange(rec.n_steps) + 1) * rec.step_length
    fig, (ax, ev) = plt.subplots(
        2, 1, figsize=(8, 4.2 + 0.25 * len(fol)), sharex=True,
        gridspec_kw={"height_ratios": [3.0, max(1.0, 0.35 * len(fol))]},
    )
    t_onset = (onset + 1) * rec.step_length
    for row, j in enumerate(fol):
        g = np.where(rec.present[:, j], rec.gap[:, j], np.nan)
        g = np.where(np.isfinite(g), g, np.nan)
        (line,) = ax.plot(t, g, lw=1.4, label=rec.agents[j])
        colour = line.get_color()
        if react[j] >= 0:
            ev.plot(t[int(react[j])], row, "o", color=colour, ms=7, mec="black", zorder=3)
            ev.annotate(f"{(react[j] - onset) * rec.step_length:.1f} s", (t[int(react[j])], row),
                        xytext=(6, 0), textcoords="offset points", va="center", fontsize=7)
        if rec.collided_step[j] >= 0:
            k = int(rec.collided_step[j])
            ev.plot(t[k], row, "x", color=colour, ms=9, mew=2.5, zorder=4)
            ax.plot(t[k], 0.0, "x", color=colour, ms=9, mew=2.5, clip_on=False)
    for a in (ax, ev):
        a.axvline(t_onset, color="red", ls="--", lw=1.2)
    ax.plot([], [], color="red", ls="--", lw=1.2, label="hazard onset")
    ax.axhline(10.0, color="grey", ls=":", lw=1, label="10 m")
    ax.plot([], [], "o", color="grey", mec="black", label="reaction (below: time after onset)")
    ax.plot([], [], "x", color="grey", mew=2.5, label="collision")
    ax.set_ylabel("true gap to leader (m)")
    # Scale to the gaps around the hazard: a follower that stops while its leader drives off
    # would otherwise flatten every other curve.
    at_onset = rec.gap[onset, fol][np.isfinite(rec.gap[onset, fol])]
    top = max(40.0, 2.5 * float(at_onset.max())) if at_onset.size else None
    shown = np.where(rec.present[:, fol], rec.gap[:, fol], np.nan)
    cut = top is not None and bool((shown[np.isfinite(shown)] > top).any())
    ax.set_ylim(0, top if cut else None)
    hz = rec.agents[rec.hazard_slot]
    ax.set_title(title or f"followers of {hz}, seed {rec.seed}")
    ax.legend(fontsize=8, ncol=3, loc="best")
    ev.set_yticks(np.arange(len(fol)))
    ev.set_yticklabels([rec.agents[j] for j in fol], fontsize=8)
    ev.set_ylim(-0.6, len(fol) - 0.4)
    ev.invert_yaxis()
    ev.set_xlabel("time (s)")
    ev.grid(axis="x", alpha=0.3)
    of = f" of {n_episodes}" if n_episodes else ""
    note = (f"One episode (seed {rec.seed}){of}, the first with followers at the hazard. Gap: SUMO's true "
            "bumper-to-bumper distance.\nReaction: first step after onset whose action commands a "
            "deceleration > 0.5 m/s². No intervals: a single episode."
            + (f" Gaps above {top:.0f} m (2.5x the largest at onset) run off the top." if cut else ""))
    return _save(fig, path, note)


# ---- radio -----------------------------------------------------------------------------------


def _recording(source: str | None) -> tuple[float | None, list[tuple[float, float, int, float]]]:
    """From a radio parameter file: (overall delivery ratio of the recording or None, bins as
    ``(lo_m, hi_m, count, delivery)`` for populated bins)."""
    if not source or not Path(source).is_file():
        return None, []
    from roadsense_marl.espnow import load_params

    try:
        params = load_params(source)
    except (ValueError, OSError):
        return None, []
    bins = [(b.lo_m, b.hi_m, b.count, 1.0 - b.loss_rate) for b in params.distance_bins
            if b.count and b.loss_rate is not None]
    total = sum(c for _, _, c, _ in bins)
    overall = sum(c * d for _, _, c, d in bins) / total if total else None
    return overall, bins


def radio_note(label: str, agg: dict[str, Any], source: str | None, dr_loss_range: tuple[float, float] | None,
               nominal_loss: float | None) -> str:
    """Plain words on why the pooled delivery ratio of these episodes differs from the recording's overall figure."""
    bins = agg["pdr_by_distance"]
    n_links = sum(b["links"] for b in bins)
    if not n_links:
        return f"{label}: no links were attempted."
    pooled = agg["pdr"]["rate"]
    expected = sum(b["expected_pdr"] * b["links"] for b in bins if b["links"]) / n_links
    parts = [f"{label}: pooled over all {n_links} attempted links, emulated {pooled:.3f}, configured model {expected:.3f}."]
    overall, rec_bins = _recording(source)
    if overall is not None:
        total = sum(c for _, _, c, _ in rec_bins)
        near = sum(c for lo, _, c, _ in rec_bins if lo == 0.0) / total
        rng = max(hi for _, hi, _, _ in rec_bins)
        share = {b["bin"]: b["links"] / n_links for b in bins}
        n_beyond = sum(b["links"] for b in bins if b["lo_m"] >= rng)
        beyond = (f"{n_beyond / n_links:.0%} beyond {rng:g} m (never delivered)" if n_beyond
                  else f"none beyond {rng:g} m (the radio range)")
        first = bins[0]
        # The emulated per-bin ratios re-weighted to the recording's distance mix.
        matched = [(c, next((b for b in bins if b["lo_m"] == lo and b["links"]), None)) for lo, _, c, _ in rec_bins]
        if all(b is not None for _, b in matched):
            mix = (" Re-weighted to the recording's distance mix, the emulated ratio is "
                   f"{sum(c * b['pdr'] for c, b in matched) / total:.3f}.")  # type: ignore[index]
        else:
            mix = " Some of the recording's distance bins have no links here, so no re-weighting to its mix."
        nominal = _params(source)
        if nominal is not None:
            from roadsense_marl.evaluation.metrics import expected_delivery_ratio

            mids = np.array([(lo + hi) / 2.0 for lo, hi, _, _ in rec_bins])
            nom = expected_delivery_ratio(nominal, mids)
            mix += (" The nominal model (no randomisation) gives "
                    + ", ".join(f"{v:.3f} at {m:g} m" for v, m in zip(nom, mids)) + ".")
        parts.append(
            f"The recording's overall {overall:.3f} ({Path(source).name}) pools {total} packets, "  # type: ignore[arg-type]
            f"{near:.0%} of them at {first['bin']}; nothing arrived beyond {rng:g} m. Here {share[first['bin']]:.0%} "
            f"of links are at {first['bin']} and {beyond}.{mix}"
        )
    if dr_loss_range is not None and nominal_loss is not None:
        parts.append(
            f"Domain randomisation draws each episode's base loss from [{dr_loss_range[0]:g}, {dr_loss_range[1]:g}] "
            f"(nominal {nominal_loss:g}), and burst losses raise it further, so 'configured' is per-episode."
        )
    return " ".join(parts)


def plot_radio(
    runs: Sequence[tuple[str, dict[str, Any], Sequence[EpisodeRecord]]],
    path: Path,
    sources: dict[str, str] | None = None,
    domain_randomization: bool = True,
) -> list[Path]:
    """Left: delivery ratio by distance bin, emulated (bars, Wilson 95 %) vs configured model
    (diamonds) and the field recording (bars' black ticks, where the parameter file has its
    bins); middle: delivery ratio by the receiver's channel busy ratio (CBR) at the link's step
    (Wilson 95 %; every link at CBR 0 when a profile's shared channel is off); right: message-age
    histogram. The footnote explains the pooled ratio."""
    plt = _plt()
    n = len(runs)
    fig, (ax1, axc, ax2) = plt.subplots(1, 3, figsize=(16, 5.0 + 0.25 * n))
    width = 0.8 / max(n, 1)
    labels: list[str] = []
    notes: list[str] = []
    seeds: list[int] = []
    rec_drawn = False
    for i, (label, agg, records) in enumerate(runs):
        bins = agg["pdr_by_distance"]
        labels = [f"{b['bin']}\n({b['links']} links)" if n == 1 else b["bin"] for b in bins]
        x = np.arange(len(bins)) + (i - (n - 1) / 2) * width
        pdr = np.array([_num(b["pdr"]) for b in bins])
        lo = np.array([_num(b["pdr_lo"]) for b in bins])
        hi = np.array([_num(b["pdr_hi"]) for b in bins])
        exp = np.array([_num(b["expected_pdr"]) for b in bins])
        bars = ax1.bar(x, np.nan_to_num(pdr), width, yerr=_errors(pdr, lo, hi, (0.0, 1.0)), capsize=3,
                       label=f"{label}: emulated", alpha=0.8)
        ax1.plot(x, exp, "D", color="black", mfc=bars.patches[0].get_facecolor(), ms=7, label=f"{label}: configured model")
        for xi, b, h in zip(x, bins, hi):
            if b["links"] == 0:
                ax1.text(xi, 0.02, "no links", rotation=90, ha="center", va="bottom", fontsize=7)
            elif np.isfinite(b["pdr"]):
                ax1.text(xi, min(1.0, _num(h)) + 0.01, f"{b['pdr']:.2f}", ha="center", va="bottom", fontsize=7)
        src = (sources or {}).get(label)
        _, rec_bins = _recording(src)
        for lo_m, _, _, deliv in rec_bins:
            k = next((j for j, b in enumerate(bins) if b["lo_m"] == lo_m), None)
            if k is not None:
                ax1.plot([x[k] - width / 2, x[k] + width / 2], [deliv, deliv], color="black", lw=2.2,
                         label=None if rec_drawn else "field recording (parameter file)")
                rec_drawn = True
        cb = [b for b in agg.get("pdr_by_cbr", []) if b["links"]]
        if cb:
            mid = np.array([b.get("cbr_mean", (b["lo"] + b["hi"]) / 2.0) for b in cb])
            v = np.array([_num(b["pdr"]) for b in cb])
            axc.errorbar(mid, v, yerr=_errors(v, np.array([_num(b["pdr_lo"]) for b in cb]),
                                              np.array([_num(b["pdr_hi"]) for b in cb]), (0.0, 1.0)),
                         marker="o", capsize=3, label=f"{label} (mean CBR {_num(agg.get('cbr_mean', math.nan)):.2f})")
        ages = np.concatenate([r.message_age_ms for r in records]) if records else np.empty(0)
        if ages.size:
            ax2.hist(ages, bins=np.arange(0, 525, 25), histtype="step", lw=1.6, label=f"{label} (mean {ages.mean():.0f} ms)")
        seeds = [r.seed for r in records]
        params = _params(src)
        notes.append(radio_note(
            label, agg, src,
            params.dr_loss_rate_range if (params is not None and domain_randomization and params.dr_enabled) else None,
            params.loss_base_rate if params is not None else None,
        ))
    ax1.set_xticks(np.arange(len(labels)))
    ax1.set_xticklabels(labels, fontsize=8)
    ax1.set_ylim(0, 1.12)
    ax1.set_xlabel("sender-receiver distance")
    ax1.set_ylabel("packet delivery ratio")
    ax1.set_title("delivery ratio vs distance")
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2 if n == 1 else -0.14), ncol=min(3, n + 1))
    axc.set_xlim(0, 1)
    axc.set_ylim(0, 1.05)
    axc.set_xlabel("receiver's channel busy ratio at the step (bin means)")
    axc.set_ylabel("packet delivery ratio")
    axc.set_title("delivery ratio vs channel busy ratio")
    if axc.get_legend_handles_labels()[0]:
        axc.legend(fontsize=7)
    ax2.set_xlabel("message age at observation (ms)")
    ax2.set_ylabel("peer observations")
    ax2.set_title("message age")
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=8)
    note = (f"{_seed_text(seeds)} per profile; error bars: {WILSON} over attempted links; "
            "configured model: the episodes' (randomised) link loss model averaged over the bin's links (losses to the shared "
            "channel come on top: see the CBR panel).\n"
            + "\n".join(notes))
    return _save(fig, path, note)


def _params(source: str | None):
    if not source or not Path(source).is_file():
        return None
    from roadsense_marl.espnow import load_params

    try:
        return load_params(source)
    except (ValueError, OSError):
        return None


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# ---- policy comparison -----------------------------------------------------------------------


def _bars(ax: Any, names: list[str], vals: list[Any], los: list[Any], his: list[Any], ylabel: str,
          bounds: tuple[float, float], counts: list[str] | None = None) -> None:
    v = np.array([_num(x) for x in vals])
    lo = np.array([_num(x) for x in los])
    hi = np.array([_num(x) for x in his])
    err = _errors(v, lo, hi, bounds)
    colors = [POLICY_COLOURS.get(n.split(" ")[0], MODEL_COLOUR) for n in names]
    ax.bar(np.arange(len(names)), np.nan_to_num(v), yerr=err, capsize=4, color=colors)
    top = np.where(np.isfinite(v), np.nan_to_num(v) + err[1], 0.0)
    span = max(float(np.nanmax(top)) if top.size else 0.0, 1e-9)
    for i, x in enumerate(v):
        text = "n/a" if not np.isfinite(x) else f"{x:.2f}"
        if counts is not None:
            text += f"\n{counts[i]}"
        ax.text(i, top[i] + 0.02 * span, text, ha="center", va="bottom", fontsize=8)
    ax.set_ylim(bounds[0], max(span * 1.25, bounds[0] + 1e-6) if not math.isfinite(bounds[1]) else bounds[1] * 1.15)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=15, fontsize=8)
    ax.set_ylabel(ylabel)


def plot_comparison(results: Sequence[dict[str, Any]], path: Path, title: str = "") -> list[Path]:
    """Collision rate (Wilson 95 %) and mean reaction time (Student t 95 %, clipped at 0) per policy."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.4))
    names = [r["policy"] for r in results]
    cr = [r["aggregate"]["collision_rate"] for r in results]
    rt = [r["aggregate"]["reaction_time_s"] for r in results]
    rr = [r["aggregate"]["follower_reacted_rate"] for r in results]
    _bars(ax1, names, [c["rate"] for c in cr], [c["lo"] for c in cr], [c["hi"] for c in cr],
          "share of episodes with a collision", (0.0, 1.0), [f"{c['k']}/{c['n']}" for c in cr])
    ax1.set_title("collision rate")
    _bars(ax2, names, [c["mean"] for c in rt], [c["lo"] for c in rt], [c["hi"] for c in rt], "reaction time (s)",
          (0.0, math.inf), [f"n={c['k']} of {c['n']}" for c in rr])
    ax2.set_title("follower reaction time (mean)")
    if title:
        fig.suptitle(title)
    seeds = [e["seed"] for e in results[0]["episodes"]] if results else []
    note = (f"{_seed_text(seeds)} per policy, same seeds for every policy. Collision rate: episodes with at least one "
            f"collision (k/n under the value); error bars: {WILSON}.\nReaction time: mean over followers of the hazard "
            f"vehicle that reacted (n = reacting of all followers); error bars: {STUDENT_T}, clipped at 0 s.")
    return _save(fig, path, note)


def plot_radio_sweep(results: Sequence[dict[str, Any]], path: Path) -> list[Path]:
    """Collision rate and reaction time against radio profile, one line per policy."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.4))
    radios = list(dict.fromkeys(r["radio"] for r in results))
    x = np.arange(len(radios))
    pols = list(dict.fromkeys(r["policy"] for r in results))
    for k, pol in enumerate(pols):
        rows = {r["radio"]: r["aggregate"] for r in results if r["policy"] == pol}
        dx = (k - (len(pols) - 1) / 2) * 0.06  # side by side, so error bars of equal values stay visible
        for ax, key, val, bounds in ((ax1, "collision_rate", "rate", (0.0, 1.0)),
                                     (ax2, "reaction_time_s", "mean", (0.0, math.inf))):
            v = np.array([_num(rows[q][key][val]) if q in rows else math.nan for q in radios])
            lo = np.array([_num(rows[q][key]["lo"]) if q in rows else math.nan for q in radios])
            hi = np.array([_num(rows[q][key]["hi"]) if q in rows else math.nan for q in radios])
            ax.errorbar(x + dx, v, yerr=_errors(v, lo, hi, bounds), marker="o", capsize=4, label=pol,
                        color=POLICY_COLOURS.get(pol, MODEL_COLOUR))
    for ax, lab in ((ax1, "share of episodes with a collision"), (ax2, "reaction time (s)")):
        ax.set_xticks(x)
        ax.set_xticklabels(radios)
        ax.set_xlabel("radio profile")
        ax.set_ylabel(lab)
        ax.legend(fontsize=8)
    ax1.set_ylim(-0.05, 1.05)
    ax2.set_ylim(bottom=0)
    ax1.set_title("collision rate vs link quality")
    ax2.set_title("reaction time vs link quality")
    seeds = [e["seed"] for e in results[0]["episodes"]] if results else []
    note = (f"{_seed_text(seeds)} per point, same seeds for every policy and profile. Collision rate error bars: "
            f"{WILSON}.\nReaction time: mean over reacting followers; error bars: {STUDENT_T}, clipped at 0 s.")
    return _save(fig, path, note)


# ---- training --------------------------------------------------------------------------------


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


def plot_training_curves(progress_csv: Path, path: Path) -> list[Path] | None:
    """Episode reward and collision rate against timesteps (None when the log lacks them)."""
    cols = read_progress_csv(progress_csv)
    steps = cols.get("time/total_timesteps")
    if steps is None:
        return None
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key, lab in ((ax1, "rollout/ep_rew_mean", "episode reward (mean)"),
                         (ax2, "rollout/collision_rate", "share of vehicle-episodes ending in a collision")):
        y = cols.get(key)
        if y is not None and np.isfinite(y).any():
            ok = np.isfinite(y) & np.isfinite(steps)
            ax.plot(steps[ok], y[ok], marker=".")
        else:
            ax.text(0.5, 0.5, f"{key} not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("timesteps (agent-steps)")
        ax.set_ylabel(lab)
    top = np.nanmax(cols["rollout/collision_rate"]) if "rollout/collision_rate" in cols else math.nan
    upper = max(0.05, 1.1 * top) if np.isfinite(top) else 1.0
    ax2.set_ylim(-0.03 * upper, upper)  # a rate of 0 stays visible above the axis
    ax1.set_title("training: reward")
    ax2.set_title("training: collisions")
    note = (f"From {Path(progress_csv).name}, one point per PPO rollout. Reward: SB3's mean over the last 100 finished "
            "vehicle-episodes (padding never counts); collision rate: over the vehicle-episodes that ended in that rollout. "
            "No intervals.")
    return _save(fig, path, note)


def write_plots(
    out_dir: Path,
    results: Sequence[dict[str, Any]],
    records: dict[tuple[str, str], Sequence[EpisodeRecord]],
    progress_csv: Path | None = None,
    domain_randomization: bool = True,
) -> list[Path]:
    """Every plot the results support, each as PNG and PDF; returns the written paths."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    main_policy = results[0]["policy"]
    radios = list(dict.fromkeys(r["radio"] for r in results))
    primary = "measured" if "measured" in radios else radios[0]
    # The gap plot is about reactions: the policy under test, else rule-v2v, else what ran.
    for pol in (main_policy if main_policy != "no-v2v" else "rule-v2v", main_policy):
        recs = records.get((pol, primary), [])
        rec = _pick_hazard_episode(recs)
        if rec is not None:
            written += plot_gap_over_time(
                rec, out_dir / "gap_over_time.png",
                f"{pol}, {primary} radio: followers of {rec.agents[rec.hazard_slot]}, seed {rec.seed}", len(recs),
            )
            break
    radio_runs = [(r["radio"], r["aggregate"], records[(main_policy, r["radio"])]) for r in results if r["policy"] == main_policy]
    sources = {r["radio"]: r.get("radio_source") for r in results if r["policy"] == main_policy}
    written += plot_radio(radio_runs, out_dir / "radio.png", sources, domain_randomization)
    written += plot_comparison([r for r in results if r["radio"] == primary], out_dir / "comparison.png", f"{primary} radio")
    if len(radios) > 1:
        written += plot_radio_sweep(results, out_dir / "radio_sweep.png")
    if progress_csv is not None:
        p = plot_training_curves(Path(progress_csv), out_dir / "training_curves.png")
        if p is not None:
            written += p
    return written
