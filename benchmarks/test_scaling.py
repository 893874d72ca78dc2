"""Scaling suite: the env, the radio and training measured against raw SUMO in the same run.

Each case is one test, runnable alone (``pytest benchmarks/test_scaling.py -k env -s``), prints
its figures and records them in ``benchmarks/results/latest.json`` / ``latest.md``. Assertions
are on ratios and growth only (machines differ and are shared); the issue's absolute targets
are reported as met / not met in the table, never asserted.

Floors below were set from measurements on the 2-core development machine (loaded by other
work), at about half the measured value, so a real regression fails and noise does not.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from harness import (
    SCALING_N,
    env_rate,
    loglog_slope,
    make_env,
    radio_step_ms,
    rss_mb,
)

# ---- floors (see the module docstring and the report of issue 7 for the measurements) -------
#: Raw SUMO steps/s at N=2 over N=200 (measured 61-70): the cost must grow with the vehicles
#: really present (SUMO ~1.65 us/vehicle + one Python getter round per vehicle); half, rounded.
RAW_RATE_2_OVER_200_MIN = 30.0
#: Full env (libsumo) env-steps/s over raw SUMO steps/s at the same N; measured 0.040-0.042 at
#: N=10 and 0.117-0.118 at N=50 (the issue's targets are 0.2 and 0.33): about half of that.
ENV_RATIO_FLOOR = {10: 0.02, 50: 0.05}
#: Radio growth exponent (log-log slope) over the large N (200, 500, 1000), where fixed per-call
#: costs no longer hide the growth. Highway (out-of-range pairs culled): measured 0.83, must stay
#: clearly below 2. Convoy (every pair a link, N^2 work): measured 2.2; the floor checks that the
#: layout really puts everyone in range, so the highway figure means something.
RADIO_LARGE_N = (200, 500, 1000)
RADIO_HIGHWAY_EXPONENT_MAX = 1.3
RADIO_CONVOY_EXPONENT_MIN = 1.7
#: traci: reset() (``load``) must be at least this many times cheaper than a new SUMO process
#: (measured ~10x). libsumo: ``load`` costs what ``start`` costs (both in-process, measured
#: reset/restart ~1.3), so the floor only says a reset never costs more than 2.5 restarts.
RESET_TRACI_SPEEDUP_MIN = 5.0
RESET_LIBSUMO_OVER_RESTART_MAX = 2.5
#: Training (num_cpus=1) agent-steps/s over the bare env's agent-steps/s at the same N: what
#: SuperSuit + SB3 + PPO updates leave of the env's speed (measured 0.26-0.44); ~half the low end.
TRAIN_OVER_ENV_MIN = 0.1
#: Two worker processes vs one (measured 0.74-0.82 on 2 cores shared with other work: the workers,
#: the parent and the other sessions compete for the cores); half, so only a collapse fails.
TRAIN_2CPU_OVER_1CPU_MIN = 0.35
#: RSS growth between env step 1,000 and 10,000 (measured 0.0-0.01 MB): a leak of >= 2.3 KB per
#: step fails.
MEMORY_GROWTH_MAX_MB = 20.0

# ---- the targets (reported, not asserted) ---------------------------------------------
TARGET_ENV_FRACTION = {10: 1 / 5, 50: 1 / 3}
TARGET_RADIO_MS = {("convoy", 100): 0.5, ("highway", 100): 0.5, ("highway", 1000): 10.0}
TARGET_RESET_MS = 20.0
TARGET_TRAIN_AGENT_STEPS = 10_000.0

RADIO_N = (10, 50, 100, 200, 500, 1000)
HAZARD_EARLY = {"step_window": (20, 60)}  # every measured episode contains the emergency brake


def _status(ok: bool) -> str:
    return "met" if ok else "not met"


# ---- case 1 ------------------------------------------------------------------------------------


def test_raw_sumo_ceiling_scales_with_vehicle_count(raw_sumo, results):
    """libsumo stepping + getters + one setSpeed per vehicle, N vehicles present throughout."""
    rates = {n: raw_sumo.get(n) for n in SCALING_N}
    rows = [(f"raw SUMO steps/s, N={n}", r["steps_per_s"], "steps/s", "", "") for n, r in rates.items()]
    rows += [(f"raw SUMO vehicle-steps/s, N={n}", r["steps_per_s"] * n, "veh-steps/s", "", "") for n, r in rates.items()]
    results.record("1 raw SUMO", {str(n): r for n, r in rates.items()}, rows)
    for n, r in rates.items():
        assert r["vehicles_at_end"] == n
    ratio = rates[2]["steps_per_s"] / rates[200]["steps_per_s"]
    assert ratio > RAW_RATE_2_OVER_200_MIN, f"raw SUMO at N=2 only {ratio:.1f}x faster than at N=200"


# ---- case 2 ------------------------------------------------------------------------------------


def test_parallel_env_rate_against_raw_sumo(raw_sumo, results):
    """parallel_env(...).step with random actions, hazards on, measured radio; libsumo and traci."""
    figures, rows = {}, []
    ratios = {}
    for backend, steps, reps in (("libsumo", 200, 5), ("traci", 100, 3)):
        for n in SCALING_N:
            r = env_rate(n, backend, steps=steps, reps=reps, hazard=HAZARD_EARLY)
            raw = raw_sumo.get(n)["steps_per_s"]
            r["raw_steps_per_s"] = raw
            r["ratio_to_raw"] = r["env_steps_per_s"] / raw
            figures[f"{backend}/{n}"] = r
            target = TARGET_ENV_FRACTION.get(n) if backend == "libsumo" else None
            rows.append((f"env-steps/s {backend}, N={n}", r["env_steps_per_s"], "steps/s", "", ""))
            rows.append((f"agent-steps/s {backend}, N={n}", r["agent_steps_per_s"], "agent-steps/s", "", ""))
            rows.append((
                f"env / raw SUMO {backend}, N={n}", r["ratio_to_raw"], "ratio",
                f">= {target:.2f}" if target else "", _status(r["ratio_to_raw"] >= target) if target else "",
            ))
            if backend == "libsumo":
                ratios[n] = r["ratio_to_raw"]
    results.record("2 parallel env", figures, rows)
    for n, floor in ENV_RATIO_FLOOR.items():
        assert ratios[n] >= floor, f"env/raw ratio at N={n} is {ratios[n]:.3f}, below the floor {floor}"


# ---- case 3 ------------------------------------------------------------------------------------


def test_radio_cost_growth_on_convoy_and_highway(results):
    """Radio alone per 100 ms step: all in range (convoy) vs mostly out of range (highway)."""
    figures, rows, slopes = {}, [], {}
    for kind in ("convoy", "highway"):
        costs = []
        for n in RADIO_N:
            steps = 30 if n <= 200 else (9 if n <= 500 else 5)
            r = radio_step_ms(n, kind, steps=steps)
            figures[f"{kind}/{n}"] = r
            costs.append(r["ms_per_step"])
            target = TARGET_RADIO_MS.get((kind, n))
            rows.append((
                f"radio ms/step {kind}, N={n} ({r['links_per_step']:.0f} links)", r["ms_per_step"], "ms",
                f"<= {target:g} ms" if target else "", _status(r["ms_per_step"] <= target) if target else "",
            ))
        slopes[kind] = loglog_slope(list(RADIO_N), costs)
        large = [c for n, c in zip(RADIO_N, costs) if n in RADIO_LARGE_N]
        slopes[f"{kind}_large_n"] = loglog_slope(list(RADIO_LARGE_N), large)
        rows.append((f"radio growth exponent {kind}, all N", slopes[kind], "", "", ""))
        rows.append((f"radio growth exponent {kind}, N=200..1000", slopes[f"{kind}_large_n"], "", "", ""))
    figures["exponents"] = slopes
    results.record("3 radio", figures, rows)
    hw, cv = slopes["highway_large_n"], slopes["convoy_large_n"]
    assert hw < RADIO_HIGHWAY_EXPONENT_MAX, f"highway radio cost grows as N^{hw:.2f} (out-of-range links not culled?)"
    assert cv > RADIO_CONVOY_EXPONENT_MIN, f"all-in-range radio cost grows only as N^{cv:.2f}: not every pair linked"


# ---- case 4 ------------------------------------------------------------------------------------


def _reset_and_restart_ms(backend: str, reps: int) -> tuple[float, float]:
    env = make_env(None, backend, max_steps=500, scenario="convoy_6")
    try:
        env.reset(seed=0)
        resets = []
        for k in range(reps):
            t0 = time.perf_counter()
            env.reset(seed=k + 1)
            resets.append(time.perf_counter() - t0)
    finally:
        env.close()
    restarts = []
    for k in range(max(3, reps // 3)):
        env = make_env(None, backend, max_steps=500, scenario="convoy_6")
        try:
            t0 = time.perf_counter()
            env.reset(seed=k + 1)  # constructs nothing of SUMO before: this starts it
            restarts.append(time.perf_counter() - t0)
        finally:
            env.close()
    return 1000 * statistics.median(resets), 1000 * statistics.median(restarts)


def test_reset_is_cheaper_than_a_sumo_restart(results):
    """env.reset() on convoy_6 (SUMO load) vs a new env whose first reset starts SUMO."""
    figures, rows, speedups = {}, [], {}
    for backend, reps in (("libsumo", 15), ("traci", 9)):
        reset_ms, restart_ms = _reset_and_restart_ms(backend, reps)
        speedups[backend] = restart_ms / reset_ms
        figures[backend] = {"reset_ms": reset_ms, "restart_ms": restart_ms, "speedup": speedups[backend]}
        target = TARGET_RESET_MS if backend == "libsumo" else None
        rows.append((f"reset() convoy_6 {backend}", reset_ms, "ms",
                     f"<= {target:g} ms" if target else "", _status(reset_ms <= target) if target else ""))
        rows.append((f"full SUMO restart convoy_6 {backend}", restart_ms, "ms", "", ""))
        rows.append((f"restart / reset {backend}", speedups[backend], "x", "", ""))
    results.record("4 reset", figures, rows)
    assert speedups["traci"] >= RESET_TRACI_SPEEDUP_MIN, f"traci: reset only {speedups['traci']:.1f}x cheaper than a restart"
    slower = 1.0 / speedups["libsumo"]
    assert slower <= RESET_LIBSUMO_OVER_RESTART_MAX, f"libsumo: reset costs {slower:.1f} restarts"


# ---- case 5 ------------------------------------------------------------------------------------


def _training_rate(num_cpus: int, make_vec_env, n: int = 10) -> dict[str, float]:
    """PPO agent-steps/s over three rollouts + updates after a warm-up rollout + update.

    torch runs on one thread: on 2 shared cores its default (2 threads) made the small Deep Sets
    forward passes 4-5x slower (measured 490 vs ~1,600 agent-steps/s at num_cpus=1).
    """
    import torch
    from stable_baselines3 import PPO

    from harness import highway_kwargs
    from roadsense_marl.policies import create_deep_set_policy_kwargs

    num_envs = num_cpus  # libsumo: one simulation per process
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    venv = make_vec_env(num_envs=num_envs, num_cpus=num_cpus, seed=0, scenario="highway",
                        scenario_kwargs=highway_kwargs(n), backend="libsumo", max_steps=300, hazard=HAZARD_EARLY)
    try:
        n_steps = 256
        model = PPO("MultiInputPolicy", venv, policy_kwargs=create_deep_set_policy_kwargs(), n_steps=n_steps,
                    batch_size=256, n_epochs=4, seed=0, device="cpu", verbose=0)
        per_rollout = n_steps * venv.num_envs
        model.learn(total_timesteps=per_rollout)  # warm-up: torch, SUMO start, first update
        start = model.num_timesteps
        t0 = time.perf_counter()
        model.learn(total_timesteps=3 * per_rollout, reset_num_timesteps=False)
        elapsed = time.perf_counter() - t0
        done = model.num_timesteps - start
    finally:
        venv.close()
        torch.set_num_threads(threads)
    return {"num_cpus": num_cpus, "num_envs": num_envs, "slots": venv.num_envs, "agent_steps": done,
            "seconds": elapsed, "agent_steps_per_s": done / elapsed, "torch_threads": 1,
            "n_steps": n_steps, "batch_size": 256, "n_epochs": 4}


def test_training_throughput_with_one_and_two_workers(results):
    """Shared-policy PPO (Deep Sets, updates included) through make_vec_env, N=10 highway."""
    try:
        from roadsense_marl.training.vec_env import make_vec_env
    except ImportError as exc:  # being finished by another engineer
        pytest.skip(f"roadsense_marl.training.vec_env.make_vec_env is not importable yet: {exc}")
    figures: dict = {c: _training_rate(c, make_vec_env) for c in (1, 2)}
    bare = env_rate(10, "libsumo", steps=200, reps=3, hazard=HAZARD_EARLY)["agent_steps_per_s"]
    rows = [("bare env agent-steps/s, libsumo, N=10", bare, "agent-steps/s", "", "")]
    for c, r in figures.items():
        target = TARGET_TRAIN_AGENT_STEPS if c == 2 else None
        rows.append((f"PPO agent-steps/s, num_cpus={c}, N=10 ({r['slots']} slots)", r["agent_steps_per_s"],
                     "agent-steps/s", f"> {target:,.0f}" if target else "",
                     _status(r["agent_steps_per_s"] > target) if target else ""))
    gain = figures[2]["agent_steps_per_s"] / figures[1]["agent_steps_per_s"]
    share = figures[1]["agent_steps_per_s"] / bare
    rows.append(("PPO speed-up num_cpus=2 / num_cpus=1", gain, "x", "", ""))
    rows.append(("PPO (num_cpus=1) / bare env agent-steps/s", share, "ratio", "", ""))
    results.record("5 training", {**{str(c): r for c, r in figures.items()}, "bare_env_agent_steps_per_s": bare}, rows)
    assert share >= TRAIN_OVER_ENV_MIN, f"training runs at only {share:.3f} of the bare env's agent-steps/s"
    assert gain >= TRAIN_2CPU_OVER_1CPU_MIN, f"two workers give only {gain:.2f}x the throughput of one"


# ---- case 6 ------------------------------------------------------------------------------------


def test_memory_does_not_grow_over_ten_thousand_env_steps(results):
    """RSS after 10,000 env steps vs after 1,000 (convoy_6, libsumo, episodes reset as they end)."""
    env = make_env(None, "libsumo", max_steps=500, scenario="convoy_6", hazard=HAZARD_EARLY)
    rng = np.random.default_rng(0)
    done, episode, marks = 0, 0, {}
    try:
        while done < 10_000:
            chunk = min(1_000 - done % 1_000, 10_000 - done)
            if not env.agents:
                env.reset(seed=episode)
                episode += 1
            space = env.action_space(env.possible_agents[0])
            for _ in range(chunk):
                if not env.agents:
                    env.reset(seed=episode)
                    episode += 1
                a = rng.uniform(space.low[0], space.high[0], size=(len(env.agents), 1)).astype(np.float32)
                env.step(dict(zip(env.agents, a)))
                done += 1
            marks[done] = rss_mb()
    finally:
        env.close()
    growth = marks[10_000] - marks[1_000]
    rows = [("RSS after 1,000 env steps", marks[1_000], "MB", "", ""),
            ("RSS after 10,000 env steps", marks[10_000], "MB", "", ""),
            ("RSS growth 1,000 -> 10,000 steps", growth, "MB", f"<= {MEMORY_GROWTH_MAX_MB:g} MB",
             _status(growth <= MEMORY_GROWTH_MAX_MB))]
    results.record("6 memory", {"rss_mb_by_step": marks, "episodes": episode}, rows)
    assert growth <= MEMORY_GROWTH_MAX_MB, f"RSS grew {growth:.1f} MB between step 1,000 and 10,000: {marks}"
