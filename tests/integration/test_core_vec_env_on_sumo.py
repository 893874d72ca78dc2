"""The direct VecEnv over the array core on real SUMO: same trajectories as the SuperSuit path,
per-vehicle episodes with joins and slot reuse, evaluate_policy, worker processes."""

from __future__ import annotations

import functools
import os
import signal
from collections import defaultdict

import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy

from roadsense_marl import parallel_env
from roadsense_marl.policies import create_deep_set_policy_kwargs
from roadsense_marl.training import CoreVecEnv, MaskedPPO, WorkerDiedError, make_vec_env

CONVOY = dict(scenario="convoy_6", max_steps=50, hazard={"onset_window_s": [1.0, 2.0]})
HIGHWAY = dict(scenario="highway", scenario_kwargs={"n_vehicles": 8, "lanes": 2, "length_m": 260.0, "n_initial": 3},
               max_vehicles=6, max_steps=300, hazard={"probability": 0.0})


def record(via: str, steps: int, seed: int = 3, **env) -> list:
    venv = make_vec_env(num_envs=1, seed=seed, via=via, **env)
    rng = np.random.default_rng(0)
    out = []
    try:
        out.append(({k: v.copy() for k, v in venv.reset().items()}, None, None))
        for _ in range(steps):
            obs, rewards, dones, _ = venv.step(rng.uniform(0, 0.3, (venv.num_envs, 1)).astype(np.float32))
            out.append((obs, np.asarray(rewards, np.float32), dones.copy()))
    finally:
        venv.close()
    return out


def test_direct_and_supersuit_paths_give_identical_trajectories_on_convoy_6():
    core = record("core", 120, **CONVOY)  # 50-step episodes: two auto-resets
    supersuit = record("supersuit", 120, **CONVOY)
    for t, ((o1, r1, d1), (o2, r2, d2)) in enumerate(zip(core, supersuit)):
        for k in o1:
            np.testing.assert_array_equal(o1[k], o2[k], err_msg=f"obs {k!r} at step {t}")
        if t:
            np.testing.assert_array_equal(r1, r2, err_msg=f"rewards at step {t}")
            np.testing.assert_array_equal(d1, d2, err_msg=f"dones at step {t}")
    assert sum(d.sum() for _, _, d in core[1:]) >= 12, "both episode ends are in the comparison"


@functools.cache
def highway_reference() -> dict[str, tuple[float, int]]:
    """Per-vehicle (return, length) under all-zero actions from the ParallelEnv (a view of the same core).

    Monitor's episode of a vehicle: the steps after its first observation.
    """
    env = parallel_env(**HIGHWAY)
    returns, lengths = defaultdict(float), defaultdict(int)
    try:
        env.reset(seed=4)
        while env.agents:
            acting = list(env.agents)
            _, rewards, _, _, _ = env.step({a: np.zeros(1, np.float32) for a in acting})
            for agent in acting:
                returns[agent] += rewards[agent]
                lengths[agent] += 1
    finally:
        env.close()
    return {a: (returns[a], lengths[a]) for a in returns}


def _matches(episode: tuple[float, int], reference) -> list[int]:
    """Indices of reference episodes with the episode's length and its return within 1e-3 (the vec
    env's Monitor sums float32 rewards; rounding both sides could fall either side of a digit)."""
    r, n = episode
    return [i for i, (rr, nn) in enumerate(reference) if nn == n and abs(rr - r) <= 1e-3]


def test_highway_with_joins_and_slot_reuse_reports_one_episode_per_vehicle():
    reference = highway_reference()
    assert len(reference) == 8 > HIGHWAY["max_vehicles"], "more vehicles than slots: slots are reused"
    venv = make_vec_env(num_envs=1, seed=4, **HIGHWAY)
    episodes, joins = [], 0
    try:
        at_reset = int(venv.reset()["ego"].any(axis=1).sum())
        for _ in range(HIGHWAY["max_steps"]):
            _, _, dones, infos = venv.step(np.zeros((venv.num_envs, 1), np.float32))
            episodes += [info["episode"] for info in infos if "episode" in info]
            if not dones.all():  # (an episode end shows every slot done, padding included)
                joins += sum(1 for i in np.flatnonzero(dones) if not infos[i]["terminal_observation"]["ego"].any())
            if len(episodes) == len(reference):
                break
    finally:
        venv.close()
    assert at_reset < 8 and joins == 8 - at_reset, "each agent joining mid-episode ends its slot's padding stretch"
    ref = sorted(reference.values(), key=lambda e: (e[1], e[0]))
    got = sorted(((e["r"], e["l"]) for e in episodes), key=lambda e: (e[1], e[0]))
    assert len(got) == len(ref) and all(_matches(g, [r]) for g, r in zip(got, ref)), (got, ref)


