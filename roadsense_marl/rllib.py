"""Ray RLlib: the convoy env as an RLlib ``MultiAgentEnv`` and the Deep Sets policy as an RLModule.

Install with ``pip install "roadsense-marl[rllib]"``. Three public names:

- :class:`RoadSenseMultiAgentEnv`: a thin view over :class:`~roadsense_marl.env.core.ConvoyCore`
  (the same core as the PettingZoo env; infos from :func:`~roadsense_marl.env.convoy_env.step_infos`).
  Spaces cover every vehicle the scenario can produce (vehicles that join late included), SUMO
  starts in the first ``reset``, and ``"__all__"`` is true in exactly one of ``terminateds`` /
  ``truncateds`` in the step that ends the episode, whatever mix of crashes, arrivals and
  ``max_steps`` ends it.
- :class:`DeepSetRLModule`: RLlib's torch RLModule around the project's
  :class:`~roadsense_marl.policies.DeepSetExtractor` (the same torch module SB3 trains; one
  definition), with SB3's actor-critic heads: ``net_arch`` MLPs for the Gaussian mean and the
  value, a state-independent ``log_std`` (``log_std_init``).
- :func:`ppo_config`: a ready :class:`~ray.rllib.algorithms.ppo.PPOConfig`: one policy
  (``"shared_policy"``) shared by every vehicle, the Deep Sets RLModule, small defaults that run
  on a laptop. ``ppo_config(...).build_algo().train()``.

libsumo runs one simulation per process. Each RLlib env runner is a process: with
``backend="libsumo"`` (the default) an env runner holds one env (``num_envs_per_env_runner=1``);
scale out with ``num_env_runners``, or use ``backend="traci"`` (a SUMO subprocess per env) for
several envs per env runner. :func:`ppo_config` refuses the bad combination before anything
starts, and an env that finds libsumo taken raises :class:`LibsumoInUseError` saying the same.

Actions reach the env as the module samples them (``normalize_actions=False``) and are clipped
to the action space (``clip_actions=True``), as with SB3.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from gymnasium import spaces
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from torch import nn

from roadsense_marl.env.convoy_env import step_infos
from roadsense_marl.env.core import ConvoyCore
from roadsense_marl.policies import DeepSetExtractor, _mlp, create_deep_set_policy_kwargs
from roadsense_marl.sim import LibsumoInUseError

__all__ = ["DeepSetRLModule", "RoadSenseMultiAgentEnv", "SHARED_POLICY", "module_actions", "module_policy", "module_spec", "ppo_config"]

#: The module id of the one policy every vehicle shares.
SHARED_POLICY = "shared_policy"
#: Keys of the ``policy`` section (:func:`~roadsense_marl.policies.create_deep_set_policy_kwargs`).
POLICY_KEYS = ("peer_embed_dim", "phi_hidden", "pooling", "rho_hidden", "activation_fn", "net_arch", "log_std_init")
#: SB3's default actor-critic heads (``MultiInputActorCriticPolicy``), kept so both engines train the same network.
DEFAULT_NET_ARCH = {"pi": [64, 64], "vf": [64, 64]}


class RoadSenseMultiAgentEnv(MultiAgentEnv):
    """The convoy env as an RLlib ``MultiAgentEnv``: every vehicle an agent, ids as in PettingZoo.

    :param config: env config keys (those of :class:`~roadsense_marl.env.config.EnvConfig`; RLlib's
        ``env_config``, an ``EnvContext`` is fine) and optionally ``config``: a YAML path whose keys
        the others override. ValueError naming the key for anything unknown or invalid.

    ``observation_spaces`` / ``action_spaces`` hold every possible vehicle
    (``possible_agents``, flows expanded), so a vehicle that joins after the first reset has
    its spaces: ``Dict(ego: (9,), peers: (K, 6), peer_mask: (K,))`` float32 and ``Box(0, 1, (1,))``
    (``action_mode="brake"``) or ``Box(-1, 1, (1,))`` (``"accel"``). SUMO starts in the first
    :meth:`reset`, not here: RLlib builds envs to read their spaces where none will run.

    ``step`` returns, per agent: observations of the vehicles that acted or joined in this step,
    rewards of those that acted (a vehicle's first reward follows its first action),
    ``terminateds`` (collision) and ``truncateds`` (arrival, ``max_steps``) of the same
    vehicles, and their infos (``reward_components``, ``gap`` m, ``reason``, ...). ``"__all__"``:
    when the episode ends, ``truncateds["__all__"]`` if it hit ``max_steps`` and
    ``terminateds["__all__"]`` otherwise (every vehicle crashed or left); both False before.
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        kwargs = dict(config or {})
        base = kwargs.pop("config", None)
        self.core = ConvoyCore(base, **kwargs)
        core = self.core
        self.possible_agents = list(core.possible_agents)
        self.agents = []
        self.observation_spaces = {a: core.observation_space for a in self.possible_agents}
        self.action_spaces = {a: core.action_space for a in self.possible_agents}
        self._index_of = core.slots.index_of

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start an episode (``seed``: see :meth:`ConvoyCore.reset`); ``({agent: obs}, {agent: info})``."""
        core = self.core
        try:
            core.reset(seed)
        except LibsumoInUseError:
            raise LibsumoInUseError(
                "RoadSenseMultiAgentEnv: another env in this RLlib env runner already runs a libsumo simulation, and "
                "libsumo runs one per process. Set config.env_runners(num_envs_per_env_runner=1) and scale with "
                "num_env_runners (one process each), or use env_config={'backend': 'traci'} for several envs per "
                "env runner"
            ) from None
        slots = np.flatnonzero(core.live)
        self.agents = core.slots.ids[slots].tolist()
        onset = core.record.hazard_onset_step
        return self._obs(self.agents, slots), {a: {"hazard_vehicle": None, "hazard_onset_step": onset} for a in self.agents}

    def step(self, action_dict: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """One step with ``{agent: float[1]}`` for the live agents (missing ones act as 0).

        Raises ValueError naming the agent for an action of an agent that is not live or a
        non-finite action (nothing changes), RuntimeError after the episode ended.
        """
        core = self.core
        if core.episode_over:
            core.step(None)  # raises: the episode ended (or the env was restored from a pickle); reset() first
        acts = np.zeros(core.n_slots)
        if action_dict:
            slot_of, live = core.slots.slot_of, core.live
            names = list(action_dict)
            bad = [a for a in names if not (a in slot_of and live[slot_of[a]])]
            if bad:
                kind = "not live this step" if bad[0] in self._index_of else "not a vehicle of this scenario"
                raise ValueError(f"action for agent {bad[0]!r}, which is {kind}; live agents: {self.agents[:8]}"
                                 f"{' ...' if len(self.agents) > 8 else ''}")
            try:
                values = np.asarray([action_dict[a] for a in names], dtype=np.float64).reshape(len(names), -1)
                ok = values.shape[1] == 1
            except (TypeError, ValueError):
                ok = False
            if not ok:
                for a in names:  # find and name the offending agent
                    value = action_dict[a]
                    if isinstance(value, (str, bytes)) or np.size(value) != 1:
                        break
                    try:
                        float(np.asarray(value, dtype=np.float64).reshape(-1)[0])
                    except (TypeError, ValueError):
                        break
                raise ValueError(f"action for agent {a!r} must be one real number (shape (1,)), got {value!r}")
            acts[[slot_of[a] for a in names]] = values[:, 0]
        before = core.live.copy()
        core.step(acts)
        out_slots = np.flatnonzero(before | core.joined)
        out = core.slots.ids[out_slots].tolist()
        obs = self._obs(out, out_slots)
        acted = before[out_slots]
        rewards = {a: r for a, r, k in zip(out, core.reward[out_slots].tolist(), acted) if k}
        terminateds = dict(zip(out, core.terminated[out_slots].tolist()))
        truncateds = dict(zip(out, core.truncated[out_slots].tolist()))
        infos = step_infos(core, out, out_slots)
        over = core.episode_over
        time_up = over and core.num_steps >= core.max_steps
        terminateds["__all__"] = over and not time_up
        truncateds["__all__"] = time_up
        self.agents = [] if over else core.slots.ids[np.flatnonzero(core.live)].tolist()
        return obs, rewards, terminateds, truncateds, infos

    def close(self) -> None:
        """Close SUMO (idempotent)."""
        self.core.close()

    def _obs(self, names: list[str], slots: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        parts = {k: buf[slots] for k, buf in self.core.obs.items()}  # copies: the core overwrites its buffers
        return {a: {k: v[i] for k, v in parts.items()} for i, a in enumerate(names)}


def _head_sizes(net_arch: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """SB3's ``net_arch`` (a list for both heads or ``{"pi": [...], "vf": [...]}``) as (pi, vf) sizes."""
    if net_arch is None:
        net_arch = DEFAULT_NET_ARCH
    if isinstance(net_arch, Mapping):
        unknown = sorted(set(net_arch) - {"pi", "vf"})
        if unknown:
            raise ValueError(f"net_arch has unknown key(s) {unknown}; valid: 'pi', 'vf'")
        pi, vf = net_arch.get("pi", []), net_arch.get("vf", [])
    else:
        pi = vf = net_arch
    for name, sizes in (("pi", pi), ("vf", vf)):
        if isinstance(sizes, (str, bytes)) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(f"net_arch {name} must be a list of positive ints, got {sizes!r}")
    return tuple(pi), tuple(vf)


class DeepSetRLModule(TorchRLModule, ValueFunctionAPI):
    """The Deep Sets actor-critic as an RLlib torch RLModule (new API stack).

    ``model_config``: the ``policy`` section of a training config (``peer_embed_dim``,
    ``phi_hidden``, ``pooling``, ``rho_hidden``, ``activation_fn``, ``net_arch``, ``log_std_init``),
    checked by :func:`~roadsense_marl.policies.create_deep_set_policy_kwargs`.

    Layout: ``encoder`` is :class:`~roadsense_marl.policies.DeepSetExtractor` (shared by both
    heads, as SB3's default ``share_features_extractor=True``); ``pi`` maps its features to the
    Gaussian mean float32[B, A]; ``vf`` to the value float32[B]; ``log_std`` float32[A] is a free
    parameter. ``ACTION_DIST_INPUTS`` is ``concat(mean, log_std)`` float32[B, 2A], the inputs of
    RLlib's ``TorchDiagGaussian`` (its default for a Box action space).
    """

    def setup(self) -> None:
        # RLlib merges its algorithm's default model settings (e.g. PPO's vf_share_layers) into
        # model_config; only the Deep Sets policy keys are ours.
        options = {k: v for k, v in (self.model_config or {}).items() if k in POLICY_KEYS}
        net_arch = options.pop("net_arch", None)
        log_std_init = options.pop("log_std_init", 0.0)
        kwargs = create_deep_set_policy_kwargs(**options, log_std_init=log_std_init)
        ext_kwargs = kwargs["features_extractor_kwargs"]
        self.encoder = DeepSetExtractor(self.observation_space, **ext_kwargs)
        act = ext_kwargs["activation_fn"]
        pi_sizes, vf_sizes = _head_sizes(net_arch)
        if not isinstance(self.action_space, spaces.Box) or len(self.action_space.shape) != 1:
            raise ValueError(f"DeepSetRLModule needs a 1-D Box action space, got {self.action_space!r}")
        n_act = int(self.action_space.shape[0])
        feat = self.encoder.features_dim
        self.pi = nn.Sequential(_mlp(feat, pi_sizes, act), nn.Linear(pi_sizes[-1] if pi_sizes else feat, n_act))
        self.vf = nn.Sequential(_mlp(feat, vf_sizes, act), nn.Linear(vf_sizes[-1] if vf_sizes else feat, 1))
        self.log_std = nn.Parameter(torch.full((n_act,), float(kwargs["log_std_init"])))

    def _dist_inputs(self, features: torch.Tensor) -> torch.Tensor:
        mean = self.pi(features)
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self._dist_inputs(self.encoder(batch[Columns.OBS]))}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        features = self.encoder(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: self._dist_inputs(features), Columns.EMBEDDINGS: features}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        """Value estimates float32[B] (``embeddings``: the encoder's features from ``_forward_train``)."""
        if embeddings is None:
            embeddings = self.encoder(batch[Columns.OBS])
        return self.vf(embeddings).squeeze(-1)


