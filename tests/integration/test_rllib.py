"""Ray RLlib: the MultiAgentEnv view on real SUMO, and PPO with the Deep Sets RLModule on a local Ray.

Skipped where ray[rllib] is not installed (``make test``); ``make test-rllib`` runs them in the
venv with ray's pins. Ray starts once for this module with ``ray.init(num_cpus=2)``: the same
code path as a cluster (env runners are Ray actors in their own processes).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("ray.rllib")

import ray  # noqa: E402
import torch  # noqa: E402
from ray.rllib.algorithms.algorithm import Algorithm  # noqa: E402

from roadsense_marl import parallel_env  # noqa: E402
from roadsense_marl.policies import DeepSetExtractor  # noqa: E402
from roadsense_marl.rllib import (  # noqa: E402
    SHARED_POLICY, DeepSetRLModule, RoadSenseMultiAgentEnv, module_policy, ppo_config,
)
from roadsense_marl.sim import LibsumoInUseError  # noqa: E402
from roadsense_marl.sim.backends import libsumo_owner_alive  # noqa: E402

HIGHWAY = {"scenario": "highway", "scenario_kwargs": {"n_vehicles": 10}, "max_steps": 120}
#: H000..H004 start on the road; H005..H009 enter one every 2 s (20 steps) after the first reset.
LATE_JOINERS = ["H005", "H006", "H007", "H008", "H009"]
TINY = {"train_batch_size_per_learner": 240, "minibatch_size": 120, "num_epochs": 1, "num_env_runners": 1, "seed": 0}


def _never_brake(env) -> dict:
    return {a: np.zeros(1, dtype=np.float32) for a in env.agents}


# ---- the env view -------------------------------------------------------------------------------


def test_the_mixed_ending_step_sets_all_true_and_ends_the_episode():
    """convoy_6, seed 1000, never brake, max_steps=255: vehicles crash in the last step while the rest hit max_steps."""
    env = RoadSenseMultiAgentEnv({"scenario": "convoy_6", "max_steps": 255})
    try:
        env.reset(seed=1000)
        for _ in range(255):
            obs, rewards, terms, truncs, infos = env.step(_never_brake(env))
            if terms["__all__"] or truncs["__all__"]:
                break
        assert env.core.num_steps == 255
        crashed = [a for a, t in terms.items() if a != "__all__" and t]
        timed_out = [a for a, t in truncs.items() if a != "__all__" and t]
        assert crashed and timed_out, "the pinned case ends with a mix of crashes and max_steps"
        assert {infos[a]["reason"] for a in crashed} == {"collision"}
        assert {infos[a]["reason"] for a in timed_out} == {"max_steps"}
        assert truncs["__all__"] is True and terms["__all__"] is False
        assert set(obs) == set(crashed) | set(timed_out) == set(infos)
        assert env.agents == []
        with pytest.raises(RuntimeError, match="ended episode"):
            env.step({})
    finally:
        env.close()


def test_all_is_terminated_when_every_vehicle_crashed_or_left_before_max_steps():
    env = RoadSenseMultiAgentEnv({"scenario": "convoy_3", "max_steps": 2000})
    try:
        env.reset(seed=3)
        done = False
        while not done:
            _, _, terms, truncs, _ = env.step(_never_brake(env))
            assert not (terms["__all__"] and truncs["__all__"])
            done = terms["__all__"] or truncs["__all__"]
        assert env.core.num_steps < 2000 and terms["__all__"] is True
    finally:
        env.close()


def test_every_possible_vehicle_has_spaces_and_late_joiners_observe_inside_them():
    env = RoadSenseMultiAgentEnv(HIGHWAY)
    try:
        assert set(env.observation_spaces) == set(env.action_spaces) == set(env.possible_agents)
        assert len(env.possible_agents) == 10
        obs, _ = env.reset(seed=0)
        assert not set(LATE_JOINERS) & set(obs)
        first_obs = dict(obs)
        while env.agents:
            obs, rewards, *_ = env.step(_never_brake(env))
            for a, o in obs.items():
                if a not in first_obs:
                    first_obs[a] = o
                    assert a not in rewards, "a vehicle's first reward follows its first action"
                assert env.observation_spaces[a].contains(o), a
        assert set(LATE_JOINERS) <= set(first_obs)
    finally:
        env.close()


def test_the_view_gives_the_parallel_envs_observations_rewards_and_infos():
    """Same seed, same actions: the RLlib view and the PettingZoo view of the core agree (one core, two views)."""
    rng = np.random.default_rng(0)
    steps = 40
    acts = rng.uniform(0, 0.3, size=(steps, 10)).astype(np.float32)

    def run(env, reset, agents_of):
        trace = [reset(env)]
        for t in range(steps):
            agents = agents_of(env)
            if not agents:
                break
            idx = [env.possible_agents.index(a) for a in agents]
            trace.append(env.step({a: acts[t, i:i + 1] for a, i in zip(agents, idx)}))
        env.close()
        return trace

    pz = run(parallel_env(**HIGHWAY), lambda e: e.reset(seed=5), lambda e: e.agents)
    rl = run(RoadSenseMultiAgentEnv(HIGHWAY), lambda e: e.reset(seed=5), lambda e: e.agents)
    assert len(pz) == len(rl)
    for (p, r) in zip(pz, rl):
        p_obs, r_obs = p[0], r[0]
        assert set(p_obs) == set(r_obs)
        for a in p_obs:
            for k in p_obs[a]:
                np.testing.assert_array_equal(p_obs[a][k], r_obs[a][k])
        if len(p) == 5:
            for a, rew in r[1].items():
                assert rew == p[1][a]
            assert {a: v for a, v in r[2].items() if a != "__all__"} == p[2]
            assert {a: v for a, v in r[3].items() if a != "__all__"} == p[3]
            assert r[4] == p[4]


def test_creating_the_env_starts_no_simulation_until_reset():
    env = RoadSenseMultiAgentEnv({"scenario": "convoy_3"})
    try:
        assert not libsumo_owner_alive()
        env.reset(seed=0)
        assert libsumo_owner_alive()
    finally:
        env.close()
    assert not libsumo_owner_alive()


def test_a_second_libsumo_env_in_one_env_runner_is_refused_in_rllibs_terms():
    first, second = RoadSenseMultiAgentEnv({"scenario": "convoy_3"}), RoadSenseMultiAgentEnv({"scenario": "convoy_3"})
    try:
        first.reset(seed=0)
        with pytest.raises(LibsumoInUseError, match=r"num_envs_per_env_runner=1.*num_env_runners.*'traci'"):
            second.reset(seed=0)
        first.step(_never_brake(first))  # the first simulation is untouched
    finally:
        second.close()
        first.close()


def test_actions_for_vehicles_that_are_not_live_name_the_vehicle():
    env = RoadSenseMultiAgentEnv(HIGHWAY)
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="'H009'.*not live"):
            env.step({"H009": np.zeros(1)})
        with pytest.raises(ValueError, match="'nope'.*not a vehicle"):
            env.step({"nope": np.zeros(1)})
        with pytest.raises(ValueError, match="H000"):
            env.step({"H000": np.array([np.nan])})
        with pytest.raises(ValueError, match=r"agent 'H001' must be one real number \(shape \(1,\)\), got 'fast'"):
            env.step({"H000": np.zeros(1), "H001": "fast"})
        with pytest.raises(ValueError, match=r"agent 'H002' must be one real number"):
            env.step({"H000": np.zeros(1), "H002": np.zeros(2)})
        assert env.core.num_steps == 0
    finally:
        env.close()


def test_ppo_config_refuses_several_libsumo_envs_per_env_runner_and_unknown_settings():
    with pytest.raises(ValueError, match=r"num_envs_per_env_runner=2 with backend='libsumo'.*num_env_runners.*traci"):
        ppo_config({"scenario": "convoy_3"}, num_envs_per_env_runner=2)
    ppo_config({"scenario": "convoy_3", "backend": "traci"}, num_envs_per_env_runner=2)
    with pytest.raises(ValueError, match="unknown PPOConfig setting 'num_env_runner'"):
        ppo_config({"scenario": "convoy_3"}, num_env_runner=2)
    with pytest.raises(ValueError, match="max_stepz"):
        ppo_config({"scenario": "convoy_3", "max_stepz": 3})
    with pytest.raises(ValueError, match="pooling"):
        ppo_config({"scenario": "convoy_3"}, policy={"pooling": "median"})


# ---- PPO on a local Ray -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _finite_losses(result: dict) -> dict:
    learner = result["learners"][SHARED_POLICY]
    losses = {k: learner[k] for k in ("total_loss", "policy_loss", "vf_loss")}
    assert all(math.isfinite(v) for v in losses.values()), losses
    return losses


def _params(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_ppo_trains_the_shared_deep_sets_policy_on_highway_with_vehicles_joining(local_ray, tmp_path):
    algo = ppo_config(HIGHWAY, policy={"log_std_init": -2.0}, **TINY).build_algo()
    try:
        module = algo.get_module(SHARED_POLICY)
        assert isinstance(module, DeepSetRLModule) and isinstance(module.encoder, DeepSetExtractor)
        before = _params(module)
        for _ in range(2):
            result = algo.train()
        runners = result["env_runners"]
        assert runners["num_env_steps_sampled_lifetime"] >= 2 * TINY["train_batch_size_per_learner"]
        per_agent = runners["num_agent_steps_sampled_lifetime"]
        assert set(LATE_JOINERS) <= {a for a, n in per_agent.items() if n > 0}, per_agent
        _finite_losses(result)
        after = _params(algo.get_module(SHARED_POLICY))
        assert any(not torch.equal(before[k], after[k]) for k in before), "the learner changed no weight"

        # The trained RLModule drives every vehicle of the PettingZoo env.
        module = algo.get_module(SHARED_POLICY)
        policy = module_policy(module)
        env = parallel_env(**{**HIGHWAY, "max_steps": 60})
        try:
            obs, _ = env.reset(seed=1)
            steps = 0
            while env.agents:
                actions = policy(env, obs)
                assert set(actions) == set(env.agents)
                assert all(env.action_space(a).contains(v) for a, v in actions.items())
                obs, *_ = env.step(actions)
                steps += 1
            assert steps == 60
            probe = {k: np.stack([o[k] for o in obs.values()]) for k in ("ego", "peers", "peer_mask")}
        finally:
            env.close()

        # algo.save / Algorithm.from_checkpoint keep the policy.
        ckpt = algo.save(str(tmp_path / "ckpt")).checkpoint.path
    finally:
        algo.stop()
    restored = Algorithm.from_checkpoint(ckpt)
    try:
        again = restored.get_module(SHARED_POLICY)
        for k, v in _params(again).items():
            assert torch.equal(v, after[k]), k
        from roadsense_marl.rllib import module_actions

        np.testing.assert_array_equal(module_actions(again, probe), module_actions(module, probe))
    finally:
        restored.stop()


def test_ppo_trains_on_convoy_6(local_ray):
    algo = ppo_config({"scenario": "convoy_6", "max_steps": 100}, **TINY).build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        runners = result["env_runners"]
        assert runners["num_env_steps_sampled_lifetime"] >= 2 * TINY["train_batch_size_per_learner"]
        assert {a for a, n in runners["num_agent_steps_sampled_lifetime"].items() if n > 0} == {f"V00{i}" for i in range(1, 7)}
        _finite_losses(result)
    finally:
        algo.stop()


# ---- roadsense-marl train --engine rllib / evaluate / --resume ----------------------------------


def test_train_engine_rllib_writes_a_run_folder_that_evaluate_and_resume_use(local_ray, tmp_path, capsys):
    import csv
    import json

    import yaml

    from roadsense_marl.cli import main as cli_main
    from roadsense_marl.training.rllib_train import latest_checkpoint, read_checkpoint_record

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "total_timesteps": 800, "seed": 3, "checkpoint_every": 400,
        "env": {"scenario": "convoy_3", "max_steps": 60}, "vec_env": {"num_envs": 1},
        "policy": {"log_std_init": -2.0}, "ppo": {"n_steps": 120, "batch_size": 120, "n_epochs": 1},
    }))
    run = tmp_path / "run"
    assert cli_main(["train", "--engine", "rllib", "--config", str(config), "--out", str(run), "--no-progress"]) == 0
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "finished" and state["engine"] == "rllib" and state["final_num_timesteps"] >= 800
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["engine"] == "rllib" and saved["contract"]["env_id"]
    assert read_checkpoint_record(run / "final_checkpoint")["contract"] == saved["contract"]
    assert list((run / "tb" / "rllib").glob("events.out.tfevents.*"))
    with (run / "progress.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["time/total_timesteps"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] == state["final_num_timesteps"]
    assert all(math.isfinite(float(r["train/loss"])) for r in rows)
    assert latest_checkpoint(run)[0].name == "final_checkpoint"
    assert any(p.name.startswith("rllib_") for p in (run / "checkpoints").iterdir())

    # evaluate reads the run folder: its env config, the shared module from final_checkpoint
    out = tmp_path / "eval"
    assert cli_main(["evaluate", str(run), "--episodes", "1", "--no-plots", "--no-baselines", "--out", str(out),
                     "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scenario"] == "convoy_3" and metrics["model"].endswith("final_checkpoint")

    # an existing run is changed only on request; --resume carries the step count and the iterations on
    capsys.readouterr()
    assert cli_main(["train", "--engine", "rllib", "--config", str(config), "--out", str(run), "--no-progress"]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    total = state["final_num_timesteps"] + 200
    assert cli_main(["train", "--resume", str(run), "--total-timesteps", str(total), "--no-progress"]) == 0
    with (run / "progress.csv").open(newline="") as f:
        more = list(csv.DictReader(f))
    assert [r["time/total_timesteps"] for r in more[:len(rows)]] == [r["time/total_timesteps"] for r in rows]
    assert int(more[-1]["time/total_timesteps"]) >= total
    assert [int(r["time/iterations"]) for r in more] == list(range(1, len(more) + 1))
    assert json.loads((run / "run.json").read_text())["resumed_at"] == state["final_num_timesteps"]


def test_ctrl_c_during_rllib_training_saves_a_checkpoint_that_resume_continues(local_ray, tmp_path, monkeypatch):
    """Fault injection: the second training iteration is interrupted as Ctrl-C would interrupt it."""
    import json

    from ray.rllib.algorithms.ppo import PPO

    from roadsense_marl.training.rllib_train import latest_checkpoint
    from roadsense_marl.training.train import TrainingInterrupted, resume, train

    calls = {"n": 0}
    original = PPO.train

    def train_then_ctrl_c(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(PPO, "train", train_then_ctrl_c)
    run = tmp_path / "run"
    cfg = {"engine": "rllib", "total_timesteps": 600, "seed": 1, "out": str(run),
           "env": {"scenario": "convoy_3", "max_steps": 60}, "ppo": {"n_steps": 100, "batch_size": 100, "n_epochs": 1}}
    with pytest.raises(TrainingInterrupted, match=r"checkpoint at \d+ steps saved to .*--resume"):
        train(cfg)
    state = json.loads((run / "run.json").read_text())
    path, steps = latest_checkpoint(run)
    assert state["status"] == "interrupted" and state["num_timesteps"] == steps > 0
    assert path.name == f"rllib_{steps}_steps" and (path / "roadsense_contract.json").is_file()
    assert (run / "progress.csv").read_text().count("\n") == 2  # header + the iteration that finished

    monkeypatch.setattr(PPO, "train", original)
    resume(run)
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "finished" and state["resumed_at"] == steps and state["final_num_timesteps"] >= 600
