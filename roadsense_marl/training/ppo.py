"""PPO that learns only from samples whose action drove a vehicle, with a NumPy rollout forward.

Every vehicle slot of every env copy is one SB3 vector index. Some samples carry no
learning signal: padding (a slot with no vehicle in it) and steps in which the env ignored
the action (the hazard vehicle while its motion is imposed). :class:`MaskedPPO` keeps them
out of the loss:

* the vector env reports, in ``info["acted"]`` of step t, whether the action ``a_t`` sent in
  that step drove a vehicle (:class:`~roadsense_marl.training.core_vec_env.CoreVecEnv`:
  the core's ``acted``; the SuperSuit path: "the slot's observation ``obs_t`` was not
  padding"). A missing key counts as ``True``, so on an ordinary VecEnv MaskedPPO is PPO;
* the rollout buffer stores that flag per sample (:class:`MaskedDictRolloutBuffer`) and its
  ``get()`` yields only valid samples, so policy loss, value loss, entropy and the per
  minibatch advantage normalisation never see the others. GAE still runs over the whole
  trajectory (rewards earned while the env drove the vehicle are real rewards);
* ``train/explained_variance`` is computed over valid samples and ``rollout/valid_fraction``
  is logged.

With every sample valid and ``numpy_rollout=False`` it draws the same random numbers and
does the same arithmetic as SB3's PPO, so parameters after ``learn()`` are identical (pinned
by a test). With ``numpy_rollout=True`` (default) actions, values and log-probs during
rollouts come from :class:`~roadsense_marl.policies.NumpyActorCritic`, a NumPy snapshot of
the torch policy taken at the start of every rollout; the Gaussian noise is still drawn with
``torch.randn`` (the draws SB3 would make), so a fixed seed stays deterministic and the run
differs from the torch path only by float32 rounding of the forward (~1e-6).

The saved model is an ordinary PPO zip: ``PPO.load`` and ``MaskedPPO.load`` both read it.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

ACTED_KEY = "acted"


class _ValidMaskMixin:
    """Adds a per-sample ``valid`` flag to an SB3 rollout buffer; ``get()`` yields valid samples only."""

    valid: np.ndarray

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self.valid = np.ones((self.buffer_size, self.n_envs), dtype=bool)  # type: ignore[attr-defined]
        self._boxes = self._box_only()

    def add(self, *args: Any, valid: np.ndarray | None = None, **kwargs: Any) -> None:
        """SB3's ``add`` plus ``valid``: bool[n_envs], False for samples that must not be learned from."""
        if valid is not None:
            valid = np.asarray(valid, dtype=bool)
            if valid.shape != (self.n_envs,):  # type: ignore[attr-defined]
                raise ValueError(f"valid must have shape ({self.n_envs},) (one flag per env), got {valid.shape}")  # type: ignore[attr-defined]
        pos = self.pos  # type: ignore[attr-defined]
        if not kwargs and len(args) == 6 and self._boxes:
            self._add_boxes(*args)
        else:
            super().add(*args, **kwargs)  # type: ignore[misc]
        if valid is not None:
            self.valid[pos] = valid

    def _box_only(self) -> bool:
        space = self.observation_space  # type: ignore[attr-defined]
        subspaces = space.spaces.values() if isinstance(space, spaces.Dict) else (space,)
        return all(isinstance(sub, spaces.Box) for sub in subspaces)

    def _add_boxes(self, obs: Any, action: np.ndarray, reward: np.ndarray, episode_start: np.ndarray,
                   value: th.Tensor, log_prob: th.Tensor) -> None:
        """SB3's ``add`` for Box observations without its intermediate copies (same stored values)."""
        pos = self.pos  # type: ignore[attr-defined]
        if isinstance(obs, dict):
            for key, store in self.observations.items():  # type: ignore[attr-defined]
                store[pos] = obs[key]
        else:
            self.observations[pos] = obs  # type: ignore[attr-defined]
        self.actions[pos] = np.reshape(action, (self.n_envs, self.action_dim))  # type: ignore[attr-defined]
        self.rewards[pos] = reward  # type: ignore[attr-defined]
        self.episode_starts[pos] = episode_start  # type: ignore[attr-defined]
        self.values[pos] = value.detach().cpu().numpy().reshape(-1)  # type: ignore[attr-defined]
        self.log_probs[pos] = log_prob.detach().cpu().numpy().reshape(self.log_probs[pos].shape)  # type: ignore[attr-defined]
        self.pos += 1  # type: ignore[attr-defined]
        if self.pos == self.buffer_size:  # type: ignore[attr-defined]
            self.full = True

    @property
    def valid_flat(self) -> np.ndarray:
        """``valid`` in the order of the flattened buffer (env-major, as SB3's ``swap_and_flatten``)."""
        return self.valid.swapaxes(0, 1).reshape(-1)

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        assert self.full, "the rollout buffer is not full"  # type: ignore[attr-defined]
        total = self.buffer_size * self.n_envs  # type: ignore[attr-defined]
        # The same permutation SB3's get() draws (same global NumPy stream), then valid ones only:
        # with every sample valid the minibatches are SB3's exactly.
        indices = np.random.permutation(total)
        if not self.generator_ready:  # type: ignore[attr-defined]
            if isinstance(self.observations, dict):  # type: ignore[attr-defined]
                for key, obs in self.observations.items():  # type: ignore[attr-defined]
                    self.observations[key] = self.swap_and_flatten(obs)  # type: ignore[attr-defined]
            else:
                self.observations = self.swap_and_flatten(self.observations)  # type: ignore[attr-defined]
            for name in ("actions", "values", "log_probs", "advantages", "returns"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])  # type: ignore[attr-defined]
            self.generator_ready = True
        indices = indices[self.valid_flat[indices]]
        if batch_size is None:
            batch_size = len(indices)
        for start in range(0, len(indices), max(batch_size, 1)):
            yield self._get_samples(indices[start : start + batch_size])  # type: ignore[attr-defined]


