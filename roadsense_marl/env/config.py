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
from roadsense_marl.env.agents import VehicleSelector, parse_selector  # noqa: E402 - one owner of "who is an agent"
BACKENDS = ("libsumo", "traci")
RENDER_MODES = ("rgb_array", "human")
RADIO_PROFILES = ("measured", "ideal", "degraded", "defaults")
#: Episode length in steps when neither ``max_steps`` nor ``max_time_s`` is given.
DEFAULT_MAX_STEPS = 500


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


def seconds_to_steps(seconds: float, step_length: float) -> int:
    """The number of steps of ``step_length`` s that first reaches ``seconds``: ``ceil(seconds / step_length)``.

    The one place where a time in seconds becomes a count of env steps (episode length, hazard
    delays, warm-up allowance). A tolerance of 1e-9 steps absorbs float rounding, so 0.3 s at
    0.1 s is 3 steps, not 4.
    """
    return max(0, math.ceil(seconds / step_length - 1e-9))


def onset_steps(window_s: tuple[float, float], step_length: float) -> tuple[int, int]:
    """``(first, last)`` steps whose time after the episode start lies in ``window_s`` (seconds).

    ``first = ceil(low / dt)``, ``last = floor(high / dt)`` (1e-9-step tolerance); when the window
    holds no step time (narrower than one step) it is the single step ``first``.
    """
    first = seconds_to_steps(window_s[0], step_length)
    last = max(first, math.floor(window_s[1] / step_length + 1e-9))
    return first, last


@dataclass(frozen=True)
class HazardConfig:
    """A seeded emergency brake per episode. Times in seconds; the core converts them with the
    run's step length (:func:`seconds_to_steps`, :func:`onset_steps`).

    With ``probability`` an episode gets one hazard at a step drawn uniformly among the steps whose
    time after the episode start lies in ``onset_window_s`` (inclusive). A vehicle with a follower
    brakes at ``decel_range`` m/s² for ``duration_range`` s and then holds its reduced speed; with
    ``release_prob`` it is released after ``release_after_range`` s more. Its own action is ignored
    meanwhile. ``override_delay_s`` after the onset (the first step at or after it), every other
    agent that does not brake holds its speed instead of following SUMO's car-following model
    (``None`` disables it).

    Deprecated (env contract v1, in steps): ``step_window`` (steps) and ``override_delay_steps``
    still load; when given they replace ``onset_window_s`` / ``override_delay_s`` and the core
    converts them with the run's step length (``steps * step_length``), with a FutureWarning (shown to
    users by default, unlike DeprecationWarning) that names the new key and value (:meth:`in_seconds`).
    """

    probability: float = 1.0
    onset_window_s: tuple[float, float] = (15.0, 25.0)
    decel_range: tuple[float, float] = (3.0, 10.0)
    duration_range: tuple[float, float] = (0.5, 1.5)
    release_prob: float = 0.4
    release_after_range: tuple[float, float] = (2.0, 5.0)
    override_delay_s: float | None = 0.3
    step_window: tuple[int, int] | None = None  # deprecated: onset_window_s
    override_delay_steps: int | None = None  # deprecated: override_delay_s (None here: not given)

    def __post_init__(self) -> None:
        _check_range("hazard.probability", self.probability, lo=0.0, hi=1.0)
        object.__setattr__(
            self, "onset_window_s", _check_pair("hazard.onset_window_s", self.onset_window_s, lo=0.0, hi=1e7)
        )
        if self.step_window is not None:
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
        if self.override_delay_s is not None:
            _check_range("hazard.override_delay_s", self.override_delay_s, lo=0.0, hi=1e7)
            object.__setattr__(self, "override_delay_s", float(self.override_delay_s))
        if self.override_delay_steps is not None:
            if isinstance(self.override_delay_steps, bool) or not isinstance(self.override_delay_steps, int):
                raise ValueError(
                    f"hazard.override_delay_steps must be a whole number of steps, got {self.override_delay_steps!r}"
                    " (deprecated: give hazard.override_delay_s in seconds, or null to disable the override)"
                )
            if self.override_delay_steps < 0:
                raise ValueError(f"hazard.override_delay_steps must be >= 0, got {self.override_delay_steps!r}")

    def in_seconds(self, step_length: float) -> HazardConfig:
        """This config with the deprecated step keys converted to seconds at ``step_length`` s.

        Warns (FutureWarning) naming the new key and its value when a step key was given;
        returns ``self`` when none was.
        """
        import warnings

        if self.step_window is None and self.override_delay_steps is None:
            return self
        changes: dict[str, Any] = {"step_window": None, "override_delay_steps": None}
        if self.step_window is not None:
            window = [round(w * step_length, 9) for w in self.step_window]
            changes["onset_window_s"] = tuple(window)
            warnings.warn(
                f"hazard.step_window {list(self.step_window)} (steps) is deprecated: at this run's step length "
                f"{step_length:g} s it is hazard.onset_window_s: {window} (seconds); write that instead",
                FutureWarning, stacklevel=3,
            )
        if self.override_delay_steps is not None:
            delay = round(self.override_delay_steps * step_length, 9)
            changes["override_delay_s"] = delay
            warnings.warn(
                f"hazard.override_delay_steps {self.override_delay_steps} (steps) is deprecated: at this run's step "
                f"length {step_length:g} s it is hazard.override_delay_s: {delay:g} (seconds); write that instead",
                FutureWarning, stacklevel=3,
            )
        return dataclasses.replace(self, **changes)


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
    ignore_warning: float = -20.0  # per s, x braking signal (-5 left a training seed in 3 not reacting)
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
    max_steps: int | None = None  # None: 500, unless max_time_s is given
    max_time_s: float | None = None  # episode length in seconds (converted by the core, ceil); excludes max_steps
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
    #: Which SUMO vehicles are agents (:func:`roadsense_marl.env.agents.parse_selector`); None: road motor vehicles.
    agents: VehicleSelector | None = None
    #: Which vehicles may carry a radio (same syntax); None: any vehicle.
    equipped: VehicleSelector | None = None
    penetration_rate: float = 1.0  # share of (eligible) vehicles with a radio, drawn per vehicle per episode
    max_other_vehicles: int | None = None  # radio slots for equipped non-agents; None: one per such vehicle
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
        if self.max_steps is not None and self.max_time_s is not None:
            raise ValueError(
                f"give the episode length as max_steps or max_time_s, not both (got max_steps={self.max_steps!r}, "
                f"max_time_s={self.max_time_s!r})"
            )
        if self.max_time_s is not None:
            _check_range("max_time_s", self.max_time_s, lo=0.0, hi=1e7, lo_open=True)
            object.__setattr__(self, "max_time_s", float(self.max_time_s))
        elif self.max_steps is None:
            object.__setattr__(self, "max_steps", DEFAULT_MAX_STEPS)
        for name in ("max_steps", "max_peers", "max_vehicles", "max_other_vehicles"):
            value = getattr(self, name)
            if value is None and name in ("max_vehicles", "max_other_vehicles", "max_steps"):
                continue
            lowest = 0 if name == "max_other_vehicles" else 1
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < lowest:
                hint = {"max_vehicles": " or null (one slot per possible agent)",
                        "max_other_vehicles": " or null (one radio slot per vehicle that is not an agent)"}.get(name, "")
                raise ValueError(f"{name} must be a whole number >= {lowest}{hint}, got {value!r}")
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
        _check_range("penetration_rate", self.penetration_rate, lo=0.0, hi=1.0)
        object.__setattr__(self, "agents", parse_selector(self.agents, "agents"))
        object.__setattr__(self, "equipped", parse_selector(self.equipped, "equipped"))
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
        for key in ("agents", "equipped"):
            out[key] = _selector_dict(getattr(self, key))
        for key, new in (("step_window", "onset_window_s"), ("override_delay_steps", "override_delay_s")):
            if out["hazard"][key] is None:  # deprecated step keys: only when given, and then they replace
                del out["hazard"][key]      # the seconds key (which holds its unused default)
            else:
                del out["hazard"][new]
        radio = self.radio
        out["radio"] = radio if isinstance(radio, (str, dict, type(None))) else str(radio)
        return out


