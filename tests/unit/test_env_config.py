import numpy as np
import pytest

from roadsense_marl.env.config import EnvConfig, HazardConfig, make_env_config
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
    p.write_text("scenario: convoy_3\nmax_peers: 4\nhazard:\n  step_window: [10, 20]\n")
    cfg = make_env_config(p, max_steps=50)
    assert (cfg.scenario, cfg.max_peers, cfg.max_steps, cfg.hazard.step_window) == ("convoy_3", 4, 50, (10, 20))


def test_missing_yaml_names_the_file():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        make_env_config("nope.yaml")


def test_shipped_env_configs_load():
    from roadsense_marl.paths import configs_dir

    files = sorted((configs_dir() / "env").glob("*.yaml"))
    assert files, "configs/env/ ships at least one config"
    for f in files:
        assert isinstance(make_env_config(f), EnvConfig)


def test_hazard_plan_is_seeded_and_in_range():
    cfg = HazardConfig(step_window=(10, 20), release_prob=0.5)
    plans = [draw_hazard_plan(cfg, np.random.default_rng(s), 0.1) for s in range(200)]
    assert plans[3] == draw_hazard_plan(cfg, np.random.default_rng(3), 0.1)
    assert all(10 <= p.onset_step <= 20 and 3 <= p.decel <= 10 and 5 <= p.brake_steps <= 15 for p in plans)
    released = sum(p.release_step is not None for p in plans)
    assert 60 < released < 140  # binomial(200, 0.5): 6 sigma is about 42


def test_hazard_probability_zero_means_no_hazard():
    plan = draw_hazard_plan(HazardConfig(probability=0.0), np.random.default_rng(0), 0.1)
    assert not plan.active and not hazard_controls(plan, 10**6) and not override_active(plan, 10**6)


def test_hazard_timeline_and_vehicle_pick():
    plan = draw_hazard_plan(HazardConfig(step_window=(5, 5), release_prob=1.0, release_after_range=(2, 2)), np.random.default_rng(1), 0.1)
    assert [hazard_controls(plan, s) for s in (4, 5, plan.release_step - 1, plan.release_step)] == [False, True, True, False]
    assert override_active(plan, 8) and not override_active(plan, 7)
    assert not override_active(plan, plan.release_step), "the override ends when the hazard vehicle is released"
    held = draw_hazard_plan(HazardConfig(step_window=(5, 5), release_prob=0.0), np.random.default_rng(1), 0.1)
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
