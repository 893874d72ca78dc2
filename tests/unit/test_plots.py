"""Plot helpers: intervals clipped at physical bounds, episode counts and the radio note's numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roadsense_marl.evaluation.metrics import pdr_by_distance, rate_interval
from roadsense_marl.evaluation.plots import _errors, _seed_text, plot_comparison, radio_note
from roadsense_marl.paths import config_path


def test_error_bars_stop_at_zero_and_one():
    v = np.array([0.1, 0.95, math.nan])
    err = _errors(v, np.array([-0.2, 0.9, math.nan]), np.array([0.3, 1.2, math.nan]), (0.0, 1.0))
    assert err[0].tolist() == pytest.approx([0.1, 0.05, 0.0])  # lower bar ends at 0, not -0.2
    assert err[1].tolist() == pytest.approx([0.2, 0.05, 0.0])  # upper bar ends at 1, not 1.2


def test_reaction_time_interval_is_clipped_at_zero_only():
    err = _errors(np.array([0.2]), np.array([-0.1]), np.array([5.0]), (0.0, math.inf))
    assert err[:, 0].tolist() == pytest.approx([0.2, 4.8])


@pytest.mark.parametrize(
    "seeds, text",
    [([5], "n = 1 episode (seed 5)"), ([3, 1, 2], "n = 3 episodes (seeds 1..3)"), ([1, 5], "n = 2 episodes (seeds 1, 5)")],
)
def test_seed_text_names_episode_count_and_seeds(seeds, text):
    assert _seed_text(seeds) == text


def test_radio_note_explains_pooled_ratio_against_the_recording():
    # 100 links at 10 m all delivered, 300 at 35 m with 150 delivered: pooled 250/400.
    d = np.r_[np.full(100, 10.0), np.full(300, 35.0)]
    ok = np.r_[np.ones(100, bool), np.arange(300) % 2 == 0]
    agg = {"pdr_by_distance": pdr_by_distance(d, ok, np.full(400, 0.7)), "pdr": rate_interval(250, 400)}
    note = radio_note("measured", agg, str(config_path("espnow", "measured.json")), (0.029, 0.25), 0.058)
    assert "400 attempted links, emulated 0.625, configured model 0.700" in note
    assert "overall 0.938" in note and "8151 packets" in note and "93% of them at 0-20 m" in note
    assert "Here 25% of links are at 0-20 m" in note
    # Re-weighted by the recording's bins (7581 at 0-20 m: 1.0, 570 at 20-50 m: 0.5).
    assert f"{(7581 * 1.0 + 570 * 0.5) / 8151:.3f}" in note
    assert "[0.029, 0.25]" in note and "nominal 0.058" in note


def test_comparison_writes_png_and_pdf(tmp_path):
    agg = {
        "collision_rate": {**rate_interval(1, 4)},
        "reaction_time_s": {"mean": 0.1, "lo": -0.3, "hi": 0.5, "n": 2},
        "follower_reacted_rate": rate_interval(2, 3),
    }
    results = [{"policy": p, "aggregate": agg, "episodes": [{"seed": s} for s in range(4)]} for p in ("a", "rule-v2v")]
    paths = plot_comparison(results, tmp_path / "comparison.png")
    assert [p.name for p in paths] == ["comparison.png", "comparison.pdf"]
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_radio_plot_shows_delivery_against_the_channel_busy_ratio(tmp_path):
    from roadsense_marl.evaluation.metrics import pdr_by_cbr
    from roadsense_marl.evaluation.plots import plot_radio

    d = np.r_[np.full(100, 10.0), np.full(300, 35.0)]
    ok = np.r_[np.ones(100, bool), np.arange(300) % 2 == 0]
    cbr = np.r_[np.full(100, 0.1), np.full(300, 0.7)]
    agg = {"pdr_by_distance": pdr_by_distance(d, ok, np.full(400, 0.7)), "pdr": rate_interval(250, 400),
           "pdr_by_cbr": pdr_by_cbr(cbr, ok), "cbr_mean": float(cbr.mean())}
    old = {"pdr_by_distance": agg["pdr_by_distance"], "pdr": agg["pdr"]}  # metrics written before the channel
    paths = plot_radio([("measured", agg, []), ("older", old, [])], tmp_path / "radio.png")
    assert [p.name for p in paths] == ["radio.png", "radio.pdf"]
    import matplotlib.image as mpimg

    assert mpimg.imread(paths[0]).shape[1] > 1200  # three panels wide
