"""Shared-policy MARL training: the SuperSuit/SB3 vector env and its fixes."""

from roadsense_marl.training.vec_env import (
    FixedSlotParallelEnv,
    PaddedFractionCallback,
    SuperSuitVecEnv,
    close_proc_concat_vec,
    make_vec_env,
    resolve_num_cpus,
    zero_observation,
)

__all__ = [
    "FixedSlotParallelEnv",
    "PaddedFractionCallback",
    "SuperSuitVecEnv",
    "close_proc_concat_vec",
    "make_vec_env",
    "resolve_num_cpus",
    "zero_observation",
]
