"""Loading and validating ESP-NOW radio parameters: shipped files, merging, every invalid case."""

from __future__ import annotations

import json
import math

import pytest

from roadsense_marl.espnow import DEFAULTS, ParamsFileNotFoundError, RadioParams, load_params
from roadsense_marl.paths import config_path, configs_dir

SHIPPED = sorted(p.name for p in (configs_dir() / "espnow").iterdir() if p.suffix in (".json", ".yaml", ".yml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_loads(name):
    p = load_params(config_path("espnow", name))
    assert isinstance(p, RadioParams)
    assert load_params(p.to_dict()) == p  # round trip


def test_shipped_set_is_complete():
    assert {"measured.json", "ideal.json", "defaults.json"} <= set(SHIPPED)


def test_defaults_file_is_the_builtin_defaults():
    assert json.loads(config_path("espnow", "defaults.json").read_text()) == DEFAULTS
    assert load_params(None) == load_params("defaults")


def test_measured_file_carries_the_convoy_calibration():
    p = load_params("measured")
    assert (p.latency_base_ms, p.latency_distance_factor, p.latency_jitter_std_ms) == (3.84, 0.0, 1.044)
    assert (p.loss_base_rate, p.loss_threshold_1_m, p.loss_threshold_2_m) == (0.058, 50.0, 100.0)
    assert (p.loss_rate_tier_1, p.loss_rate_tier_2, p.loss_rate_tier_3) == (0.1158, 0.1241, 0.1862)
    assert (p.burst_enabled, p.burst_mean_length, p.burst_loss_multiplier, p.burst_max_loss_cap) == (True, 1.606, 2.5, 0.1862)
    assert (p.gps_std_m, p.speed_std_ms, p.accel_std_ms2, p.heading_std_deg, p.gyro_std_rad_s) == (
        2.958877, 0.42902, 0.394804, 4.711787, 0.023215)
    assert p.staleness_threshold_ms == 500.0
    assert p.dr_latency_range_ms == (1.92, 7.68) and p.dr_loss_rate_range == (0.029, 0.25)
    assert p.dr_jitter_std_range_ms == (0.52, 2.09) and p.dr_gps_noise_range_m == (0.5, 4.438)
    assert [(b.lo_m, b.hi_m, b.count, b.loss_rate) for b in p.distance_bins] == [
        (0.0, 20.0, 7581, 0.05804), (20.0, 50.0, 570, 0.11579), (50.0, 100.0, 0, None), (100.0, math.inf, 0, None)]
    assert p.uses_bins and p.range_m == 50.0


def test_ideal_file_has_no_loss_no_noise_fixed_latency():
    p = load_params("ideal")
    assert p.loss_base_rate == p.loss_rate_tier_2 == p.loss_rate_tier_3 == 0.0
    assert p.latency_jitter_std_ms == 0.0 and p.gps_std_m == p.speed_std_ms == p.heading_std_deg == 0.0
    assert not p.dr_enabled and not p.uses_bins


def test_dict_is_deep_merged_over_defaults_and_metadata_keys_are_kept():
    p = load_params({"latency": {"base_ms": 9.0}, "_firmware": {"hops": 3}, "description": "bench run"})
    assert p.latency_base_ms == 9.0 and p.latency_jitter_std_ms == DEFAULTS["latency"]["jitter_std_ms"]
    assert p.raw["_firmware"] == {"hops": 3} and p.raw["description"] == "bench run"


def test_yaml_file_with_the_same_keys_loads(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("latency:\n  base_ms: 7.5\npacket_loss:\n  max_range_m: 120\n")
    p = load_params(f)
    assert p.latency_base_ms == 7.5 and p.range_m == 120.0


def test_original_project_json_with_max_range_and_plus_bin(tmp_path):
    f = tmp_path / "orig.json"
    f.write_text(json.dumps({"packet_loss": {"max_range_m": 200},
                             "_metadata": {"distance_bins": {"0_20m": {"count": 5, "loss_rate": 0.1},
                                                             "20_50m": {"count": 5, "loss_rate": 0.2},
                                                             "50m_plus": {"count": 5, "loss_rate": 0.4}}}}))
    p = load_params(str(f))
    assert p.range_m == 200.0
    assert load_params({"_metadata": {"distance_bins": {"50m_plus": {"count": 5, "loss_rate": 0.4}}}}).range_m == math.inf


def test_implausible_gps_noise_warns_loudly():
    with pytest.warns(UserWarning, match=r"sensor_noise.gps_std_m = 40000"):
        load_params({"sensor_noise": {"gps_std_m": 40000.0}})


INVALID = [
    ({"latency": {"base_ms": -1.0}}, "latency.base_ms", "-1.0"),
    ({"latency": {"distance_factor": -0.1}}, "latency.distance_factor", "-0.1"),
    ({"latency": {"jitter_std_ms": -2.0}}, "latency.jitter_std_ms", "-2.0"),
    ({"latency": {"base_ms": "fast"}}, "latency.base_ms", "'fast'"),
    ({"sensor_noise": {"gps_std_m": -3.0}}, "sensor_noise.gps_std_m", "-3.0"),
    ({"sensor_noise": {"speed_std_ms": -0.1}}, "sensor_noise.speed_std_ms", "-0.1"),
    ({"sensor_noise": {"accel_std_ms2": -0.1}}, "sensor_noise.accel_std_ms2", "-0.1"),
    ({"sensor_noise": {"heading_std_deg": -1}}, "sensor_noise.heading_std_deg", "-1"),
    ({"sensor_noise": {"gyro_std_rad_s": -1}}, "sensor_noise.gyro_std_rad_s", "-1"),
    ({"packet_loss": {"base_rate": 1.5}}, "packet_loss.base_rate", "1.5"),
    ({"packet_loss": {"rate_tier_1": -0.1}}, "packet_loss.rate_tier_1", "-0.1"),
    ({"packet_loss": {"rate_tier_2": 2}}, "packet_loss.rate_tier_2", "2"),
    ({"packet_loss": {"rate_tier_3": 1.01}}, "packet_loss.rate_tier_3", "1.01"),
    ({"burst_loss": {"max_loss_cap": 1.2}}, "burst_loss.max_loss_cap", "1.2"),
    ({"burst_loss": {"mean_burst_length": 0.5}}, "burst_loss.mean_burst_length", "0.5"),
    ({"burst_loss": {"enabled": "yes"}}, "burst_loss.enabled", "'yes'"),
    ({"_metadata": {"distance_bins": {"0_20m": {"count": 3, "loss_rate": 1.3}}}}, "0_20m.loss_rate", "1.3"),
    ({"_metadata": {"distance_bins": {"near": {"count": 3, "loss_rate": 0.1}}}}, "distance_bins.near", "'near'"),
    ({"packet_loss": {"distance_threshold_1": 100.0, "distance_threshold_2": 100.0}},
     "packet_loss.distance_threshold_1", "100.0"),
    ({"packet_loss": {"distance_threshold_1": 120.0}}, "packet_loss.distance_threshold_1", "120.0"),
    ({"packet_loss": {"max_range_m": 0}}, "packet_loss.max_range_m", "0"),
    ({"observation": {"staleness_threshold_ms": 0}}, "observation.staleness_threshold_ms", "0"),
    ({"domain_randomization": {"latency_range_ms": [7.0, 2.0]}}, "domain_randomization.latency_range_ms", "[7.0, 2.0]"),
    ({"domain_randomization": {"latency_range_ms": [0.0, 2.0]}}, "domain_randomization.latency_range_ms", "[0.0, 2.0]"),
    ({"domain_randomization": {"latency_range_ms": [-1.0, 2.0]}}, "domain_randomization.latency_range_ms", "[-1.0, 2.0]"),
    ({"domain_randomization": {"latency_range_ms": [1.0]}}, "domain_randomization.latency_range_ms", "[1.0]"),
    ({"domain_randomization": {"loss_rate_range": "0.1-0.2"}}, "domain_randomization.loss_rate_range", "'0.1-0.2'"),
    ({"domain_randomization": {"loss_rate_range": [0.2, 1.5]}}, "domain_randomization.loss_rate_range", "[0.2, 1.5]"),
    ({"domain_randomization": {"loss_rate_range": [0.3, 0.1]}}, "domain_randomization.loss_rate_range", "[0.3, 0.1]"),
    ({"domain_randomization": {"jitter_std_range_ms": [2.0, 1.0]}}, "domain_randomization.jitter_std_range_ms", "[2.0, 1.0]"),
    ({"domain_randomization": {"gps_noise_range_m": [-1.0, 1.0]}}, "domain_randomization.gps_noise_range_m", "[-1.0, 1.0]"),
    ({"domain_randomization": {"gps_noise_range_m": [1.0, "x"]}}, "domain_randomization.gps_noise_range_m", "[1.0, 'x']"),
    ({"latency": 5}, "latency", "5"),
]


@pytest.mark.parametrize("override, key, value", INVALID, ids=[k for _, k, _ in INVALID])
def test_invalid_parameter_raises_value_error_naming_key_and_value(override, key, value):
    with pytest.raises(ValueError) as err:
        load_params(override)
    msg = str(err.value)
    assert key in msg and value in msg


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ParamsFileNotFoundError, match="nope.json") as err:
        load_params(missing)
    assert isinstance(err.value, ValueError) and isinstance(err.value, FileNotFoundError)
    assert str(missing) in str(err.value)


@pytest.mark.parametrize("suffix, text", [(".json", '{"latency": {"base_ms": 3.8,'), (".yaml", "latency: [unclosed"),
                                          (".json", "[1, 2]")])
def test_corrupt_file_names_the_path(tmp_path, suffix, text):
    f = tmp_path / f"bad{suffix}"
    f.write_text(text)
    with pytest.raises(ValueError) as err:
        load_params(f)
    assert str(f) in str(err.value)


def test_wrong_source_type_is_refused():
    with pytest.raises(ValueError, match="expected None, a path, a dict or RadioParams"):
        load_params(42)
