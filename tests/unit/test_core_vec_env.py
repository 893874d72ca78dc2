"""CoreVecEnv on a test double of the core: slot episodes, padding, auto-reset, seeding, workers, closing."""

from __future__ import annotations

import functools
import os
import signal

import numpy as np
import pytest
import torch as th
from core_double import MAX_STEPS, N_SLOTS, FakeCore
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from roadsense_marl.policies import create_deep_set_policy_kwargs
from roadsense_marl.training.core_vec_env import CoreVecEnv, WorkerDiedError
from roadsense_marl.training.ppo import MaskedPPO


def vec(copies=2, num_cpus=0, seed=None, **core_kwargs):
    return CoreVecEnv([functools.partial(FakeCore, **core_kwargs)] * copies, num_cpus=num_cpus, seed=seed)


def actions_for(step, n):
    return np.linspace(0, 1, n, dtype=np.float32)[::-1].copy() * ((step % 3) / 2)


def reference_episode(seed, actions_fn, copy_index, copies):
    """Step one FakeCore by hand: per step (obs, reward, done, terminal obs, episode) for each slot."""
    core = FakeCore()
    core.reset(seed=seed)
    rows = []
    occupied = core.live.copy()
    ret, length = np.zeros(N_SLOTS), np.zeros(N_SLOTS, int)
    for t in range(MAX_STEPS):
        full = actions_fn(t, copies * N_SLOTS)
        core.step(full[copy_index * N_SLOTS:(copy_index + 1) * N_SLOTS])
        ret += core.reward
        length += occupied
        row = []
        for s in range(N_SLOTS):
            ended = core.terminated[s] or core.truncated[s]
            episode = (round(ret[s], 6), int(length[s])) if ended else None
            if ended:
                ret[s], length[s] = 0, 0
            terminal = core.obs["ego"][s].copy() if ended else (np.zeros(6, np.float32) if core.joined[s] else None)
            obs = np.zeros(6, np.float32) if ended else core.obs["ego"][s].copy()
            row.append((obs, float(np.float32(core.reward[s])), bool(ended or core.joined[s] or core.episode_over),
                        terminal, episode, bool(core.acted[s]), bool(core.truncated[s] and not core.terminated[s])))
        rows.append(row)
        occupied = core.live.copy()
    assert core.episode_over
    return rows


@pytest.mark.parametrize("num_cpus", [0, 2])
def test_each_slot_is_an_sb3_episode_per_vehicle_with_padding_between(num_cpus):
    venv = vec(copies=2, num_cpus=num_cpus, seed=11)
    try:
        venv.reset()
        expected = [reference_episode(11 + c, actions_for, c, 2) for c in range(2)]
        for t in range(MAX_STEPS):
            obs, rewards, dones, infos = venv.step(actions_for(t, venv.num_envs))
            for i in range(venv.num_envs):
                c, s = divmod(i, N_SLOTS)
                e_obs, e_rew, e_done, e_term, e_ep, e_acted, e_trunc = expected[c][t][s]
                assert rewards[i] == e_rew and dones[i] == e_done and infos[i]["acted"] == e_acted, (t, i)
                if t < MAX_STEPS - 1:  # the last step returns the next episode's first observation
                    np.testing.assert_array_equal(obs["ego"][i], e_obs)
                if e_term is not None:
                    np.testing.assert_array_equal(infos[i]["terminal_observation"]["ego"], e_term)
                    assert infos[i]["TimeLimit.truncated"] == e_trunc
                if e_ep is None:
                    assert "episode" not in infos[i]
                else:
                    assert (infos[i]["episode"]["r"], infos[i]["episode"]["l"]) == e_ep
        # 5 vehicles per copy, each exactly one "episode"; padding never
        assert dones.all()
    finally:
        venv.close()


def test_slot_schedule_gives_the_expected_done_pattern():
    venv = vec(copies=1, seed=0)
    try:
        venv.reset()
        pattern, reasons = [], []
        episodes = 0
        for t in range(MAX_STEPS):
            _, _, dones, infos = venv.step(np.zeros(3, np.float32))
            pattern.append("".join("D" if d else "." for d in dones))
            episodes += sum("episode" in info for info in infos)
            reasons += [(t + 1, i, info["reason"]) for i, info in enumerate(infos) if "reason" in info]
        # c joins slot 2 at 1 (ends its padding) and arrives at 3, a collides at 4 and d joins slot 2 at 4,
        # e joins slot 0 at 5, d collides at 7, the episode ends at 9
        assert pattern == ["..D", "...", "..D", "D.D", "D..", "...", "..D", "...", "DDD"]
        assert episodes == 5
        assert reasons == [(3, 2, "arrived"), (4, 0, "collision"), (7, 2, "collision"), (9, 0, "max_steps"), (9, 1, "max_steps")]
    finally:
        venv.close()


def test_auto_reset_continues_each_cores_stream_and_seed_restarts_it():
    venv = vec(copies=2, seed=4)
    try:
        first = venv.reset()["ego"].copy()
        for _ in range(MAX_STEPS):
            second_episode, *_ = venv.step(np.zeros(6, np.float32))
        assert not np.array_equal(second_episode["ego"], first)  # unseeded auto-reset: new episode
        venv.seed(4)
        np.testing.assert_array_equal(venv.reset()["ego"], first)
        core = FakeCore()
        core.reset(seed=5)  # copy 1 got seed + 1
        np.testing.assert_array_equal(first[N_SLOTS:], core.obs["ego"])
    finally:
        venv.close()


