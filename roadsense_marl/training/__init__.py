"""Shared-policy MARL training: the SuperSuit/SB3 vector env and its fixes, and the entry points.

- :func:`make_vec_env`: the parallel env as an SB3 VecEnv (one slot per possible vehicle);
- :func:`train`: ``roadsense-marl train``, shared Deep Sets PPO from a YAML config;
- :mod:`roadsense_marl.training.train_convoy`: the original single-ego training script.
"""

from roadsense_marl.training.vec_env import (
    FixedSlotParallelEnv,
    PaddedFractionCallback,
    SuperSuitVecEnv,
    close_proc_concat_vec,
    make_vec_env,
    resolve_num_cpus,
    zero_observation,
)

from roadsense_marl.training.callbacks import CollisionRateCallback
from roadsense_marl.training.train import load_train_config, train

__all__ = [
    "CollisionRateCallback",
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
