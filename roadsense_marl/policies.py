"""Deep Sets feature extractor for SB3: one shared policy over a variable set of peer messages.

Every vehicle observes its own state (``"ego"``) and up to K received peer messages
(``"peers"``, K rows, padded) with a validity mask (``"peer_mask"``). The extractor

1. applies φ, a small MLP, to every peer row independently (``(B, K, F) -> (B, K, E)``);
2. pools the embeddings of the valid rows only (max by default; mean and sum selectable).
   A sample without any valid peer pools to zeros, never NaN or -inf;
3. concatenates the pooled vector with the ego vector and, optionally, passes the result
   through ρ, a second small MLP.

Pooling over a set makes the features invariant to the order of the peer rows and to how
many masked padding rows follow them, so the same network serves every K and every
number of neighbours.

Use it through :func:`create_deep_set_policy_kwargs`::

    PPO("MultiInputPolicy", venv, policy_kwargs=create_deep_set_policy_kwargs(peer_embed_dim=32))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

EGO_KEY = "ego"
PEERS_KEY = "peers"
MASK_KEY = "peer_mask"
POOLING_MODES = ("max", "mean", "sum")

_OPTION_NAMES = ("phi_hidden", "pooling", "rho_hidden", "activation_fn")


def _check_layer_sizes(name: str, sizes: Any) -> tuple[int, ...]:
    """Return ``sizes`` as a tuple of positive ints or raise a ValueError naming ``name``."""
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise ValueError(f"{name} must be a sequence of positive ints such as (64,) or (), got {sizes!r}")
    out = tuple(sizes)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in out):
        raise ValueError(f"{name} must contain only positive ints, got {sizes!r}")
    return out


def _check_options(
    peer_embed_dim: Any, phi_hidden: Any, pooling: Any, rho_hidden: Any, activation_fn: Any
) -> tuple[int, tuple[int, ...], str, tuple[int, ...], type[nn.Module]]:
    """Validate the extractor options; every error names the option and what would be valid."""
    if not isinstance(peer_embed_dim, int) or isinstance(peer_embed_dim, bool) or peer_embed_dim <= 0:
        raise ValueError(f"peer_embed_dim must be a positive int, got {peer_embed_dim!r}")
    if pooling not in POOLING_MODES:
        raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
    if not (isinstance(activation_fn, type) and issubclass(activation_fn, nn.Module)):
        raise ValueError(
            f"activation_fn must be a torch.nn.Module class such as torch.nn.ReLU, got {activation_fn!r}"
        )
    return (
        peer_embed_dim,
        _check_layer_sizes("phi_hidden", phi_hidden),
        pooling,
        _check_layer_sizes("rho_hidden", rho_hidden),
        activation_fn,
    )


def _check_observation_space(observation_space: gym.Space) -> tuple[int, int, int]:
    """Return (ego_dim, max_peers K, peer_dim) or raise a ValueError describing the expected space."""
    expected = (
        f'a gymnasium.spaces.Dict with Box entries "{EGO_KEY}" (E,), "{PEERS_KEY}" (K, F) '
        f'and "{MASK_KEY}" (K,)'
    )
    if not isinstance(observation_space, gym.spaces.Dict):
        raise ValueError(f"DeepSetExtractor needs {expected}, got {observation_space!r}")
    missing = [k for k in (EGO_KEY, PEERS_KEY, MASK_KEY) if k not in observation_space.spaces]
    if missing:
        raise ValueError(
            f"DeepSetExtractor observation space lacks key(s) {missing}: needs {expected}, "
            f"got keys {list(observation_space.spaces)}"
        )
    ego, peers, mask = (observation_space[k] for k in (EGO_KEY, PEERS_KEY, MASK_KEY))
    for key, space, ndim in ((EGO_KEY, ego, 1), (PEERS_KEY, peers, 2), (MASK_KEY, mask, 1)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != ndim:
            raise ValueError(f'observation space "{key}" must be a {ndim}-D Box: needs {expected}, got {space!r}')
    if mask.shape[0] != peers.shape[0]:
        raise ValueError(
            f'"{MASK_KEY}" has {mask.shape[0]} entries but "{PEERS_KEY}" has {peers.shape[0]} rows; they must match'
        )
    return ego.shape[0], peers.shape[0], peers.shape[1]


def _mlp(in_dim: int, sizes: tuple[int, ...], activation_fn: type[nn.Module]) -> nn.Sequential:
    """Linear + activation for every size in ``sizes`` (an empty tuple is the identity)."""
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(in_dim, size), activation_fn()]
        in_dim = size
    return nn.Sequential(*layers)


def masked_pool(embeddings: th.Tensor, mask: th.Tensor, pooling: str) -> th.Tensor:
    """Pool ``embeddings`` (B, K, E) over K using only rows where ``mask`` (B, K) is true.

    A sample with no valid row pools to zeros. Masked rows never influence the result,
    whatever they contain (the max path selects with ``torch.where``, so even a NaN in a
    padding row cannot leak through).
    """
    valid = mask.unsqueeze(-1)  # (B, K, 1) bool
    if pooling == "max":
        filled = th.where(valid, embeddings, th.full_like(embeddings, float("-inf")))
        pooled = filled.amax(dim=1)
        has_peer = mask.any(dim=1, keepdim=True)
        return th.where(has_peer, pooled, th.zeros_like(pooled))
    summed = th.where(valid, embeddings, th.zeros_like(embeddings)).sum(dim=1)
    if pooling == "sum":
        return summed
    if pooling == "mean":
        count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(embeddings.dtype)
        return summed / count
    raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")


class DeepSetExtractor(BaseFeaturesExtractor):
    """SB3 features extractor: φ per peer row → masked pooling → concat ego → optional ρ.

    :param observation_space: Dict with Box ``"ego"`` (E,), ``"peers"`` (K, F), ``"peer_mask"`` (K,);
        a peer row is valid where its mask entry is > 0.5.
    :param peer_embed_dim: width E' of φ's output, the pooled peer summary.
    :param phi_hidden: hidden layer widths of φ before its output layer.
    :param pooling: ``"max"`` (default), ``"mean"`` or ``"sum"`` over valid rows.
    :param rho_hidden: layer widths of ρ applied to ``concat(ego, pooled)``; ``()`` (default)
        skips ρ and the features are that concatenation.
    :param activation_fn: activation class used after every linear layer.

    ``features_dim`` is ``E + peer_embed_dim`` without ρ and ``rho_hidden[-1]`` with it.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        peer_embed_dim: int = 32,
        phi_hidden: Sequence[int] = (64,),
        pooling: str = "max",
        rho_hidden: Sequence[int] = (),
        activation_fn: type[nn.Module] = nn.ReLU,
    ) -> None:
        peer_embed_dim, phi_hidden, pooling, rho_hidden, activation_fn = _check_options(
            peer_embed_dim, phi_hidden, pooling, rho_hidden, activation_fn
        )
        ego_dim, _, peer_dim = _check_observation_space(observation_space)
        concat_dim = ego_dim + peer_embed_dim
        super().__init__(observation_space, features_dim=rho_hidden[-1] if rho_hidden else concat_dim)
        self.pooling = pooling
        self.phi = _mlp(peer_dim, (*phi_hidden, peer_embed_dim), activation_fn)
        self.rho = _mlp(concat_dim, rho_hidden, activation_fn)

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        ego = observations[EGO_KEY]
        peers = observations[PEERS_KEY]
        mask = observations[MASK_KEY] > 0.5
        pooled = masked_pool(self.phi(peers), mask, self.pooling)
        return self.rho(th.cat([ego, pooled], dim=1))


