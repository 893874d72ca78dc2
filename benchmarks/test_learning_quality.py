"""Learning quality: does the shipped recipe give, for EVERY training seed, a policy that beats the rule?

Trains shared Deep Sets PPO with the shipped recipe (``configs/train/marl_ppo.yaml``: its
budget, at most 500k agent-steps) with 3 training seeds, then evaluates each model on the same
held-out ``convoy_6`` hazard episodes with the measured radio on the env's standard episode
(:data:`roadsense_marl.demo.EVAL_EPISODE`), in parallel worker processes, paired with
``rule-v2v`` and ``no-v2v`` on the same seeds (:func:`roadsense_marl.evaluation.seeds.evaluate_seeds`).
Writes ``benchmarks/results/learning_quality.json`` (and ``.md``, the table the README shows).

It asserts issue 12's "Done when", never weaker, for every training seed:

* 0 collision episodes;
* the direct follower reaches an actual deceleration >= 2.5 m/s^2 within 1.0 s of onset in >= 95 %
  of the episodes that have a direct follower;
* followers' speed deficit and followers' stopped share strictly better than rule-v2v's by the
  paired test (the 95 % t interval of the per-seed difference lies wholly below 0).

On failure the message lists each failing training seed's causes with the evaluation seeds.

Slow (``@pytest.mark.slow``): ``pytest benchmarks/test_learning_quality.py --run-slow``. Overrides
for a small smoke run: ``ROADSENSE_LQ_TIMESTEPS`` (agent-steps per training seed; default the
recipe's ``total_timesteps``), ``ROADSENSE_LQ_EPISODES`` (default 500), ``ROADSENSE_LQ_WORKERS``
(default 2), ``ROADSENSE_LQ_SEEDS`` (comma-separated training seeds, default ``0,1,2``),
``ROADSENSE_LQ_OUT`` (folder for the results, default ``benchmarks/results``).
"""

from __future__ import annotations

import json
import math
import os
import time

import pytest

from pathlib import Path

from harness import RESULTS_DIR, machine

SCENARIO = "convoy_6"
RADIO = "measured"
MAX_BUDGET = 500_000  # agent-steps per training seed (issue 12)
EPISODES = int(os.environ.get("ROADSENSE_LQ_EPISODES", 500))
WORKERS = int(os.environ.get("ROADSENSE_LQ_WORKERS", 2))
TRAIN_SEEDS = tuple(int(s) for s in os.environ.get("ROADSENSE_LQ_SEEDS", "0,1,2").split(","))
OUT_DIR = Path(os.environ.get("ROADSENSE_LQ_OUT", RESULTS_DIR))
# Held-out evaluation seeds: training resets draw from the run seed's own stream and never use them;
# tuning used validation seeds 500000+. 900000-900499 were looked at while
# diagnosing contract v2 (the beacon-lock artefact) and the ignore_warning weight, 910000-910499
# while diagnosing the creep that the required deceleration's headway answers. 920000-920499 gave
# the shipped recipe's result; 930000-930499 the result of a recipe that was tried and not adopted
# (lin_0.001 at 500k, configs/train/marl_ppo.yaml). 940000-940499: env contract v4 (the track of the
# car ahead in the observation) with lin_0.001 at 500k, the shipped recipe since; the next recipe
# change needs a fresh range (950000+).
HELD_OUT_SEED = 940_000
#: The targets of issue 12's "Done when".
MAX_CRASH_EPISODES = 0
MIN_DIRECT_HARD_BRAKE_SHARE = 0.95
MIN_EPISODES, MIN_SEEDS = 500, 3


def budget(cfg: dict) -> int:
    """Agent-steps per training seed: ``ROADSENSE_LQ_TIMESTEPS`` or the recipe's ``total_timesteps``."""
    return int(os.environ.get("ROADSENSE_LQ_TIMESTEPS", cfg["total_timesteps"]))


def failures(label: str, res: dict) -> list[str]:
    """The Done-when targets one training seed's result misses, each with its evaluation seeds and causes."""
    out = []
    eps = res["episodes"]
    crashed = [e for e in eps if e["collision"]]
    if len(crashed) > MAX_CRASH_EPISODES:
        causes = ", ".join(
            f"{e['seed']} ({'+'.join(e['collided_agents'])}; hazard {e['hazard_vehicle']} at step "
            f"{e['hazard_onset_step']}, {'released' if e.get('hazard_released') else 'never released'})"
            for e in crashed)  # every one: the closing note and the results JSON give them all
        out.append(f"training seed {label}: {len(crashed)} crash episodes (target {MAX_CRASH_EPISODES}): {causes}")
    hb = res["aggregate"]["direct_hard_brake_within_1s"]
    rate = hb["rate"] if hb["rate"] is not None else math.nan
    if not (hb["n"] and rate >= MIN_DIRECT_HARD_BRAKE_SHARE):
        slow = []
        for e in eps:
            if e.get("direct_hard_brake_within_1s") is False:
                t = [f["hard_brake_time_s"] for f in e["followers"] if f["direct"]]
                slow.append(f"{e['seed']} ({', '.join('never' if x is None else f'{x:.1f} s' for x in t)})")
        out.append(f"training seed {label}: direct follower >= 2.5 m/s^2 within 1.0 s in {hb['k']}/{hb['n']} episodes "
                   f"= {rate:.3f} [{hb['lo'] or math.nan:.3f}, {hb['hi'] or math.nan:.3f}] (target >= "
                   f"{MIN_DIRECT_HARD_BRAKE_SHARE}); missed in: {', '.join(slow)}")
    paired = res["paired"]["rule-v2v"]
    for key, name in (("follower_speed_deficit_mps", "followers' speed deficit"),
                      ("follower_stopped_share", "followers' stopped share")):
        d = paired[key]
        if not d["better"]:
            out.append(f"training seed {label}: {name} not strictly better than rule-v2v: paired difference "
                       f"{d['mean'] if d['mean'] is not None else math.nan:+.4f}, 95 % interval "
                       f"[{d['lo'] if d['lo'] is not None else math.nan:+.4f}, "
                       f"{d['hi'] if d['hi'] is not None else math.nan:+.4f}] over {d['n']} seeds (needs < 0)")
    return out


