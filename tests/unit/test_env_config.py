import numpy as np
import pytest

import warnings

from roadsense_marl.env.config import EnvConfig, HazardConfig, make_env_config, onset_steps, seconds_to_steps
from roadsense_marl.env.hazards import draw_hazard_plan, hazard_controls, override_active, pick_hazard_vehicle


def test_defaults_are_valid():
    cfg = make_env_config()
    assert cfg.scenario == "convoy_6" and cfg.max_peers == 8 and cfg.cone_half_angle_deg == 45.0


def test_unknown_key_names_the_key_and_suggests():
    with pytest.raises(ValueError, match=r"unknown env config key 'max_peer'.*Did you mean 'max_peers'"):
        make_env_config(max_peer=4)


def test_unknown_nested_key():
    with pytest.raises(ValueError, match=r"unknown hazard key 'probabilty'"):
        make_env_config(hazard={"probabilty": 0.5})


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"backend": "sumo"}, "backend must be one of"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_peers": 2.5}, "max_peers"),
        ({"cone_half_angle_deg": "wide"}, "cone_half_angle_deg"),
        ({"cone_half_angle_deg": 200}, "cone_half_angle_deg"),
        ({"action_mode": "steer"}, "action_mode"),
        ({"render_mode": "ansi"}, "render_mode"),
        ({"hazard": {"probability": 1.5}}, "hazard.probability"),
        ({"hazard": {"step_window": [10, 5]}}, "hazard.step_window"),
        ({"hazard": {"onset_window_s": [10, 5]}}, "hazard.onset_window_s"),
        ({"hazard": {"override_delay_s": -0.1}}, "hazard.override_delay_s"),
        ({"max_time_s": 0}, "max_time_s"),
        ({"max_time_s": 30.0, "max_steps": 300}, "max_steps or max_time_s, not both"),
        ({"reward": {"collision": float("nan")}}, "reward.collision"),
        ({"domain_randomization": "yes"}, "domain_randomization"),
        ({"penetration_rate": 1.2}, r"penetration_rate must be in \[0.0, 1.0\], got 1.2"),
        ({"penetration_rate": "half"}, "penetration_rate must be a finite number"),
        ({"agents": {"class": "passenger"}}, r"unknown agents key\(s\) \['class'\]"),
        ({"equipped": {"vclass": "lorry"}}, "equipped.vclass pattern 'lorry' matches no SUMO vClass"),
        ({"max_other_vehicles": 2.5}, "max_other_vehicles must be a whole number >= 0"),
    ],
)
def test_bad_values_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_env_config(**kwargs)


def test_cone_off_and_nested_merge():
    cfg = make_env_config({"hazard": {"probability": 0.5}}, cone_half_angle_deg="off", hazard={"release_prob": 0.0})
    assert cfg.cone_half_angle_deg is None
    assert cfg.hazard.probability == 0.5 and cfg.hazard.release_prob == 0.0


def test_yaml_file_loads(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("scenario: convoy_3\nmax_peers: 4\nhazard:\n  onset_window_s: [1.0, 2.0]\n")
    cfg = make_env_config(p, max_steps=50)
    assert (cfg.scenario, cfg.max_peers, cfg.max_steps, cfg.hazard.onset_window_s) == ("convoy_3", 4, 50, (1.0, 2.0))


def test_missing_yaml_names_the_file():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        make_env_config("nope.yaml")


def test_shipped_env_configs_load():
    from roadsense_marl.paths import configs_dir

    files = sorted((configs_dir() / "env").glob("*.yaml"))
    assert files, "configs/env/ ships at least one config"
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)  # shipped configs use no deprecated key
            cfg = make_env_config(f)
        assert isinstance(cfg, EnvConfig) and cfg.hazard.step_window is None and cfg.hazard.override_delay_steps is None