def create_deep_set_policy_kwargs(peer_embed_dim: int = 32, **options: Any) -> dict[str, Any]:
    """``policy_kwargs`` for ``PPO("MultiInputPolicy", ...)`` using :class:`DeepSetExtractor`.

    :param peer_embed_dim: width of the pooled peer summary.
    :param options: any of ``phi_hidden``, ``pooling``, ``rho_hidden``, ``activation_fn``
        (passed to the extractor), ``net_arch`` (SB3's policy/value heads after the
        extractor; SB3's default when omitted) and ``log_std_init`` (initial log standard
        deviation of SB3's Gaussian action distribution; SB3's 0.0 when omitted). Validated
        here, so a typo fails before PPO is built.

    Why ``log_std_init``: with the env's ``brake`` action (``Box(0, 1)``, ``a <= 0.02`` = drive),
    SB3's initial Gaussian (mean 0, std 1) brakes in about half of the samples, with a mean
    brake fraction of ~0.8 when it does, so a convoy stops before the policy learns that
    driving pays. A smaller initial std (e.g. ``-2.0``: std 0.14) still brakes in half of
    the samples but gently, so cars keep moving while the policy explores.
    """
    net_arch = options.pop("net_arch", None)
    log_std_init = options.pop("log_std_init", None)
    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"create_deep_set_policy_kwargs got unknown option(s) {unknown}; "
            f"valid options are peer_embed_dim, net_arch, log_std_init and {list(_OPTION_NAMES)}"
        )
    defaults = {"phi_hidden": (64,), "pooling": "max", "rho_hidden": (), "activation_fn": nn.ReLU}
    merged = {**defaults, **options}
    peer_embed_dim, phi_hidden, pooling, rho_hidden, activation_fn = _check_options(
        peer_embed_dim, merged["phi_hidden"], merged["pooling"], merged["rho_hidden"], merged["activation_fn"]
    )
    kwargs: dict[str, Any] = {
        "features_extractor_class": DeepSetExtractor,
        "features_extractor_kwargs": {
            "peer_embed_dim": peer_embed_dim,
            "phi_hidden": phi_hidden,
            "pooling": pooling,
            "rho_hidden": rho_hidden,
            "activation_fn": activation_fn,
        },
    }
    if net_arch is not None:
        kwargs["net_arch"] = net_arch
    if log_std_init is not None:
        if isinstance(log_std_init, bool) or not isinstance(log_std_init, (int, float)) or not math.isfinite(log_std_init):
            raise ValueError(f"log_std_init must be a finite number (e.g. -2.0 for std 0.14), got {log_std_init!r}")
        kwargs["log_std_init"] = float(log_std_init)
    return kwargs


