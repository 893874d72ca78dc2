"""Run folders: one policy for creating, resuming and overwriting a training run, and model trust.

A run folder (``roadsense-marl train --out DIR``) holds:

- ``config.yaml``: the resolved training config plus ``contract`` (:func:`env_contract`); it
  always describes the models beside it (it is written once the run's PPO model exists, and a
  resumed run keeps it, only ``total_timesteps`` may grow);
- ``run.json``: state: ``status`` (``running``, ``interrupted``, ``failed``, ``finished``),
  ``num_timesteps`` of the latest saved model and its path, the env id and version;
- ``final_model.zip`` (finished runs), ``checkpoints/model_<steps>_steps.zip`` (periodic
  checkpoints and the model saved on Ctrl-C), ``progress.csv`` (one row per rollout over the
  whole run, resumed segments appended), ``tb/`` (TensorBoard and per-segment CSV logs).

Policy: an existing run is never changed unless asked: ``resume=True`` (``--resume``)
continues it from its latest model, ``overwrite=True`` (``--overwrite``) replaces it; a folder
that exists, is not empty and is not a run folder is never touched. Every file is written to a
temporary name in the same folder and renamed into place (:func:`atomic_write_bytes`), so a
reader never sees half a file.

Model trust: SB3 ``.zip`` files are loaded with ``PPO.load``, which unpickles parts of the file,
so a crafted ``.zip`` can run code: load only models you trust. :func:`export_policy` writes a
format that runs no code on load: the policy's ``state_dict`` saved with ``torch.save`` and read
with ``torch.load(weights_only=True)``, plus ``policy.json`` (env config, policy options,
spaces and the env contract). Every model saved here also carries its contract (a JSON entry
``roadsense_contract.json`` inside the ``.zip``, ignored by SB3), and loading a model made
under another contract is refused with a message naming both values.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

CONFIG_FILE = "config.yaml"
STATE_FILE = "run.json"
FINAL_MODEL = "final_model.zip"
PROGRESS_FILE = "progress.csv"
CHECKPOINT_DIR = "checkpoints"
CONTRACT_ENTRY = "roadsense_contract.json"
EXPORT_WEIGHTS = "policy.pt"
EXPORT_CONFIG = "policy.json"
EXPORT_FORMAT = "roadsense-marl-policy"
EXPORT_FORMAT_VERSION = 1
STEP_COLUMN = "time/total_timesteps"
_CKPT_RE = re.compile(r"^model_(\d+)_steps\.zip$")

#: Keys of :func:`env_contract`, in the order mismatches are reported.
CONTRACT_KEYS = (
    "env_id", "env_version", "ego_features", "peer_features", "max_peers", "action_mode",
    "max_decel", "max_accel", "radio_source", "radio_sensor_noise", "reward",
)


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (exists, missing, not a run, unreadable)."""


class ContractMismatch(ValueError):
    """A model or run folder made under another env contract than the env it is used with."""


# ---- atomic files ------------------------------------------------------------------------------

def _default_mode() -> int:
    """0o666 less the process umask: the mode ``open()`` would have given a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600; a result file gets the usual umask mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_target(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that wants a file name; renamed into place on success."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# ---- output paths ------------------------------------------------------------------------------

def check_writable_dir(path: str | Path, what: str = "--out") -> Path:
    """Check (without creating anything) that ``path`` is or can become a writable folder.

    Raises ``ValueError`` naming the path when it, or a folder above it, is a regular file, or
    when the nearest existing folder is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{what} {str(p)!r} is a file, not a folder")
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ValueError(f"{what} {str(p)!r} cannot be created: {str(probe)!r} is a regular file, not a folder")
    try:  # a real probe: os.access says yes to root even on read-only file systems
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise ValueError(f"{what} {str(p)!r} is not writable: cannot create a file in {str(probe)!r} ({exc.strerror or exc})") from None
    return p


def is_run_folder(path: str | Path) -> bool:
    """A folder holding a training run (``config.yaml`` or ``run.json``)."""
    p = Path(path)
    return p.is_dir() and ((p / CONFIG_FILE).is_file() or (p / STATE_FILE).is_file())


