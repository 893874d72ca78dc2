"""Bad radio parameters and bad inputs to the original object API are errors naming the key, never silent."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from roadsense_marl.espnow import ESPNOWEmulator, V2VMessage, load_params
from roadsense_marl.paths import config_path

from espnow_helpers import radio_dict


# ---- radio parameter keys ----------------------------------------------------------------------

def test_misspelled_key_in_a_known_section_is_an_error_with_a_suggestion():
    with pytest.raises(ValueError, match=r"packet_loss\.base_rte.*Did you mean 'base_rate'"):
        load_params({"packet_loss": {"base_rte": 0.9}})


def test_unknown_section_is_an_error_with_a_suggestion_instead_of_running_with_default_loss():
    with pytest.raises(ValueError, match=r"section 'loss'.*Did you mean 'packet_loss'"):
        load_params({"loss": {"base_rate": 1.5}})


def test_unknown_key_in_a_parameter_file_names_the_file(tmp_path):
    f = tmp_path / "radio.json"
    f.write_text(json.dumps({"latency": {"base_ms": 4.0, "jiter_std_ms": 2.0}}))
    with pytest.raises(ValueError, match=r"radio\.json.*latency\.jiter_std_ms.*Did you mean 'jitter_std_ms'"):
        load_params(f)


@pytest.mark.parametrize("name", ["measured", "ideal", "degraded", "defaults"])
def test_every_shipped_profile_still_loads_with_its_metadata(name):
    p = load_params(name)
    raw = json.loads(config_path("espnow", f"{name}.json").read_text())
    if "_metadata" in raw:
        assert p.raw["_metadata"]["description"] == raw["_metadata"]["description"]


def test_metadata_keys_of_the_original_schema_stay_allowed():
    p = load_params({
        "_metadata": {"description": "bench", "anything": 1},
        "description": "top-level note",
        "latency": {"base_ms": 5.0, "description": "one-way, RTT/2", "_unit": "ms"},
        "_comment": "free text",
    })
    assert p.latency_base_ms == 5.0
    assert p.raw["description"] == "top-level note" and p.raw["_comment"] == "free text"


# ---- the original object API ---------------------------------------------------------------------

def _emu(**kw) -> ESPNOWEmulator:
    return ESPNOWEmulator(radio_dict(latency_ms=5.0), domain_randomization=False, seed=0, **kw)


def _msg(t: float, vid: str = "V002", **fields) -> V2VMessage:
    return replace(V2VMessage(vid, 48.1, 11.5, 10.0, 90.0, 0.1, 0.2, 9.81, 0.01, 0.02, 0.03, t), **fields)


def test_nan_sender_position_is_an_error_naming_the_sender():
    emu = _emu()
    with pytest.raises(ValueError, match=r"sender_pos of 'V002' must be finite"):
        emu.transmit(_msg(0.0), (math.nan, 0.0), (0.0, 0.0), 0.0)
    assert emu.sync_and_get_messages(100.0) == {}


def test_nan_latitude_is_an_error_not_a_nan_longitude():
    emu = _emu()
    with pytest.raises(ValueError, match=r"'V002': field 'lat' must be a finite number"):
        emu.transmit(_msg(0.0, lat=math.nan), (10.0, 0.0), (0.0, 0.0), 0.0)
    with pytest.raises(ValueError, match=r"lat must be in \[-90, 90\]"):
        emu.transmit(_msg(0.0, lat=123.0), (10.0, 0.0), (0.0, 0.0), 0.0)
    with pytest.raises(ValueError, match=r"field 'speed'"):
        emu.transmit(_msg(0.0, speed=math.inf), (10.0, 0.0), (0.0, 0.0), 0.0)


def test_timestamp_from_the_future_is_an_error():
    emu = _emu()
    with pytest.raises(ValueError, match=r"timestamp_ms=4900.0 is 3900 ms after current_time_ms=1000.0"):
        emu.transmit(_msg(4900.0), (10.0, 0.0), (0.0, 0.0), 1000.0)
    # nothing was registered or sent by the refused call
    assert emu.sync_and_get_messages(6000.0) == {}


def test_received_ages_are_never_negative():
    emu = _emu()
    for k in range(50):
        emu.transmit(_msg(10.0 * k), (10.0, 0.0), (0.0, 0.0), 10.0 * k)
        for rm in emu.sync_and_get_messages(10.0 * k + 7.0).values():
            assert rm.age_ms >= 0.0


def test_misspelled_explicit_receiver_is_an_error_and_registers_nothing():
    emu = _emu()
    emu.transmit(_msg(0.0, vid="V003"), (10.0, 0.0), (0.0, 0.0), 0.0)  # V003 is now known
    with pytest.raises(ValueError, match=r"unknown receiver_id 'V03'.*Did you mean 'V003'"):
        emu.transmit(_msg(1.0), (10.0, 0.0), (0.0, 0.0), 1.0, receiver_id="V03")
    with pytest.raises(ValueError, match=r"unknown receiver_id 'V03'"):
        emu.sync_and_get_messages(2.0, receiver_id="V03")
    assert "V03" not in emu._slot and "V002" not in emu._slot  # the refused call changed nothing


def test_implicit_receiver_and_known_vehicles_still_work_and_add_receivers_restores_registration():
    emu = _emu()
    emu.transmit(_msg(0.0, vid="V003"), (10.0, 0.0), (0.0, 0.0), 0.0)
    emu.transmit(_msg(0.0), (10.0, 0.0), (0.0, 0.0), 0.0, receiver_id="V003")
    assert list(emu.sync_and_get_messages(10.0)) == ["V003"]
    assert list(emu.sync_and_get_messages(10.0, receiver_id="V003")) == ["V002"]
    emu2 = _emu(add_receivers=True)
    emu2.transmit(_msg(0.0), (10.0, 0.0), (0.0, 0.0), 0.0, receiver_id="R1")
    assert list(emu2.sync_and_get_messages(10.0, receiver_id="R1")) == ["V002"]


def test_original_api_age_and_staleness_use_the_same_clock():
    from roadsense_marl.espnow import ESPNOWEmulator, V2VMessage

    emu = ESPNOWEmulator(params={"domain_randomization": {"enabled": False}, "packet_loss": {"base_rate": 0.0},
                                 "latency": {"base_ms": 5.0, "jitter_std_ms": 0.0}}, seed=0)
    kw = dict(lat=32.0, lon=34.0, speed=10.0, heading=90.0, accel_x=0.0, accel_y=0.0, accel_z=9.8,
              gyro_x=0.0, gyro_y=0.0, gyro_z=0.0)
    emu.transmit(V2VMessage(vehicle_id="V002", timestamp_ms=0, **kw), (0.0, 0.0), (10.0, 0.0), current_time_ms=1000.0)
    assert emu.sync_and_get_messages(1100.0) == {}, "a sample taken at 0 ms is 1100 ms old at 1100 ms: stale"
    emu.transmit(V2VMessage(vehicle_id="V002", timestamp_ms=1150, **kw), (0.0, 0.0), (10.0, 0.0), current_time_ms=1200.0)
    got = emu.sync_and_get_messages(1300.0)
    assert got["V002"].age_ms == 150.0
