"""Deep Sets extractor: set invariances, masking, gradients, sizes, option errors, PPO smoke run."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from torch import nn

from roadsense_marl.policies import DeepSetExtractor, create_deep_set_policy_kwargs, masked_pool

EGO_DIM, PEER_DIM = 6, 6


def dict_space(k: int) -> gym.spaces.Dict:
    return gym.spaces.Dict(
        {
            "ego": gym.spaces.Box(-np.inf, np.inf, (EGO_DIM,), np.float32),
            "peers": gym.spaces.Box(-np.inf, np.inf, (k, PEER_DIM), np.float32),
            "peer_mask": gym.spaces.Box(0.0, 1.0, (k,), np.float32),
        }
    )


def random_batch(k: int, batch: int = 16, seed: int = 0) -> dict[str, th.Tensor]:
    """Random observations with 0..k valid peers per sample (valid rows scattered, not only first)."""
    rng = np.random.default_rng(seed)
    mask = (rng.random((batch, k)) < 0.5).astype(np.float32)
    mask[0] = 0.0  # one sample without any peer
    mask[1] = 1.0  # one sample with all peers
    peers = rng.normal(size=(batch, k, PEER_DIM)).astype(np.float32)
    peers[mask == 0] = rng.normal(size=(int((mask == 0).sum()), PEER_DIM)) * 100  # garbage in padding
    ego = rng.normal(size=(batch, EGO_DIM)).astype(np.float32)
    return {"ego": th.tensor(ego), "peers": th.tensor(peers), "peer_mask": th.tensor(mask)}


OPTION_SETS = [
    {"pooling": "max"},
    {"pooling": "mean"},
    {"pooling": "sum"},
    {"pooling": "max", "rho_hidden": (64,)},
    {"pooling": "mean", "phi_hidden": (), "rho_hidden": (32, 16)},
    {"pooling": "sum", "phi_hidden": (16, 16), "activation_fn": nn.Tanh},
]


def make_extractor(k: int, peer_embed_dim: int = 32, **options) -> DeepSetExtractor:
    th.manual_seed(0)
    return DeepSetExtractor(dict_space(k), peer_embed_dim=peer_embed_dim, **options)


def assert_same(a: th.Tensor, b: th.Tensor, pooling: str) -> None:
    # max selects values, so it is exact; sum/mean add the same numbers in another order
    if pooling == "max":
        assert th.equal(a, b)
    else:
        th.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("options", OPTION_SETS)
def test_shuffling_peer_rows_with_their_mask_leaves_features_unchanged(options):
    ext = make_extractor(5, **options)
    obs = random_batch(5)
    perm = th.tensor([3, 0, 4, 1, 2])
    shuffled = {**obs, "peers": obs["peers"][:, perm], "peer_mask": obs["peer_mask"][:, perm]}
    with th.no_grad():
        assert_same(ext(obs), ext(shuffled), options["pooling"])


@pytest.mark.parametrize("options", OPTION_SETS)
def test_extra_masked_padding_rows_leave_features_unchanged(options):
    k = 4
    small, big = make_extractor(k, **options), make_extractor(2 * k, **options)
    big.load_state_dict(small.state_dict())  # same weights: φ does not depend on K
    obs = random_batch(k)
    pad = th.randn(obs["peers"].shape) * 1e3  # padding rows full of large garbage
    padded = {
        "ego": obs["ego"],
        "peers": th.cat([obs["peers"], pad], dim=1),
        "peer_mask": th.cat([obs["peer_mask"], th.zeros_like(obs["peer_mask"])], dim=1),
    }
    with th.no_grad():
        assert_same(small(obs), big(padded), options["pooling"])


@pytest.mark.parametrize("pooling", ["max", "mean", "sum"])
def test_no_valid_peer_pools_to_zeros_with_finite_features_and_gradients(pooling):
    ext = make_extractor(3, pooling=pooling)
    obs = random_batch(3)
    obs["peer_mask"].zero_()
    obs["peers"].requires_grad_(True)
    feats = ext(obs)
    assert th.isfinite(feats).all()
    th.testing.assert_close(feats[:, EGO_DIM:], th.zeros(len(feats), 32))
    th.testing.assert_close(feats[:, :EGO_DIM], obs["ego"])
    feats.sum().backward()
    assert all(th.isfinite(p.grad).all() for p in ext.parameters() if p.grad is not None)
    assert th.equal(obs["peers"].grad, th.zeros_like(obs["peers"]))  # masked rows get no gradient


def test_masked_pool_ignores_nan_in_padding_for_max():
    emb = th.tensor([[[1.0, -2.0], [float("nan"), float("nan")], [3.0, -5.0]]])
    mask = th.tensor([[True, False, True]])
    assert th.equal(masked_pool(emb, mask, "max"), th.tensor([[3.0, -2.0]]))
    th.testing.assert_close(masked_pool(emb, mask, "mean"), th.tensor([[2.0, -3.5]]))


@pytest.mark.parametrize("options", OPTION_SETS)
def test_gradients_reach_phi_through_the_pooling(options):
    ext = make_extractor(4, **options)
    ext(random_batch(4)).pow(2).sum().backward()
    phi_grads = [p.grad for p in ext.phi.parameters()]
    assert phi_grads and all(g is not None and g.abs().sum() > 0 for g in phi_grads)


@pytest.mark.parametrize(
    "options, expected_dim",
    [
        ({}, EGO_DIM + 32),
        ({"peer_embed_dim": 8}, EGO_DIM + 8),
        ({"pooling": "sum", "phi_hidden": ()}, EGO_DIM + 32),
        ({"rho_hidden": (64,)}, 64),
        ({"rho_hidden": (64, 20), "peer_embed_dim": 16}, 20),
    ],
)
def test_features_dim_matches_the_output_width(options, expected_dim):
    ext = make_extractor(4, **options)
    assert ext.features_dim == expected_dim
    assert ext(random_batch(4)).shape == (16, expected_dim)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pooling": "median"}, "pooling must be one of"),
        ({"peer_embed_dim": 0}, "peer_embed_dim must be a positive int"),
        ({"phi_hidden": 64}, "phi_hidden must be a sequence"),
        ({"rho_hidden": (64, -1)}, "rho_hidden must contain only positive ints"),
        ({"activation_fn": "relu"}, "activation_fn must be a torch.nn.Module class"),
    ],
)
def test_bad_options_raise_errors_naming_the_option(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeepSetExtractor(dict_space(4), **kwargs)
    with pytest.raises(ValueError, match=message):
        create_deep_set_policy_kwargs(**kwargs)


def test_unknown_option_names_the_option_and_the_valid_ones():
    with pytest.raises(TypeError, match=r"\['poolng'\].*valid options"):
        create_deep_set_policy_kwargs(poolng="max")


def test_observation_space_without_a_mask_is_rejected_with_the_expected_layout():
    space = gym.spaces.Dict({k: v for k, v in dict_space(4).spaces.items() if k != "peer_mask"})
    with pytest.raises(ValueError, match=r"lacks key\(s\) \['peer_mask'\]"):
        DeepSetExtractor(space)
    bad = dict_space(4)
    bad.spaces["peer_mask"] = gym.spaces.Box(0, 1, (5,), np.float32)
    with pytest.raises(ValueError, match="must match"):
        DeepSetExtractor(bad)


class PeerBrakeEnv(gym.Env):
    """Tiny single-agent env with the roadsense Dict observation: brake when a peer brakes.

    Reward is -(action - target)^2 where target is the largest "peer accel" feature over the
    valid peers (0 without peers), so the policy has to read the masked set.
    """

    def __init__(self, k: int = 4, horizon: int = 32):
        self.k, self.horizon = k, horizon
        self.observation_space = dict_space(k)
        self.action_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)

    def _obs(self):
        n = int(self.np_random.integers(0, self.k + 1))
        peers = np.zeros((self.k, PEER_DIM), np.float32)
        peers[:n] = self.np_random.uniform(0, 1, (n, PEER_DIM))
        mask = np.zeros(self.k, np.float32)
        mask[:n] = 1
        self._target = float(peers[:n, 4].max()) if n else 0.0
        return {"ego": self.np_random.uniform(0, 1, EGO_DIM).astype(np.float32), "peers": peers, "peer_mask": mask}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        reward = -float((float(action[0]) - self._target) ** 2)
        self.t += 1
        return self._obs(), reward, False, self.t >= self.horizon, {}


def test_ppo_multi_input_policy_trains_with_deep_set_kwargs():
    kwargs = create_deep_set_policy_kwargs(peer_embed_dim=16, rho_hidden=(32,))
    model = PPO("MultiInputPolicy", PeerBrakeEnv(), policy_kwargs=kwargs, n_steps=128, batch_size=64, n_epochs=2, seed=0)
    assert isinstance(model.policy.features_extractor, DeepSetExtractor)
    before = [p.detach().clone() for p in model.policy.features_extractor.phi.parameters()]
    model.learn(total_timesteps=384)
    after = list(model.policy.features_extractor.phi.parameters())
    assert any(not th.equal(b, a) for b, a in zip(before, after))  # φ was trained
    action, _ = model.predict(PeerBrakeEnv().reset(seed=1)[0], deterministic=True)
    assert action.shape == (1,) and 0.0 <= action[0] <= 1.0


def test_log_std_init_reaches_the_ppo_action_distribution():
    kwargs = create_deep_set_policy_kwargs(peer_embed_dim=8, log_std_init=-2.0)
    assert kwargs["log_std_init"] == -2.0
    model = PPO("MultiInputPolicy", PeerBrakeEnv(), policy_kwargs=kwargs, n_steps=32, batch_size=32, seed=0)
    assert th.allclose(model.policy.log_std, th.full_like(model.policy.log_std, -2.0))
    assert "log_std_init" not in create_deep_set_policy_kwargs()  # SB3's default (0.0) unless asked


@pytest.mark.parametrize("bad", ["-2", float("nan"), True])
def test_bad_log_std_init_names_the_option(bad):
    with pytest.raises(ValueError, match="log_std_init must be a finite number"):
        create_deep_set_policy_kwargs(log_std_init=bad)


# ─── NumPy forward ─────────────────────────────────────────────────────────────


def _policy(options: dict, k: int = 5, share: bool = True, **kwargs):
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    th.manual_seed(1)
    policy_kwargs = create_deep_set_policy_kwargs(peer_embed_dim=16, **options, **kwargs)
    return MultiInputActorCriticPolicy(
        dict_space(k), gym.spaces.Box(0.0, 1.0, (1,), np.float32), lambda _: 3e-4,
        share_features_extractor=share, **policy_kwargs
    )


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("options", OPTION_SETS)
def test_numpy_forward_matches_torch_actions_log_probs_and_values(options, share):
    from roadsense_marl.policies import NumpyActorCritic

    policy = _policy(options, share=share, log_std_init=-0.7)
    with th.no_grad():  # perturb the weights so biases and log_std are not at their init values
        for p in policy.parameters():
            p.add_(0.05 * th.randn_like(p))
    obs = random_batch(5, batch=10, seed=3)
    fast = NumpyActorCritic.from_policy(policy)
    th.manual_seed(7)
    with th.no_grad():
        actions, values, log_probs = policy(obs)
    th.manual_seed(7)
    noise = th.randn(10, 1).numpy()
    np_actions, np_values, np_log_probs = fast.sample({k: v.numpy() for k, v in obs.items()}, noise)
    np.testing.assert_allclose(np_actions, actions.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np_values, values.numpy()[:, 0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(np_log_probs, log_probs.numpy(), rtol=0, atol=1e-5)
    with th.no_grad():
        torch_values = policy.predict_values(obs).numpy()[:, 0]
    np.testing.assert_allclose(fast.predict_values({k: v.numpy() for k, v in obs.items()}), torch_values, atol=1e-5)


def test_numpy_forward_is_a_snapshot_until_taken_again():
    from roadsense_marl.policies import NumpyActorCritic

    policy = _policy({})
    obs = {k: v.numpy() for k, v in random_batch(5, batch=4).items()}
    fast = NumpyActorCritic.from_policy(policy)
    before = fast.forward(obs)[0].copy()
    with th.no_grad():
        policy.action_net.bias.add_(1.0)
    np.testing.assert_array_equal(fast.forward(obs)[0], before)
    np.testing.assert_allclose(NumpyActorCritic.from_policy(policy).forward(obs)[0], before + 1.0, atol=1e-6)


def test_numpy_forward_names_what_it_cannot_run():
    from roadsense_marl.policies import NumpyActorCritic

    policy = _policy({"activation_fn": nn.GELU})
    with pytest.raises(NotImplementedError, match=r"DeepSetExtractor.phi: no NumPy forward for GELU"):
        NumpyActorCritic.from_policy(policy)