class ZeroPolicy:
    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return np.zeros((len(obs["ego"]), 1), np.float32), None


@pytest.mark.parametrize("via", ["core", "supersuit"])
def test_evaluate_policy_counts_vehicle_episodes_never_padding(via):
    # Slots start empty (vehicles join later) and some see two vehicles: padding stretches
    # would show up as 0-reward "episodes" of the padding's length with a plain VecMonitor.
    venv = make_vec_env(num_envs=1, seed=4, via=via, **HIGHWAY)
    try:
        rewards, lengths = evaluate_policy(ZeroPolicy(), venv, n_eval_episodes=venv.num_envs, return_episode_rewards=True)
    finally:
        venv.close()
    reference = sorted(highway_reference().values())
    got = list(zip(rewards, lengths))
    assert len(got) == venv.num_envs  # the first vehicle of each slot
    matched = [_matches(ep, reference) for ep in got]
    assert all(matched) and len({m[0] for m in matched}) == len(got), (got, reference)


@pytest.mark.parametrize("via", ["core", "supersuit"])
def test_masked_ppo_episode_statistics_are_per_vehicle(via):
    venv = make_vec_env(num_envs=1, seed=0, via=via, scenario="convoy_3", max_steps=30, hazard={"probability": 0.0})
    try:
        model = MaskedPPO("MultiInputPolicy", venv, n_steps=30, batch_size=45, n_epochs=1, seed=0, device="cpu",
                          policy_kwargs=create_deep_set_policy_kwargs(peer_embed_dim=4, log_std_init=-2.0))
        model.learn(total_timesteps=2 * 30 * venv.num_envs)  # two 30-step episodes of 3 vehicles
        assert len(model.ep_info_buffer) == 6 and all(ep["l"] == 30 for ep in model.ep_info_buffer)
    finally:
        venv.close()


def test_two_libsumo_workers_step_in_their_own_processes_and_a_killed_one_is_named():
    venv = make_vec_env(num_envs=2, num_cpus=2, seed=1, scenario="convoy_3", max_steps=40)
    try:
        assert isinstance(venv, CoreVecEnv) and len(venv._workers) == 2
        venv.reset()
        for _ in range(5):
            venv.step(np.zeros((venv.num_envs, 1), np.float32))
        victim = venv._workers[0]
        os.kill(victim.process.pid, signal.SIGKILL)
        with pytest.raises(WorkerDiedError, match=r"worker 0 \(pid \d+, env copies \[0\]\) was killed by signal SIGKILL "
                           r"while running 'step'; last known state: copy 0 at episode step 5"):
            venv.step(np.zeros((venv.num_envs, 1), np.float32))
    finally:
        venv.close()
    assert not any(w.process.is_alive() for w in venv._workers)


def test_a_vehicle_joining_in_the_last_step_is_no_episode():
    import numpy as np

    from roadsense_marl.env.core import ConvoyCore
    from roadsense_marl.training.core_vec_env import CoreVecEnv

    kw = dict(scenario="highway", scenario_kwargs={"n_vehicles": 6, "depart_interval_s": 3.0, "n_initial": 2},
              vtype_randomization=False, max_steps=30)  # the third vehicle joins in step 30
    venv = CoreVecEnv([lambda: ConvoyCore(**kw)], seed=0)
    try:
        venv.reset()
        for _ in range(30):
            _, _, dones, infos = venv.step(np.zeros(venv.num_envs))
        episodes = [inf["episode"] for inf in infos if "episode" in inf]
        assert dones.all() and len(episodes) == 2 and all(e["l"] == 30 for e in episodes)
    finally:
        venv.close()
