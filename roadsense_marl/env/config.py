"""Environment configuration: one validated, immutable object built from keyword arguments or YAML.

Every key is checked: an unknown key or a bad value raises ``ValueError`` naming the key,
the value and what would be valid. Nested sections (``hazard``, ``reward``) are merged
over their defaults, so a user overrides only what they change.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from roadsense_marl.paths import config_path, configs_dir

from roadsense_marl.env.actions import ACTION_MODES  # noqa: E402 - one owner of the action contract
BACKENDS = ("libsumo", "traci")
RENDER_MODES = ("rgb_array", "human")
RADIO_PROFILES = ("measured", "ideal", "degraded", "defaults")


def _unknown_key_error(section: str, key: str, valid: list[str]) -> ValueError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown {section} key {key!r}.{hint} Valid keys: {', '.join(sorted(valid))}")


def _check_range(name: str, value: Any, *, lo: float, hi: float, lo_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < lo or value > hi or (lo_open and value == lo):
        bracket = "(" if lo_open else "["
        raise ValueError(f"{name} must be in {bracket}{lo}, {hi}], got {value!r}")


def _check_pair(name: str, value: Any, *, lo: float, hi: float) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair [low, high], got {value!r}")
    for v in value:
        _check_range(name, v, lo=lo, hi=hi)
    if value[0] > value[1]:
        raise ValueError(f"{name} must have low <= high, got {list(value)!r}")
    return (float(value[0]), float(value[1]))


@dataclass(frozen=True)
class HazardConfig:
    """A seeded emergency brake per episode.

    With ``probability`` an episode gets one hazard at a step drawn uniformly from
    ``step_window`` (inclusive). A vehicle with a follower brakes at ``decel_range`` m/s²
    for ``duration_range`` s and then holds its reduced speed; with ``release_prob`` it is
    released after ``release_after_range`` s more. Its own action is ignored meanwhile.
    ``override_delay_steps`` after the onset, every other agent that does not brake holds
    its speed instead of following SUMO's car-following model (``None`` disables it).
    """

    probability: float = 1.0
    step_window: tuple[int, int] = (150, 250)
    decel_range: tuple[float, float] = (3.0, 10.0)
    duration_range: tuple[float, float] = (0.5, 1.5)
    release_prob: float = 0.4
    release_after_range: tuple[float, float] = (2.0, 5.0)
    override_delay_steps: int | None = 3

    def __post_init__(self) -> None:
        _check_range("hazard.probability", self.probability, lo=0.0, hi=1.0)
        window = _check_pair("hazard.step_window", self.step_window, lo=0, hi=10**9)
        if any(int(w) != w for w in window):
            raise ValueError(f"hazard.step_window must hold whole steps, got {list(self.step_window)!r}")
        object.__setattr__(self, "step_window", (int(window[0]), int(window[1])))
        object.__setattr__(self, "decel_range", _check_pair("hazard.decel_range", self.decel_range, lo=0.0, hi=20.0))
        object.__setattr__(
            self, "duration_range", _check_pair("hazard.duration_range", self.duration_range, lo=0.0, hi=60.0)
        )
        _check_range("hazard.release_prob", self.release_prob, lo=0.0, hi=1.0)
        object.__setattr__(
            self,
            "release_after_range",
            _check_pair("hazard.release_after_range", self.release_after_range, lo=0.0, hi=600.0),
        )
        if self.override_delay_steps is not None:
            if isinstance(self.override_delay_steps, bool) or not isinstance(self.override_delay_steps, int):
                raise ValueError(
                    f"hazard.override_delay_steps must be a whole number of steps or null, got {self.override_delay_steps!r}"
                )
            if self.override_delay_steps < 0:
                raise ValueError(f"hazard.override_delay_steps must be >= 0, got {self.override_delay_steps!r}")


@dataclass(frozen=True)
class RewardConfig:
    """Reward weights (see :mod:`roadsense_marl.env.rewards` for the shape of each term).

    Every term but the collisions is a rate **per second** (the env multiplies it by the step
    length); ``collision`` / ``collision_victim`` are per event (the collider / the vehicle it hit).
    """

    collision: float = -100.0  # per event, for the collider (SUMO's collision records)
    gap_close: float = -5.0  # per s, at 5 m, rising linearly to gap_good at 20 m
    gap_good: float = 4.0  # per s, 20..35 m (and farther behind a stopped leader)
    gap_far: float = -2.0  # per s, beyond 35 m behind a moving leader
    no_leader: float = 0.0  # per s
    comfort_scale: float = 1.0  # multiplies the comfort rate (0 disables it)
    hard_brake_large_gap: float = -2.0  # per s
    very_hard_brake_large_gap: float = -4.0  # per s
    ignore_warning: float = -5.0  # per s, x braking signal
    early_reaction: float = 0.0  # per s, x braking signal; 0: it ranks gentle braking above full braking
    progress: float = 4.0  # per s, x allowed speed / 30 m/s; > 0 stops "park at a safe gap" from being optimal
    signal_threshold: float = 0.1  # braking_signal at or above this counts as "set"
    collision_victim: float = 0.0  # per event, for the vehicle that was hit
    brake_shortfall: float = -2.0  # per s and m/s^2 braked less than needed to stop short of the leader
    shortfall_cap: float = 8.0  # m/s^2: the shortfall counted at most (the brake action's full deceleration)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_range(f"reward.{f.name}", getattr(self, f.name), lo=-1e6, hi=1e6)
        _check_range("reward.signal_threshold", self.signal_threshold, lo=0.0, hi=1.0, lo_open=True)
        _check_range("reward.shortfall_cap", self.shortfall_cap, lo=0.0, hi=1e6)


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines a RoadSense environment. See the env docstring for meanings."""

    scenario: str = "convoy_6"
    scenario_kwargs: Mapping[str, Any] = field(default_factory=dict)
    backend: str = "libsumo"
    step_length: float | None = None  # None: the scenario's own (0.1 s for the shipped ones)
    max_steps: int = 500
    max_vehicles: int | None = None  # slots of the array core; None: one per possible agent
    radio: Any = "measured"  # profile name, path to JSON/YAML, dict, or RadioParams
    domain_randomization: bool = True
    max_peers: int = 8
    cone_half_angle_deg: float | None = 45.0
    action_mode: str = "brake"
    max_decel: float = 8.0
    max_accel: float = 2.6
    vtype_randomization: bool = True
    drop_peer_prob: float = 0.0
    hazard: HazardConfig = field(default_factory=HazardConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    render_mode: str | None = None
    sumo_gui: bool = False  # run SUMO's own GUI (traci only), independent of render_mode
    sumo_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.scenario, (str, Path)) or not str(self.scenario):
            raise ValueError(f"scenario must be a scenario name or a path to a .sumocfg, got {self.scenario!r}")
        object.__setattr__(self, "scenario", str(self.scenario))
        if not isinstance(self.scenario_kwargs, Mapping):
            raise ValueError(f"scenario_kwargs must be a mapping, got {self.scenario_kwargs!r}")
        object.__setattr__(self, "scenario_kwargs", dict(self.scenario_kwargs))
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.step_length is not None:
            _check_range("step_length", self.step_length, lo=0.0, hi=10.0, lo_open=True)
        for name in ("max_steps", "max_peers", "max_vehicles"):
            value = getattr(self, name)
            if value is None and name == "max_vehicles":
                continue
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
                hint = " or null (one slot per possible agent)" if name == "max_vehicles" else ""
                raise ValueError(f"{name} must be a whole number >= 1{hint}, got {value!r}")
            object.__setattr__(self, name, int(value))
        cone = self.cone_half_angle_deg
        if isinstance(cone, str):
            if cone.lower() != "off":
                raise ValueError(f"cone_half_angle_deg must be a number in (0, 180] or 'off', got {cone!r}")
            object.__setattr__(self, "cone_half_angle_deg", None)
        elif cone is not None:
            _check_range("cone_half_angle_deg", cone, lo=0.0, hi=180.0, lo_open=True)
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {self.action_mode!r}")
        _check_range("max_decel", self.max_decel, lo=0.0, hi=20.0, lo_open=True)
        _check_range("max_accel", self.max_accel, lo=0.0, hi=20.0, lo_open=True)
        for name in ("domain_randomization", "vtype_randomization", "sumo_gui"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        _check_range("drop_peer_prob", self.drop_peer_prob, lo=0.0, hi=1.0)
        if self.render_mode is not None and self.render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be None or one of {RENDER_MODES}, got {self.render_mode!r}")
        if self.sumo_gui and self.backend != "traci":
            raise ValueError("sumo_gui=True runs sumo-gui, which needs backend='traci' (libsumo has no GUI)")
        if isinstance(self.sumo_args, str) or not all(isinstance(a, str) for a in self.sumo_args):
            raise ValueError(f"sumo_args must be a list of strings, got {self.sumo_args!r}")
        object.__setattr__(self, "sumo_args", tuple(self.sumo_args))
        if isinstance(self.hazard, Mapping):
            object.__setattr__(self, "hazard", _build_section(HazardConfig, "hazard", self.hazard))
        if isinstance(self.reward, Mapping):
            object.__setattr__(self, "reward", _build_section(RewardConfig, "reward", self.reward))
        if not isinstance(self.hazard, HazardConfig) or not isinstance(self.reward, RewardConfig):
            raise ValueError("hazard and reward must be mappings of their keys")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for saving next to a trained model)."""
        out = dataclasses.asdict(self)
        radio = self.radio
        out["radio"] = radio if isinstance(radio, (str, dict, type(None))) else str(radio)
        return out


def _build_section(cls: type, section: str, values: Mapping[str, Any]) -> Any:
    valid = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in valid:
            raise _unknown_key_error(section, key, valid)
    return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})


def env_config_keys() -> list[str]:
    """Every top-level key :func:`make_env_config` accepts."""
    return [f.name for f in dataclasses.fields(EnvConfig)] + ["config"]


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML env config. ``path`` may be a file or a name in ``configs/env/``."""
    import yaml

    p = Path(path)
    if not p.suffix and not p.exists():
        p = configs_dir() / "env" / f"{path}.yaml"
    if not p.is_file():
        shipped = sorted(q.stem for q in (configs_dir() / "env").glob("*.yaml"))
        raise FileNotFoundError(f"env config file {str(path)!r} not found; shipped configs: {shipped}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"env config file {p} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"env config file {p} must hold a mapping of keys, got {type(data).__name__}")
    return data


def make_env_config(config: str | Path | Mapping[str, Any] | EnvConfig | None = None, **overrides: Any) -> EnvConfig:
    """Build a validated :class:`EnvConfig` from a YAML file / mapping / config plus keyword overrides."""
    if isinstance(config, EnvConfig):
        base: dict[str, Any] = {f.name: getattr(config, f.name) for f in dataclasses.fields(EnvConfig)}
    elif config is None:
        base = {}
    elif isinstance(config, Mapping):
        base = dict(config)
    else:
        base = load_yaml_config(config)
    valid = [f.name for f in dataclasses.fields(EnvConfig)]
    merged = dict(base)
    for key, value in overrides.items():
        if key in ("hazard", "reward") and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    for key in merged:
        if key not in valid:
            raise _unknown_key_error("env config", key, valid)
    return EnvConfig(**merged)


def radio_profile_path(name: str) -> Path:
    """Path of a shipped radio profile (``configs/espnow/<name>.json``)."""
    return config_path("espnow", f"{name}.json")
