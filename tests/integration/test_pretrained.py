"""Policies as plain weights + manifest: round trip with SB3, env-version guard, `pretrained` in the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from roadsense_marl import parallel_env, pretrained
from roadsense_marl.env.version import ENV_VERSION
from roadsense_marl.evaluation import evaluate
from roadsense_marl.evaluation.runner import resolve_model

ENV_CFG = {"scenario": "convoy_6", "max_steps": 60, "hazard": {"step_window": [20, 30]}}
POLICY = {"peer_embed_dim": 16, "log_std_init": -2.0}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A PPO with the Deep Sets extractor after 128 training steps on real SUMO (traci: leaves libsumo free)."""
    import gymnasium
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure

    from roadsense_marl.policies import create_deep_set_policy_kwargs

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    env = gymnasium.make("RoadSense-Convoy-v1", ego_id="V001", backend="traci", **ENV_CFG)
    try:
        model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu",
                    policy_kwargs=create_deep_set_policy_kwargs(**POLICY))
        model.set_logger(configure(str(tmp_path_factory.mktemp("log")), ["csv"]))
        model.learn(total_timesteps=128)
    finally:
        env.close()
        torch.set_num_threads(threads)
    return model


@pytest.fixture()
def folder(tiny_model, tmp_path):
    return pretrained.export_policy(tiny_model, tmp_path / "policy", policy_options=POLICY, env_config=ENV_CFG,
                                    command="pytest", metrics={"note": "tiny"})


def test_exported_policy_acts_exactly_like_the_sb3_model(tiny_model, folder):
    manifest = json.loads((folder / pretrained.MANIFEST).read_text())
    assert manifest["env_version"] == ENV_VERSION and manifest["policy"] == POLICY
    assert manifest["observation_shapes"] == {"ego": [6], "peers": [8, 6], "peer_mask": [8]}
    env = parallel_env(backend="traci", **ENV_CFG)
    try:
        policy = pretrained.load_policy(folder, env)
        obs, _ = env.reset(seed=3)
        for _ in range(15):
            acts = policy(env, obs)
            batch = {k: np.stack([obs[a][k] for a in env.agents]) for k in ("ego", "peers", "peer_mask")}
            want, _ = tiny_model.predict(batch, deterministic=True)
            assert np.array_equal(np.stack([acts[a] for a in env.agents]), np.asarray(want, np.float32))
            obs, *_ = env.step(acts)
    finally:
        env.close()


def test_policy_folder_evaluates_with_its_env_config(folder, tmp_path):
    m = evaluate(folder, episodes=1, seed=5, out=tmp_path / "eval", baselines=False, plots=False, verbose=False,
                 backend="traci")
    assert m["policy"] == "model" and m["env_config"]["max_steps"] == 60
    assert m["results"][0]["episodes"][0]["steps"] == 60


def test_policy_of_another_env_version_is_refused_naming_both(folder):
    manifest = json.loads((folder / pretrained.MANIFEST).read_text())
    manifest["env_version"] = ENV_VERSION - 1
    (folder / pretrained.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=rf"env contract v{ENV_VERSION - 1}, but this env is v{ENV_VERSION}.*retrain"):
        resolve_model(folder)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda f: (f / pretrained.MANIFEST).write_text("{"), "not valid JSON"),
        (lambda f: (f / pretrained.MANIFEST).write_text('{"format_version": 1}'), "missing key"),
        (lambda f: (f / pretrained.WEIGHTS).unlink(), "no policy.pt"),
    ],
    ids=["bad-json", "missing-key", "no-weights"],
)
def test_broken_policy_folder_is_a_clear_error(folder, change, match):
    change(folder)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        pretrained.read_manifest(folder)


def test_weights_that_would_run_code_are_refused(folder):
    import torch

    torch.save({"x": pretrained.Path("evil")}, folder / pretrained.WEIGHTS)  # a pickled object, not a tensor
    env = parallel_env(backend="traci", **ENV_CFG)
    try:
        with pytest.raises(ValueError, match="not a plain tensor file"):
            pretrained.load_policy(folder, env)
    finally:
        env.close()


def test_export_command_writes_a_policy_folder_from_a_run(tiny_model, tmp_path):
    import yaml

    run = tmp_path / "run"
    run.mkdir()
    tiny_model.save(run / "final_model.zip")
    (run / "config.yaml").write_text(yaml.safe_dump({"env": ENV_CFG, "policy": POLICY}))
    res = subprocess.run([sys.executable, "-m", "roadsense_marl.cli", "export", str(run), "--out", str(tmp_path / "p")],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert res.returncode == 0, res.stderr
    assert pretrained.read_manifest(tmp_path / "p")["env_config"] == ENV_CFG


@pytest.mark.skipif(pretrained.is_policy_folder(pretrained.SHIPPED_DIR), reason="a pretrained policy is shipped")
@pytest.mark.parametrize("command", ["evaluate", "record"])
def test_pretrained_without_a_shipped_policy_is_one_line_with_the_command_to_make_one(tmp_path, command):
    args = ["pretrained", "--episodes", "1"] + (["--out", str(tmp_path / "x.gif")] if command == "record" else ["--out", str(tmp_path)])
    res = subprocess.run([sys.executable, "-m", "roadsense_marl.cli", command, *args], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no pretrained policy is shipped" in lines[0] and "roadsense-marl export" in lines[0]


@pytest.mark.skipif(not pretrained.is_policy_folder(pretrained.SHIPPED_DIR),
                    reason="no pretrained policy shipped yet (issue 15: trained once the env contract settles)")
def test_shipped_policy_was_trained_under_the_current_env_version():
    manifest = pretrained.read_manifest(pretrained.SHIPPED_DIR)
    pretrained.check_env_version(manifest, pretrained.SHIPPED_DIR)  # raises with how to retrain
    assert manifest["metrics"], "the shipped policy keeps its evaluation metrics beside it"


def test_record_drives_with_a_policy_folder(folder, tmp_path):
    out = tmp_path / "ep.gif"
    res = subprocess.run([sys.executable, "-m", "roadsense_marl.cli", "record", str(folder), "--out", str(out),
                          "--max-steps", "20"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert res.returncode == 0, res.stderr
    assert "21 frames" in res.stdout and out.stat().st_size > 1000
