"""MaskedPPO: identical to SB3's PPO when every sample is valid; invalid samples never reach the update."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from roadsense_marl.policies import create_deep_set_policy_kwargs
from roadsense_marl.training.ppo import MaskedDictRolloutBuffer, MaskedPPO

K, DIM = 4, 6


def space() -> gym.spaces.Dict:
    return gym.spaces.Dict(
        {
            "ego": gym.spaces.Box(-10, 10, (DIM,), np.float32),
            "peers": gym.spaces.Box(-10, 10, (K, DIM), np.float32),
            "peer_mask": gym.spaces.Box(0, 1, (K,), np.float32),
        }
    )


class BrakeEnv(gym.Env):
    """Reward -(a - target)^2, target = max valid peer feature 4; truncated every ``horizon`` steps."""

    def __init__(self, horizon: int = 9, acted: bool = True, scale: float = 1.0):
        self.observation_space, self.action_space = space(), gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.horizon, self.acted, self.scale = horizon, acted, scale

    def _obs(self):
        n = int(self.np_random.integers(0, K + 1))
        peers = np.zeros((K, DIM), np.float32)
        peers[:n] = self.np_random.uniform(0, 1, (n, DIM)) * self.scale
        mask = (np.arange(K) < n).astype(np.float32)
        self._target = float(peers[:n, 4].max()) if n else 0.0
        return {"ego": self.np_random.uniform(0, 1, DIM).astype(np.float32) * self.scale, "peers": peers, "peer_mask": mask}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        reward = -float((float(action[0]) - self._target) ** 2) * self.scale
        self.t += 1
        return self._obs(), reward, False, self.t >= self.horizon, {"acted": self.acted}


def trained_parameters(cls, env_fns, seed=3, **kwargs) -> list[th.Tensor]:
    venv = DummyVecEnv(env_fns)
    model = cls(
        "MultiInputPolicy", venv, seed=seed, n_steps=16, batch_size=8, n_epochs=2, device="cpu",
        policy_kwargs=create_deep_set_policy_kwargs(peer_embed_dim=8, phi_hidden=(16,)), **kwargs,
    )
    model.learn(total_timesteps=3 * 16 * venv.num_envs)
    return [p.detach().clone() for p in model.policy.parameters()]


def test_all_valid_masked_ppo_with_the_torch_forward_ends_with_plain_ppos_parameters():
    envs = [BrakeEnv, lambda: BrakeEnv(horizon=5)]
    plain = trained_parameters(PPO, envs)
    masked = trained_parameters(MaskedPPO, envs, numpy_rollout=False)
    assert all(th.equal(a, b) for a, b in zip(plain, masked))


def test_numpy_rollouts_are_deterministic_and_follow_plain_ppo_to_float_rounding():
    envs = [BrakeEnv, lambda: BrakeEnv(horizon=5)]
    plain = trained_parameters(PPO, envs)
    fast = trained_parameters(MaskedPPO, envs, numpy_rollout=True)
    again = trained_parameters(MaskedPPO, envs, numpy_rollout=True)
    assert all(th.equal(a, b) for a, b in zip(fast, again))
    for a, b in zip(plain, fast):
        th.testing.assert_close(a, b, rtol=0, atol=1e-4)


@pytest.mark.parametrize("numpy_rollout", [False, True])
def test_samples_flagged_not_acted_never_reach_the_update(numpy_rollout):
    # env 1 never acts; what it shows and earns differs wildly between the two runs
    garbage_a = [BrakeEnv, lambda: BrakeEnv(horizon=4, acted=False, scale=1.0)]
    garbage_b = [BrakeEnv, lambda: BrakeEnv(horizon=7, acted=False, scale=9.0)]
    a = trained_parameters(MaskedPPO, garbage_a, numpy_rollout=numpy_rollout)
    b = trained_parameters(MaskedPPO, garbage_b, numpy_rollout=numpy_rollout)
    assert all(th.equal(x, y) for x, y in zip(a, b))
    # the same two runs with plain PPO differ: the test can see garbage leaking into the update
    pa = trained_parameters(PPO, garbage_a)
    pb = trained_parameters(PPO, garbage_b)
    assert not all(th.equal(x, y) for x, y in zip(pa, pb))


def test_buffer_get_yields_exactly_the_valid_samples():
    buf = MaskedDictRolloutBuffer(4, space(), gym.spaces.Box(0, 1, (1,), np.float32), device="cpu", n_envs=3)
    obs = space().sample()
    rng = np.random.default_rng(0)
    valid = rng.random((4, 3)) < 0.5
    for t in range(4):
        batch = {k: np.stack([v] * 3) for k, v in obs.items()}
        batch["ego"][:, 0] = 10 * t + np.arange(3)  # tag: 10 * step + env
        buf.add(batch, np.zeros((3, 1), np.float32), np.zeros(3), np.zeros(3), th.zeros(3, 1), th.zeros(3), valid=valid[t])
    buf.compute_returns_and_advantage(th.zeros(3, 1), np.zeros(3))
    seen = sorted(float(x) for b in buf.get(batch_size=2) for x in b.observations["ego"][:, 0])
    assert seen == sorted(float(10 * t + e) for t, e in zip(*np.nonzero(valid)))
    buf.reset()
    with pytest.raises(ValueError, match=r"valid must have shape \(3,\)"):
        buf.add(batch, np.zeros((3, 1), np.float32), np.zeros(3), np.zeros(3), th.zeros(3, 1), th.zeros(3), valid=[True])
    assert buf.pos == 0  # nothing was stored


def test_a_rollout_without_valid_samples_skips_the_update_with_a_warning():
    venv = DummyVecEnv([lambda: BrakeEnv(acted=False)])
    model = MaskedPPO("MultiInputPolicy", venv, seed=0, n_steps=8, batch_size=8, device="cpu",
                      policy_kwargs=create_deep_set_policy_kwargs(peer_embed_dim=4))
    before = [p.detach().clone() for p in model.policy.parameters()]
    with pytest.warns(UserWarning, match="no sample of this rollout drove a vehicle"):
        model.learn(total_timesteps=8)
    assert all(th.equal(a, b) for a, b in zip(before, model.policy.parameters()))


def test_masked_ppo_saves_a_zip_that_plain_ppo_loads(tmp_path):
    venv = DummyVecEnv([BrakeEnv])
    model = MaskedPPO("MultiInputPolicy", venv, seed=0, n_steps=8, batch_size=8, device="cpu",
                      policy_kwargs=create_deep_set_policy_kwargs(peer_embed_dim=4))
    model.learn(total_timesteps=8)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", device="cpu")
    assert all(th.equal(a, b) for a, b in zip(model.policy.parameters(), loaded.policy.parameters()))