def test_hazard_plan_is_seeded_and_in_range():
    cfg = HazardConfig(onset_window_s=(1.0, 2.0), release_prob=0.5)
    plans = [draw_hazard_plan(cfg, np.random.default_rng(s), 0.1) for s in range(200)]
    assert plans[3] == draw_hazard_plan(cfg, np.random.default_rng(3), 0.1)
    assert all(10 <= p.onset_step <= 20 and 3 <= p.decel <= 10 and 5 <= p.brake_steps <= 15 for p in plans)
    released = sum(p.release_step is not None for p in plans)
    assert 60 < released < 140  # binomial(200, 0.5): 6 sigma is about 42


def test_hazard_probability_zero_means_no_hazard():
    plan = draw_hazard_plan(HazardConfig(probability=0.0), np.random.default_rng(0), 0.1)
    assert not plan.active and not hazard_controls(plan, 10**6) and not override_active(plan, 10**6)


def test_hazard_timeline_and_vehicle_pick():
    plan = draw_hazard_plan(HazardConfig(onset_window_s=(0.5, 0.5), release_prob=1.0, release_after_range=(2, 2)),
                            np.random.default_rng(1), 0.1)
    assert [hazard_controls(plan, s) for s in (4, 5, plan.release_step - 1, plan.release_step)] == [False, True, True, False]
    assert override_active(plan, 8) and not override_active(plan, 7)
    assert not override_active(plan, plan.release_step), "the override ends when the hazard vehicle is released"
    held = draw_hazard_plan(HazardConfig(onset_window_s=(0.5, 0.5), release_prob=0.0), np.random.default_rng(1), 0.1)
    assert held.release_step is None and override_active(held, 10**6)
    ids = ("a", "b", "c")
    # b follows a, c follows b: a and b have followers.
    assert pick_hazard_vehicle(plan, ids, np.array([-1, 0, 1])) in (0, 1)
    assert pick_hazard_vehicle(plan, ids, np.array([-1, -1, -1])) is None


