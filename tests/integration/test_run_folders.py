"""Run folders on real SUMO + SB3: nothing a user made is changed without asking, models carry their
env contract, Ctrl-C and a dead worker end in one line with the model saved, and --resume carries on."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from roadsense_marl.cli import main as cli_main
from roadsense_marl.env.observations import EGO_FEATURES, PEER_FEATURES
from roadsense_marl.env.version import ENV_ID, ENV_VERSION
from roadsense_marl.training.runs import (
    ContractMismatch,
    RunFolderError,
    export_policy,
    load_exported_policy,
    read_model_record,
)
from roadsense_marl.training.train import resume, train

ROOT = Path(__file__).resolve().parents[2]
TINY_PPO = {"n_steps": 32, "batch_size": 64, "n_epochs": 1}
ENV = {"scenario": "convoy_3", "max_steps": 60, "hazard": {"onset_window_s": [2.0, 3.0]}, "max_peers": 4}


def _config(out: Path, **over) -> dict:
    cfg = {"total_timesteps": 384, "seed": 3, "out": str(out), "checkpoint_every": 192, "env": dict(ENV),
           "vec_env": {"num_envs": 2}, "ppo": dict(TINY_PPO)}
    cfg.update(over)
    return cfg


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _progress_steps(run: Path) -> list[int]:
    with (run / "progress.csv").open(newline="") as f:
        return [int(float(r["time/total_timesteps"])) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One tiny finished run (libsumo, two worker processes), shared read-only by the tests below."""
    return train(_config(tmp_path_factory.mktemp("runs") / "run"))


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(run, dst)
    return dst


# ---- an existing run is never changed unless asked -------------------------------------------------

def test_training_into_a_finished_run_is_refused_and_changes_nothing(finished_run):
    before = _digest(finished_run)
    with pytest.raises(RunFolderError, match=r"already holds a training run \(status finished, 384 steps\).*--resume.*--overwrite"):
        train(_config(finished_run))
    # even --overwrite with a config that fails (bad PPO key, other max_peers) changes nothing
    with pytest.raises(ValueError, match=r"unknown ppo key 'learning_rat'.*Did you mean 'learning_rate'"):
        train(_config(finished_run, env={**ENV, "max_peers": 8}, ppo={**TINY_PPO, "learning_rat": 1e-3}), overwrite=True)
    assert _digest(finished_run) == before
    assert yaml.safe_load((finished_run / "config.yaml").read_text())["env"]["max_peers"] == 4


def test_a_run_that_fails_validation_leaves_no_folder(tmp_path):
    for bad in ({"policy": {"peer_embed": 8}}, {"ppo": {"learning_rate": "fast"}}, {"ppo": {"batch_size": 0}}):
        with pytest.raises(ValueError):
            train(_config(tmp_path / "never", **bad))
        assert not (tmp_path / "never").exists()


