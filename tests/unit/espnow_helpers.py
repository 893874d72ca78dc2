"""Parameter dicts shared by the ESP-NOW tests."""

from __future__ import annotations

import copy
from typing import Any

NO_NOISE = {"gps_std_m": 0.0, "speed_std_ms": 0.0, "accel_std_ms2": 0.0, "heading_std_deg": 0.0, "gyro_std_rad_s": 0.0}


def radio_dict(latency_ms: float = 50.0, jitter_ms: float = 0.0, loss: float = 0.0, *, factor: float = 0.0,
               tiers: tuple[float, float, float] | None = None, burst: dict | None = None,
               noise: dict | None = None, max_range_m: float | None = None, **extra: Any) -> dict:
    """A parameter dict (merged over the defaults by load_params) with DR off."""
    t2, t3 = (loss, loss) if tiers is None else (tiers[1], tiers[2])
    d = {
        "latency": {"base_ms": latency_ms, "distance_factor": factor, "jitter_std_ms": jitter_ms},
        "packet_loss": {"base_rate": loss, "rate_tier_1": loss if tiers is None else tiers[0], "rate_tier_2": t2,
                        "rate_tier_3": t3, "max_range_m": max_range_m},
        "burst_loss": {"enabled": False} if burst is None else {"enabled": True, **burst},
        "sensor_noise": dict(NO_NOISE if noise is None else noise),
        "domain_randomization": {"enabled": False},
    }
    d.update(copy.deepcopy(extra))
    return d


def assert_rx_equal(got, want) -> None:
    """A Radio.receive batch equals the per-link reference's receive list, message for message."""
    import numpy as np

    assert len(got) == len(want)
    if want:
        r, s, noisy, ts, age, arr = map(np.array, zip(*want))
        assert np.array_equal(got.receiver, r) and np.array_equal(got.sender, s)
        assert np.allclose(got.payload, noisy) and np.array_equal(got.timestamp_ms, ts)
        assert np.allclose(got.age_ms, age) and np.allclose(got.received_at_ms, arr)


def channel_off(config: str) -> dict:
    """A shipped radio profile with the shared channel switched off: the link model alone, which the
    per-link reference (reference_radio.py) reproduces message for message."""
    from roadsense_marl.espnow import load_params

    d = load_params(config).to_dict()
    d["channel"] = "off"
    return d


def grid_exact(config: str) -> dict:
    """A shipped radio profile with its beacons on their exact grid ``phase + k * period`` (no
    transmit jitter, ``channel.tx_jitter_ms = 0``), the schedule the per-link reference reproduces."""
    from roadsense_marl.espnow import load_params

    d = load_params(config).to_dict()
    d["channel"]["tx_jitter_ms"] = 0.0
    return d