def _selector_dict(sel: VehicleSelector | None) -> dict[str, Any] | None:
    """A selector in its config form (lists, only the keys given)."""
    if sel is None:
        return None
    out: dict[str, Any] = {k: list(getattr(sel, k)) for k in ("vclass", "vtype", "id") if getattr(sel, k) is not None}
    if sel.exclude is not None:
        out["exclude"] = _selector_dict(sel.exclude)
    return out


def _build_section(cls: type, section: str, values: Mapping[str, Any]) -> Any:
    valid = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in valid:
            raise _unknown_key_error(section, key, valid)
    values = dict(values)
    if cls is HazardConfig:
        for new, old in (("onset_window_s", "step_window"), ("override_delay_s", "override_delay_steps")):
            if new in values and old in values:
                raise ValueError(f"hazard.{old} (deprecated, steps) and hazard.{new} (seconds) are both given "
                                 f"({values[old]!r} and {values[new]!r}); give only hazard.{new}")
    if cls is HazardConfig and "override_delay_steps" in values and values["override_delay_steps"] is None:
        import warnings

        # the v1 way to disable the override needs no step length to convert
        del values["override_delay_steps"]
        values["override_delay_s"] = None
        warnings.warn("hazard.override_delay_steps is deprecated: write hazard.override_delay_s: null to disable "
                      "the override", FutureWarning, stacklevel=4)
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
        try:  # the file alone first, so that its mistakes name it
            for key in base:
                if key not in {f.name for f in dataclasses.fields(EnvConfig)}:
                    raise _unknown_key_error("env config", key, [f.name for f in dataclasses.fields(EnvConfig)])
            EnvConfig(**base)
        except ValueError as exc:
            raise ValueError(f"env config file {str(config)!r}: {exc}") from exc
    valid = [f.name for f in dataclasses.fields(EnvConfig)]
    merged = dict(base)
    given = [k for k in ("max_steps", "max_time_s") if overrides.get(k) is not None]
    if len(given) == 1:
        # an override of the episode length replaces the base's, whichever unit either is in
        merged.pop("max_time_s" if given[0] == "max_steps" else "max_steps", None)
    for key, value in overrides.items():
        if key in ("hazard", "reward") and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            base_section = dict(merged[key])
            for new, old in (("onset_window_s", "step_window"), ("override_delay_s", "override_delay_steps")):
                if new in value:  # the seconds key of an override replaces the base's deprecated step key
                    base_section.pop(old, None)
            merged[key] = {**base_section, **value}
        else:
            merged[key] = value
    for key in merged:
        if key not in valid:
            raise _unknown_key_error("env config", key, valid)
    return EnvConfig(**merged)


def radio_profile_path(name: str) -> Path:
    """Path of a shipped radio profile (``configs/espnow/<name>.json``)."""
    return config_path("espnow", f"{name}.json")