def check_new_run_folder(out: str | Path, *, overwrite: bool = False) -> Path:
    """Check that a new run may be written to ``out``; changes nothing.

    ``out`` must not exist, be empty, or (with ``overwrite``) hold a run. Raises ``RunFolderError``
    naming the folder and the options otherwise.
    """
    p = check_writable_dir(out)
    if not p.exists() or not any(p.iterdir()):
        return p
    if not is_run_folder(p):
        raise RunFolderError(
            f"--out {str(p)!r} exists, is not empty and is not a training run folder; choose another --out "
            "(nothing there was changed)"
        )
    check_not_running(p)
    if overwrite:
        return p
    state = read_state(p)
    what = (f"a training run (status {state.get('status', 'unknown')}, {state.get('num_timesteps', '?')} steps)"
            if state else "a training run")
    raise RunFolderError(
        f"--out {str(p)!r} already holds {what}; nothing was changed. Use --resume {p} to continue it, "
        "--overwrite to replace it, or choose another --out"
    )


def check_not_running(run: str | Path) -> None:
    """Raise ``RunFolderError`` when another live process is training in ``run`` (``run.json`` status
    ``running`` with the pid of a process that still exists)."""
    state = read_state(run)
    pid = state.get("pid")
    if state.get("status") != "running" or not isinstance(pid, int) or pid == os.getpid():
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return  # that process is gone (killed without a chance to record it): the run can be used
    except PermissionError:
        pass
    raise RunFolderError(f"run {str(run)!r} is being trained right now by process {pid}; wait for it or stop it first")


def clear_run_folder(out: str | Path) -> None:
    """Delete a run folder's contents (only a folder :func:`is_run_folder` recognises)."""
    p = Path(out)
    if not p.exists():
        return
    if not is_run_folder(p):
        raise RunFolderError(f"refusing to delete {str(p)!r}: it is not a training run folder")
    for child in p.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


# ---- the env contract --------------------------------------------------------------------------

def _radio_label(radio: Any) -> str:
    if isinstance(radio, str):
        p = Path(radio)
        return radio if (not p.suffix and "/" not in radio) else p.name
    if isinstance(radio, Mapping):
        return "<dict>"
    return str(getattr(radio, "source", radio))


