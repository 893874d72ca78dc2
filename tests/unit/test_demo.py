"""The demo's plain verdict on hand-made evaluation results (the demo itself takes minutes)."""

from __future__ import annotations

from roadsense_marl.demo import EVAL_EPISODE, verdict


def _metrics(model_speed: float | None, model_rate: float) -> dict:
    def agg(speed, rate):
        return {"mean_speed_mps": {"mean": speed}, "collision_rate": {"rate": rate}}

    return {"results": [
        {"policy": "model", "aggregate": agg(model_speed, model_rate)},
        {"policy": "no-v2v", "aggregate": agg(12.7, 1.0)},
        {"policy": "rule-v2v", "aggregate": agg(8.1, 0.0)},
    ]}


def test_a_parked_convoy_is_called_out_whatever_its_collision_rate():
    lines = verdict(_metrics(0.0, 0.0))
    assert lines[0] == "model does NOT drive: mean speed 0.0 vs 12.7 m/s for no-v2v (it parks the convoy)"
    assert not any("uses the V2V warning" in x for x in lines)


def test_a_driving_model_with_fewer_crashes_than_no_v2v_but_more_than_the_rule_says_both():
    lines = verdict(_metrics(11.0, 0.42))
    assert lines[0].startswith("model drives at 11.0 m/s")
    assert lines[-1].endswith("but a demo-length run does not yet match rule-v2v")


def test_a_driving_model_that_crashes_like_no_v2v_is_told_to_train_longer():
    assert "train longer" in verdict(_metrics(12.0, 1.0))[-1]


def test_the_demo_evaluates_on_the_envs_standard_episode():
    from roadsense_marl.env.config import make_env_config

    default = make_env_config()
    assert EVAL_EPISODE["max_steps"] == default.max_steps
    assert tuple(EVAL_EPISODE["hazard"]["onset_window_s"]) == tuple(default.hazard.onset_window_s)