class MaskedRolloutBuffer(_ValidMaskMixin, RolloutBuffer):
    """SB3 ``RolloutBuffer`` with a per-sample ``valid`` flag (Box observations)."""


class MaskedDictRolloutBuffer(_ValidMaskMixin, DictRolloutBuffer):
    """SB3 ``DictRolloutBuffer`` with a per-sample ``valid`` flag (Dict observations)."""


def acted_flags(infos: list[dict]) -> np.ndarray:
    """``info["acted"]`` of every env as bool[n_envs]; a missing key is True (an ordinary env)."""
    return np.fromiter((info.get(ACTED_KEY, True) for info in infos), dtype=bool, count=len(infos))


class MaskedPPO(PPO):
    """SB3 PPO that never learns from samples flagged ``info["acted"] = False`` (see the module docstring).

    Takes every PPO argument, plus:

    :param numpy_rollout: use the NumPy forward during rollouts when the policy supports it
        (Deep Sets extractor, Gaussian actions, no gSDE); otherwise warns once and uses torch.
        ``False``: torch only, the arithmetic of SB3's PPO.
    """

    def __init__(self, *args: Any, numpy_rollout: bool = True, **kwargs: Any) -> None:
        if not isinstance(numpy_rollout, bool):
            raise TypeError(f"numpy_rollout must be True or False, got {numpy_rollout!r}")
        self.numpy_rollout = numpy_rollout
        self._numpy_unsupported: str | None = None
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        if self.rollout_buffer_class is None:
            dict_obs = isinstance(self.observation_space, spaces.Dict)
            self.rollout_buffer_class = MaskedDictRolloutBuffer if dict_obs else MaskedRolloutBuffer
        elif not issubclass(self.rollout_buffer_class, _ValidMaskMixin):
            raise ValueError(
                f"MaskedPPO needs a rollout buffer with a valid flag (MaskedRolloutBuffer or "
                f"MaskedDictRolloutBuffer), got rollout_buffer_class={self.rollout_buffer_class.__name__}"
            )
        super()._setup_model()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_numpy_unsupported"]

    def _numpy_forward(self) -> Any:
        """A fresh NumPy snapshot of the policy, or None (torch path)."""
        if not self.numpy_rollout or self._numpy_unsupported is not None:
            return None
        from roadsense_marl.policies import NumpyActorCritic

        try:
            return NumpyActorCritic.from_policy(self.policy)
        except NotImplementedError as exc:
            self._numpy_unsupported = str(exc)
            warnings.warn(f"MaskedPPO: rollouts use torch: {exc}", stacklevel=3)
            return None

    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """SB3's ``collect_rollouts`` plus the valid flag per sample and the NumPy forward.

        Differences from SB3 2.x: ``info["acted"]`` is stored per sample; with the NumPy
        forward, actions/values/log-probs come from it.
        """
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        fast = self._numpy_forward() if not self.use_sde else None
        action_dim = int(np.prod(self.action_space.shape)) if isinstance(self.action_space, spaces.Box) else 0

        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()

        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)

            if fast is not None:
                noise = th.randn((env.num_envs, action_dim)).numpy()  # the draws Normal.sample makes
                actions, values_np, log_probs_np = fast.sample(self._last_obs, noise)
                values = th.from_numpy(values_np.reshape(-1, 1))
                log_probs = th.from_numpy(log_probs_np)
            else:
                with th.no_grad():
                    obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                    actions, values, log_probs = self.policy(obs_tensor)
                actions = actions.cpu().numpy()

            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                if self.policy.squash_output:
                    clipped_actions = self.policy.unscale_action(clipped_actions)
                else:
                    clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)

            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs

            callback.update_locals(locals())
            if not callback.on_step():
                return False

            self._update_info_buffer(infos, dones)
            n_steps += 1

            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)

            # Bootstrap truncated episodes with the value of their terminal observation (SB3 #633).
            truncated = [
                idx
                for idx in np.flatnonzero(dones)
                if infos[idx].get("terminal_observation") is not None and infos[idx].get("TimeLimit.truncated", False)
            ]
            if fast is not None:
                # one row at a time: a BLAS product's rounding can depend on the batch it is in,
                # and a vehicle's value must not depend on which other slots ended with it
                for idx in truncated:
                    terminal = {key: value[None] for key, value in infos[idx]["terminal_observation"].items()}
                    rewards[idx] += np.float32(self.gamma) * fast.predict_values(terminal)[0]
            else:
                for idx in truncated:
                    terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                    with th.no_grad():
                        terminal_value = self.policy.predict_values(terminal_obs)[0]  # type: ignore[arg-type]
                    rewards[idx] += self.gamma * terminal_value

            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions,
                rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                values,
                log_probs,
                valid=acted_flags(infos),
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones

        if fast is not None:
            values = th.from_numpy(fast.predict_values(new_obs).reshape(-1, 1))
        else:
            with th.no_grad():
                values = self.policy.predict_values(obs_as_tensor(new_obs, self.device))  # type: ignore[arg-type]

        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        self.logger.record("rollout/valid_fraction", float(rollout_buffer.valid.mean()))  # type: ignore[attr-defined]

        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def train(self) -> None:
        """SB3's PPO update over the valid samples; skipped with a warning if a rollout has none."""
        buffer = self.rollout_buffer
        n_valid = int(buffer.valid.sum())  # type: ignore[attr-defined]
        if n_valid == 0:
            warnings.warn(
                "MaskedPPO: no sample of this rollout drove a vehicle (all padding or imposed motion); "
                "the update is skipped. Use a scenario whose vehicles are present for more of the rollout",
                stacklevel=2,
            )
            return
        super().train()
        valid = buffer.valid_flat  # type: ignore[attr-defined]
        self.logger.record(
            "train/explained_variance",
            float(explained_variance(buffer.values.flatten()[valid], buffer.returns.flatten()[valid])),
        )