def env_contract(env_config: Any) -> dict[str, Any]:
    """The observation/action/reward contract a model trained on ``env_config`` depends on.

    ``env_config``: an :class:`~roadsense_marl.env.config.EnvConfig` or anything
    :func:`~roadsense_marl.env.config.make_env_config` accepts. Returns plain JSON data:
    env id and version, feature names, ``max_peers``, action mode and limits (m/s^2), the radio
    profile and its sensor noise, and the reward weights.
    """
    from roadsense_marl.env.config import EnvConfig, make_env_config
    from roadsense_marl.env.observations import EGO_FEATURES, PEER_FEATURES
    from roadsense_marl.env.version import ENV_ID, ENV_VERSION
    from roadsense_marl.espnow import load_params

    cfg = env_config if isinstance(env_config, EnvConfig) else make_env_config(env_config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        radio = load_params(cfg.radio) if cfg.radio is not None else load_params(None)
    return {
        "env_id": ENV_ID,
        "env_version": ENV_VERSION,
        "ego_features": list(EGO_FEATURES),
        "peer_features": list(PEER_FEATURES),
        "max_peers": cfg.max_peers,
        "action_mode": cfg.action_mode,
        "max_decel": float(cfg.max_decel),
        "max_accel": float(cfg.max_accel),
        "radio_source": _radio_label(cfg.radio),
        "radio_sensor_noise": {
            "gps_std_m": radio.gps_std_m, "speed_std_ms": radio.speed_std_ms, "accel_std_ms2": radio.accel_std_ms2,
            "heading_std_deg": radio.heading_std_deg, "gyro_std_rad_s": radio.gyro_std_rad_s,
        },
        "reward": {k: float(v) for k, v in dataclasses.asdict(cfg.reward).items()},
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def contract_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, recorded value, current value)`` for every contract key that differs."""
    out = []
    for key in CONTRACT_KEYS:
        a, b = recorded.get(key), current.get(key)
        if _same(a, b):
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):  # name only the entries that differ
            for k in sorted(set(a) | set(b)):
                if not _same(a.get(k), b.get(k)):
                    out.append((f"{key}.{k}", a.get(k), b.get(k)))
        else:
            out.append((key, a, b))
    return out


def check_contract(recorded: Mapping[str, Any] | None, current: Mapping[str, Any], *, what: str,
                   recorded_as: str = "model", current_as: str = "env") -> None:
    """Raise :class:`ContractMismatch` naming both values of every differing key.

    ``recorded`` ``None`` (a model saved before contracts were recorded, or by plain SB3) only
    warns: nothing can be checked beyond the observation and action shapes.
    """
    if recorded is None:
        warnings.warn(
            f"{what} records no env contract (saved by plain SB3 or before contracts were recorded); "
            "only its observation and action shapes can be checked",
            UserWarning,
            stacklevel=3,
        )
        return
    diffs = contract_differences(recorded, current)
    if diffs:
        parts = "; ".join(f"{k}: {recorded_as} {a!r}, {current_as} {b!r}" for k, a, b in diffs)
        raise ContractMismatch(f"{what} was made under another env contract ({parts}); refusing to use it")


# ---- run state and config ----------------------------------------------------------------------

def read_state(run: str | Path) -> dict[str, Any]:
    """``run.json`` of a run folder (``{}`` when absent); a broken file is a RunFolderError."""
    f = Path(run) / STATE_FILE
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{f} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RunFolderError(f"{f} must hold a JSON object, got {type(data).__name__}")
    return data


def write_state(run: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``run.json`` (atomically); returns the new state."""
    from roadsense_marl.env.version import ENV_ID, ENV_VERSION

    state = {**read_state(run), "env_id": ENV_ID, "env_version": ENV_VERSION, **fields}
    atomic_write_text(Path(run) / STATE_FILE, json.dumps(state, indent=1) + "\n")
    return state


def read_run_config(run: str | Path) -> dict[str, Any]:
    """``config.yaml`` of a run folder as a dict; every problem names the file."""
    import yaml

    f = Path(run) / CONFIG_FILE
    if not f.is_file():
        raise RunFolderError(f"{str(run)!r} is not a training run folder: it has no {CONFIG_FILE}")
    try:
        data = yaml.safe_load(f.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()
        raise RunFolderError(f"{f} is not valid YAML: {' '.join(s.strip() for s in first)}") from exc
    if not isinstance(data, dict):
        raise RunFolderError(f"{f} must hold a mapping of training config keys, got {type(data).__name__}")
    return data


def checkpoint_path(run: str | Path, steps: int) -> Path:
    return Path(run) / CHECKPOINT_DIR / f"model_{int(steps)}_steps.zip"


def latest_model(run: str | Path) -> tuple[Path, int] | None:
    """``(path, num_timesteps)`` of the model with the most steps: a checkpoint or the final model."""
    p = Path(run)
    found: list[tuple[int, int, Path]] = []
    ckdir = p / CHECKPOINT_DIR
    if ckdir.is_dir():
        for q in ckdir.iterdir():
            m = _CKPT_RE.match(q.name)
            if m and q.is_file():
                found.append((int(m.group(1)), 0, q))
    final = p / FINAL_MODEL
    if final.is_file():
        steps = read_state(p).get("final_num_timesteps")
        if isinstance(steps, int):
            found.append((steps, 1, final))
    if not found:
        return None
    steps, _, path = max(found)
    return path, steps


# ---- models with a contract --------------------------------------------------------------------

def save_model(model: Any, path: str | Path, record: Mapping[str, Any]) -> Path:
    """``model.save`` to ``path`` atomically, with ``roadsense_contract.json`` inside.

    ``record``: ``{"contract": ..., "env": env config, "policy": policy options}`` (plain data);
    ``num_timesteps`` is added from the model.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path, suffix=".zip") as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as z:
            z.writestr(CONTRACT_ENTRY, json.dumps({**_plain(record), "num_timesteps": int(model.num_timesteps)}, indent=1))
    return path


def read_model_record(zip_path: str | Path) -> dict[str, Any] | None:
    """The ``roadsense_contract.json`` entry of a model ``.zip`` (``None`` when it has none)."""
    try:
        with zipfile.ZipFile(zip_path) as z:
            if CONTRACT_ENTRY not in z.namelist():
                return None
            data = json.loads(z.read(CONTRACT_ENTRY).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ValueError(f"{str(zip_path)!r} is not a readable model .zip: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("contract"), dict):
        raise ValueError(f"{str(zip_path)!r}: {CONTRACT_ENTRY} must hold an object with a 'contract' object")
    return data


def _plain(x: Any) -> Any:
    """JSON/YAML-safe copy (tuples to lists, anything else unknown as text)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


# ---- progress over resumed segments ------------------------------------------------------------

def merge_progress(run: str | Path, segment_csv: str | Path, start_step: int) -> Path | None:
    """Rewrite ``progress.csv``: the rows already there up to ``start_step``, then ``segment_csv``'s.

    Columns are the union of both (a column missing in a row stays empty). Returns the path, or
    ``None`` when there is nothing to write.
    """
    run = Path(run)
    rows: list[dict[str, str]] = []
    columns: list[str] = []

    def take(f: Path, keep: Any) -> None:
        if not f.is_file():
            return
        with f.open(newline="") as fh:
            reader = csv.DictReader(fh)
            for c in reader.fieldnames or []:
                if c not in columns:
                    columns.append(c)
            for row in reader:
                if keep(row):
                    rows.append(row)

    def before(row: dict[str, str]) -> bool:
        try:
            return float(row.get(STEP_COLUMN) or "nan") <= start_step
        except ValueError:
            return False

    if start_step > 0:
        take(run / PROGRESS_FILE, before)
    take(Path(segment_csv), lambda row: True)
    if not columns:
        return None
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(run / PROGRESS_FILE, buf.getvalue())


# ---- export: weights that run no code on load --------------------------------------------------

def export_policy(source: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Export a run folder's (or a contract-carrying ``.zip``'s) policy to ``out``.

    Writes ``out/policy.pt`` (``torch.save(policy.state_dict())``: tensors only) and
    ``out/policy.json`` (format, env contract, env config, policy options, spaces, steps).
    Loading it (:func:`load_exported_policy`) uses ``torch.load(weights_only=True)`` and runs no
    code from the files. Exporting itself loads the SB3 ``.zip`` (unpickling): export only models
    you trust. Raises ``ValueError`` / ``FileNotFoundError`` naming the problem.
    """
    import torch
    from stable_baselines3 import PPO

    src = Path(source)
    policy_cfg: dict[str, Any] = {}
    if src.is_dir():
        cfg = read_run_config(src)
        if cfg.get("engine") == "rllib":
            raise ValueError(f"{str(src)!r} is an RLlib run: export reads SB3 models only; evaluate and record read "
                             "RLlib runs and checkpoints directly")
        found = (src / FINAL_MODEL, None) if (src / FINAL_MODEL).is_file() else latest_model(src)
        if not found:
            raise FileNotFoundError(f"run folder {str(src)!r} holds no model (no {FINAL_MODEL}, no checkpoints)")
        zip_path = found[0]
        policy_cfg = dict(cfg.get("policy") or {})
    elif src.is_file():
        zip_path = src
    else:
        raise FileNotFoundError(f"nothing to export at {str(src)!r} (give a training run folder or a model .zip)")
    record = read_model_record(zip_path)
    if record is None:
        raise ValueError(
            f"{str(zip_path)!r} records no env contract (saved by plain SB3 or an older version); "
            "export needs a model saved by roadsense-marl train"
        )
    if src.is_dir():
        cfg_contract = cfg.get("contract")
        if cfg_contract is not None:
            check_contract(record["contract"], cfg_contract, what=f"{str(zip_path)!r}",
                           recorded_as="model", current_as=f"{CONFIG_FILE}")
    else:
        policy_cfg = dict(record.get("policy") or {})
    out_dir = check_writable_dir(out)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite or not (out_dir / EXPORT_CONFIG).is_file():
            raise ValueError(f"--out {str(out_dir)!r} is not empty; choose an empty or new folder"
                             + (" (or --overwrite to replace an exported policy there)" if (out_dir / EXPORT_CONFIG).is_file() else ""))
    try:
        model = PPO.load(str(zip_path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - a zip that is not an SB3 PPO save
        raise ValueError(f"could not load {str(zip_path)!r} as an SB3 PPO model: {exc}") from exc
    obs_space, act_space = model.observation_space, model.action_space
    meta = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "contract": record["contract"],
        "env": record.get("env"),
        "policy": _plain(policy_cfg),
        "use_sde": bool(getattr(model, "use_sde", False)),
        "observation_shapes": {k: list(s.shape) for k, s in obs_space.spaces.items()},
        "action": {"shape": list(act_space.shape), "low": act_space.low.tolist(), "high": act_space.high.tolist()},
        "num_timesteps": int(model.num_timesteps),
        "exported_from": str(zip_path),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.policy.state_dict().items()}, buf)
    atomic_write_bytes(out_dir / EXPORT_WEIGHTS, buf.getvalue())
    atomic_write_text(out_dir / EXPORT_CONFIG, json.dumps(meta, indent=1) + "\n")
    return out_dir


def is_exported_policy(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / EXPORT_CONFIG).is_file() and (p / EXPORT_WEIGHTS).is_file()


def read_exported_config(path: str | Path) -> dict[str, Any]:
    """``policy.json`` of an exported policy, checked for format and required keys."""
    f = Path(path) / EXPORT_CONFIG
    try:
        meta = json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{f} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{f} is not a {EXPORT_FORMAT} file (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("format_version") != EXPORT_FORMAT_VERSION:
        raise ValueError(f"{f}: format_version {meta.get('format_version')!r} is not supported (this version reads {EXPORT_FORMAT_VERSION})")
    for key in ("contract", "policy", "observation_shapes", "action"):
        if key not in meta:
            raise ValueError(f"{f} lacks the key {key!r}")
    return meta


def load_exported_policy(path: str | Path, observation_space: Any, action_space: Any) -> Any:
    """Rebuild an exported policy (an SB3 ``MultiInputActorCriticPolicy``) for the given spaces.

    The weights are read with ``torch.load(weights_only=True)``: tensors only, no code runs.
    Raises ``ValueError`` when the spaces or weights do not match the export.
    """
    import torch
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    from roadsense_marl.policies import create_deep_set_policy_kwargs

    p = Path(path)
    meta = read_exported_config(p)
    got = {k: list(s.shape) for k, s in observation_space.spaces.items()}
    if got != meta["observation_shapes"]:
        raise ValueError(f"exported policy {str(p)!r} expects observations {meta['observation_shapes']}, the env gives {got}")
    if list(action_space.shape) != meta["action"]["shape"]:
        raise ValueError(f"exported policy {str(p)!r} has action shape {meta['action']['shape']}, the env has {list(action_space.shape)}")
    try:
        kwargs = create_deep_set_policy_kwargs(**meta["policy"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{p / EXPORT_CONFIG}: bad policy options: {exc}") from exc
    policy = MultiInputActorCriticPolicy(observation_space, action_space, lambda _: 0.0,
                                         use_sde=bool(meta.get("use_sde", False)), **kwargs)
    try:
        state = torch.load(p / EXPORT_WEIGHTS, map_location="cpu", weights_only=True)
        policy.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - unpickling refused, or missing/unexpected keys
        raise ValueError(f"could not load the weights {str(p / EXPORT_WEIGHTS)!r}: {exc}") from exc
    policy.set_training_mode(False)
    return policy


__all__ = [
    "CONTRACT_KEYS", "ContractMismatch", "RunFolderError", "atomic_write_bytes", "atomic_write_text",
    "check_contract", "check_new_run_folder", "check_not_running", "check_writable_dir", "clear_run_folder", "env_contract",
    "export_policy", "is_exported_policy", "is_run_folder", "latest_model", "load_exported_policy",
    "merge_progress", "read_model_record", "read_run_config", "read_state", "save_model", "write_state",
]
