"""SuperSuit/SB3 vector env: fixed slots, episode ends, seeding, closing workers, libsumo rule.

Runs on a tiny deterministic toy ParallelEnv (no SUMO) with the roadsense observation layout,
whose agents join and leave at known steps; the SUMO-backed checks live in tests/integration.
"""

from __future__ import annotations

import csv
import functools
import os
import uuid
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import supersuit as ss
import torch as th
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure

from roadsense_marl.policies import create_deep_set_policy_kwargs
from roadsense_marl.training import (
    FixedSlotParallelEnv,
    PaddedFractionCallback,
    make_vec_env,
    resolve_num_cpus,
    zero_observation,
)

K = 4
MAX_STEPS = 7
# agent: (step it joins, step it leaves, how it leaves). Present in the dicts of steps join..leave.
SCHEDULE = {
    "v0": (0, 5, "arrived"),  # truncated mid-episode
    "v1": (2, 4, "collision"),  # terminated mid-episode
    "v2": (3, MAX_STEPS, "time_limit"),  # truncated by max_steps in the last step
    "v3": (1, MAX_STEPS, "collision"),  # terminated in the last step
    "v4": (None, None, None),  # a possible agent that never departs
}
PRESENT_PER_STEP = [
    {a for a, (j, l, _) in SCHEDULE.items() if j is not None and j <= t <= l} for t in range(MAX_STEPS + 1)
]