# ─── NumPy forward for rollouts ──────────────────────────────────────────────────


def _np_relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)


def _np_tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x, out=x)


def _np_identity(x: np.ndarray) -> np.ndarray:
    return x


_NUMPY_ACTIVATIONS: dict[type[nn.Module], Any] = {nn.ReLU: _np_relu, nn.Tanh: _np_tanh, nn.Identity: _np_identity}


def _numpy_layers(module: nn.Module, name: str) -> list[tuple[str, Any, Any]]:
    """A torch ``Sequential`` of Linear layers and supported activations as NumPy steps.

    Returns ``[("linear", W.T float32 (in, out), b float32 (out,)) | ("act", fn, None), ...]``;
    the arrays are copies, so later optimiser steps do not change them. Raises
    NotImplementedError naming the module for anything else (the caller then uses torch).
    """
    children = list(module) if isinstance(module, nn.Sequential) else [module]
    steps: list[tuple[str, Any, Any]] = []
    for child in children:
        if isinstance(child, nn.Linear):
            weight = child.weight.detach().cpu().numpy().astype(np.float32).T.copy()
            bias = (
                child.bias.detach().cpu().numpy().astype(np.float32).copy()
                if child.bias is not None
                else np.zeros(weight.shape[1], np.float32)
            )
            steps.append(("linear", weight, bias))
        elif type(child) in _NUMPY_ACTIVATIONS:
            steps.append(("act", _NUMPY_ACTIVATIONS[type(child)], None))
        elif isinstance(child, nn.Sequential):
            steps += _numpy_layers(child, name)
        else:
            raise NotImplementedError(
                f"{name}: no NumPy forward for {type(child).__name__}; supported: Linear, "
                f"{', '.join(c.__name__ for c in _NUMPY_ACTIVATIONS)}"
            )
    return steps


def _run(steps: list[tuple[str, Any, Any]], x: np.ndarray) -> np.ndarray:
    for kind, a, b in steps:
        if kind == "linear":
            x = x @ a
            x += b
        else:
            x = a(x)
    return x


class _NumpyDeepSet:
    """NumPy copy of one :class:`DeepSetExtractor` (same φ, masked pooling, ρ)."""

    def __init__(self, extractor: DeepSetExtractor) -> None:
        self.pooling = extractor.pooling
        self.phi = _numpy_layers(extractor.phi, "DeepSetExtractor.phi")
        self.rho = _numpy_layers(extractor.rho, "DeepSetExtractor.rho")

    def __call__(self, ego: np.ndarray, peers: np.ndarray, mask: np.ndarray) -> np.ndarray:
        b, k, f = peers.shape
        emb = _run(self.phi, peers.reshape(b * k, f).astype(np.float32, copy=True)).reshape(b, k, -1)
        valid = (mask > 0.5)[:, :, None]
        if self.pooling == "max":
            pooled = np.where(valid, emb, -np.inf).max(axis=1)
            pooled[~valid[:, :, 0].any(axis=1)] = 0.0
            pooled = pooled.astype(np.float32, copy=False)
        else:
            pooled = np.where(valid, emb, np.float32(0)).sum(axis=1, dtype=np.float32)
            if self.pooling == "mean":
                pooled /= np.maximum(valid.sum(axis=1), 1).astype(np.float32)
        return _run(self.rho, np.concatenate([ego.astype(np.float32, copy=False), pooled], axis=1))


