import numpy as np
import pytest

from roadsense_marl.env.config import RewardConfig, make_env_config
from roadsense_marl.env.rewards import (
    ConvoyReward, collision_rewards, comfort_penalty, compute_rewards, gap_rate, required_decel,
)

W = RewardConfig()
DT = 0.1


def _r(gap, accel=0.0, speed=10.0, leader_speed=None, signal=0.0, imposed=False, w=W, dt=DT):
    """One agent; ``leader_speed`` None: the same speed as the agent (no closing), NaN: no leader."""
    lead = speed if leader_speed is None else leader_speed
    if not np.isfinite(gap):
        lead = np.nan
    total, comps = compute_rewards(
        np.array([gap], float), np.array([accel], float), np.array([speed], float), np.array([lead], float),
        np.array([signal], float), np.array([imposed]), w, dt,
    )
    return total[0], {k: v[0] for k, v in comps.items()}


@pytest.mark.parametrize(
    "gap,leader_speed,expected",
    [(2.0, 10.0, -5.0), (5.0, 10.0, -5.0), (12.5, 10.0, -0.5), (19.999, 10.0, 4.0 - 9 * 0.001 / 15), (20.0, 10.0, 4.0),
     (35.0, 10.0, 4.0), (35.1, 10.0, -2.0), (np.inf, np.nan, 0.0)],
)
def test_gap_rate_by_gap(gap, leader_speed, expected):
    assert gap_rate(np.array([gap]), np.array([leader_speed]), W)[0] == pytest.approx(expected)


def test_keeping_far_back_from_a_stopped_leader_is_not_lagging():
    assert gap_rate(np.array([60.0]), np.array([0.0]), W)[0] == W.gap_good
    assert gap_rate(np.array([60.0]), np.array([5.0]), W)[0] == W.gap_far


def test_every_term_is_a_rate_per_second_times_the_step_length():
    args = dict(gap=14.0, accel=-3.3, speed=12.0, leader_speed=11.0, signal=0.0)
    t1, c1 = _r(**args, dt=0.1)
    t2, c2 = _r(**args, dt=0.05)
    assert t1 == pytest.approx(2 * t2)
    for k in c1:
        assert c1[k] == pytest.approx(2 * c2[k]), k
    # a second of following at a good gap earns gap_good + progress whatever the step length
    for dt in (0.05, 0.1, 0.5):
        total, _ = _r(gap=25.0, speed=15.0, dt=dt)
        assert total * round(1 / dt) == pytest.approx(W.gap_good + W.progress * 15.0 / 30.0)


@pytest.mark.parametrize("d,expected", [(0.0, 0), (0.5, 0), (1.75, -1.0), (3.0, -2.0), (3.75, -3.5), (4.5, -5.0), (9.0, -5.0)])
def test_comfort_piecewise(d, expected):
    assert comfort_penalty(np.array([d]))[0] == pytest.approx(expected)


def test_comfort_scaled_down_close_to_leader_for_unrequired_braking():
    _, c = _r(gap=8.0, accel=-3.0)
    assert c["comfort"] == pytest.approx(-2.0 * 0.2 * DT)
    _, c = _r(gap=5.5, accel=-3.0)
    assert c["comfort"] == pytest.approx(-2.0 * 0.1 * DT)


def test_required_deceleration_stops_the_closing_two_metres_short():
    assert required_decel(np.array([22.0]), np.array([4.0]), np.array([0.0]))[0] == pytest.approx(16 / 40)
    assert required_decel(np.array([1.0]), np.array([4.0]), np.array([0.0]))[0] == pytest.approx(16 / 0.2)
    z = np.zeros(3)
    assert required_decel(np.array([22.0, np.inf, 10.0]), np.array([-1.0, 5.0, np.nan]), z).tolist() == [0.0, 0.0, 0.0]


def test_required_deceleration_keeps_a_one_second_headway_so_a_slow_creep_must_brake():
    # 22 m at 10 m/s: 10 m of headway leave 10 m to stop a 4 m/s closing
    assert required_decel(np.array([22.0]), np.array([4.0]), np.array([10.0]))[0] == pytest.approx(16 / 20)
    # 7 m behind a car held at 5.9 m/s at 7.0 m/s: inside the headway, so braking is required
    assert required_decel(np.array([7.0]), np.array([1.1]), np.array([7.0]))[0] == pytest.approx(1.21 / 0.2)


def test_braking_the_situation_requires_costs_no_comfort_or_hard_brake_charge():
    # warned: full braking is free, at any gap
    _, c = _r(gap=50.0, accel=-8.0, signal=0.6)
    assert c["comfort"] == 0 and c["hard_brake"] == 0
    # closing at 5 m/s on a leader 20 m ahead needs 25/36 = 0.69 m/s^2 >= 0.5: required
    _, c = _r(gap=20.0, accel=-4.0, speed=15.0, leader_speed=10.0)
    assert c["comfort"] == 0
    # closing at 2 m/s needs 4/36 = 0.11: not required, charged
    _, c = _r(gap=20.0, accel=-4.0, speed=12.0, leader_speed=10.0)
    assert c["comfort"] == pytest.approx((-2.0 - 3.0 * 1.0 / 1.5) * DT)


