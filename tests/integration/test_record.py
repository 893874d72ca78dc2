"""``roadsense-marl record`` on real SUMO: GIF and MP4 files that decode to one frame per step plus reset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio.v2 as iio
import numpy as np
import pytest

from roadsense_marl import parallel_env
from roadsense_marl.env.render import DRIVING
from roadsense_marl.evaluation import run_episode
from roadsense_marl.evaluation.baselines import make_baseline
from roadsense_marl.evaluation.metrics import episode_metrics
from roadsense_marl.evaluation.record import CAPTION_PX, EpisodeRecorder, write_video

STEPS = 30


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "roadsense_marl.cli", "record", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=180, env={**os.environ, "PYTHONPATH": str(Path.cwd())})


def _decode(path: Path) -> list[np.ndarray]:
    reader = iio.get_reader(path)
    try:
        return [np.asarray(f)[..., :3] for f in reader]
    finally:
        reader.close()


def _has_vehicles(frame: np.ndarray, tol: int) -> bool:
    """Pixels close to the driving colour (lossy codecs shift colours a little)."""
    close = (np.abs(frame.astype(int) - np.array(DRIVING)) <= tol).all(axis=-1)
    return close.sum() > 100


@pytest.mark.parametrize("suffix, tol", [(".gif", 12), (".mp4", 40)])
def test_record_cli_writes_a_video_with_one_frame_per_step(tmp_path, suffix, tol):
    out = tmp_path / f"episode{suffix}"
    res = _cli("--policy", "rule-v2v", "--max-steps", str(STEPS), "--out", str(out), "--seed", "7", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"{STEPS + 1} frames" in res.stdout and "seed 7" in res.stdout
    frames = _decode(out)
    assert len(frames) == STEPS + 1  # reset + every step
    assert frames[0].shape == (260 + CAPTION_PX, 800, 3)
    assert all(_has_vehicles(f, tol) for f in (frames[0], frames[-1]))
    assert (np.abs(frames[0].astype(int) - frames[-1].astype(int)) > 30).any()  # the convoy moved
    # Real time by default: one 0.1 s step per frame.
    if suffix == ".gif":
        from PIL import Image

        assert Image.open(out).info["duration"] == 100
    else:
        reader = iio.get_reader(out)
        assert reader.get_meta_data()["fps"] == 10.0
        reader.close()


def test_record_several_episodes_names_files_by_seed(tmp_path):
    res = _cli("--policy", "no-v2v", "--max-steps", "10", "--episodes", "2", "--out", str(tmp_path / "ep.gif"),
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.glob("*.gif")) == ["ep_seed1000.gif", "ep_seed1001.gif"]
    assert all(len(_decode(p)) == 11 for p in tmp_path.glob("*.gif"))


@pytest.mark.parametrize(
    "args, words",
    [
        (["--policy", "rule-v2v", "--out", "x.avi"], [".gif", ".mp4", "x.avi"]),
        (["--out", "x.gif"], ["MODEL", "--policy"]),
        (["nope.zip", "--out", "x.gif"], ["nope.zip", "not found"]),
        (["--policy", "rule-v2v", "--out", "x.gif", "--scenario", "convoy_99"], ["convoy_99", "convoy_6"]),
        (["--policy", "rule-v2v", "--out", "x.gif", "--fps", "0"], ["--fps"]),
    ],
)
def test_record_cli_mistakes_are_one_line(tmp_path, args, words):
    res = _cli(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_recording_does_not_change_the_episode():
    env = parallel_env(scenario="convoy_6", max_steps=60, render_mode="rgb_array")
    try:
        plain = episode_metrics(run_episode(env, make_baseline("rule-v2v"), 4))
        rec = EpisodeRecorder(env, caption="rule-v2v")
        recorded = episode_metrics(run_episode(rec, make_baseline("rule-v2v"), 4))
        again = EpisodeRecorder(env, caption="rule-v2v")
        run_episode(again, make_baseline("rule-v2v"), 4)
    finally:
        env.close()
    assert len(rec.frames) == recorded["steps"] + 1
    assert plain == recorded
    assert all(np.array_equal(a, b) for a, b in zip(rec.frames, again.frames))  # same seed, same frames


def test_recorder_needs_rgb_array_frames():
    env = parallel_env(scenario="convoy_3")
    try:
        with pytest.raises(ValueError, match="render_mode='rgb_array'"):
            EpisodeRecorder(env)
    finally:
        env.close()


@pytest.mark.parametrize(
    "frames, path, fps, match",
    [
        ([], "a.gif", 10, "no frames"),
        ([np.zeros((4, 4, 3), np.uint8)], "a.png", 10, ".gif or .mp4"),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)], "a.gif", 10, "frame 1 has shape"),
        ([np.zeros((4, 4, 3), np.uint8)], "a.gif", 0, "fps must be > 0"),
    ],
)
def test_write_video_rejects_bad_input(tmp_path, frames, path, fps, match):
    with pytest.raises(ValueError, match=match):
        write_video(frames, tmp_path / path, fps)
    assert not list(tmp_path.iterdir())


def test_mp4_with_odd_frame_size_is_padded(tmp_path):
    frames = [np.full((31, 41, 3), 40 * i, np.uint8) for i in range(5)]
    out = write_video(frames, tmp_path / "odd.mp4", fps=5)
    decoded = _decode(out)
    assert len(decoded) == 5 and decoded[0].shape == (32, 42, 3)


def test_an_out_path_that_cannot_be_written_is_refused_before_any_episode(tmp_path, capsys):
    from roadsense_marl.cli import main

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    (tmp_path / "folder.gif").mkdir()
    for out, needle in ((blocker / "x.gif", "is a file, not a folder"), (tmp_path / "folder.gif", "is a folder")):
        assert main(["record", "--policy", "rule-v2v", "--max-steps", "5", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
