"""roadsense-marl: multi-agent RL for V2V cooperative collision avoidance on SUMO.

>>> from roadsense_marl import parallel_env
>>> env = parallel_env(scenario="convoy_6")            # PettingZoo ParallelEnv, every vehicle an agent
>>> import gymnasium; gymnasium.make("RoadSense-Convoy-v0")  # the single-ego view
"""

from roadsense_marl.env import env, make_env_config, parallel_env, raw_env

__version__ = "0.1.0"
__all__ = ["parallel_env", "env", "raw_env", "make_env_config", "__version__"]


def _register() -> None:
    import gymnasium
    import pettingzoo

    if "RoadSense-Convoy-v0" not in gymnasium.registry:
        gymnasium.register(id="RoadSense-Convoy-v0", entry_point="roadsense_marl.env.single_ego:SingleEgoEnv")
    for kind, entry in (("parallel", "roadsense_marl:parallel_env"), ("aec", "roadsense_marl:env")):
        registry = pettingzoo.parallel_registry if kind == "parallel" else pettingzoo.aec_registry
        if "roadsense/convoy-v0" not in registry:
            pettingzoo.register(kind, "roadsense/convoy-v0", entry_point=entry)


_register()
