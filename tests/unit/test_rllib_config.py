"""The RLlib engine's config: SB3 names translated to PPOConfig's, bad keys named; works without Ray installed."""

from __future__ import annotations

import importlib.util

import pytest

from roadsense_marl.cli import main as cli_main
from roadsense_marl.training.rllib_train import rllib_settings
from roadsense_marl.training.train import check_train_config, load_train_config, parse_learning_rate


def test_the_shipped_sb3_config_translates_to_rllib_names():
    cfg = load_train_config("marl_ppo")
    settings, ray_init = rllib_settings(cfg)
    ppo = cfg["ppo"]
    # the shipped lin_ rate: its schedule in env steps comes from the rllib: section, from the same rate to 0
    lr, linear = parse_learning_rate(ppo["learning_rate"])
    assert linear and settings["lr"] == cfg["rllib"]["lr"] and settings["lr"][0] == [0, lr] and settings["lr"][-1][1] == 0.0
    assert settings["lambda_"] == ppo["gae_lambda"]
    assert settings["clip_param"] == ppo["clip_range"] and settings["entropy_coeff"] == ppo["ent_coef"]
    # RLlib cuts minibatches from agent-step rows but checks them against its env-step batch: the
    # translated batch_size would be refused, so the rllib: section sets the largest size it accepts
    assert ppo["batch_size"] > settings["train_batch_size_per_learner"]
    assert settings["minibatch_size"] == settings["train_batch_size_per_learner"] and settings["num_epochs"] == ppo["n_epochs"]
    assert settings["num_env_runners"] == cfg["vec_env"]["num_envs"]
    assert settings["train_batch_size_per_learner"] == ppo["n_steps"] * cfg["vec_env"]["num_envs"]
    assert settings["seed"] == cfg["seed"] and ray_init == {}


def test_the_rllib_section_overrides_and_sets_the_ray_address():
    cfg = check_train_config({"total_timesteps": 10, "ppo": {"learning_rate": 1e-3},
                              "rllib": {"lr": 5e-4, "num_env_runners": 4, "address": "auto"}})
    settings, ray_init = rllib_settings(cfg)
    assert settings["lr"] == 5e-4 and settings["num_env_runners"] == 4 and "address" not in settings
    assert ray_init == {"address": "auto"}


def test_a_constant_learning_rate_becomes_lr_and_a_linear_one_needs_an_rllib_schedule():
    settings, _ = rllib_settings(check_train_config({"total_timesteps": 10, "ppo": {"learning_rate": 3e-4}}))
    assert settings["lr"] == 3e-4
    with pytest.raises(ValueError, match=r"ppo.learning_rate='lin_0.001' .*over env steps.*rllib: \{lr: \[\[0, 0.001\]"):
        rllib_settings(check_train_config({"total_timesteps": 10, "ppo": {"learning_rate": "lin_0.001"}}))
    with pytest.raises(ValueError, match=r"rllib.lr is 0.001, a constant"):
        rllib_settings(check_train_config({"total_timesteps": 10, "ppo": {"learning_rate": "lin_0.001"},
                                           "rllib": {"lr": 0.001}}))
    given = [[0, 0.001], [1000, 0.0]]
    settings, _ = rllib_settings(check_train_config({"total_timesteps": 10, "ppo": {"learning_rate": "lin_0.001"},
                                                     "rllib": {"lr": given}}))
    assert settings["lr"] == given


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"ppo": {"use_sde": True}}, r"ppo.use_sde=True .*no RLlib counterpart"),
        ({"ppo": {"target_kl": 0.02}}, r"ppo.target_kl=0.02 .*no RLlib counterpart"),
        ({"rllib": {"address": "auto", "num_cpus": 2}}, "rllib.num_cpus .*local Ray only"),
    ],
)
def test_settings_rllib_cannot_honour_are_named(cfg, match):
    with pytest.raises(ValueError, match=match):
        rllib_settings(check_train_config({"total_timesteps": 10, **cfg}))


def test_engine_and_rllib_section_are_checked():
    with pytest.raises(ValueError, match="engine .*'sb3' or 'rllib', got 'tf'"):
        check_train_config({"total_timesteps": 10, "engine": "tf"})
    with pytest.raises(ValueError, match="'rllib' .*must be a mapping"):
        check_train_config({"total_timesteps": 10, "rllib": [1]})


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed here")
def test_engine_rllib_without_ray_is_one_line_naming_the_extra(tmp_path, capsys):
    code = cli_main(["train", "--engine", "rllib", "--total-timesteps", "10", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "roadsense-marl[rllib]" in err and not (tmp_path / "run").exists()


def test_export_names_an_rllib_run_instead_of_missing_zips(tmp_path):
    import yaml

    from roadsense_marl.training.runs import export_policy

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"engine": "rllib", "total_timesteps": 10}))
    with pytest.raises(ValueError, match="is an RLlib run: export reads SB3 models only"):
        export_policy(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs Ray RLlib (make test-rllib)")
def test_the_shipped_config_is_a_ppo_config_rllib_accepts():
    from roadsense_marl.training.rllib_train import check_rllib_config
    from roadsense_marl.training.train import resolve_config

    cfg, env_cfg, _ = resolve_config("marl_ppo")
    config = check_rllib_config(cfg, env_cfg)
    config.validate()  # RLlib's own checks (minibatch_size <= train_batch_size_per_learner, ...)

