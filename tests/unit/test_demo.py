"""The demo's plain verdict on hand-made evaluation results (the demo itself takes minutes)."""

from __future__ import annotations

from roadsense_marl.demo import EVAL_EPISODE, verdict


def _metrics(model_speed: float | None, model_rate: float, paired: dict | None = None) -> dict:
    def agg(speed, rate):
        return {"mean_speed_mps": {"mean": speed}, "collision_rate": {"rate": rate}}

    return {"results": [
        {"policy": "model", "aggregate": agg(model_speed, model_rate), **({"paired": {"rule-v2v": paired}} if paired else {})},
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
    assert lines[2] == "the model uses the V2V warning (fewer crashes than no-v2v)"
    assert lines[-1] == "verdict: unknown: no paired comparison with rule-v2v on the same seeds"


def test_a_driving_model_that_crashes_like_no_v2v_is_told_to_train_longer():
    assert "train longer" in verdict(_metrics(12.0, 1.0))[2]


def _paired(b: int, c: int, speed: tuple[float, float, float], pairs: int = 500) -> dict:
    from roadsense_marl.evaluation.metrics import mcnemar_exact

    mean, lo, hi = speed
    return {"pairs": pairs, "collision": {**mcnemar_exact(b, c), "policy": b, "baseline": c},
            "mean_speed_mps": {"mean": mean, "lo": lo, "hi": hi, "n": pairs, "better": lo > 0, "worse": hi < 0}}


def test_no_extra_crashes_and_a_speed_interval_above_zero_is_safe_and_faster():
    lines = verdict(_metrics(11.2, 0.0, _paired(0, 0, (0.9, 0.7, 1.1))))
    assert lines[-3].startswith("safety: at least as safe as rule-v2v: 0 vs 0 collision episodes on the same 500 seeds")
    assert lines[-2].startswith("speed: faster than rule-v2v: +0.90 m/s")
    assert lines[-1] == "verdict: the model is at least as safe as rule-v2v and faster"


def test_significantly_more_crashes_than_the_rule_is_called_less_safe():
    lines = verdict(_metrics(11.2, 0.2, _paired(12, 0, (0.9, 0.7, 1.1))))
    assert lines[-3].startswith("safety: LESS safe than rule-v2v: 12 vs 0")
    assert lines[-1] == "verdict: the model is NOT at least as safe as rule-v2v and faster: it is less safe than rule-v2v"


def test_one_extra_crash_is_not_called_safe_even_though_not_significant():
    lines = verdict(_metrics(11.2, 0.01, _paired(1, 0, (0.9, 0.7, 1.1))))
    assert lines[-3].startswith("safety: NOT shown as safe as rule-v2v")
    assert "not as safe as rule-v2v" in lines[-1]


def test_a_speed_interval_including_zero_is_not_called_faster():
    lines = verdict(_metrics(10.4, 0.0, _paired(0, 0, (0.1, -0.2, 0.4))))
    assert lines[-2].startswith("speed: NOT shown faster than rule-v2v: +0.10 m/s")
    assert lines[-1] == "verdict: the model is NOT at least as safe as rule-v2v and faster: it is not shown faster than rule-v2v"
    slower = verdict(_metrics(9.0, 0.0, _paired(0, 0, (-1.0, -1.2, -0.8))))
    assert slower[-1].endswith("it is slower than rule-v2v")


def test_the_demo_evaluates_on_the_envs_standard_episode():
    from roadsense_marl.env.config import make_env_config

    from roadsense_marl.evaluation.runner import standard_episode

    default = make_env_config()
    assert EVAL_EPISODE["max_steps"] == default.max_steps
    assert tuple(EVAL_EPISODE["hazard"]["onset_window_s"]) == tuple(default.hazard.onset_window_s)
    # the whole default hazard section: a model trained with other hazard keys is still evaluated on the default
    trained = make_env_config(max_steps=400, hazard={"onset_window_s": [6.0, 12.0], "release_prob": 0.1})
    assert make_env_config(trained, **EVAL_EPISODE) == make_env_config(**standard_episode()) == default
    assert set(EVAL_EPISODE["hazard"]) == set(default.to_dict()["hazard"])  # every hazard key, a new one too
