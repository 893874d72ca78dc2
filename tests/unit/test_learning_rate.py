"""The training config's learning rate: a constant or rl-baselines3-zoo's ``lin_<x>`` (x down to 0 over the run)."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.utils import LinearSchedule

from roadsense_marl.training.train import check_train_config, parse_learning_rate, sb3_learning_rate


@pytest.mark.parametrize(("value", "expected"), [
    (3e-4, (3e-4, False)), (1, (1.0, False)), (np.float32(0.5), (0.5, False)), (np.int64(2), (2.0, False)),
    ("1e-3", (0.001, False)),  # YAML 1.1 reads 1e-3 (no dot) as a string
    ("lin_0.001", (0.001, True)), ("lin_1e-3", (0.001, True)), ("lin_.5", (0.5, True)),
])
def test_learning_rate_is_a_constant_or_a_linear_decay(value, expected):
    lr, linear = parse_learning_rate(value)
    assert type(lr) is float and (lr, linear) == expected


@pytest.mark.parametrize("bad", ["fast", "lin_", "lin_x", "lin_-0.001", "lin_0", "lin_nan", "lin_inf", "lin_1_000",
                                 "lin_ 1e-3 ", "cos_0.001", "0", "-1e-3", 0, -1e-3, float("inf"), float("nan"),
                                 10**400, True, np.bool_(True), None, [0.001]])
def test_a_bad_learning_rate_names_the_key_and_both_valid_forms(bad):
    with pytest.raises(ValueError, match=r"ppo.learning_rate must be a number > 0 or 'lin_' \+ a number > 0 .*got"):
        check_train_config({"total_timesteps": 10, "ppo": {"learning_rate": bad}})


def test_linear_learning_rate_is_sb3s_linear_schedule_from_x_at_the_start_to_zero_at_the_end():
    sched = sb3_learning_rate("lin_0.001")
    assert isinstance(sched, LinearSchedule)
    # SB3 passes the remaining progress: 1 at the start of learn(), 0 at total_timesteps
    assert [sched(p) for p in (1.0, 0.5, 0.0)] == pytest.approx([0.001, 0.0005, 0.0])
    assert sb3_learning_rate(0.002) == 0.002
