"""roadsense-marl: multi-agent RL for V2V cooperative collision avoidance on SUMO.

>>> from roadsense_marl import parallel_env
>>> env = parallel_env(scenario="convoy_6")            # PettingZoo ParallelEnv, every vehicle an agent
>>> import gymnasium; gymnasium.make("RoadSense-Convoy-v4")  # the single-ego view
"""

from roadsense_marl.env import env, make_env_config, parallel_env, raw_env

__version__ = "0.1.0"
__all__ = ["parallel_env", "env", "raw_env", "make_env_config", "__version__"]


def _deprecated(old: str, new: str, target):
    """An entry point for an old id: warns once per call and builds the current version."""

    def make(*args, **kwargs):
        import warnings

        warnings.warn(
            f"{old!r} is deprecated: the env is now {new!r} (its contract changed: what agents observe, the "
            "radio's random stream or the reward; roadsense_marl/env/version.py lists each version's changes). "
            f"{old!r} builds {new!r}.",
            DeprecationWarning,
            stacklevel=3,
        )
        return target(*args, **kwargs)

    return make


def _register() -> None:
    import gymnasium
    import pettingzoo

    from roadsense_marl.env.single_ego import SingleEgoEnv
    from roadsense_marl.env.version import DEPRECATED_IDS, ENV_ID, GYM_ENV_ID

    if GYM_ENV_ID not in gymnasium.registry:
        gymnasium.register(id=GYM_ENV_ID, entry_point="roadsense_marl.env.single_ego:SingleEgoEnv")
    for old_gym in (k for k, v in DEPRECATED_IDS.items() if v == GYM_ENV_ID):
        if old_gym not in gymnasium.registry:
            gymnasium.register(id=old_gym, entry_point=_deprecated(old_gym, GYM_ENV_ID, SingleEgoEnv))
    old_pz = [k for k, v in DEPRECATED_IDS.items() if v == ENV_ID]
    for kind, fn in (("parallel", parallel_env), ("aec", env)):
        registry = pettingzoo.parallel_registry if kind == "parallel" else pettingzoo.aec_registry
        if ENV_ID not in registry:
            pettingzoo.register(kind, ENV_ID, entry_point=fn)
        for old in old_pz:
            if old not in registry:
                pettingzoo.register(kind, old, entry_point=_deprecated(old, ENV_ID, fn))


_register()
