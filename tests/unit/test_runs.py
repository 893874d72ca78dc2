"""Run-folder helpers: atomic writes, output checks, contract comparison, latest model, progress merging."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from roadsense_marl.training.runs import (
    ContractMismatch,
    RunFolderError,
    check_contract,
    check_new_run_folder,
    check_not_running,
    check_writable_dir,
    contract_differences,
    env_contract,
    latest_model,
    merge_progress,
    save_model,
)


class _FailingModel:
    num_timesteps = 10

    def save(self, path):
        with open(path, "wb") as f:
            f.write(b"half a model")
        raise OSError("disk full")


def test_a_failed_save_leaves_the_old_model_and_no_temporary_file(tmp_path):
    target = tmp_path / "final_model.zip"
    target.write_bytes(b"the old model")
    with pytest.raises(OSError, match="disk full"):
        save_model(_FailingModel(), target, {"contract": {}})
    assert target.read_bytes() == b"the old model"
    assert [p.name for p in tmp_path.iterdir()] == ["final_model.zip"]


def test_output_folder_checks_name_the_path(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"'file' is a regular file, not a folder|is a regular file"):
        check_writable_dir(tmp_path / "file" / "sub" / "run")
    with pytest.raises(ValueError, match=r"is a file, not a folder"):
        check_writable_dir(tmp_path / "file")
    with pytest.raises(ValueError, match=r"/proc/x/y.*not writable"):
        check_writable_dir("/proc/x/y")
    assert check_writable_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_contract_differences_name_nested_entries_and_both_values():
    a = env_contract({"scenario": "convoy_3"})
    b = env_contract({"scenario": "convoy_3", "action_mode": "accel", "radio": "ideal", "reward": {"progress": 2.0}})
    keys = [k for k, _, _ in contract_differences(a, b)]
    assert keys[0] == "action_mode" and "reward.progress" in keys and "radio_source" in keys
    assert "radio_sensor_noise.gps_std_m" in keys and "reward.collision" not in keys
    with pytest.raises(ContractMismatch, match=r"action_mode: model 'brake', env 'accel'"):
        check_contract(a, b, what="m")
    check_contract(a, env_contract({"scenario": "convoy_6", "max_steps": 99}), what="m")  # not part of the contract
    with pytest.warns(UserWarning, match="records no env contract"):
        check_contract(None, a, what="m")


def test_latest_model_is_the_one_with_the_most_steps(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    for n in (192, 1536, 768):
        (tmp_path / "checkpoints" / f"model_{n}_steps.zip").write_bytes(b"")
    (tmp_path / "checkpoints" / "model_notes.zip").write_bytes(b"")
    (tmp_path / "final_model.zip").write_bytes(b"")
    (tmp_path / "run.json").write_text(json.dumps({"final_num_timesteps": 1000}))
    assert latest_model(tmp_path) == (tmp_path / "checkpoints" / "model_1536_steps.zip", 1536)
    (tmp_path / "run.json").write_text(json.dumps({"final_num_timesteps": 2000}))
    assert latest_model(tmp_path) == (tmp_path / "final_model.zip", 2000)


def _write_csv(path, rows):
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_progress_keeps_rows_up_to_the_resumed_step_then_appends_the_new_segment(tmp_path):
    _write_csv(tmp_path / "progress.csv", [{"time/total_timesteps": s, "a": s} for s in (100, 200, 300)])
    _write_csv(tmp_path / "seg.csv", [{"time/total_timesteps": s, "b": -s} for s in (300, 400)])
    merge_progress(tmp_path, tmp_path / "seg.csv", 200)  # resumed from the 200-step checkpoint
    with (tmp_path / "progress.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["time/total_timesteps"] for r in rows] == ["100", "200", "300", "400"]
    assert rows[0]["b"] == "" and rows[3]["a"] == "" and rows[3]["b"] == "-400"


def test_a_run_being_trained_by_a_live_process_is_refused(tmp_path):
    (tmp_path / "config.yaml").write_text("total_timesteps: 10\n")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "run.json").write_text(json.dumps({"status": "running", "pid": other.pid}))
        with pytest.raises(RunFolderError, match=f"being trained right now by process {other.pid}"):
            check_not_running(tmp_path)
        with pytest.raises(RunFolderError, match="being trained right now"):
            check_new_run_folder(tmp_path, overwrite=True)
    finally:
        other.kill()
        other.wait()
    check_not_running(tmp_path)  # its process is gone: the run may be resumed
    assert os.path.exists(tmp_path / "config.yaml")


def test_atomic_writes_give_files_the_usual_umask_mode(tmp_path):
    import os

    from roadsense_marl.training.runs import atomic_target, atomic_write_text

    old = os.umask(0o022)
    try:
        a = atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_target(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"y")
    finally:
        os.umask(old)
    assert (a.stat().st_mode & 0o777) == 0o644
    assert ((tmp_path / "b.bin").stat().st_mode & 0o777) == 0o644
