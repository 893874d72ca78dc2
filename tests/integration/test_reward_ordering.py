"""The shipped reward ranks fixed policies the way safety does, on real SUMO.

Over 30 seeds of convoy_6 with the measured radio, the mean discounted per-agent return (the
discount of the shipped training config) must order rule-v2v (full brake on the warning, no
crash) > gentle-brake (the same trigger at brake fraction 0.3, crashes some of the time) >
no-v2v (never brakes, crashes most of the time): on the shipped training episode and on the
env's default (evaluation) episode. Before the reward was fixed gentle braking scored highest
and no-v2v scored above the rule (issue 12).
"""

from __future__ import annotations

import pytest

from roadsense_marl.env.core import ConvoyCore
from roadsense_marl.training import load_train_config

from reward_helpers import mean_returns

SEEDS = range(30)
ORDER = ("rule-v2v", "gentle-brake", "no-v2v")


def _shipped():
    cfg = load_train_config("marl_ppo")
    return cfg["env"], float(cfg["ppo"]["gamma"])


@pytest.mark.parametrize("shape", ["training", "evaluation"])
def test_the_reward_ranks_rule_above_gentle_braking_above_no_v2v(shape):
    env, gamma = _shipped()
    kwargs = dict(env) if shape == "training" else {k: env[k] for k in ("scenario", "radio", "backend") if k in env}
    assert kwargs["scenario"] == "convoy_6" and kwargs["radio"] == "measured"
    core = ConvoyCore(**kwargs)
    try:
        res = mean_returns(core, ORDER, SEEDS, gamma)
    finally:
        core.close()
    ret = {k: v["mean_return"] for k, v in res.items()}
    summary = {k: (round(v["mean_return"], 3), f"{v['crash_episodes']}/{v['episodes']} crash episodes") for k, v in res.items()}
    # the ranking must come from the policies, not from luck of the seeds: the safe rule never crashes
    assert res["rule-v2v"]["crash_episodes"] == 0, summary
    assert res["no-v2v"]["crash_episodes"] > res["gentle-brake"]["crash_episodes"] > 0, summary
    assert ret["rule-v2v"] > ret["gentle-brake"] > ret["no-v2v"], summary
