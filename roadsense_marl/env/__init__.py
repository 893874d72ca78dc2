"""The RoadSense environments: the multi-agent ParallelEnv and the single-ego Gymnasium view."""

from roadsense_marl.env.config import EnvConfig, make_env_config

__all__ = ["EnvConfig", "make_env_config", "parallel_env", "env", "raw_env"]


def parallel_env(scenario: str | None = None, **config):
    """The multi-agent env: every SUMO vehicle is an agent. See :class:`RoadSenseParallelEnv`."""
    from roadsense_marl.env.convoy_env import RoadSenseParallelEnv

    return RoadSenseParallelEnv(scenario, **config)


def env(scenario: str | None = None, **config):
    """The AEC view of :func:`parallel_env` (PettingZoo's ``parallel_to_aec``)."""
    from pettingzoo.utils.conversions import parallel_to_aec

    return parallel_to_aec(parallel_env(scenario, **config))


raw_env = parallel_env
