"""Shared-policy training on real SUMO through SuperSuit + SB3, and the original single-ego script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from roadsense_marl import parallel_env
from roadsense_marl.training import FixedSlotParallelEnv, make_vec_env, train

TINY_PPO = {"n_steps": 32, "batch_size": 64, "n_epochs": 2}


def _config(tmp_path: Path, name: str, **env) -> dict:
    return {
        "total_timesteps": 384,
        "seed": 3,
        "out": str(tmp_path / name),
        "env": {"scenario": "convoy_3", "max_steps": 60, "hazard": {"onset_window_s": [2.0, 3.0]}, **env},
        "vec_env": {"num_envs": 2},
        "ppo": TINY_PPO,
    }


def _act_in_parallel_env(model_path: Path, **env_kwargs) -> int:
    """Load a saved model and drive every vehicle of the parallel env with it; returns steps taken."""
    from stable_baselines3 import PPO

    model = PPO.load(model_path, device="cpu")
    env = parallel_env(scenario="convoy_3", max_steps=40, **env_kwargs)
    steps = 0
    try:
        obs, _ = env.reset(seed=0)
        while env.agents:
            agents = list(env.agents)
            batch = {k: np.stack([obs[a][k] for a in agents]) for k in ("ego", "peers", "peer_mask")}
            actions, _ = model.predict(batch, deterministic=True)
            assert actions.shape == (len(agents), 1)
            obs, *_ = env.step(dict(zip(agents, actions)))
            steps += 1
    finally:
        env.close()
    return steps


def test_training_with_traci_in_one_process_saves_a_model_that_acts(tmp_path):
    out = train({**_config(tmp_path, "traci", backend="traci"), "vec_env": {"num_envs": 2, "num_cpus": 1}})
    for name in ("final_model.zip", "config.yaml", "progress.csv"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    header = (out / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"rollout/collision_rate", "rollout/padded_fraction", "time/total_timesteps",
            "train/explained_variance"} <= set(header)
    assert _act_in_parallel_env(out / "final_model.zip") == 40


def test_training_with_libsumo_in_two_processes(tmp_path):
    out = train(_config(tmp_path, "libsumo"))  # libsumo: one worker process per env copy
    assert (out / "final_model.zip").is_file()
    assert _act_in_parallel_env(out / "final_model.zip") == 40


def test_same_seed_gives_identical_trained_parameters(tmp_path):
    from stable_baselines3 import PPO

    def params(name: str, seed: int):
        cfg = _config(tmp_path, name)
        cfg["seed"] = seed
        model = PPO.load(train(cfg) / "final_model.zip", device="cpu")
        return {k: v.clone() for k, v in model.policy.state_dict().items()}

    a, b, c = params("a", 3), params("b", 3), params("c", 4)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert any(not np.array_equal(a[k].numpy(), c[k].numpy()) for k in a)


def _descendants(pid: int) -> set[int]:
    children = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(proc.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def test_closing_a_two_worker_vec_env_closes_every_sumo():
    before = _descendants(os.getpid())  # e.g. multiprocessing's resource tracker, which lives on
    venv = make_vec_env(num_envs=2, num_cpus=2, seed=0, scenario="convoy_3", backend="traci", max_steps=30)
    venv.reset()
    for _ in range(5):
        venv.step(np.zeros((venv.num_envs, 1), dtype=np.float32))
    procs = _descendants(os.getpid()) - before
    sumo = [p for p in procs if Path(f"/proc/{p}/comm").read_text().strip().startswith("sumo")]
    assert len(sumo) == 2, "one SUMO per env copy, started by the workers"
    venv.close()
    assert not [p for p in procs if _alive(p)], "workers and their SUMO processes are gone after close()"


def test_fixed_slot_wrapper_passes_the_api_test_on_the_real_env_and_ends_on_time():
    kwargs = dict(scenario="highway", scenario_kwargs={"n_vehicles": 8, "lanes": 2, "length_m": 400.0}, hazard={"probability": 0.0})
    wrapped = FixedSlotParallelEnv(parallel_env(**kwargs, max_steps=300))
    try:
        parallel_api_test(wrapped, num_cycles=400)
        wrapped.reset(seed=2)
        steps = 0
        while wrapped.agents:
            _, _, terms, truncs, _ = wrapped.step({a: np.zeros(1, np.float32) for a in wrapped.agents})
            steps += 1
            assert set(terms) == set(wrapped.possible_agents), "every slot is present every step"
            ended = all(terms[a] or truncs[a] for a in terms)
            assert ended == (not wrapped.env.agents), "slots end exactly in the inner env's last step"
        assert not wrapped.agents
    finally:
        wrapped.close()
    inner = parallel_env(**kwargs, max_steps=300)
    try:
        inner.reset(seed=2)
        inner_steps = 0
        while inner.agents:
            inner.step({a: np.zeros(1, np.float32) for a in inner.agents})
            inner_steps += 1
    finally:
        inner.close()
    assert steps == inner_steps


def test_train_convoy_script_short_run_leaves_a_model_that_loads_and_predicts(tmp_path):
    from stable_baselines3 import PPO

    from roadsense_marl.training.train_convoy import main

    models = tmp_path / "models"
    code = main([
        "--total-timesteps", "100", "--n-steps", "64", "--batch-size", "32", "--checkpoint-every", "64",
        "--models-dir", str(models), "--log-dir", str(tmp_path / "logs"), "--no-progress",
    ])
    assert code == 0
    model = PPO.load(models / "deep_sets_final.zip", device="cpu")
    import gymnasium as gym

    env = gym.make("RoadSense-Convoy-v4", max_steps=10)
    try:
        obs, _ = env.reset(seed=0)
        action, _ = model.predict(obs, deterministic=True)
        assert env.action_space.contains(action)
    finally:
        env.close()
    assert list((models / "checkpoints").glob("deep_sets_*_steps.zip"))


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--scenario", "nope", "--total-timesteps", "10"], "nope"),
        (["train", "--config", "missing.yaml"], "missing.yaml"),
    ],
)
def test_train_command_user_errors_are_one_line(args, needle, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "roadsense_marl.cli", *args, "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr


def test_a_vehicle_leaving_mid_episode_ends_only_its_slot_for_sb3():
    """Crash: done for the crashed slots only, terminal; the slot then continues as padding."""
    venv = make_vec_env(
        num_envs=1, seed=5, scenario="convoy_6", max_steps=300, radio="ideal", domain_randomization=False,
        vtype_randomization=False, hazard={"onset_window_s": [12.0, 12.0], "decel_range": [9.0, 9.0], "duration_range": [1.5, 1.5], "release_prob": 0.0},
    )
    try:
        venv.reset()
        for _ in range(300):
            obs, rewards, dones, infos = venv.step(np.zeros((venv.num_envs, 1), dtype=np.float32))
            crashed = [i for i, info in enumerate(infos) if info.get("reason") == "collision"]
            if crashed:
                break
        assert crashed, "idle followers crash into the braking vehicle"
        assert all(dones[i] for i in crashed) and not all(dones), "only the crashed slots end"
        # only the collider pays (SUMO's collision record); the hazard vehicle it hit gets collision_victim (0)
        assert sorted(float(rewards[i]) for i in crashed) == [-100.0, 0.0]
        for i in crashed:
            assert "terminal_observation" in infos[i] and not infos[i].get("TimeLimit.truncated", False)
            assert not obs["peer_mask"][i].any() and not obs["ego"][i].any(), "the slot continues as padding"
    finally:
        venv.close()


def test_a_live_libsumo_env_in_this_process_is_a_clear_error_before_forking():
    env = parallel_env(scenario="convoy_3")
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="Close that env first, or use backend='traci'"):
            make_vec_env(num_envs=2, seed=0, scenario="convoy_3")
    finally:
        env.close()
    venv = make_vec_env(num_envs=1, seed=0, scenario="convoy_3", max_steps=5)  # fine once it is closed
    venv.reset()
    venv.close()


def test_a_critic_that_cannot_learn_stops_the_run_with_one_clear_line(tmp_path):
    """vf_coef 0: the value head never learns, so the explained variance stays near 0 and the
    critic check (after 2 updates, minimum 0.5) must stop the run, say why in one line and in run.json."""
    import json

    import yaml

    cfg = {**_config(tmp_path, "unused"), "total_timesteps": 1152, "ppo": {**TINY_PPO, "vf_coef": 0.0},
           "critic_check": {"after_updates": 2, "min_explained_variance": 0.5, "window": 2}}
    cfg.pop("out")
    path = tmp_path / "no_critic.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "roadsense_marl.cli", "train", "--config", str(path), "--out", str(run), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "the critic is not learning" in lines[0], out.stderr
    assert "critic_check.min_explained_variance=0.5" in lines[0]
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "failed" and "critic is not learning" in state["error"]
    assert state["critic_check_explained_variance"] < 0.5


@pytest.mark.parametrize(
    "section,needle",
    [({"after_update": 3}, "unknown critic_check key 'after_update'"),
     ({"after_updates": -1}, "critic_check.after_updates must be >= 0"),
     ({"min_explained_variance": 2.0}, "critic_check.min_explained_variance must be <= 1.0"),
     ([1], "'critic_check' in training config must be a mapping")],
)
def test_a_bad_critic_check_is_named(section, needle, tmp_path):
    from roadsense_marl.training.train import check_train_config

    with pytest.raises(ValueError, match=needle):
        check_train_config({**_config(tmp_path, "x"), "critic_check": section})