class ToyConvoyEnv(ParallelEnv):
    """Deterministic join/leave schedule, seeded random features, reward -(brake - target)^2.

    Raises on an action for an agent that is not live (so a leaked padded action fails
    loudly) and, if ``marker_dir`` is set, writes a file there when an env that was reset is
    closed (so the parent process can see every worker's env.close()).
    """

    metadata = {"name": "toy_convoy_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, marker_dir: str | None = None):
        self.possible_agents = list(SCHEDULE)
        self.agents = []
        self.render_mode = None
        self.marker_dir = marker_dir
        self._was_reset = False
        self._rng = np.random.default_rng()

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        return gym.spaces.Dict(
            {
                "ego": gym.spaces.Box(-1.0, 1.0, (6,), np.float32),
                "peers": gym.spaces.Box(-1.0, 1.0, (K, 6), np.float32),
                "peer_mask": gym.spaces.Box(0.0, 1.0, (K,), np.float32),
            }
        )

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent):
        return gym.spaces.Box(0.0, 1.0, (1,), np.float32)

    def _observe(self, agents):
        obs = {}
        for agent in agents:
            n = min(len(agents) - 1, K)
            peers = np.zeros((K, 6), np.float32)
            peers[:n] = self._rng.uniform(-1, 1, (n, 6))
            mask = np.zeros(K, np.float32)
            mask[:n] = 1
            obs[agent] = {"ego": self._rng.uniform(-1, 1, 6).astype(np.float32), "peers": peers, "peer_mask": mask}
        return obs

    def reset(self, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._was_reset = True
        self.t = 0
        self.agents = sorted(PRESENT_PER_STEP[0])
        self._obs = self._observe(self.agents)
        return self._obs, {a: {"t": 0} for a in self.agents}

    def step(self, actions):
        stray = set(actions) - set(self.agents)
        if stray:
            raise ValueError(f"actions for agents that are not live: {sorted(stray)}")
        rewards = {a: -float((actions[a][0] - (self._obs[a]["ego"][0] + 1) / 2) ** 2) for a in self.agents}
        self.t += 1
        present = sorted(PRESENT_PER_STEP[self.t])
        obs = self._observe(present)
        terms, truncs, infos = {}, {}, {}
        for a in present:
            rewards.setdefault(a, 0.0)
            _, leave, how = SCHEDULE[a]
            leaving = self.t == leave
            terms[a] = leaving and how == "collision"
            truncs[a] = leaving and how != "collision"
            infos[a] = {"t": self.t}
            if leaving:
                infos[a]["reason"] = how
            if truncs[a]:
                infos[a]["TimeLimit.truncated"] = True
        rewards = {a: rewards[a] for a in present}
        self.agents = [a for a in present if not (terms[a] or truncs[a])]
        self._obs = obs
        return obs, rewards, terms, truncs, infos

    def close(self):
        if self.marker_dir is not None and self._was_reset:
            Path(self.marker_dir, f"closed-{os.getpid()}-{uuid.uuid4().hex}").touch()


def toy_vec_env(num_envs=2, num_cpus=1, seed=None, marker_dir=None):
    return make_vec_env(
        num_envs=num_envs, num_cpus=num_cpus, seed=seed, env_fn=lambda: ToyConvoyEnv(marker_dir), backend="traci"
    )


# ─── fixed-slot wrapper ────────────────────────────────────────────────────────


def test_fixed_slot_wrapper_passes_parallel_api_test():
    parallel_api_test(FixedSlotParallelEnv(ToyConvoyEnv()), num_cycles=50)


def test_every_slot_is_present_every_step_and_absent_agents_are_padded():
    env = FixedSlotParallelEnv(ToyConvoyEnv())
    obs, infos = env.reset(seed=3)
    padding = zero_observation(env.observation_space("v0"))
    for t in range(MAX_STEPS + 1):
        assert set(obs) == set(infos) == set(SCHEDULE)
        for agent in SCHEDULE:
            assert infos[agent]["padded"] == (agent not in PRESENT_PER_STEP[t])
            if infos[agent]["padded"]:
                assert all(np.array_equal(obs[agent][k], padding[k]) for k in padding)
                assert not obs[agent]["peer_mask"].any()
        if t == MAX_STEPS:
            break
        # actions for every slot, padded ones included: the toy env raises if one leaks through
        obs, rewards, terms, truncs, infos = env.step({a: np.array([0.5], np.float32) for a in env.agents})
        assert set(rewards) == set(SCHEDULE)
        assert all(rewards[a] == 0.0 for a in SCHEDULE if infos[a]["padded"])


def test_episode_ends_exactly_on_the_inner_envs_last_step_with_its_flags():
    # supersuit.black_death_v3 cannot serve here: it asserts Box observation spaces (ours is a
    # Dict), only pads the agents present at reset, and combines the inner flags with AND
    # instead of OR, so with the inner env's last step (one agent truncated, one terminated)
    # it reports the end one step late, on the step after the inner agents list became empty.
    inner = ToyConvoyEnv()
    env = FixedSlotParallelEnv(inner)
    env.reset(seed=0)
    for t in range(1, MAX_STEPS + 1):
        _, _, terms, truncs, infos = env.step({a: np.array([0.0], np.float32) for a in env.agents})
        done = {a: terms[a] or truncs[a] for a in SCHEDULE}
        if t < MAX_STEPS:
            assert inner.agents and env.agents == env.possible_agents
            assert not any(done.values())
        else:
            assert not inner.agents and env.agents == []
            assert all(done.values())
    assert terms["v3"] and not truncs["v3"] and infos["v3"]["reason"] == "collision"
    assert truncs["v2"] and not terms["v2"] and infos["v2"]["TimeLimit.truncated"] is True
    for gone in ("v0", "v1", "v4"):  # left earlier or never came: padded, truncated, not bootstrapped
        assert truncs[gone] and not terms[gone]
        assert infos[gone] == {"padded": True, "TimeLimit.truncated": False}
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({})


def test_leaving_agent_keeps_its_last_real_observation_reward_and_info():
    env = FixedSlotParallelEnv(ToyConvoyEnv())
    env.reset(seed=0)
    for _ in range(4):
        obs, rewards, terms, truncs, infos = env.step({a: np.array([1.0], np.float32) for a in env.agents})
    assert infos["v1"]["reason"] == "collision" and not infos["v1"]["padded"]
    assert rewards["v1"] < 0 and obs["v1"]["ego"].any()
    assert not terms["v1"] and not truncs["v1"]  # slot stays open until the episode ends
    obs, *_, infos = env.step({a: np.array([1.0], np.float32) for a in env.agents})
    assert infos["v1"] == {"padded": True} and not obs["v1"]["ego"].any()


def test_unknown_agent_action_is_a_clear_error():
    env = FixedSlotParallelEnv(ToyConvoyEnv())
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"unknown agent\(s\) \['ghost'\]"):
        env.step({"ghost": np.array([0.0], np.float32)})


def test_vector_env_signals_done_for_all_slots_at_the_inner_episode_end_and_auto_resets():
    venv = ss.pettingzoo_env_to_vec_env_v1(FixedSlotParallelEnv(ToyConvoyEnv()))
    venv.reset(seed=0)
    for t in range(1, MAX_STEPS + 1):
        obs, _, terms, truncs, infos = venv.step(np.full((len(SCHEDULE), 1), 0.5, np.float32))
        assert (terms | truncs).all() == (t == MAX_STEPS)
    assert all("terminal_observation" in info for info in infos)
    # after the auto-reset, "padded" describes the new episode's first observation
    assert [info["padded"] for info in infos] == [a not in PRESENT_PER_STEP[0] for a in SCHEDULE]
    assert obs["peer_mask"].shape == (len(SCHEDULE), K)


