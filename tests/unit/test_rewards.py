import numpy as np
import pytest

from roadsense_marl.env.config import RewardConfig
from roadsense_marl.env.rewards import comfort_penalty, compute_rewards, safety_reward

W = RewardConfig()


def _r(gap, accel=0.0, speed=10.0, closing=0.0, signal=0.0, collided=False, imposed=False):
    total, comps = compute_rewards(
        np.array([gap], float), np.array([collided]), np.array([accel], float), np.array([speed], float),
        np.array([closing], float), np.array([signal], float), np.array([imposed]), W,
    )
    return total[0], {k: v[0] for k, v in comps.items()}


@pytest.mark.parametrize(
    "gap,expected",
    [(2.0, -5.0), (5.0, -5.0), (12.5, -0.5), (19.999, 4.0 - 9 * 0.001 / 15), (20.0, 4.0), (35.0, 4.0), (35.1, -2.0), (np.inf, 0.0)],
)
def test_safety_by_gap(gap, expected):
    assert safety_reward(np.array([gap]), np.array([False]), W)[0] == pytest.approx(expected)


def test_collision_overrides_gap():
    assert safety_reward(np.array([25.0]), np.array([True]), W)[0] == -100


@pytest.mark.parametrize("d,expected", [(0.0, 0), (0.5, 0), (1.75, -1.0), (3.0, -2.0), (3.75, -3.5), (4.5, -5.0), (9.0, -5.0)])
def test_comfort_piecewise(d, expected):
    assert comfort_penalty(np.array([d]))[0] == pytest.approx(expected)


def test_comfort_scaled_down_close_to_leader():
    _, c = _r(gap=8.0, accel=-3.0)
    assert c["comfort"] == pytest.approx(-2.0 * 0.2)
    _, c = _r(gap=5.5, accel=-3.0)
    assert c["comfort"] == pytest.approx(-2.0 * 0.1)


def test_hard_braking_with_large_gap():
    assert _r(gap=50, accel=-1.0)[1]["hard_brake"] == -2
    assert _r(gap=50, accel=-5.0)[1]["hard_brake"] == -4
    assert _r(gap=30, accel=-5.0)[1]["hard_brake"] == 0


def test_ignoring_a_warning_is_penalised_and_early_reaction_rewarded():
    _, c = _r(gap=25, accel=0.0, speed=10, closing=2.0, signal=0.8)
    assert c["ignore_warning"] == pytest.approx(-4.0) and c["early_reaction"] == 0
    _, c = _r(gap=25, accel=-2.0, speed=10, closing=2.0, signal=0.8)
    assert c["ignore_warning"] == 0 and c["early_reaction"] == pytest.approx(1.6)
    _, c = _r(gap=10, accel=-2.0, signal=0.8)
    assert c["early_reaction"] == 0  # gap not above 15 m
    _, c = _r(gap=25, accel=0.0, closing=2.0, signal=0.05)
    assert c["ignore_warning"] == 0  # below the signal threshold


def test_imposed_motion_gets_only_the_safety_term():
    total, c = _r(gap=50, accel=-8.0, signal=1.0, closing=1.0, imposed=True)
    assert total == c["safety"] == -2.0
    assert c["comfort"] == c["hard_brake"] == c["ignore_warning"] == 0


def test_total_is_sum_of_components():
    total, c = _r(gap=14, accel=-3.3, closing=1.0, signal=0.5)
    assert total == pytest.approx(sum(c.values()))


def test_progress_term_is_off_by_default_and_scales_with_speed():
    assert _r(gap=25, speed=15.0)[1]["progress"] == 0.0
    total, c = compute_rewards(
        np.array([25.0]), np.array([False]), np.array([0.0]), np.array([15.0]), np.array([0.0]),
        np.array([0.0]), np.array([False]), RewardConfig(progress=4.0),
    )
    assert c["progress"][0] == pytest.approx(2.0) and total[0] == pytest.approx(6.0)
