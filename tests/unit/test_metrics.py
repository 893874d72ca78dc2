"""Pure evaluation metrics on hand-made arrays with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roadsense_marl.espnow import load_params, loss_probability
from roadsense_marl.evaluation.metrics import (
    HARD_BRAKE_DECEL,
    HARD_BRAKE_WITHIN_S,
    EpisodeRecord,
    aggregate,
    close_gap_share,
    commanded_decel,
    crash_colliders,
    episode_metrics,
    expected_delivery_ratio,
    follower_speed_deficit,
    hard_brake_steps,
    hazard_followers,
    mcnemar_exact,
    mean_interval,
    mean_speed,
    min_gap,
    pdr_by_cbr,
    paired_comparison,
    paired_difference,
    pdr_by_distance,
    reaction_steps,
    received_from,
    stopped_share,
    t_quantile_975,
    wilson_interval,
)


def test_wilson_interval_matches_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="k <= n"):
        wilson_interval(3, 2)


def test_t_quantile_table_and_expansion_agree_with_reference_values():
    assert t_quantile_975(1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile_975(31) == pytest.approx(2.0395, abs=2e-4)
    assert t_quantile_975(60) == pytest.approx(2.0003, abs=2e-4)
    assert t_quantile_975(120) == pytest.approx(1.9799, abs=2e-4)
    assert t_quantile_975(30) > t_quantile_975(31) > t_quantile_975(1000) > 1.96


def test_mean_interval_is_student_t_and_ignores_non_finite():
    r = mean_interval([1.0, 2.0, 3.0, float("nan")])
    assert r["mean"] == 2.0 and r["n"] == 3
    assert r["hi"] - r["mean"] == pytest.approx(4.3027 / math.sqrt(3), abs=1e-4)
    single = mean_interval([5.0])
    assert single["mean"] == 5.0 and math.isnan(single["lo"])


def test_hazard_followers_walk_the_leader_chain():
    # slots: 0 -> 1 -> 2 -> 3 (front), 4 -> 3 in another lane; hazard is 2
    leader = np.array([1, 2, 3, -1, 3])
    assert hazard_followers(leader, 2).tolist() == [True, True, False, False, False]
    assert hazard_followers(leader, 3).tolist() == [True, True, True, False, True]
    assert not hazard_followers(leader, -1).any()


def test_reaction_step_is_first_braking_step_after_onset():
    decel = np.zeros((20, 3))
    decel[10, 0] = 8.0  # braking in the onset step itself is not a reaction
    decel[14:, 0] = 4.0
    decel[12, 1] = 0.5  # exactly the threshold: not braking
    decel[13, 1] = 0.51
    decel[:, 2] = np.nan  # never acted
    assert reaction_steps(decel, onset_step=10).tolist() == [14, 13, -1]


def test_received_from_counts_only_delivered_messages_sent_at_or_after_onset():
    step = np.array([4, 5, 5, 6, 7])
    sender = np.array([2, 2, 2, 1, 2])
    receiver = np.array([0, 1, 0, 0, 3])
    delivered = np.array([True, True, False, True, False])
    got = received_from(step, sender, receiver, delivered, hazard_slot=2, onset_step=5, n_slots=4)
    assert got.tolist() == [False, True, False, False]


def test_a_rear_end_crash_is_counted_once_at_the_collider():
    m, t = 5, 10
    leader = np.tile(np.array([1, 2, -1, 4, -1]), (t, 1))
    cs = np.array([7, 7, -1, -1, -1])  # 0 hits 1: SUMO reports both
    assert crash_colliders(cs, leader).tolist() == [True, False, False, False, False]
    cs2 = np.array([7, 7, -1, 9, 9])  # two separate crashes
    assert crash_colliders(cs2, leader).sum() == 2
    cs3 = np.array([-1, -1, 3, -1, -1])  # a lone collided agent is a crash of its own
    assert crash_colliders(cs3, leader).sum() == 1
    assert crash_colliders(np.full(m, -1), leader).sum() == 0


def test_gap_metrics_use_only_live_agent_steps():
    gap = np.array([[30.0, np.inf], [8.0, np.nan], [np.nan, 4.0]])
    present = np.array([[True, True], [True, False], [False, False]])
    assert min_gap(gap, present) == 8.0
    assert close_gap_share(gap, present) == pytest.approx(1 / 3)
    assert math.isnan(close_gap_share(gap, np.zeros_like(present)))


def test_commanded_decel_follows_the_env_action_semantics():
    assert commanded_decel(np.array([0.0, 0.02, 0.5, 2.0]), "brake", 8.0).tolist() == [0.0, 0.0, 4.0, 8.0]
    assert commanded_decel(np.array([0.5, -0.25, -3.0]), "accel", 8.0).tolist() == [0.0, 2.0, 8.0]
    with pytest.raises(ValueError, match="action_mode"):
        commanded_decel(np.zeros(1), "steer", 8.0)


def test_expected_delivery_ratio_without_bursts_is_one_minus_loss():
    params = load_params({"burst_loss": {"enabled": False}, "packet_loss": {"max_range_m": 120.0}})
    d = np.array([5.0, 60.0, 110.0, 130.0])
    exp = expected_delivery_ratio(params, d)
    assert np.allclose(exp[:3], 1.0 - loss_probability(params, d[:3]))
    assert exp[3] == 0.0  # past the hard range nothing is delivered


def test_expected_delivery_ratio_with_bursts_matches_a_simulated_link_chain():
    params = load_params({"burst_loss": {"enabled": True, "mean_burst_length": 3.0, "loss_multiplier": 2.5,
                                         "max_loss_cap": 0.6}})
    d = np.array([10.0, 70.0, 150.0])
    p = loss_probability(params, d)
    rng = np.random.default_rng(0)
    links, steps = 4000, 200
    in_burst = np.zeros((links, d.size), dtype=bool)
    delivered = 0
    c = 1.0 - 1.0 / params.burst_mean_length
    boosted = np.maximum(p, np.minimum(params.burst_max_loss_cap, p * params.burst_loss_multiplier))
    for _ in range(steps):
        cont = in_burst & (rng.random(in_burst.shape) < c)
        lost = rng.random(in_burst.shape) < np.where(cont, boosted, p)
        delivered += (~lost).sum(axis=0)
        in_burst = lost
    simulated = delivered / (links * steps)
    assert np.allclose(expected_delivery_ratio(params, d), simulated, atol=3e-3)
    assert (expected_delivery_ratio(params, d) < 1.0 - p).all()  # bursts cost delivery


def test_pdr_by_distance_bins_links_and_reports_empty_bins():
    d = np.array([5.0, 15.0, 25.0, 49.9, 50.0, 150.0])
    ok = np.array([True, False, True, True, False, False])
    exp = np.array([0.9, 0.9, 0.8, 0.6, 0.5, 0.1])
    bins = pdr_by_distance(d, ok, exp, edges=(0.0, 20.0, 50.0, 100.0, 200.0, math.inf))
    assert [b["links"] for b in bins] == [2, 2, 1, 1, 0]
    assert [b["pdr"] for b in bins[:4]] == [0.5, 1.0, 0.0, 0.0]
    assert bins[1]["expected_pdr"] == pytest.approx(0.7)
    assert math.isnan(bins[4]["pdr"]) and bins[4]["bin"] == "200+ m"


def _record(onset: int = 10, brake_at: int = 13, dt: float = 0.1) -> EpisodeRecord:
    """3 agents: 0 follows 1 follows 2 (hazard). 0 brakes at ``brake_at``; 1 crashes into 2 at step 15."""
    t, m = 20, 3
    present = np.ones((t, m), dtype=bool)
    present[15:, 1:] = False
    gap = np.tile(np.array([20.0, 15.0, np.inf]), (t, 1))
    gap[15:, 1:] = np.nan
    gap[14, 1] = 0.5
    decel = np.zeros((t, m))
    decel[15:, 1:] = np.nan
    decel[brake_at:, 0] = 8.0
    leader = np.tile(np.array([1, 2, -1]), (t, 1))
    reward = np.ones((t, m))
    reward[15:, 1:] = np.nan
    comps = np.zeros((t, m, 2))
    comps[..., 0] = reward
    return EpisodeRecord(
        seed=7, step_length=dt, agents=("A", "B", "C"), present=present, gap=gap, decel_cmd=decel,
        leader_before=leader, reward=reward, components=comps, component_names=("safety", "comfort"),
        n_visible=np.where(present, 1.0, np.nan), collided_step=np.array([-1, 14, 14]),
        onset_step=onset, hazard_slot=2,
        link_step=np.array([9, 11, 11]), link_sender=np.array([2, 2, 1]), link_receiver=np.array([1, 0, 0]),
        link_distance=np.array([25.0, 50.0, 25.0]), link_delivered=np.array([True, True, True]),
        link_expected_pdr=np.array([0.9, 0.8, 0.9]), message_age_ms=np.array([100.0, 200.0, 100.0, 100.0]),
        speed=np.where(present, 10.0, np.nan),
    )


def test_episode_metrics_on_a_scripted_record():
    e = episode_metrics(_record(onset=10, brake_at=13))
    assert e["collision"] and e["crashes"] == 1 and e["n_collided_agents"] == 2
    fol = {f["agent"]: f for f in e["followers"]}
    assert set(fol) == {"A", "B"}
    assert fol["A"]["reaction_step"] == 13 and fol["A"]["reaction_time_s"] == pytest.approx(0.3, abs=1e-12)
    assert fol["A"]["received"] and not fol["B"]["received"]  # B's only message from C came before onset
    assert not fol["B"]["reacted"] and fol["B"]["reaction_time_s"] is None and fol["B"]["collided"]
    assert e["min_gap_m"] == 0.5
    assert e["message_age"]["mean_ms"] == 125.0


def test_aggregate_pools_episodes_with_intervals():
    recs = [_record(brake_at=12), _record(brake_at=14)]
    agg = aggregate(recs)
    assert agg["episodes"] == 2 and agg["collision_rate"]["k"] == 2
    assert agg["crashes_total"] == 2
    assert agg["follower_reacted_rate"]["k"] == 2 and agg["follower_reacted_rate"]["n"] == 4
    assert agg["reaction_time_s"]["mean"] == pytest.approx(0.3)
    assert agg["reaction_time_s"]["min"] == pytest.approx(0.2) and agg["reaction_time_s"]["max"] == pytest.approx(0.4)
    assert agg["pdr_by_distance"][1]["links"] == 4  # 25 m links of both episodes in the 20-50 m bin
    assert agg["message_age"]["n"] == 8


def test_mean_speed_and_stopped_share_count_only_live_agent_steps():
    present = np.array([[True, True, False], [True, False, False], [True, True, True]])
    speed = np.array([[10.0, 0.0, 99.0], [20.0, 99.0, np.nan], [0.4, 0.5, 6.0]])  # 99: absent, must not count
    assert mean_speed(speed, present) == pytest.approx((10 + 0 + 20 + 0.4 + 0.5 + 6) / 6)
    assert stopped_share(speed, present) == pytest.approx(2 / 6)  # 0.0 and 0.4 are below 0.5 m/s; 0.5 is not
    assert math.isnan(mean_speed(speed, np.zeros_like(present)))
    assert math.isnan(mean_speed(None, present)) and math.isnan(stopped_share(None, present))


def test_a_parked_convoy_reports_zero_speed_and_all_time_stopped():
    rec = _record()
    rec.speed = np.where(rec.present, 0.0, np.nan)
    e = episode_metrics(rec)
    assert e["mean_speed_mps"] == 0.0 and e["stopped_share"] == 1.0
    moving = episode_metrics(_record())
    assert moving["mean_speed_mps"] == 10.0 and moving["stopped_share"] == 0.0
    agg = aggregate([rec, _record()])
    assert agg["mean_speed_mps"]["mean"] == 5.0 and agg["stopped_share"]["mean"] == 0.5


def _result(policy: str, speed: float, stopped: float) -> dict:
    agg = aggregate([_record()])
    agg["mean_speed_mps"] = {"mean": speed, "lo": None, "hi": None, "n": 1}
    agg["stopped_share"] = {"mean": stopped, "lo": None, "hi": None, "n": 1}
    return {"policy": policy, "radio": "measured", "aggregate": agg}


def test_a_policy_far_slower_than_no_v2v_is_said_to_stop_the_traffic():
    from roadsense_marl.evaluation.runner import compare_speed, summary_table

    results = [_result("model", 0.0, 1.0), _result("no-v2v", 11.5, 0.0), _result("rule-v2v", 9.0, 0.1)]
    warnings = compare_speed(results)
    assert warnings == [
        "WARNING: model (measured radio): model stops the traffic: mean speed 0.0 vs 11.5 m/s for no-v2v "
        "(stopped 100% of agent-time); its collision and reaction figures are not evidence of safe driving"
    ]  # rule-v2v at 78 % of no-v2v's speed is not flagged
    assert compare_speed([_result("model", 6.0, 0.0), _result("no-v2v", 11.5, 0.0)]) == []  # 52 %: not far below
    assert compare_speed([_result("model", 0.0, 1.0)]) == []  # no reference without the no-v2v baseline
    table = summary_table({"scenario": "convoy_6", "seeds": [1, 2], "results": results, "findings": warnings})
    assert "mean speed" in table.splitlines()[1] and "0.0 m/s" in table and "11.5 m/s" in table
    assert table.splitlines()[-1].startswith("WARNING: model (measured radio): model stops the traffic")


def test_a_follower_already_braking_at_onset_reacts_only_when_it_brakes_afresh():
    decel = np.zeros((20, 3))
    decel[:, 0] = 3.0          # always braking: never a fresh reaction
    decel[5:12, 1] = 3.0       # braking through the onset (10), pauses at 12, brakes again at 15
    decel[15:, 1] = 3.0
    decel[13:, 2] = 3.0        # not braking at onset, starts at 13
    assert reaction_steps(decel, onset_step=10).tolist() == [-1, 15, 13]
    assert reaction_steps(decel, onset_step=19).tolist() == [-1, -1, -1]


def test_pdr_by_cbr_bins_links_by_the_receivers_busy_ratio():
    cbr = np.array([0.0, 0.05, 0.15, 0.5, 0.5, 0.99, 1.0])
    ok = np.array([True, True, False, True, False, False, True])
    bins = pdr_by_cbr(cbr, ok)
    assert [b["links"] for b in bins] == [2, 1, 0, 2, 0, 2]
    assert bins[0]["pdr"] == 1.0 and bins[1]["pdr"] == 0.0 and bins[3]["pdr"] == 0.5
    assert math.isnan(bins[2]["pdr"]) and bins[5]["bin"] == "0.8-1"  # CBR 1.0 falls in the last bin
    assert bins[5]["cbr_mean"] == pytest.approx(0.995) and bins[0]["cbr_mean"] == pytest.approx(0.025)
    assert pdr_by_cbr(np.empty(0), np.empty(0, bool)) == []


# ---- hard braking, followers' speed deficit, released hazards, paired tests --------------------

def _record_with_motion(release_step: int | None = None) -> EpisodeRecord:
    """:func:`_record` plus actual motion: A (further back) decelerates 3 m/s^2 from step 13 and
    drives 4 m/s from then on; B (the direct follower) brakes only 2 m/s^2 and crashes at step 14."""
    rec = _record(onset=10, brake_at=13)
    accel = np.where(rec.present, 0.0, np.nan)
    accel[13:, 0] = -3.0
    accel[11:15, 1] = -2.0
    speed = np.where(rec.present, 10.0, np.nan)
    speed[13:, 0] = 4.0
    rec.accel, rec.speed, rec.release_step = accel, speed, release_step
    return rec


def test_hard_braking_is_read_from_the_actual_deceleration_from_the_step_after_onset():
    a = np.zeros((6, 3))
    a[2, 0] = -2.5  # exactly the threshold: counts
    a[1, 1] = -9.0  # at onset (step 1): not after it
    a[4, 1] = -2.49
    np.testing.assert_array_equal(hard_brake_steps(a, onset_step=1), [2, -1, -1])
    assert HARD_BRAKE_DECEL == 2.5 and HARD_BRAKE_WITHIN_S == 1.0


def test_direct_follower_is_reported_apart_from_followers_further_back():
    e = episode_metrics(_record_with_motion())
    fol = {f["agent"]: f for f in e["followers"]}
    assert fol["B"]["direct"] and not fol["A"]["direct"]
    assert fol["B"]["hard_brake_time_s"] is None  # 2 m/s^2 is not a deceleration that matters
    assert fol["A"]["hard_brake_time_s"] == pytest.approx(0.3, abs=1e-12)
    assert e["direct_hard_brake_within_1s"] is False
    assert e["hazard_released"] is False


def test_speed_deficit_counts_a_crashed_follower_as_stopped_to_the_end():
    e = episode_metrics(_record_with_motion())
    # A: 3 steps at 10 m/s then 7 at 4 m/s -> deficit 6; B: 4 steps at 10, then crashed (v=0) for 6 steps
    assert e["follower_speed_deficit_mps"] == pytest.approx((7 * 6.0 + 6 * 10.0) / 20)
    assert e["follower_stopped_share"] == pytest.approx(6 / 20)
    assert follower_speed_deficit(None, np.ones((3, 1), bool), np.array([-1]), np.array([True]), 1) == (
        pytest.approx(math.nan, nan_ok=True), pytest.approx(math.nan, nan_ok=True))


def test_released_and_never_released_hazards_are_aggregated_separately():
    recs = [_record_with_motion(release_step=12), _record_with_motion(release_step=None), _record_with_motion(99)]
    eps = [episode_metrics(r) for r in recs]
    assert [e["hazard_released"] for e in eps] == [True, False, False]  # step 99 is after the 20-step episode
    agg = aggregate(recs, eps)
    assert agg["by_release"]["released"]["episodes"] == 1 and agg["by_release"]["never_released"]["episodes"] == 2
    assert agg["direct_hard_brake_within_1s"]["k"] == 0 and agg["direct_hard_brake_within_1s"]["n"] == 3
    assert agg["further_hard_brake_within_1s"]["k"] == 3 and agg["further_hard_brake_within_1s"]["n"] == 3


def test_mcnemar_exact_matches_the_binomial_by_hand():
    assert mcnemar_exact(0, 0) == {"b": 0, "c": 0, "p": 1.0, "p_worse": 1.0}
    r = mcnemar_exact(1, 6)  # P(X <= 1), X ~ Bin(7, 1/2) = 8/128; two-sided 16/128
    assert r["p"] == pytest.approx(16 / 128) and r["p_worse"] == pytest.approx(127 / 128)
    assert mcnemar_exact(6, 0)["p_worse"] == pytest.approx(1 / 64)
    with pytest.raises(ValueError, match="b=-1"):
        mcnemar_exact(-1, 2)


def test_paired_difference_uses_the_t_interval_of_per_seed_differences():
    d = paired_difference([11.0, 12.0, 13.0, math.nan], [10.0, 10.0, 10.0, 10.0], better=+1)
    assert d["n"] == 3 and d["mean"] == pytest.approx(2.0)
    half = t_quantile_975(2) * 1.0 / math.sqrt(3)
    assert d["lo"] == pytest.approx(2.0 - half) and d["hi"] == pytest.approx(2.0 + half)
    assert d["better"] is False and d["worse"] is False  # the interval includes 0
    lower = paired_difference([0.1, 0.1, 0.2], [0.5, 0.6, 0.5], better=-1)
    assert lower["better"] and not lower["worse"]
    same = paired_difference([1.0, 2.0], [1.0, 2.0])
    assert not same["better"] and not same["worse"]


def test_paired_comparison_refuses_different_seeds_and_counts_discordant_crashes():
    a = [{"seed": 1, "collision": True}, {"seed": 2, "collision": False}, {"seed": 3, "collision": False}]
    b = [{"seed": 3, "collision": True}, {"seed": 2, "collision": False}, {"seed": 1, "collision": False}]
    p = paired_comparison(a, b)
    assert p["pairs"] == 3 and p["collision"]["b"] == 1 and p["collision"]["c"] == 1
    assert p["mean_speed_mps"]["n"] == 0
    with pytest.raises(ValueError, match="same seeds"):
        paired_comparison(a, b[:2])


def test_across_seeds_reports_each_seed_and_mean_and_range():
    from roadsense_marl.evaluation.seeds import across_seeds, across_seeds_markdown

    def res(k, speed, diff):
        return {"aggregate": {"collision_rate": {"k": k, "rate": k / 500}, "mean_speed_mps": {"mean": speed}},
                "paired": {"rule-v2v": {"mean_speed_mps": {"mean": diff}, "collision": {"p": 1.0}}}}

    t = across_seeds({"0": res(0, 11.0, 0.5), "1": res(2, 12.0, 1.5), "2": res(1, 10.0, None)})
    assert t["seeds"] == ["0", "1", "2"] and t["rows"]["1"]["collision episodes"] == 2
    s = t["summary"]["mean speed (m/s)"]
    assert (s["mean"], s["min"], s["max"], s["n"]) == (11.0, 10.0, 12.0, 3)
    d = t["summary"]["speed vs rule-v2v (m/s, paired)"]
    assert (d["mean"], d["n"]) == (1.0, 2)  # seed 2's difference is undefined: left out, not zero
    assert t["summary"]["followers' stopped share"]["n"] == 0
    md = across_seeds_markdown(t)
    assert "| collision episodes | 0 | 2 | 1 | 1 | 0 .. 2 |" in md
    with pytest.raises(ValueError, match="at least one"):
        across_seeds({})