def test_zero_padding_rejects_spaces_that_do_not_contain_zero():
    with pytest.raises(ValueError, match="outside"):
        zero_observation(gym.spaces.Box(1.0, 2.0, (3,), np.float32))
    with pytest.raises(ValueError, match="Box and Dict"):
        zero_observation(gym.spaces.Discrete(3))


# ─── seeding ───────────────────────────────────────────────────────────────────


def expected_first_obs(seed: int, num_envs: int) -> np.ndarray:
    """Ego features of every slot after resetting standalone copies with seeds seed+i."""
    egos = []
    for i in range(num_envs):
        obs, _ = FixedSlotParallelEnv(ToyConvoyEnv()).reset(seed=seed + i)
        egos += [obs[a]["ego"] for a in SCHEDULE]
    return np.stack(egos)


@pytest.mark.parametrize("num_cpus", [1, 2])
def test_seed_reaches_every_env_copy_as_seed_plus_index(num_cpus):
    # 4 copies on 2 workers: SuperSuit alone would give worker w seed+w, so copies 1 and 2 would collide
    venv = toy_vec_env(num_envs=4, num_cpus=num_cpus, seed=11)
    try:
        obs = venv.reset()
        np.testing.assert_array_equal(obs["ego"], expected_first_obs(11, 4))
        venv.seed(20)
        np.testing.assert_array_equal(venv.reset()["ego"], expected_first_obs(20, 4))
        assert not np.array_equal(venv.reset()["ego"], expected_first_obs(20, 4))  # seed used once
    finally:
        venv.close()


def ppo_parameters_after_training(seed: int, num_cpus: int) -> list[th.Tensor]:
    venv = toy_vec_env(num_envs=2, num_cpus=num_cpus)
    try:
        model = PPO(
            "MultiInputPolicy",
            venv,
            policy_kwargs=create_deep_set_policy_kwargs(peer_embed_dim=8, phi_hidden=(16,)),
            n_steps=14,
            batch_size=70,
            n_epochs=2,
            seed=seed,
        )
        model.learn(total_timesteps=3 * 14 * venv.num_envs)
        return [p.detach().clone() for p in model.policy.parameters()]
    finally:
        venv.close()


def test_ppo_with_the_same_seed_ends_with_identical_parameters_and_another_seed_differs():
    first = ppo_parameters_after_training(seed=5, num_cpus=2)
    again = ppo_parameters_after_training(seed=5, num_cpus=2)
    other = ppo_parameters_after_training(seed=6, num_cpus=2)
    assert all(th.equal(a, b) for a, b in zip(first, again))
    assert not all(th.equal(a, b) for a, b in zip(first, other))


# ─── closing ───────────────────────────────────────────────────────────────────


def test_closing_a_two_process_vec_env_closes_every_env_in_every_worker(tmp_path):
    venv = toy_vec_env(num_envs=4, num_cpus=2, marker_dir=str(tmp_path))
    workers = list(venv.venv.venv.venv.procs)
    worker_pids = {proc.pid for proc in workers}
    venv.reset()
    venv.step(np.full((venv.num_envs, 1), 0.5, np.float32))
    venv.close()
    markers = list(tmp_path.glob("closed-*"))
    assert len(markers) == 4
    assert {int(m.name.split("-")[1]) for m in markers} == worker_pids and len(worker_pids) == 2
    assert not any(proc.is_alive() for proc in workers)
    venv.close()  # idempotent
    assert len(list(tmp_path.glob("closed-*"))) == 4


def test_closing_an_in_process_vec_env_closes_every_env(tmp_path):
    venv = toy_vec_env(num_envs=3, num_cpus=1, marker_dir=str(tmp_path))
    venv.reset()
    venv.close()
    assert [int(m.name.split("-")[1]) for m in tmp_path.glob("closed-*")] == [os.getpid()] * 3


# ─── process rule and arguments ────────────────────────────────────────────────


def test_libsumo_gets_one_process_per_env_copy_by_default():
    assert resolve_num_cpus(3, None, "libsumo") == 3
    assert resolve_num_cpus(3, None, "traci") == 1
    assert resolve_num_cpus(1, 1, "libsumo") == 1
    assert resolve_num_cpus(2, 2, "libsumo") == 2
    assert resolve_num_cpus(4, 2, "traci") == 2


@pytest.mark.parametrize("num_cpus", [0, 1, 2])
def test_libsumo_with_several_copies_per_process_is_a_clear_error(num_cpus):
    with pytest.raises(ValueError, match=r"libsumo allows only one SUMO simulation per process.*num_cpus=3.*traci"):
        resolve_num_cpus(3, num_cpus, "libsumo")