class NumpyActorCritic:
    """A NumPy snapshot of an SB3 actor-critic policy whose features extractor is :class:`DeepSetExtractor`.

    The torch module stays the one definition of the network; this class copies its weights
    (call :meth:`from_policy` again after every update) and evaluates the same function with
    plain NumPy matrix products, which costs a few tens of µs at batch 10 instead of torch's
    ~350 µs per-call overhead. Outputs match torch to float32 rounding (~1e-6), not bitwise.

    Supports ``MultiInputActorCriticPolicy`` with a Box action space (SB3's diagonal Gaussian),
    shared or separate features extractors, ``use_sde=False``, activations ReLU/Tanh/Identity.
    :meth:`from_policy` raises NotImplementedError naming what is not supported.
    """

    def __init__(self, policy: Any) -> None:
        from stable_baselines3.common.distributions import DiagGaussianDistribution

        if getattr(policy, "use_sde", False) or not isinstance(policy.action_dist, DiagGaussianDistribution):
            raise NotImplementedError(
                f"NumPy forward supports only SB3's diagonal Gaussian (Box actions, use_sde=False), "
                f"got {type(policy.action_dist).__name__}"
            )
        if getattr(policy, "squash_output", False):
            raise NotImplementedError("NumPy forward does not support squash_output=True")
        share = policy.share_features_extractor
        pi_ext = policy.features_extractor if share else policy.pi_features_extractor
        vf_ext = policy.features_extractor if share else policy.vf_features_extractor
        for ext in (pi_ext, vf_ext):
            if not isinstance(ext, DeepSetExtractor):
                raise NotImplementedError(f"NumPy forward needs a DeepSetExtractor, got {type(ext).__name__}")
        self.pi_extractor = _NumpyDeepSet(pi_ext)
        self.vf_extractor = self.pi_extractor if share else _NumpyDeepSet(vf_ext)
        self.policy_net = _numpy_layers(policy.mlp_extractor.policy_net, "mlp_extractor.policy_net")
        self.value_net_latent = _numpy_layers(policy.mlp_extractor.value_net, "mlp_extractor.value_net")
        self.action_net = _numpy_layers(policy.action_net, "action_net")
        self.value_head = _numpy_layers(policy.value_net, "value_net")
        self.log_std = policy.log_std.detach().cpu().numpy().astype(np.float32).copy()
        self.std = np.exp(self.log_std)
        self.action_shape = tuple(policy.action_space.shape)
        self._share = share

    @classmethod
    def from_policy(cls, policy: Any) -> NumpyActorCritic:
        """Snapshot ``policy``'s current weights (raises NotImplementedError if unsupported)."""
        return cls(policy)

    @staticmethod
    def _inputs(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return obs[EGO_KEY], obs[PEERS_KEY], obs[MASK_KEY]

    def forward(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian mean ``float32[B, A]`` and value ``float32[B]`` for a batch of observations.

        :param obs: ``{"ego": [B, E], "peers": [B, K, F], "peer_mask": [B, K]}``.
        """
        pi_feat = self.pi_extractor(*self._inputs(obs))
        vf_feat = pi_feat if self._share else self.vf_extractor(*self._inputs(obs))
        latent_pi = _run(self.policy_net, pi_feat.copy() if self._share else pi_feat)
        latent_vf = _run(self.value_net_latent, vf_feat)
        mean = _run(self.action_net, latent_pi)
        value = _run(self.value_head, latent_vf)[:, 0]
        return mean, value

    def predict_values(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Value ``float32[B]`` (the critic only)."""
        feat = self.vf_extractor(*self._inputs(obs))
        return _run(self.value_head, _run(self.value_net_latent, feat))[:, 0]

    def log_prob(self, mean: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Log-density ``float32[B]`` of ``actions`` [B, A] under N(mean, exp(log_std)), summed over A (as SB3)."""
        z = (actions - mean) / self.std
        return (-0.5 * z * z - self.log_std - np.float32(0.5 * math.log(2 * math.pi))).sum(axis=1, dtype=np.float32)

    def sample(self, obs: dict[str, np.ndarray], noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Actions ``mean + std * noise``, their values and log-probs.

        :param noise: standard normal draws ``float32[B, A]`` (MaskedPPO draws them with
            ``torch.randn``, the same draws SB3's ``Normal.sample`` would make).
        :return: ``(actions float32[B, *action_shape], values float32[B], log_probs float32[B])``.
        """
        mean, value = self.forward(obs)
        actions = mean + self.std * noise
        log_prob = self.log_prob(mean, actions)
        return actions.reshape((-1, *self.action_shape)), value, log_prob