def test_bad_actions_are_rejected_before_any_core_steps():
    venv = vec(copies=2, seed=0)
    try:
        venv.reset()
        a = np.zeros(6, np.float32)
        a[4] = np.nan  # copy 1, slot 1: agent "b"
        with pytest.raises(ValueError, match=r"vector index 4 \(env copy 1, slot 1, agent 'b'\).*Nothing was stepped"):
            venv.step(a)
        assert [r.core.num_steps for r in venv._runners] == [0, 0]
        with pytest.raises(ValueError, match=r"actions must have shape \(6,\) or \(6, 1\)"):
            venv.step(np.zeros(5, np.float32))
        a[4] = 0.0
        a[2] = np.nan  # slot 2 is empty before step 1: its action is ignored
        venv.step(a)
    finally:
        venv.close()


def test_monitor_statistics_count_vehicles_only_in_evaluate_policy():
    venv = vec(copies=1, seed=0)
    try:
        assert venv.env_is_wrapped(Monitor) == [True] * 3
        model = MaskedPPO("MultiInputPolicy", venv, n_steps=9, batch_size=9, seed=0, device="cpu",
                          policy_kwargs=create_deep_set_policy_kwargs(peer_embed_dim=4))
        rewards, lengths = evaluate_policy(model, venv, n_eval_episodes=3, return_episode_rewards=True, warn=False)
        # one episode per slot, the first vehicle of each in the order they end: c (2 steps), a (4), b (9);
        # the padding before c joins slot 2 is not an episode
        assert lengths == [2, 4, 9] and all(r != 0 for r in rewards)
    finally:
        venv.close()


def test_masked_ppo_on_core_vec_env_is_deterministic_across_processes():
    def params(num_cpus):
        venv = vec(copies=2, num_cpus=num_cpus)
        try:
            model = MaskedPPO("MultiInputPolicy", venv, n_steps=12, batch_size=36, n_epochs=2, seed=9, device="cpu",
                              policy_kwargs=create_deep_set_policy_kwargs(peer_embed_dim=4, phi_hidden=(8,)))
            model.learn(total_timesteps=3 * 12 * venv.num_envs)
            assert len(model.ep_info_buffer) > 0 and all(ep["l"] > 0 for ep in model.ep_info_buffer)
            return [p.detach().clone() for p in model.policy.parameters()]
        finally:
            venv.close()

    a, b = params(0), params(2)
    assert all(th.equal(x, y) for x, y in zip(a, b))


def test_closing_closes_every_core_in_every_worker(tmp_path):
    venv = vec(copies=2, num_cpus=2, seed=0, marker_dir=str(tmp_path))
    pids = [w.process.pid for w in venv._workers]
    venv.reset()
    venv.step(np.zeros(6, np.float32))
    venv.close()
    markers = sorted(int(m.name.split("-")[1]) for m in tmp_path.glob("closed-*"))
    assert markers == sorted(pids) and os.getpid() not in markers
    assert not any(w.process.is_alive() for w in venv._workers)
    venv.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        venv.reset()


def test_a_killed_worker_is_a_clear_error_naming_it_and_its_state():
    venv = vec(copies=2, num_cpus=2, seed=0)
    try:
        venv.reset()
        for _ in range(3):
            venv.step(np.zeros(6, np.float32))
        victim = venv._workers[1]
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.join(5)
        with pytest.raises(WorkerDiedError, match=rf"worker 1 \(pid {victim.process.pid}, env copies \[1\]\) "
                           r"was killed by signal SIGKILL while running 'step'; last known state: copy 1 at episode step 3"):
            venv.step(np.zeros(6, np.float32))
    finally:
        venv.close()
    assert not any(w.process.is_alive() for w in venv._workers)


def test_a_core_error_in_a_worker_names_the_worker():
    class Boom(FakeCore):
        def step(self, actions):
            raise ValueError("the core refused")

    venv = CoreVecEnv([Boom, Boom], num_cpus=2, seed=0)
    try:
        venv.reset()
        with pytest.raises(ValueError, match=r"the core refused \(in CoreVecEnv worker 0 \(pid \d+, env copies \[0\]\)"):
            venv.step(np.zeros(6, np.float32))
    finally:
        venv.close()


class SlowCore(FakeCore):
    def step(self, actions):
        import time

        time.sleep(0.3)
        super().step(actions)


def test_close_after_a_worker_died_skips_the_replies_the_others_still_owe():
    # worker 0 is still stepping when worker 1's death is reported; its late step reply must
    # not be taken for the answer to close()
    venv = CoreVecEnv([SlowCore, FakeCore], num_cpus=2, seed=0)
    venv.reset()
    os.kill(venv._workers[1].process.pid, signal.SIGKILL)
    venv._workers[1].process.join(5)
    with pytest.raises(WorkerDiedError, match="worker 1"):
        venv.step(np.zeros(6, np.float32))
    venv.close()  # no "closing the CoreVecEnv failed"
    assert not any(w.process.is_alive() for w in venv._workers)
