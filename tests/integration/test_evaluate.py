"""Evaluation end to end on real SUMO: scripted episodes with known answers, baselines, a tiny model, plots, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from roadsense_marl import parallel_env
from roadsense_marl.evaluation import evaluate, run_episode
from roadsense_marl.evaluation.baselines import no_v2v_policy
from roadsense_marl.evaluation.metrics import episode_metrics

HAZARD = {"onset_window_s": [3.0, 4.0], "decel_range": [9.0, 9.0], "duration_range": [1.5, 1.5], "release_prob": 0.0}
SHORT = dict(scenario="convoy_6", max_steps=120, hazard=HAZARD)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def brake_k_steps_after_onset(k: int, fraction: float = 0.5):
    """Every live agent brakes at ``fraction`` from step onset + k on (the hazard vehicle's action is ignored)."""

    def policy(env, obs):
        on = env.record.hazard_onset_step is not None and env.num_steps >= env.record.hazard_onset_step + k
        return {a: np.array([fraction if on else 0.0], dtype=np.float32) for a in env.agents}

    return policy


def test_followers_braking_at_a_known_step_get_exactly_that_reaction_time():
    env = parallel_env(radio="ideal", **SHORT)
    try:
        rec = run_episode(env, brake_k_steps_after_onset(4), seed=3)
    finally:
        env.close()
    e = episode_metrics(rec)
    assert e["hazard_vehicle"] is not None and e["followers"], "the hazard must have followers"
    onset = e["hazard_onset_step"]
    assert rec.decel_cmd[onset + 4, rec.agents.index(e["followers"][0]["agent"])] == pytest.approx(4.0)
    for f in e["followers"]:
        assert f["reaction_step"] == onset + 4
        assert f["reaction_time_s"] == pytest.approx(0.4, abs=1e-9)
        assert f["received"], f"{f['agent']} is in radio range of the hazard vehicle on an ideal radio"
    assert not e["collision"]


def test_a_forced_crash_is_counted_once():
    env = parallel_env(radio="ideal", **SHORT)
    try:
        rec = run_episode(env, no_v2v_policy(), seed=3)
    finally:
        env.close()
    e = episode_metrics(rec)
    hz = e["hazard_vehicle"]
    direct = [a for i, a in enumerate(rec.agents) if rec.leader_before[e["hazard_onset_step"], i] == rec.agents.index(hz)]
    assert e["collision"] and e["crashes"] == 1
    assert sorted(e["collided_agents"]) == sorted([hz, *direct])  # SUMO reports both vehicles of the crash
    assert (rec.collided_step >= 0).sum() == 2
    assert e["min_gap_m"] < 2.0
    fol = {f["agent"]: f for f in e["followers"]}
    assert fol[direct[0]]["collided"] and not any(f["reacted"] for f in fol.values())


def _check_png(path: Path) -> None:
    """A PNG (not blank) or a PDF with a page, as the suffix says."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    data = path.read_bytes()
    if path.suffix == ".pdf":
        assert len(data) > 1000 and data[:5] == b"%PDF-" and b"/Type /Page" in data, f"{path} is not a PDF"
        return
    assert len(data) > 1000 and data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    img = plt.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.05, f"{path} is blank"


def _plot_files(*stems: str) -> set[str]:
    return {f"{s}.{fmt}" for s in stems for fmt in ("png", "pdf")}


def test_evaluate_both_baselines_end_to_end_with_plots(tmp_path):
    m = evaluate(policy="rule-v2v", episodes=3, seed=10, out=tmp_path, radio="ideal", env_kwargs=SHORT, verbose=False)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == m
    assert [r["policy"] for r in m["results"]] == ["rule-v2v", "no-v2v"]
    assert m["seeds"] == [10, 11, 12] and m["scenario"] == "convoy_6" and m["radios"] == ["ideal"]
    assert "roadsense_marl" in m["versions"] and "eclipse-sumo" in m["versions"]
    rule, none = (r["aggregate"] for r in m["results"])
    assert none["collision_rate"]["rate"] == 1.0 and rule["collision_rate"]["rate"] == 0.0
    assert rule["follower_reacted_rate"]["rate"] == 1.0 and none["follower_reacted_rate"]["k"] == 0
    assert rule["reaction_time_s"]["min"] >= 0.1 and rule["pdr"]["rate"] == 1.0
    # Both baselines drive (convoy_6 departs at 2 m/s, car-following accelerates): speeds are recorded.
    for agg in (rule, none):
        assert 2.0 < agg["mean_speed_mps"]["mean"] < 14.0 and 0.0 <= agg["stopped_share"]["mean"] < 0.5
    assert not any("stops the traffic" in f for f in m["findings"])
    assert [r["seed"] for r in m["results"][1]["episodes"]] == [10, 11, 12]
    names = {Path(p).name for p in m["plots"]}
    assert names == _plot_files("gap_over_time", "radio", "comparison")
    for p in m["plots"]:
        _check_png(Path(p))


def test_evaluate_writes_per_episode_tables_matching_metrics_and_records_first_episodes(tmp_path):
    import csv

    import imageio.v2 as iio

    m = evaluate(policy="rule-v2v", episodes=3, seed=10, out=tmp_path, radio="ideal", env_kwargs=SHORT,
                 verbose=False, plots=False, record=2, record_format="gif")
    assert [Path(p).name for p in m["tables"]] == ["episodes.csv", "followers.csv"]
    rows = list(csv.DictReader(open(tmp_path / "episodes.csv")))
    assert [(r["policy"], int(r["seed"])) for r in rows] == [(p, s) for p in ("rule-v2v", "no-v2v") for s in (10, 11, 12)]
    for r, res in zip(rows, [(res, e) for res in m["results"] for e in res["episodes"]]):
        result, e = res
        assert r["scenario"] == "convoy_6" and r["radio"] == "ideal"
        assert int(r["collision"]) == e["collision"] and int(r["crashes"]) == e["crashes"]
        assert float(r["min_gap_m"]) == e["min_gap_m"] and float(r["mean_speed_mps"]) == e["mean_speed_mps"]
        assert int(r["followers"]) == len(e["followers"]) > 0
        assert int(r["hazard_released"]) == e["hazard_released"] and int(r["direct_hard_brake_within_1s"]) == (
            e["direct_hard_brake_within_1s"])
        assert float(r["follower_speed_deficit_mps"]) == e["follower_speed_deficit_mps"]
        reacted = [f["reaction_time_s"] for f in e["followers"] if f["reacted"]]
        assert int(r["followers_reacted"]) == len(reacted)
        if reacted:
            assert float(r["reaction_time_mean_s"]) == pytest.approx(sum(reacted) / len(reacted))
        else:
            assert r["reaction_time_mean_s"] == ""  # empty = not applicable
    fol = list(csv.DictReader(open(tmp_path / "followers.csv")))
    assert len(fol) == sum(len(e["followers"]) for res in m["results"] for e in res["episodes"])
    assert {r["reacted"] for r in fol if r["policy"] == "no-v2v"} == {"0"}
    assert sum(int(r["direct"]) for r in fol) == 6  # one direct follower per episode and policy
    assert all(float(r["reaction_time_s"]) >= 0.1 for r in fol if r["policy"] == "rule-v2v")
    # The first two episodes of each policy as videos, one frame per step plus reset.
    names = sorted(Path(p).name for p in m["videos"])
    assert names == [f"{p}_ideal_seed{s}.gif" for p in ("no-v2v", "rule-v2v") for s in (10, 11)]
    steps = {(res["policy"], e["seed"]): e["steps"] for res in m["results"] for e in res["episodes"]}
    for p in m["videos"]:
        policy, _, seed = Path(p).stem.rsplit("_", 2)
        reader = iio.get_reader(p)
        assert sum(1 for _ in reader) == steps[(policy, int(seed.removeprefix("seed")))] + 1
        reader.close()


def test_recording_during_evaluation_leaves_metrics_unchanged(tmp_path):
    kw = dict(policy="rule-v2v", episodes=1, seed=10, radio="measured", env_kwargs=SHORT, verbose=False, plots=False,
              baselines=False)
    plain = evaluate(out=tmp_path / "a", **kw)
    recorded = evaluate(out=tmp_path / "b", record=1, **kw)
    assert plain["results"][0]["episodes"] == recorded["results"][0]["episodes"]
    assert len(recorded["videos"]) == 1 and recorded["videos"][0].endswith(".mp4")


@pytest.mark.parametrize("progress_bar", [True, False])
def test_progress_bar_counts_episodes_only_when_asked(tmp_path, capsys, progress_bar):
    evaluate(policy="no-v2v", episodes=2, seed=10, out=tmp_path, env_kwargs={**SHORT, "max_steps": 10}, plots=False,
             baselines=False, verbose=True, progress_bar=progress_bar)
    err = capsys.readouterr().err
    assert ("/2 [" in err and "episode" in err) == progress_bar, err  # "k/2 [elapsed<left, rate]"


def test_evaluate_tiny_trained_model_from_a_run_folder(tmp_path):
    import gymnasium
    import yaml
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure

    from roadsense_marl.policies import create_deep_set_policy_kwargs

    run = tmp_path / "run"
    run.mkdir()
    env_cfg = {"scenario": "convoy_6", "max_steps": 120, "hazard": HAZARD}
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: extra intra-op threads only contend on a shared machine
    train_env = gymnasium.make("RoadSense-Convoy-v4", ego_id="V001", **env_cfg)
    try:
        model = PPO("MultiInputPolicy", train_env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu",
                    policy_kwargs=create_deep_set_policy_kwargs())
        model.set_logger(configure(str(run), ["csv"]))
        model.learn(total_timesteps=128)
        model.save(run / "final_model.zip")
    finally:
        train_env.close()
        torch.set_num_threads(threads)
    (run / "config.yaml").write_text(yaml.safe_dump({"env": env_cfg}))

    m = evaluate(run, episodes=2, seed=50, out=tmp_path / "eval", radio_sweep=True, baselines=True, verbose=False)
    assert m["model"] == str(run / "final_model.zip") and m["scenario"] == "convoy_6"
    assert {(r["policy"], r["radio"]) for r in m["results"]} == {
        (p, q) for p in ("model", "rule-v2v", "no-v2v") for q in ("ideal", "measured", "degraded")
    }
    assert m["env_config"]["max_steps"] == 120  # the run's env config was used
    assert any("rule-v2v" in f for f in m["findings"])  # the model is compared with the rule, plainly
    names = {Path(p).name for p in m["plots"]}
    assert _plot_files("radio_sweep", "training_curves", "comparison", "radio") <= names
    for p in m["plots"]:
        _check_png(Path(p))
    # PDR against the channel busy ratio: the shared channel is on in measured/degraded, off in ideal
    by_radio = {r["radio"]: r["aggregate"] for r in m["results"] if r["policy"] == "model"}
    for radio, agg in by_radio.items():
        bins = agg["pdr_by_cbr"]
        assert sum(b["links"] for b in bins) == sum(b["links"] for b in agg["pdr_by_distance"]) > 0
    assert by_radio["ideal"]["cbr_mean"] == 0.0
    assert 0.0 < by_radio["measured"]["cbr_mean"] < 1.0


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "roadsense_marl.cli", "evaluate", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_cli_missing_model_is_one_line_naming_the_path(tmp_path):
    res = _cli(str(tmp_path / "nope.zip"), "--no-plots", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.zip" in lines[0] and "not found" in lines[0]


def test_cli_unknown_scenario_is_one_line(tmp_path):
    res = _cli("--policy", "no-v2v", "--scenario", "convoy_99", "--episodes", "1", "--no-plots", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "convoy_99" in lines[0] and "convoy_6" in lines[0]
    assert not (tmp_path / "eval").exists()


# ---- parallel workers, paired comparisons, training episode shape, generalisation ----------------

def failing_policy(env, obs):
    """Fault injection for worker processes (importable by name in a spawned child)."""
    raise RuntimeError("injected fault in a worker")


def dying_policy(env, obs):
    """Fault injection: the worker process exits abruptly, as if killed or crashed in SUMO."""
    import os

    os._exit(3)


def hanging_policy(env, obs):
    import time

    time.sleep(120)
    return {}


def _spawned_children() -> list[int]:
    """Live child processes of this process that multiprocessing spawned (read from /proc)."""
    import os

    me, out = os.getpid(), []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            state = stat.rsplit(")", 1)[1].split()[0]
            if ppid == me and state != "Z" and b"spawn_main" in (d / "cmdline").read_bytes():
                out.append(int(d.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _records_equal(a, b) -> None:
    import dataclasses

    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f.name
        else:
            assert x == y, f.name


def test_parallel_workers_give_bit_identical_records_and_metrics_to_a_serial_run(tmp_path):
    from roadsense_marl.env.config import make_env_config
    from roadsense_marl.evaluation import run_policy
    from roadsense_marl.evaluation.baselines import rule_v2v_policy
    from roadsense_marl.evaluation.runner import run_parallel

    seeds = [20, 21, 22]
    cfg = make_env_config(None, radio="measured", **SHORT)
    env = parallel_env(config=cfg)
    try:
        serial = run_policy(env, rule_v2v_policy(), seeds)
    finally:
        env.close()
    [(par, source, _)] = run_parallel([(cfg, "rule-v2v", None)], seeds, workers=2)
    assert "measured" in source and len(par) == 3
    for a, b in zip(serial, par):
        _records_equal(a, b)
    assert not _spawned_children()

    kw = dict(policy="rule-v2v", episodes=3, seed=20, plots=False, verbose=False, env_kwargs=SHORT)
    m1 = evaluate(out=tmp_path / "serial", workers=1, **kw)
    m2 = evaluate(out=tmp_path / "parallel", workers=2, **kw)
    for r1, r2 in zip(m1["results"], m2["results"]):
        assert (r1["episodes"], r1["aggregate"], r1.get("paired")) == (r2["episodes"], r2["aggregate"], r2.get("paired"))
    assert m2["workers"] == 2 and not _spawned_children()


@pytest.mark.parametrize("policy, error", [(failing_policy, "injected fault in a worker"),
                                           (dying_policy, "died with exit code 3")])
def test_a_worker_error_or_death_is_raised_and_leaves_no_process_behind(policy, error):
    from roadsense_marl.env.config import make_env_config
    from roadsense_marl.evaluation.runner import run_parallel

    cfg = make_env_config(None, **SHORT)
    with pytest.raises(RuntimeError, match=error):
        run_parallel([(cfg, policy, None)], [1, 2, 3, 4], workers=2)
    assert not _spawned_children()


def test_an_interrupt_terminates_the_workers():
    import signal
    import time

    from roadsense_marl.env.config import make_env_config
    from roadsense_marl.evaluation.runner import run_parallel

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(8)
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_parallel([(make_env_config(None, **SHORT), hanging_policy, None)], [1, 2], workers=2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t0 < 60 and not _spawned_children()


def test_workers_and_videos_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="workers=1 with record"):
        evaluate(policy="rule-v2v", episodes=1, out=tmp_path, workers=2, record=1, verbose=False)
    with pytest.raises(ValueError, match="workers must be a whole number >= 1"):
        evaluate(policy="rule-v2v", episodes=1, out=tmp_path, workers=0, verbose=False)


def test_the_policy_is_paired_with_each_baseline_on_the_same_seeds(tmp_path):
    m = evaluate(policy="rule-v2v", episodes=3, seed=10, out=tmp_path, radio="ideal", env_kwargs=SHORT,
                 plots=False, verbose=False)
    rule, none = m["results"]
    p = rule["paired"]["no-v2v"]
    assert set(rule["paired"]) == {"no-v2v"} and "paired" not in none
    # HAZARD brakes at 9 m/s^2 and never releases: no-v2v crashes in every episode, the rule in none.
    assert p["pairs"] == 3 and (p["collision"]["b"], p["collision"]["c"]) == (0, 3)
    assert p["collision"]["p"] == pytest.approx(0.25)
    assert p["min_gap_m"]["n"] == 3 and p["min_gap_m"]["better"]
    agg = rule["aggregate"]
    assert agg["by_release"]["never_released"]["episodes"] == 3 and agg["by_release"]["released"]["episodes"] == 0
    assert agg["direct_hard_brake_within_1s"]["n"] == 3
    assert all(e["follower_speed_deficit_mps"] is not None for e in rule["episodes"])
    assert "rule-v2v vs no-v2v (ideal radio, 3 paired seeds)" in __import__(
        "roadsense_marl.evaluation.runner", fromlist=["summary_table"]).summary_table(m)


def test_evaluation_on_the_training_episode_shape_uses_the_recipes_episode(tmp_path):
    from roadsense_marl.training import load_train_config

    want = load_train_config("marl_ppo")["env"]
    m = evaluate(policy="no-v2v", episodes=1, seed=3, out=tmp_path, baselines=False, plots=False, verbose=False,
                 episode_shape="training")
    assert m["episode_shape"] == "training"
    assert m["env_config"]["max_steps"] == want["max_steps"]
    assert m["results"][0]["episodes"][0]["steps"] <= want["max_steps"]
    with pytest.raises(ValueError, match="episode_shape must be one of 'config', 'training', 'standard'"):
        evaluate(policy="no-v2v", episodes=1, out=tmp_path, episode_shape="eval", verbose=False)


def test_the_standard_episode_shape_restores_the_env_defaults_over_a_run_config():
    from roadsense_marl.env.config import make_env_config
    from roadsense_marl.evaluation.runner import standard_episode, training_episode

    trained = make_env_config(None, **training_episode())
    back = make_env_config(trained, **standard_episode())
    assert back.to_dict() == make_env_config().to_dict() != trained.to_dict()


def test_generalisation_table_covers_scenarios_radios_and_policies(tmp_path):
    from roadsense_marl.evaluation.generalisation import README_END, README_START, generalisation, splice_readme

    doc = generalisation("pretrained", scenarios=("convoy_3",), radios=("ideal", "degraded"), episodes=2, seed=5,
                         out=tmp_path / "gen", max_steps=120, env_kwargs={"hazard": HAZARD}, verbose=False)
    assert [(c["scenario"], c["radio"]) for c in doc["cells"]] == [("convoy_3", "ideal"), ("convoy_3", "degraded")]
    assert all([r["policy"] for r in c["results"]] == ["model", "no-v2v", "rule-v2v"] for c in doc["cells"])
    md = (tmp_path / "gen" / "generalisation.md").read_text()
    assert md.count("| convoy_3 |") == 6 and "| model |" in md
    assert json.loads((tmp_path / "gen" / "generalisation.json").read_text()) == doc
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nOLD TABLE\n{README_END}\nrest\n")
    splice_readme(readme, md)
    text = readme.read_text()
    assert "OLD TABLE" not in text and md.strip() in text and text.endswith(f"{README_END}\nrest\n")
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="needs the lines"):
        splice_readme(readme, md)


def test_cli_generalisation_refuses_a_scenario_and_two_models_are_too_few(tmp_path):
    res = _cli("--generalisation", "--scenario", "convoy_3", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "drop --scenario" in res.stderr
    res = _cli("pretrained", "pretrained", "--episodes", "1", cwd=tmp_path)
    assert res.returncode == 2 and "at least 3 MODELs" in res.stderr and res.stderr.strip().count("\n") == 0
    res = _cli("--policy", "no-v2v", "--workers", "0", cwd=tmp_path)
    assert res.returncode == 2 and "--workers must be >= 1" in res.stderr
