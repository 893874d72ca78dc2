"""Shared-policy MARL training: the vector envs, the masked PPO, and the entry points.

- :func:`make_vec_env`: the env as an SB3 VecEnv, one index per vehicle slot (direct over the
  array core by default, :class:`CoreVecEnv`; the SuperSuit path on request);
- :class:`MaskedPPO`: PPO that learns only from samples whose action drove a vehicle;
- :func:`train`: ``roadsense-marl train``, shared Deep Sets PPO from a YAML config;
- :mod:`roadsense_marl.training.train_convoy`: the original single-ego training script.
"""

from roadsense_marl.training.vec_env import (
    FixedSlotParallelEnv,
    PaddedFractionCallback,
    SuperSuitVecEnv,
    VehicleVecMonitor,
    close_proc_concat_vec,
    make_vec_env,
    resolve_num_cpus,
    zero_observation,
)

from roadsense_marl.training.callbacks import CollisionRateCallback
from roadsense_marl.training.core_vec_env import CoreVecEnv, WorkerDiedError
from roadsense_marl.training.ppo import MaskedPPO
from roadsense_marl.training.train import load_train_config, train

__all__ = [
    "CollisionRateCallback",
    "CoreVecEnv",
    "MaskedPPO",
    "VehicleVecMonitor",
    "WorkerDiedError",
    "load_train_config",
    "train",
    "FixedSlotParallelEnv",
    "PaddedFractionCallback",
    "SuperSuitVecEnv",
    "close_proc_concat_vec",
    "make_vec_env",
    "resolve_num_cpus",
    "zero_observation",
]