def test_a_folder_that_is_not_a_run_is_never_touched(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(RunFolderError, match=r"not a training run folder"):
        train(_config(tmp_path / "mine"), overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_the_whole_run_with_no_leftovers(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    (run / "checkpoints" / "model_999999_steps.zip").write_bytes(b"old")
    train(_config(run, checkpoint_every=0, total_timesteps=192), overwrite=True)
    assert not (run / "checkpoints").exists()  # no checkpoints of the old run mixed in
    assert _progress_steps(run) == [192]
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "finished" and state["num_timesteps"] == 192


def test_a_linear_learning_rate_falls_to_zero_at_total_timesteps_and_a_resume_ends_at_zero_too(tmp_path):
    from roadsense_marl.training.ppo import MaskedPPO

    def rates(run: Path) -> list[float]:
        with (run / "progress.csv").open(newline="") as f:
            return [float(r["train/learning_rate"]) for r in csv.DictReader(f) if r.get("train/learning_rate")]

    def last_rate(run: Path) -> float:  # SB3 writes no row for the last update: read its optimizer's rate
        return MaskedPPO.load(str(run / "final_model.zip"), device="cpu").policy.optimizer.param_groups[0]["lr"]

    run = train(_config(tmp_path / "run", checkpoint_every=0, ppo={**TINY_PPO, "learning_rate": "lin_0.001"}))
    # convoy_3: a rollout is 3 slots x 2 envs x 32 = 192 agent-steps; updates at 192 and 384 of 384
    assert rates(run) == pytest.approx([0.0005]) and last_rate(run) == 0.0
    resume(run, total_timesteps=768)  # the saved schedule, over the resumed run's whole 768 agent-steps
    assert rates(run) == pytest.approx([0.0005, 0.00025]) and last_rate(run) == 0.0


# ---- the env contract ------------------------------------------------------------------------------

def test_config_yaml_and_every_model_record_the_same_env_contract(finished_run):
    contract = yaml.safe_load((finished_run / "config.yaml").read_text())["contract"]
    assert contract["env_id"] == ENV_ID and contract["env_version"] == ENV_VERSION
    assert contract["ego_features"] == list(EGO_FEATURES) and contract["peer_features"] == list(PEER_FEATURES)
    assert contract["max_peers"] == 4 and contract["action_mode"] == "brake" and contract["max_decel"] == 8.0
    assert contract["radio_source"] == "measured" and contract["radio_sensor_noise"]["gps_std_m"] == pytest.approx(2.958877)
    assert set(contract["reward"]) >= {"collision", "progress"}
    for model in [finished_run / "final_model.zip", *(finished_run / "checkpoints").glob("*.zip")]:
        assert read_model_record(model)["contract"] == contract


def test_a_brake_mode_model_on_an_accel_mode_env_is_refused_naming_both_modes(finished_run, tmp_path):
    from roadsense_marl.evaluation import evaluate

    with pytest.raises(ContractMismatch, match=r"action_mode: model 'brake', env 'accel'"):
        evaluate(finished_run, episodes=1, out=tmp_path / "e", env_kwargs={"action_mode": "accel"}, verbose=False)
    for path in (finished_run / "final_model.zip", finished_run / "final_model"):  # with or without the suffix
        with pytest.raises(ContractMismatch, match=r"max_peers: model 4, env 8"):
            evaluate(path, episodes=1, out=tmp_path / "e", env_kwargs={"max_peers": 8}, verbose=False)
    with pytest.raises(ContractMismatch, match=r"radio_sensor_noise.gps_std_m: model 2.958877, env 0.0"):
        evaluate(finished_run, episodes=1, out=tmp_path / "e", config={**ENV, "radio": "ideal"}, verbose=False)
    assert not (tmp_path / "e" / "metrics.json").exists()


def test_a_run_made_under_another_env_version_is_refused_for_resume_and_evaluate(finished_run, tmp_path):
    from roadsense_marl.evaluation import evaluate

    run = _copy(finished_run, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["contract"]["env_version"] = 0
    cfg["contract"]["ego_features"][0] = "speed_kmh"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    with pytest.raises(ContractMismatch, match=rf"env_version: run 0, this version {ENV_VERSION}; ego_features: run \['speed_kmh'"):
        resume(run, total_timesteps=768)
    with pytest.raises(ContractMismatch, match=rf"env_version: model {ENV_VERSION}, config.yaml beside it 0"):
        evaluate(run, episodes=1, out=tmp_path / "e", verbose=False)


# ---- export: weights that run no code on load ------------------------------------------------------

def test_exported_policy_acts_exactly_like_the_trained_model_and_evaluates(finished_run, tmp_path):
    from stable_baselines3 import PPO

    from roadsense_marl.evaluation import evaluate

    out = export_policy(finished_run, tmp_path / "exported")
    assert sorted(p.name for p in out.iterdir()) == ["policy.json", "policy.pt"]
    meta = json.loads((out / "policy.json").read_text())
    assert meta["contract"]["action_mode"] == "brake" and meta["num_timesteps"] == 384
    model = PPO.load(finished_run / "final_model.zip", device="cpu")
    policy = load_exported_policy(out, model.observation_space, model.action_space)
    rng = np.random.default_rng(0)
    batch = {k: rng.uniform(-1, 1, (5, *s.shape)).astype(np.float32) for k, s in model.observation_space.spaces.items()}
    batch["peer_mask"] = (batch["peer_mask"] > 0).astype(np.float32)
    np.testing.assert_array_equal(policy.predict(batch, deterministic=True)[0], model.predict(batch, deterministic=True)[0])
    m = evaluate(out, episodes=1, seed=7, out=tmp_path / "eval", baselines=False, plots=False,
                 env_kwargs={"max_steps": 30}, verbose=False)
    assert m["env_config"]["max_peers"] == 4 and m["results"][0]["policy"] == "model"


def test_record_drives_with_an_exported_policy(finished_run, tmp_path):
    exported = export_policy(finished_run, tmp_path / "exported")
    out = tmp_path / "ep.gif"
    res = subprocess.run([sys.executable, "-m", "roadsense_marl.cli", "record", str(exported), "--out", str(out),
                          "--max-steps", "20"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert "21 frames" in res.stdout and out.stat().st_size > 1000


def test_exported_weights_that_would_run_code_are_refused_without_running_it(finished_run, tmp_path):
    import pickle

    from stable_baselines3 import PPO

    out = export_policy(finished_run, tmp_path / "exported")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (out / "policy.pt").write_bytes(pickle.dumps({"w": Payload()}, protocol=2))
    model = PPO.load(finished_run / "final_model.zip", device="cpu")
    with pytest.raises(ValueError, match=r"could not load the weights.*[Ww]eights.only"):
        load_exported_policy(out, model.observation_space, model.action_space)
    assert not marker.exists()


# ---- command-line errors are one line, before anything runs or is written --------------------------

def _one_line_error(capsys, *argv: str) -> str:
    code = cli_main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    "section,needle",
    [
        ({"policy": {"pooling": "max", "peer_embed": 8}}, "unknown policy key 'peer_embed' in|Did you mean 'peer_embed_dim'"),
        ({"ppo": {"learning_rate": "fast"}}, "ppo.learning_rate must be a number > 0 or 'lin_' + a number > 0"),
        ({"ppo": {"batch_size": 0}}, "ppo.batch_size must be >= 2, got 0"),
        ({"ppo": {"n_step": 32}}, "unknown ppo key 'n_step'"),
        ({"vec_env": {"num_env": 2}}, "unknown vec_env key 'num_env' in|Did you mean 'num_envs'"),
        ({"totl_timesteps": 5}, "unknown key 'totl_timesteps'"),
    ],
)
def test_train_config_mistakes_are_one_line_naming_the_key(section, needle, tmp_path, capsys):
    cfg = {"total_timesteps": 100, "env": dict(ENV), **section}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    line = _one_line_error(capsys, "train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o"))
    assert all(part in line for part in needle.split("|")) and "c.yaml" in line, line
    assert not (tmp_path / "o").exists()


def test_out_under_a_regular_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    line = _one_line_error(capsys, "train", "--total-timesteps", "10", "--out", str(tmp_path / "f" / "run"))
    assert "is a regular file, not a folder" in line
    line = _one_line_error(capsys, "evaluate", "--policy", "no-v2v", "--out", str(tmp_path / "f" / "eval"))
    assert "is a regular file, not a folder" in line


def test_evaluate_out_that_cannot_be_written_fails_before_the_first_episode(capsys, monkeypatch):
    import roadsense_marl.evaluation.runner as runner

    def no_episodes(*a, **k):
        raise AssertionError("an episode ran before the output folder was checked")

    monkeypatch.setattr(runner, "run_policy", no_episodes)
    line = _one_line_error(capsys, "evaluate", "--policy", "rule-v2v", "--out", "/proc/roadsense-eval")
    assert "/proc/roadsense-eval" in line and "not writable" in line
    with pytest.raises(ValueError, match="not writable"):
        runner.evaluate(policy="rule-v2v", out="/proc/roadsense-eval", verbose=False)


def test_bad_yaml_in_a_run_folder_is_one_line_naming_the_file(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    (run / "config.yaml").write_text("env: {scenario: [convoy_3\n")
    line = _one_line_error(capsys, "evaluate", str(run), "--out", str(tmp_path / "e"))
    assert f"{run / 'config.yaml'} is not valid YAML" in line
    line = _one_line_error(capsys, "train", "--resume", str(run))
    assert f"{run / 'config.yaml'} is not valid YAML" in line


def test_resume_with_options_that_would_change_the_run_is_refused(finished_run, capsys):
    line = _one_line_error(capsys, "train", "--resume", str(finished_run), "--seed", "5", "--scenario", "convoy_6")
    assert "drop --scenario, --seed" in line


def test_evaluate_help_says_to_load_only_trusted_models(capsys):
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "load only models you trust" in out.lower() and "roadsense-marl export" in out
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "Load only models you trust" in readme and "weights_only=True" in readme


# ---- Ctrl-C, a dead worker, and --resume (real subprocesses, libsumo workers) ------------------------

def _start_train(config: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-m", "roadsense_marl.cli", "train", "--config", str(config), "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env, cwd=ROOT,
    )


def _wait_for_rollouts(proc: subprocess.Popen, out: Path, rows: int, timeout_s: float = 180.0) -> None:
    seg = out / "tb" / "progress.csv"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if seg.is_file() and len(seg.read_text().splitlines()) >= rows + 1:
            return
        time.sleep(0.1)
    raise AssertionError("training made no progress")


def _group_members(pgid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(d.name))
    return out


@pytest.fixture
def long_config(tmp_path) -> Path:
    f = tmp_path / "long.yaml"
    f.write_text(yaml.safe_dump({"total_timesteps": 10_000_000, "seed": 1, "checkpoint_every": 0, "env": ENV,
                                 "vec_env": {"num_envs": 2}, "ppo": TINY_PPO}))
    return f


def test_ctrl_c_saves_the_model_exits_130_in_one_line_and_resume_carries_on(long_config, tmp_path):
    out = tmp_path / "run"
    proc = _start_train(long_config, out)
    try:
        _wait_for_rollouts(proc, out, rows=2)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    lines = err.strip().splitlines()
    assert proc.returncode == 130 and len(lines) == 1, err
    assert lines[0].startswith("roadsense-marl train: interrupted") and "--resume" in lines[0]
    time.sleep(0.2)
    assert _group_members(proc.pid) == []  # workers (and their libsumo simulations) are gone
    state = json.loads((out / "run.json").read_text())
    stopped = state["num_timesteps"]
    assert state["status"] == "interrupted" and stopped >= 384
    assert (out / state["latest_model"]).is_file() and read_model_record(out / state["latest_model"])["num_timesteps"] == stopped
    before = _progress_steps(out)
    assert before and before[-1] <= stopped

    config_before = yaml.safe_load((out / "config.yaml").read_text())
    target = stopped + 384
    resume(out, total_timesteps=target)
    after = _progress_steps(out)
    assert after[: len(before)] == before  # the old rows are kept as they were
    new = after[len(before):]
    assert new and new[0] > stopped and new == sorted(new) and new[-1] >= target  # and the count carries on
    state = json.loads((out / "run.json").read_text())
    assert state["status"] == "finished" and state["num_timesteps"] >= target and state["resumed_at"] == stopped
    config_after = yaml.safe_load((out / "config.yaml").read_text())
    assert {**config_after, "total_timesteps": None} == {**config_before, "total_timesteps": None}
    assert config_after["total_timesteps"] == target


def test_a_killed_worker_is_one_line_naming_it_and_the_model_is_saved(long_config, tmp_path):
    out = tmp_path / "run"
    proc = _start_train(long_config, out)
    try:
        _wait_for_rollouts(proc, out, rows=1)
        workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    lines = err.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, err
    assert "worker process died:" in lines[0] and "worker 1 (pid " + str(workers[1]) in lines[0]
    assert "SIGKILL" in lines[0]
    state = json.loads((out / "run.json").read_text())
    assert state["status"] == "failed" and (out / state["latest_model"]).is_file()
    time.sleep(0.2)
    assert _group_members(proc.pid) == []


def test_ctrl_c_during_evaluate_is_one_line_and_exit_130(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "roadsense_marl.cli", "evaluate", "--no-progress", "--policy", "rule-v2v", "--episodes", "500",
         "--no-plots", "--out", str(tmp_path / "eval")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env, cwd=ROOT,
    )
    try:
        time.sleep(6.0)  # imports, then episodes are running
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and err.strip().splitlines() == ["roadsense-marl evaluate: interrupted"], err
    assert not (tmp_path / "eval" / "metrics.json").exists()
    time.sleep(0.2)
    assert _group_members(proc.pid) == []


def test_a_checkpoint_zip_is_evaluated_on_the_env_config_it_records(finished_run, tmp_path):
    from roadsense_marl.evaluation import evaluate

    m = evaluate(finished_run / "checkpoints" / "model_192_steps.zip", episodes=1, seed=3, out=tmp_path / "e",
                 baselines=False, plots=False, env_kwargs={"max_steps": 30}, verbose=False)
    assert m["env_config"]["max_peers"] == 4 and m["env_config"]["scenario"] == "convoy_3"  # not the defaults (8, convoy_6)


def test_a_config_file_completed_on_the_command_line_is_checked_with_those_values(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ppo:\n  learning_rat: 0.001\n")
    err = _one_line_error(capsys, "train", "--config", str(cfg), "--total-timesteps", "64", "--out", str(tmp_path / "r"))
    assert "unknown ppo key 'learning_rat'" in err and str(cfg) in err and "learning_rate" in err
    cfg.write_text("seed: 1\n")
    err = _one_line_error(capsys, "train", "--config", str(cfg), "--out", str(tmp_path / "r"))
    assert "total_timesteps must be a whole number >= 1, got None" in err and "--total-timesteps" in err
    assert not (tmp_path / "r").exists()


# ---- several training seeds: checked before any episode --------------------------------------------

def _seeded_copies(run: Path, tmp_path: Path, seeds) -> list[Path]:
    out = []
    for s in seeds:
        dst = tmp_path / f"run{s}"
        shutil.copytree(run, dst)
        cfg = yaml.safe_load((dst / "config.yaml").read_text())
        cfg["seed"] = s
        (dst / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        out.append(dst)
    return out


def test_training_seeds_are_labelled_by_the_seed_each_run_records(finished_run, tmp_path):
    from roadsense_marl.evaluation.seeds import evaluate_seeds

    runs = _seeded_copies(finished_run, tmp_path, (9, 7, 8))
    doc = evaluate_seeds(runs, episodes=1, out=tmp_path / "e", verbose=False, plots=False, max_steps=40)
    assert doc["labels"] == ["9", "7", "8"] and doc["across_seeds"]["seeds"] == ["9", "7", "8"]
    assert sorted(p.name for p in (tmp_path / "e").glob("seed_*")) == ["seed_7", "seed_8", "seed_9"]


def test_the_same_model_twice_or_models_from_different_envs_are_refused_before_any_episode(finished_run, tmp_path):
    from roadsense_marl.evaluation.seeds import evaluate_seeds

    a, b = _seeded_copies(finished_run, tmp_path, (1, 2))
    with pytest.raises(ValueError, match=r"is the same model as"):
        evaluate_seeds([a, b, a], episodes=1, out=tmp_path / "e1", verbose=False)
    cfg = yaml.safe_load((b / "config.yaml").read_text())
    cfg["env"]["scenario"] = "convoy_6"  # the runs were trained on convoy_3
    (b / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    c = _seeded_copies(finished_run, tmp_path, (3,))[0]
    with pytest.raises(ValueError, match=r"trained on another env .*differing keys: \['scenario'\]"):
        evaluate_seeds([a, c, b], episodes=1, out=tmp_path / "e2", verbose=False)
    assert not (tmp_path / "e1").exists() and not (tmp_path / "e2").exists()


@pytest.mark.parametrize("argv, words", [
    (["--policy", "rule-v2v", "--episode-shape", "training", "--max-steps", "50"],
     "--max-steps 50 and --episode-shape training sets the episode length"),
    (["--generalisation", "--max-steps", "50"], "--max-steps 50 and --generalisation uses the standard episode"),
])
def test_an_episode_length_given_twice_is_one_line(tmp_path, capsys, argv, words):
    assert cli_main(["evaluate", *argv, "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and not (tmp_path / "e").exists()


def test_several_models_without_baselines_is_one_line(finished_run, tmp_path, capsys):
    runs = [str(r) for r in _seeded_copies(finished_run, tmp_path, (1, 2, 3))]
    assert cli_main(["evaluate", *runs, "--no-baselines", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "with the baselines" in err[0]