def test_hard_braking_with_large_gap_and_no_need():
    assert _r(gap=50, accel=-1.0)[1]["hard_brake"] == pytest.approx(-2 * DT)
    assert _r(gap=50, accel=-5.0)[1]["hard_brake"] == pytest.approx(-4 * DT)
    assert _r(gap=30, accel=-5.0)[1]["hard_brake"] == 0


def test_ignoring_a_warning_is_penalised_and_early_reaction_is_off_by_default():
    _, c = _r(gap=25, accel=0.0, speed=10, leader_speed=8.0, signal=0.8)
    assert c["ignore_warning"] == pytest.approx(-16.0 * DT) and c["early_reaction"] == 0  # -20 x signal 0.8
    _, c = _r(gap=25, accel=-1.0, speed=10, leader_speed=8.0, signal=0.8)
    assert c["ignore_warning"] == pytest.approx(-16.0 * 0.6 * DT)  # a small brake is a partial reaction
    _, c = _r(gap=25, accel=-2.5, speed=10, leader_speed=8.0, signal=0.8)
    assert c["ignore_warning"] == 0 and c["early_reaction"] == 0  # 2.5 m/s^2: a reaction that matters
    _, c = _r(gap=25, accel=0.0, speed=8.0, leader_speed=8.0, signal=0.8)
    assert c["ignore_warning"] == 0  # not closing: nothing to react to
    _, c = _r(gap=25, accel=-2.0, speed=10, leader_speed=8.0, signal=0.8, w=RewardConfig(early_reaction=2.0))
    assert c["early_reaction"] == pytest.approx(1.6 * DT)
    _, c = _r(gap=25, accel=0.0, speed=10, leader_speed=8.0, signal=0.05)
    assert c["ignore_warning"] == 0  # below the signal threshold


def test_imposed_motion_gets_only_the_safety_and_progress_terms():
    total, c = _r(gap=50, accel=-8.0, speed=10.0, leader_speed=12.0, signal=1.0, imposed=True)
    assert c["comfort"] == c["hard_brake"] == c["ignore_warning"] == c["early_reaction"] == 0
    assert total == pytest.approx(c["safety"] + c["progress"])
    assert c["safety"] == pytest.approx(W.gap_far * DT)


def test_total_is_sum_of_components():
    total, c = _r(gap=14, accel=-3.3, speed=10.0, leader_speed=9.0, signal=0.5)
    assert total == pytest.approx(sum(c.values()))


def test_progress_counts_only_the_speed_the_leader_allows():
    # following at the leader's speed: own speed
    assert _r(gap=25, speed=15.0)[1]["progress"] == pytest.approx(W.progress * 0.5 * DT)
    # closing on a stopped leader: nothing, exactly as much as standing still behind it
    assert _r(gap=25, speed=15.0, leader_speed=0.0)[1]["progress"] == 0.0
    assert _r(gap=25, speed=0.0, leader_speed=0.0)[1]["progress"] == 0.0
    # slower than the leader: own speed; far behind (lagging) or no leader: own speed
    assert _r(gap=25, speed=9.0, leader_speed=15.0)[1]["progress"] == pytest.approx(W.progress * 0.3 * DT)
    assert _r(gap=50, speed=15.0, leader_speed=0.0)[1]["progress"] == pytest.approx(W.progress * 0.5 * DT)
    assert _r(gap=np.inf, speed=15.0)[1]["progress"] == pytest.approx(W.progress * 0.5 * DT)


def test_only_the_collider_is_penalised_and_the_victim_gets_its_own_weight():
    collided = np.array([True, True, False, True])
    victim = np.array([False, True, False, False])
    assert collision_rewards(collided, victim, W).tolist() == [-100.0, 0.0, 0.0, -100.0]
    w = RewardConfig(collision_victim=-7.0)
    assert collision_rewards(collided, victim, w).tolist() == [-100.0, -7.0, 0.0, -100.0]


class _View:
    def __init__(self, victim):
        self.config = make_env_config(reward={"collision_victim": -3.0})
        self.ended_victim = np.asarray(victim)


def test_terminal_rewards_read_the_victim_role_from_the_view():
    total, comps = ConvoyReward("numpy").terminal(_View([False, True, False]), np.array([True, True, False]))
    assert total.tolist() == [-100.0, -3.0, 0.0] and comps["safety"].tolist() == total.tolist()
    assert all(not comps[k].any() for k in comps if k != "safety")


def test_a_new_reward_weight_is_validated_by_name():
    with pytest.raises(ValueError, match="reward.collision_victim must be a finite number"):
        make_env_config(reward={"collision_victim": float("nan")})