def test_bad_arguments_name_what_is_wrong():
    with pytest.raises(ValueError, match="num_envs must be a positive int"):
        resolve_num_cpus(0, None, "traci")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_num_cpus(1, None, "sumo-gui")
    with pytest.raises(TypeError, match=r"env config key\(s\) \['scenario'\]"):
        make_vec_env(env_fn=ToyConvoyEnv, scenario="convoy_3")


# ─── padded-sample logging ─────────────────────────────────────────────────────


def test_padded_fraction_is_logged_and_a_mostly_padded_run_warns_once(tmp_path):
    venv = toy_vec_env(num_envs=1, num_cpus=1, seed=0)
    try:
        model = PPO("MultiInputPolicy", venv, n_steps=MAX_STEPS, batch_size=35, n_epochs=1, seed=0,
                    policy_kwargs=create_deep_set_policy_kwargs(peer_embed_dim=8))
        model.set_logger(configure(str(tmp_path), ["csv"]))
        callback = PaddedFractionCallback(warn_above=0.4)
        with pytest.warns(UserWarning, match="are padding") as record:
            model.learn(total_timesteps=3 * MAX_STEPS * venv.num_envs, callback=callback)
        assert sum("are padding" in str(w.message) for w in record) == 1
        present = sum(len(p) for p in PRESENT_PER_STEP[:MAX_STEPS])  # agents present at steps 0..6
        # A vehicle that leaves mid-episode (v0 at 5, v1 at 4) ends its slot's SB3 episode in that
        # step and the slot continues with padding at once, so its leave step returns padding too.
        left_mid_episode = sum(1 for _, (j, l, _) in SCHEDULE.items() if l is not None and l < MAX_STEPS - 1)
        expected = 1 - (present - left_mid_episode) / (MAX_STEPS * len(SCHEDULE))  # 18 / 35
        assert callback.last_fraction == pytest.approx(expected)
        with open(tmp_path / "progress.csv") as f:
            logged = [float(row["rollout/padded_fraction"]) for row in csv.DictReader(f)]
        assert logged == pytest.approx([expected] * 3)
    finally:
        venv.close()


# ─── vehicle-only episode statistics and acted flags (SuperSuit path) ─────────


def test_supersuit_path_reports_episodes_of_vehicles_only_and_flags_padded_actions():
    venv = toy_vec_env(num_envs=2, num_cpus=1, seed=0)
    try:
        venv.reset()
        episodes, acted = [], []
        for t in range(MAX_STEPS):
            _, _, dones, infos = venv.step(np.full((venv.num_envs, 1), 0.5, np.float32))
            acted.append([info["acted"] for info in infos])
            episodes += [(i % len(SCHEDULE), info["episode"]["l"]) for i, info in enumerate(infos) if "episode" in info]
        assert dones.all()
        # the action of step t (1-based) went to a vehicle iff it was present in the dicts of step t-1
        for t, row in enumerate(acted):
            assert row == [a in PRESENT_PER_STEP[t] and SCHEDULE[a][1] != t for a in SCHEDULE] * 2
        # one episode per vehicle per copy (v4 never departs: no episode); lengths = steps it acted
        slot = {a: i for i, a in enumerate(SCHEDULE)}
        expected = [(slot["v1"], 2), (slot["v0"], 5), (slot["v2"], 4), (slot["v3"], 6)]
        assert sorted(episodes) == sorted(expected * 2)
    finally:
        venv.close()


def test_make_vec_env_path_arguments_name_what_is_wrong():
    with pytest.raises(ValueError, match=r"via must be one of \('core', 'supersuit'\), got 'gym'"):
        make_vec_env(via="gym", scenario="convoy_3")
    with pytest.raises(TypeError, match="env_fn .* needs via='supersuit'"):
        make_vec_env(env_fn=ToyConvoyEnv, via="core")
    with pytest.raises(TypeError, match="core_fn needs via='core'"):
        make_vec_env(core_fn=object, via="supersuit")
    with pytest.raises(TypeError, match=r"core_fn and env config key\(s\) \['scenario'\]"):
        make_vec_env(core_fn=object, scenario="convoy_3")
    with pytest.raises(ValueError, match="unknown"):  # env keys are checked before anything starts
        make_vec_env(scenario="convoy_3", not_a_key=1)


def test_make_vec_env_sets_one_torch_thread():
    previous = th.get_num_threads()
    try:
        th.set_num_threads(2)
        venv = toy_vec_env(num_envs=1, num_cpus=1)
        venv.close()
        assert th.get_num_threads() == 1
    finally:
        th.set_num_threads(previous)
