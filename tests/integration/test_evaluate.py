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
        reacted = [f["reaction_time_s"] for f in e["followers"] if f["reacted"]]
        assert int(r["followers_reacted"]) == len(reacted)
        if reacted:
            assert float(r["reaction_time_mean_s"]) == pytest.approx(sum(reacted) / len(reacted))
        else:
            assert r["reaction_time_mean_s"] == ""  # empty = not applicable
    fol = list(csv.DictReader(open(tmp_path / "followers.csv")))
    assert len(fol) == sum(len(e["followers"]) for res in m["results"] for e in res["episodes"])
    assert {r["reacted"] for r in fol if r["policy"] == "no-v2v"} == {"0"}
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
    train_env = gymnasium.make("RoadSense-Convoy-v2", ego_id="V001", **env_cfg)
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