def test_agent_and_radio_keys_load_from_yaml_and_round_trip(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("agents: {vclass: [passenger, truck], exclude: {id: 'bus*'}}\npenetration_rate: 0.25\n"
                 "equipped: {vtype: car}\nmax_other_vehicles: 4\n")
    cfg = make_env_config(p)
    assert cfg.agents.vclass == ("passenger", "truck") and cfg.agents.exclude.id == ("bus*",)
    assert (cfg.penetration_rate, cfg.equipped.vtype, cfg.max_other_vehicles) == (0.25, ("car",), 4)
    plain = cfg.to_dict()
    assert plain["agents"] == {"vclass": ["passenger", "truck"], "exclude": {"id": ["bus*"]}}
    assert make_env_config(plain) == cfg
    defaults = make_env_config()
    assert defaults.agents is None and defaults.penetration_rate == 1.0 and defaults.to_dict()["agents"] is None


def test_seconds_become_steps_at_the_run_step_length():
    assert [seconds_to_steps(0.3, dt) for dt in (0.1, 0.05, 0.25, 0.5, 1.0)] == [3, 6, 2, 1, 1]
    assert seconds_to_steps(300.0, 0.1) == 3000 and seconds_to_steps(0.0, 0.1) == 0
    assert onset_steps((15.0, 25.0), 0.1) == (150, 250)  # the v1 default window in steps
    assert onset_steps((15.0, 25.0), 0.5) == (30, 50) and onset_steps((15.0, 25.0), 0.3) == (50, 83)
    assert onset_steps((15.2, 15.5), 1.0) == (16, 16), "a window narrower than a step: the first step after it"


@pytest.mark.parametrize("step_length", [0.05, 0.1, 0.5, 1.0])
def test_the_default_hazard_happens_at_the_same_time_at_any_step_length(step_length):
    plans = [draw_hazard_plan(HazardConfig(), np.random.default_rng(s), step_length) for s in range(50)]
    onsets = np.array([p.onset_step for p in plans]) * step_length
    assert onsets.min() >= 15.0 - 1e-9 and onsets.max() <= 25.0 + 1e-9
    delays = np.array([p.override_step - p.onset_step for p in plans]) * step_length
    assert np.all(delays >= 0.3 - 1e-9) and np.all(delays < 0.3 + step_length)  # the first step at or after 0.3 s


def test_the_v1_default_hazard_plan_is_unchanged_at_a_tenth_of_a_second():
    old = HazardConfig(step_window=(150, 250), override_delay_steps=3)
    for seed in range(20):
        assert draw_hazard_plan(HazardConfig(), np.random.default_rng(seed), 0.1) == draw_hazard_plan(
            old, np.random.default_rng(seed), 0.1)


def test_deprecated_step_keys_convert_with_the_run_step_length_and_warn_with_the_new_key():
    cfg = make_env_config(hazard={"step_window": [20, 40], "override_delay_steps": 2})
    for step_length, window, delay in ((0.5, "[10.0, 20.0]", "1"), (0.1, "[2.0, 4.0]", "0.2")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hz = cfg.hazard.in_seconds(step_length)
        text = [str(w.message) for w in caught if w.category is FutureWarning]
        assert len(text) == 2
        assert f"step length {step_length:g} s it is hazard.onset_window_s: {window}" in text[0]
        assert f"step length {step_length:g} s it is hazard.override_delay_s: {delay} " in text[1]
        assert hz.step_window is None and hz.override_delay_steps is None
    assert hz.onset_window_s == (2.0, 4.0) and hz.override_delay_s == 0.2
    with pytest.warns(FutureWarning, match=r"override_delay_s: null"):
        off = make_env_config(hazard={"override_delay_steps": None})
    assert off.hazard.override_delay_s is None
    plain = make_env_config().hazard
    assert plain.in_seconds(0.1) is plain  # nothing deprecated: no change, no warning


def test_episode_length_in_steps_or_seconds():
    assert make_env_config().max_steps == 500 and make_env_config().max_time_s is None
    cfg = make_env_config(max_time_s=30)
    assert cfg.max_time_s == 30.0 and cfg.max_steps is None
    # an override in one unit replaces the base's length in the other
    assert make_env_config(cfg, max_steps=40).max_steps == 40
    assert make_env_config({"max_steps": 40}, max_time_s=2.5).max_time_s == 2.5
    base = make_env_config(EnvConfig(hazard=HazardConfig(step_window=(1, 2))).to_dict(), hazard={"onset_window_s": [3, 4]})
    assert base.hazard.step_window is None and base.hazard.onset_window_s == (3.0, 4.0)


def test_a_deprecated_step_key_beside_its_seconds_key_is_an_error_naming_both():
    with pytest.raises(ValueError, match=r"hazard.step_window .* and hazard.onset_window_s .* both given"):
        make_env_config(hazard={"step_window": [50, 100], "onset_window_s": [15, 25]})
    with pytest.raises(ValueError, match=r"hazard.override_delay_steps .* and hazard.override_delay_s .* both given"):
        make_env_config(hazard={"override_delay_steps": 3, "override_delay_s": 0.3})


def test_a_config_with_a_deprecated_step_key_round_trips_through_to_dict():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        cfg = make_env_config(hazard={"step_window": [50, 100], "override_delay_steps": 2})
        plain = cfg.to_dict()
        assert list(plain["hazard"]["step_window"]) == [50, 100] and "onset_window_s" not in plain["hazard"]
        assert plain["hazard"]["override_delay_steps"] == 2 and "override_delay_s" not in plain["hazard"]
        assert make_env_config(plain) == cfg


def test_a_mistake_in_a_config_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("penetration_rate: 2\n")
    with pytest.raises(ValueError, match=r"env config file '.*bad.yaml': penetration_rate must be in \[0.0, 1.0\], got 2"):
        make_env_config(bad)
    bad.write_text("max_step: 10\n")
    with pytest.raises(ValueError, match=r"env config file '.*bad.yaml': .*max_step"):
        make_env_config(str(bad))