@pytest.mark.slow
def test_every_training_seed_is_crash_free_reacts_in_time_and_beats_rule_v2v(tmp_path, results):
    from roadsense_marl.demo import EVAL_EPISODE
    from roadsense_marl.evaluation.seeds import across_seeds_markdown, evaluate_seeds
    from roadsense_marl.training import load_train_config, train

    cfg0 = load_train_config("marl_ppo")
    steps = budget(cfg0)
    assert steps <= MAX_BUDGET, f"budget {steps:,} agent-steps per seed exceeds the issue's {MAX_BUDGET:,}"
    runs, train_s = [], {}
    for s in TRAIN_SEEDS:
        cfg = load_train_config("marl_ppo")
        cfg["env"].update(scenario=SCENARIO, radio=RADIO)
        cfg.update(total_timesteps=steps, seed=s, out=str(tmp_path / f"train_seed{s}"), checkpoint_every=0)
        t0 = time.perf_counter()
        runs.append(train(cfg, progress_bar=False))
        train_s[str(s)] = time.perf_counter() - t0
    t1 = time.perf_counter()
    ev = evaluate_seeds(runs, labels=[str(s) for s in TRAIN_SEEDS], episodes=EPISODES, seed=HELD_OUT_SEED,
                        out=tmp_path / "eval", workers=WORKERS, min_models=1, plots=False, env_kwargs=EVAL_EPISODE,
                        radio=RADIO, verbose=False)
    eval_s = time.perf_counter() - t1

    problems = [p for label, res in ev["results"].items() for p in failures(label, res)]
    if EPISODES < MIN_EPISODES or len(TRAIN_SEEDS) < MIN_SEEDS:
        problems.append(f"a smoke run, not the claim: {EPISODES} episodes x {len(TRAIN_SEEDS)} training seeds "
                        f"(the claim needs >= {MIN_EPISODES} x {MIN_SEEDS})")
    out = {
        "machine": machine(),
        "scenario": SCENARIO,
        "radio": RADIO,
        "training": {"agent_steps_per_seed": steps, "seeds": list(TRAIN_SEEDS), "seconds": train_s,
                     "config": {k: cfg0[k] for k in ("env", "vec_env", "policy", "ppo")}},
        "evaluation": {"episodes": EPISODES, "seeds": [HELD_OUT_SEED, HELD_OUT_SEED + EPISODES - 1],
                       "episode": EVAL_EPISODE, "workers": WORKERS, "seconds": eval_s},
        "targets": {"max_crash_episodes": MAX_CRASH_EPISODES, "min_direct_hard_brake_within_1s": MIN_DIRECT_HARD_BRAKE_SHARE,
                    "deficit_and_stopped_share": "strictly better than rule-v2v (paired 95 % t interval below 0)"},
        "baselines": ev["baselines"],
        "per_seed": ev["per_seed"],
        "across_seeds": ev["across_seeds"],
        "met": not problems,
        "failures": problems,
    }
    from roadsense_marl.evaluation.runner import _jsonable

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "learning_quality.json").write_text(json.dumps(_jsonable(out), indent=1) + "\n")
    (OUT_DIR / "learning_quality.md").write_text(
        f"{len(TRAIN_SEEDS)} training seeds x {steps:,} agent-steps; {EPISODES} held-out {SCENARIO} hazard episodes, "
        f"{RADIO} radio; {'all targets met' if not problems else 'targets NOT met'}\n\n"
        + across_seeds_markdown(ev["across_seeds"]))
    rows = [(f"seed {k}: {name}", v, "", "", "") for k, r in ev["across_seeds"]["rows"].items()
            for name, v in r.items() if name in ("collision episodes", "direct follower >= 2.5 m/s^2 within 1 s")]
    rows.append(("all Done-when targets met", float(not problems), "bool", "1", "met" if not problems else "not met"))
    results.record("7 learning quality", {"json": str(OUT_DIR / "learning_quality.json")}, rows)
    print(f"\nlearning quality: {len(TRAIN_SEEDS)} seeds x {steps:,} agent-steps "
          f"(training {sum(train_s.values()) / 60:.1f} min, evaluation {eval_s / 60:.1f} min)")
    print(across_seeds_markdown(ev["across_seeds"]))
    assert not problems, "issue 12's targets missed:\n" + "\n".join(problems)
