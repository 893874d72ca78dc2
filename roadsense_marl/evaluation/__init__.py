"""Evaluation: does V2V help? Metrics, the two model-free baselines, fixed-seed runs and plots.

>>> from roadsense_marl.evaluation import evaluate
>>> metrics = evaluate(policy="rule-v2v", scenario="convoy_6", episodes=10, out="eval")  # doctest: +SKIP
"""

from roadsense_marl.evaluation.baselines import BASELINES, make_baseline, no_v2v_policy, rule_v2v_policy
from roadsense_marl.evaluation.metrics import EpisodeRecord, aggregate, episode_metrics
from roadsense_marl.evaluation.runner import (
    RADIO_SWEEP,
    evaluate,
    load_model_policy,
    model_policy,
    resolve_model,
    run_episode,
    run_policy,
    summary_table,
)

__all__ = [
    "BASELINES",
    "RADIO_SWEEP",
    "EpisodeRecord",
    "aggregate",
    "episode_metrics",
    "evaluate",
    "load_model_policy",
    "make_baseline",
    "model_policy",
    "no_v2v_policy",
    "resolve_model",
    "rule_v2v_policy",
    "run_episode",
    "run_policy",
    "summary_table",
]