def shared_policy_mapping(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    """Every vehicle maps to :data:`SHARED_POLICY` (parameter sharing)."""
    return SHARED_POLICY


def module_spec(policy: Mapping[str, Any] | None = None) -> MultiRLModuleSpec:
    """The multi-agent module spec: one :class:`DeepSetRLModule` under :data:`SHARED_POLICY`.

    ``policy``: the policy section (see :class:`DeepSetRLModule`); validated here, ValueError naming the key.
    """
    from roadsense_marl.training.train import check_policy_config

    policy = dict(policy or {})
    check_policy_config({k: v for k, v in policy.items()})
    _head_sizes(policy.get("net_arch"))
    return MultiRLModuleSpec(rl_module_specs={SHARED_POLICY: RLModuleSpec(module_class=DeepSetRLModule, model_config=policy)})


#: Small defaults that run on a laptop (2 cores): one env in the driver, one local learner.
DEFAULTS: dict[str, Any] = {
    "num_env_runners": 0,
    "num_envs_per_env_runner": 1,
    "train_batch_size_per_learner": 2000,
    "minibatch_size": 500,
    "num_epochs": 4,
    "lr": 3e-4,
    "gamma": 0.99,
    "lambda_": 0.95,
    "clip_param": 0.2,
    "entropy_coeff": 0.01,
    "vf_loss_coeff": 0.5,
    "grad_clip": 0.5,
    # RLlib clips the value loss at 10 by default; SB3 does not, and returns here are in the hundreds
    # (a crash is -100): clipped, the critic barely learns (measured vf_loss 9.7 vs 3698 unclipped).
    "vf_clip_param": float("inf"),
    "num_learners": 0,
}


def ppo_config(env_config: Mapping[str, Any] | None = None, *, policy: Mapping[str, Any] | None = None,
               **overrides: Any) -> PPOConfig:
    """A :class:`PPOConfig` training one Deep Sets policy shared by every vehicle of :class:`RoadSenseMultiAgentEnv`.

    :param env_config: the env's config keys (see :class:`RoadSenseMultiAgentEnv`).
    :param policy: options of :class:`DeepSetRLModule` (the training config's ``policy`` section).
    :param overrides: any ``AlgorithmConfig``/``PPOConfig`` attribute (``num_env_runners``,
        ``train_batch_size_per_learner``, ``lr``, ``seed``, ...), applied over :data:`DEFAULTS` with
        ``update_from_dict``. An unknown name is a ValueError naming it.

    Raises ValueError, before anything starts, for ``backend="libsumo"`` (the default) with
    ``num_envs_per_env_runner > 1`` (libsumo: one simulation per env-runner process).
    """
    from roadsense_marl.env.config import make_env_config

    env_config = dict(env_config or {})
    env_cfg = make_env_config(env_config.get("config"), **{k: v for k, v in env_config.items() if k != "config"})
    settings = {**DEFAULTS, **overrides}
    config = PPOConfig()
    unknown = sorted(k for k in settings if not hasattr(config, k))
    if unknown:
        from roadsense_marl.espnow.params import suggest

        raise ValueError(f"unknown PPOConfig setting {unknown[0]!r}.{suggest(unknown[0], [k for k in vars(config) if not k.startswith('_')])}"
                         " Valid: attributes of ray.rllib.algorithms.ppo.PPOConfig")
    per_runner = settings["num_envs_per_env_runner"]
    if env_cfg.backend == "libsumo" and per_runner != 1:
        raise ValueError(
            f"num_envs_per_env_runner={per_runner} with backend='libsumo': libsumo runs one simulation per process, so "
            "each RLlib env runner holds one env. Scale with num_env_runners (one process each), or set "
            "env_config backend='traci' for several envs per env runner"
        )
    config = config.environment(RoadSenseMultiAgentEnv, env_config=env_config, normalize_actions=False, clip_actions=True)
    config = config.multi_agent(policies={SHARED_POLICY}, policy_mapping_fn=shared_policy_mapping)
    config = config.rl_module(rl_module_spec=module_spec(policy))
    config.update_from_dict(settings)
    return config


def module_actions(module: Any, obs: Mapping[str, np.ndarray], action_space: spaces.Box | None = None) -> np.ndarray:
    """Deterministic actions float32[B, A] of an RLModule (e.g. ``algo.get_module(SHARED_POLICY)``) for a batch.

    :param obs: ``{"ego": [B, E], "peers": [B, K, F], "peer_mask": [B, K]}`` (stacked per-agent observations).
    :param action_space: clip to it (default: the module's own action space), as the env runner does.

    Uses RLlib's inference path: ``forward_inference`` and the module's inference distribution
    made deterministic (for the Gaussian: its mean).
    """
    batch = {Columns.OBS: {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in obs.items()}}
    with torch.no_grad():
        out = module.forward_inference(batch)
        dist = module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
        actions = dist.to_deterministic().sample().cpu().numpy().astype(np.float32)
    space = action_space if action_space is not None else module.action_space
    return np.clip(actions, space.low, space.high)


def module_policy(module: Any) -> Any:
    """A policy for the PettingZoo env and evaluation: ``policy(env, obs) -> {agent: float32[A]}``, one batched call per step."""

    def policy(env: Any, obs: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        agents = list(env.agents)
        if not agents:
            return {}
        keys = tuple(obs[agents[0]])
        batch = {k: np.stack([obs[a][k] for a in agents]) for k in keys}
        act = module_actions(module, batch, env.action_space(agents[0]))
        return dict(zip(agents, act))

    return policy
