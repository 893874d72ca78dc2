"""Emulated ESP-NOW V2V radio: per-link loss, latency and bursts, one receive table per vehicle.

Vectorised core (:class:`Radio`, used by the env) and the original object API
(:class:`ESPNOWEmulator`, :class:`V2VMessage`, :class:`ReceivedMessage`) on top of it.
Parameters: :func:`load_params` (``configs/espnow/measured.json``, ``ideal.json``, ``defaults.json``).
"""

from roadsense_marl.espnow.core import (
    ACCEL,
    FIELD_NOISE,
    HEADING,
    PAYLOAD_FIELDS,
    SPEED,
    X,
    Y,
    LinkDraws,
    LinkLoss,
    apply_sensor_noise,
    beacon_jitter,
    beacon_calls,
    candidate_links,
    draw_beacon_phases,
    draw_link_randomness,
    link_loss,
    radio_generator,
    loss_probability,
    resolve_links,
    sample_episode_params,
)
from roadsense_marl.espnow.emulator import ESPNOWEmulator, ReceivedMessage, V2VMessage
from roadsense_marl.espnow.params import (
    DEFAULTS,
    DistanceBin,
    ParamsFileNotFoundError,
    RadioParams,
    load_params,
    shipped_config,
)
from roadsense_marl.espnow.radio import LinkBatch, Radio, RxBatch

__all__ = [
    "ACCEL", "DEFAULTS", "FIELD_NOISE", "HEADING", "PAYLOAD_FIELDS", "SPEED", "X", "Y",
    "DistanceBin", "ESPNOWEmulator", "LinkBatch", "LinkDraws", "LinkLoss", "ParamsFileNotFoundError", "Radio",
    "RadioParams", "ReceivedMessage", "RxBatch", "V2VMessage", "apply_sensor_noise", "beacon_calls", "beacon_jitter",
    "candidate_links",
    "draw_beacon_phases", "draw_link_randomness", "link_loss", "radio_generator", "load_params", "loss_probability", "resolve_links",
    "sample_episode_params", "shipped_config",
]
