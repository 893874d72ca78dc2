"""Observations from each agent's own receive buffer: pure, vectorised functions.

An agent knows its own state exactly (ground truth) and its peers only through the
messages in its OWN receive buffer, each a noisy copy of the sender's state at the time
it was sent. Everything here works on flat arrays of (receiver, message) pairs; there is
no loop over agents or links.

Feature layout (float32; see the env docstring for the full table):

``ego`` (9): own speed / 30, own accel / 10, visible peers / K,
min(0, lowest visible peer accel) / 10, braking signal, max(0, largest closing speed to a
visible peer ahead) / 30, then the track of the nearest visible peer ahead (kept across steps):
distance / 50, closing speed / 5, required deceleration / 10.

``peers`` (K x 6): forward offset / 100, left offset / 100, (v_peer - v_own) / 30,
wrap180(heading_peer - heading_own) / 180, peer accel / 10, message age ms / 500.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

SPEED_SCALE = 30.0
ACCEL_SCALE = 10.0
OFFSET_SCALE = 100.0
HEADING_SCALE = 180.0
AGE_SCALE_MS = 500.0
BRAKING_ACCEL_THRESHOLD = -2.5  # m/s^2: a peer reporting this or less sets the braking signal
#: The braking signal's decay over :data:`BRAKING_SIGNAL_DECAY_REF_S`: 0.95 per 0.1 s (env contract v1
#: applied 0.95 per step whatever the step length; v2 defines it in time).
BRAKING_SIGNAL_DECAY = 0.95
BRAKING_SIGNAL_DECAY_REF_S = 0.1
#: Half-life of the braking signal in seconds (about 1.351 s): ``0.1 * ln 2 / ln(1 / 0.95)``.
BRAKING_SIGNAL_HALF_LIFE_S = BRAKING_SIGNAL_DECAY_REF_S * math.log(2.0) / math.log(1.0 / BRAKING_SIGNAL_DECAY)


def braking_signal_decay(step_length: float) -> float:
    """Per-step factor of the braking signal at ``step_length`` s: ``0.95 ** (step_length / 0.1)``,
    i.e. a half-life of :data:`BRAKING_SIGNAL_HALF_LIFE_S` seconds at any step length (exactly 0.95
    at 0.1 s: the v1 value, so 0.1 s runs are bit-identical to it)."""
    return BRAKING_SIGNAL_DECAY ** (step_length / BRAKING_SIGNAL_DECAY_REF_S)


_INF = float("inf")


@dataclass(frozen=True)
class Feature:
    """One column of an observation: ``value = raw / scale``; ``[low, high]`` bound ``value``.

    ``unit`` is the unit of ``raw`` (what :func:`unscale` returns); ``doc`` says what it is.
    """

    name: str
    scale: float
    low: float
    high: float
    unit: str
    doc: str


#: Time constant (s) of :func:`track_nearest_ahead`.
TRACK_TIME_CONSTANT_S = 1.0
#: Distance (m) the tracker reads when no peer ahead is visible: the measured radio's range (with
#: the ideal radio or the 150 m degraded one a real car can be farther than this).
TRACK_NO_PEER_M = 50.0
#: Length (m) assumed for the peer ahead (a beacon carries no length): SUMO's default vType length.
NOMINAL_LENGTH_M = 5.0
#: Cap (m/s^2) of the tracked required deceleration (it grows without bound as the gap closes).
REQUIRED_DECEL_CAP = 20.0
#: The ego vector, in order. The single source of names, scales and bounds.
EGO_TABLE: tuple[Feature, ...] = (
    Feature("speed", SPEED_SCALE, 0.0, _INF, "m/s", "own speed"),
    Feature("accel", ACCEL_SCALE, -_INF, _INF, "m/s^2", "own acceleration"),
    Feature("visible_peers", 1.0, 0.0, 1.0, "fraction of K", "visible peers / K"),
    Feature("min_peer_accel", ACCEL_SCALE, -_INF, 0.0, "m/s^2", "min(0, lowest visible peer acceleration)"),
    Feature(
        "braking_signal", 1.0, 0.0, 1.0, "1",
        f"1 when a visible peer reports <= {BRAKING_ACCEL_THRESHOLD} m/s^2, else decays with a half-life of "
        f"{BRAKING_SIGNAL_HALF_LIFE_S:.3f} s ({BRAKING_SIGNAL_DECAY} per {BRAKING_SIGNAL_DECAY_REF_S:g} s)",
    ),
    Feature("max_closing_speed", SPEED_SCALE, 0.0, _INF, "m/s", "max(0, largest closing speed to a visible peer ahead)"),
    # the track of the nearest visible peer ahead (:func:`track_nearest_ahead`), kept across steps
    Feature("ahead_distance", TRACK_NO_PEER_M, -_INF, _INF, "m",
            f"tracked distance to the nearest visible peer ahead, now ({TRACK_NO_PEER_M:g}: none)"),
    Feature("ahead_closing", 5.0, -_INF, _INF, "m/s", "tracked closing speed on that peer (own speed - its speed)"),
    Feature("required_decel", ACCEL_SCALE, 0.0, REQUIRED_DECEL_CAP / ACCEL_SCALE, "m/s^2",
            f"deceleration that stops the tracked closing short of it (the reward's formula, <= {REQUIRED_DECEL_CAP:g})"),
)
#: The ego columns one step's messages give (:func:`build_observations`, the compiled kernel); the
#: rest of :data:`EGO_TABLE` is the track, which needs the previous step's (:class:`DeepSetObservation`).
BEACON_EGO_DIM = 6
#: A row of the peer table, in order.
PEER_TABLE: tuple[Feature, ...] = (
    Feature("forward", OFFSET_SCALE, -_INF, _INF, "m", "message position minus own position, along own heading"),
    Feature("left", OFFSET_SCALE, -_INF, _INF, "m", "same, to the left of own heading"),
    Feature("rel_speed", SPEED_SCALE, -_INF, _INF, "m/s", "peer speed - own speed"),
    Feature("rel_heading", HEADING_SCALE, -1.0, 1.0, "deg", "wrap180(peer heading - own heading), SUMO compass"),
    Feature("accel", ACCEL_SCALE, -_INF, _INF, "m/s^2", "peer acceleration"),
    Feature("age", AGE_SCALE_MS, 0.0, _INF, "ms", "message age: now - the message's timestamp"),
)
#: Feature names (tuples of str), the contract recorded with trained models.
EGO_FEATURES: tuple[str, ...] = tuple(f.name for f in EGO_TABLE)
PEER_FEATURES: tuple[str, ...] = tuple(f.name for f in PEER_TABLE)
EGO_DIM = len(EGO_TABLE)
PEER_DIM = len(PEER_TABLE)
#: Column of each feature by name: ``obs["ego"][..., EGO_INDEX["braking_signal"]]``.
EGO_INDEX: dict[str, int] = {f.name: i for i, f in enumerate(EGO_TABLE)}
PEER_INDEX: dict[str, int] = {f.name: i for i, f in enumerate(PEER_TABLE)}


#: Where the compiled kernel writes each value it computes (its fixed order -> the table's columns).
_KERNEL_EGO_COL = np.array([EGO_INDEX[k] for k in (
    "speed", "accel", "visible_peers", "min_peer_accel", "braking_signal", "max_closing_speed")], dtype=np.int64)
_KERNEL_PEER_COL = np.array([PEER_INDEX[k] for k in (
    "forward", "left", "rel_speed", "rel_heading", "accel", "age")], dtype=np.int64)


def _table(kind: str) -> tuple[tuple[Feature, ...], dict[str, int]]:
    if kind == "ego":
        return EGO_TABLE, EGO_INDEX
    if kind == "peers":
        return PEER_TABLE, PEER_INDEX
    raise ValueError(f"observation part must be 'ego' or 'peers', got {kind!r}")


def feature(obs_part: np.ndarray, kind: str, name: str) -> np.ndarray:
    """The scaled column ``name`` of an ``ego`` (``kind="ego"``, [..., EGO_DIM]) or ``peers`` ([..., K, 6]) array.

    Raises ValueError naming the valid features.
    """
    _, index = _table(kind)
    if name not in index:
        raise ValueError(f"unknown {kind} feature {name!r}; valid: {', '.join(index)}")
    return np.asarray(obs_part)[..., index[name]]


def unscale(obs_part: np.ndarray, kind: str, name: str) -> np.ndarray:
    """float64: feature ``name`` back in its unit (``Feature.unit``), e.g. peer ``age`` in ms."""
    column = feature(obs_part, kind, name).astype(np.float64)
    table, index = _table(kind)
    return column * table[index[name]].scale


def observation_space(max_peers: int) -> spaces.Dict:
    """``Dict(ego: Box(9,), peers: Box(K, 6), peer_mask: Box(K,))``, float32, bounds from the tables."""
    ego_low = np.array([f.low for f in EGO_TABLE], dtype=np.float32)
    ego_high = np.array([f.high for f in EGO_TABLE], dtype=np.float32)
    peer_low = np.broadcast_to(np.array([f.low for f in PEER_TABLE], dtype=np.float32), (max_peers, PEER_DIM))
    peer_high = np.broadcast_to(np.array([f.high for f in PEER_TABLE], dtype=np.float32), (max_peers, PEER_DIM))
    # Padding rows are zeros, inside every peer bound.
    return spaces.Dict(
        {
            "ego": spaces.Box(ego_low, ego_high, dtype=np.float32),
            "peers": spaces.Box(peer_low.copy(), peer_high.copy(), dtype=np.float32),
            "peer_mask": spaces.Box(0.0, 1.0, shape=(max_peers,), dtype=np.float32),
        }
    )


@dataclass(frozen=True)
class Observations:
    """Observations of ``n`` agents plus the facts the env reuses for rewards and infos."""

    ego: np.ndarray  # float32[n, BEACON_EGO_DIM]: the columns one step's messages give
    peers: np.ndarray  # float32[n, K, 6]
    peer_mask: np.ndarray  # float32[n, K]
    peer_sender: np.ndarray  # int64[n, K], sender slot per row, -1 = padding
    braking_signal: np.ndarray  # float64[n], kept at full precision for the next step
    n_visible: np.ndarray  # int64[n]


def wrap180(deg: np.ndarray) -> np.ndarray:
    """Wrap angles in degrees to [-180, 180)."""
    return (np.asarray(deg) + 180.0) % 360.0 - 180.0


def to_heading_frame(dx: np.ndarray, dy: np.ndarray, heading_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate world offsets (x east, y north) into a vehicle frame: (forward, left).

    SUMO headings are compass degrees: 0 = north, clockwise. The forward unit vector is
    (sin h, cos h) and the left unit vector (-cos h, sin h).
    """
    h = np.radians(heading_deg)
    s, c = np.sin(h), np.cos(h)
    return dx * s + dy * c, -dx * c + dy * s


def build_observations(
    own_xy: np.ndarray,
    own_speed: np.ndarray,
    own_accel: np.ndarray,
    own_heading_deg: np.ndarray,
    prev_braking_signal: np.ndarray,
    rx_row: np.ndarray,
    rx_sender: np.ndarray,
    rx_payload: np.ndarray,
    rx_age_ms: np.ndarray,
    *,
    max_peers: int,
    cone_half_angle_deg: float | None,
    braking_decay: float = BRAKING_SIGNAL_DECAY,
) -> Observations:
    """Build every agent's observation from the messages in its own buffer: the first
    :data:`BEACON_EGO_DIM` ego columns (the track, :func:`track_nearest_ahead`, is added by
    :class:`DeepSetObservation`), the peer table and its mask.

    :param own_xy: float[n, 2] true positions of the ``n`` observing agents.
    :param own_speed, own_accel, own_heading_deg: float[n] true own state.
    :param prev_braking_signal: float[n] each agent's braking signal after the previous step.
    :param rx_row: int[k] row (0..n-1) of the agent whose buffer holds message ``i``.
    :param rx_sender: int[k] sender slot of message ``i``.
    :param rx_payload: float[k, 5] message contents: x, y, speed, heading_deg, accel.
    :param rx_age_ms: float[k] now - message timestamp.
    :param max_peers: K, rows in the peer table; more visible peers keep the K nearest.
    :param cone_half_angle_deg: keep only senders within this angle of the agent's heading
        (``None`` keeps all).
    :param braking_decay: per-step factor of the braking signal when no visible peer brakes
        (:func:`braking_signal_decay` of the step length; default: the 0.1 s value 0.95).
    """
    n = own_speed.shape[0]
    k_max = max_peers
    rx_row = np.asarray(rx_row, dtype=np.int64)

    # Per message: geometry in the receiver's frame, from the message's (noisy) position.
    dx = rx_payload[:, 0] - own_xy[rx_row, 0]
    dy = rx_payload[:, 1] - own_xy[rx_row, 1]
    fwd, left = to_heading_frame(dx, dy, own_heading_deg[rx_row])
    dist = np.hypot(dx, dy)
    keep = np.ones(rx_row.shape[0], dtype=bool)
    if cone_half_angle_deg is not None:
        bearing = np.degrees(np.arctan2(left, fwd))
        keep &= np.abs(bearing) <= cone_half_angle_deg

    idx = np.flatnonzero(keep)
    # The K nearest per receiver: sort by (receiver, distance, sender) and rank inside each receiver.
    order = idx[np.lexsort((rx_sender[idx], dist[idx], rx_row[idx]))]
    rows = rx_row[order]
    if order.size:
        first = np.r_[True, rows[1:] != rows[:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(order.size), 0))
        rank = np.arange(order.size) - group_start
    else:
        rank = np.zeros(0, dtype=np.int64)
    sel = rank < k_max
    order, rows, rank = order[sel], rows[sel], rank[sel]

    peer_speed = rx_payload[order, 2]
    peer_accel = rx_payload[order, 4]
    feats = np.stack(
        [
            fwd[order] / OFFSET_SCALE,
            left[order] / OFFSET_SCALE,
            (peer_speed - own_speed[rows]) / SPEED_SCALE,
            wrap180(rx_payload[order, 3] - own_heading_deg[rows]) / HEADING_SCALE,
            peer_accel / ACCEL_SCALE,
            rx_age_ms[order] / AGE_SCALE_MS,
        ],
        axis=1,
    )
    peers = np.zeros((n, k_max, PEER_DIM), dtype=np.float32)
    peers[rows, rank] = feats
    mask = np.zeros((n, k_max), dtype=np.float32)
    mask[rows, rank] = 1.0
    sender = np.full((n, k_max), -1, dtype=np.int64)
    sender[rows, rank] = rx_sender[order]

    n_visible = np.bincount(rows, minlength=n).astype(np.int64)
    min_accel = np.zeros(n)
    np.minimum.at(min_accel, rows, peer_accel)  # starts at 0, so this is min(0, lowest)
    closing = np.zeros(n)
    ahead = fwd[order] > 0.0
    np.maximum.at(closing, rows[ahead], own_speed[rows[ahead]] - peer_speed[ahead])  # max(0, largest)

    braking_now = np.zeros(n, dtype=bool)
    braking_now[rows[peer_accel <= BRAKING_ACCEL_THRESHOLD]] = True
    braking_signal = np.where(braking_now, 1.0, prev_braking_signal * braking_decay)

    ego = np.stack(
        [
            own_speed / SPEED_SCALE,
            own_accel / ACCEL_SCALE,
            n_visible / k_max,
            min_accel / ACCEL_SCALE,
            braking_signal,
            closing / SPEED_SCALE,
        ],
        axis=1,
    ).astype(np.float32)
    return Observations(
        ego=ego,
        peers=peers,
        peer_mask=mask,
        peer_sender=sender,
        braking_signal=braking_signal,
        n_visible=n_visible,
    )


class ObservationFunction:
    """Pluggable per-agent observation (the shape of sumo-rl's ``ObservationFunction``, vectorised).

    Subclass and pass ``parallel_env(..., observation_fn=MyObservation())`` to change what agents
    see without forking; the core allocates one buffer per key of :meth:`space`.

    - ``space(config)``: the per-agent ``gymnasium.spaces.Dict`` of float32 Boxes.
    - ``reset(n_slots)``: a new episode; ``clear(slots)``: new vehicles took these slots (drop
      any per-slot memory).
    - ``__call__(view)``: ``(obs, extras)`` for the agents on the road: ``obs[key]`` float32
      ``[n, *space[key].shape]`` in row order of ``view.states``; ``extras`` a dict of float/int
      arrays ``[n]`` handed to the reward function and the per-step record.

    Only messages in ``view.rx`` (each agent's own receive buffer) may inform another
    vehicle's features: that is the causality contract.
    """

    def space(self, config) -> spaces.Dict:
        raise NotImplementedError

    def reset(self, n_slots: int) -> None:
        pass

    def clear(self, slots: np.ndarray) -> None:
        pass

    def __call__(self, view) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        raise NotImplementedError


class DeepSetObservation(ObservationFunction):
    """The shipped observation: own state exactly, peers from the own buffer (tables above).

    Keeps, per slot, the braking signal between steps (it decays with a half-life of
    :data:`BRAKING_SIGNAL_HALF_LIFE_S` seconds: :func:`braking_signal_decay` per step) and the
    track of the nearest peer ahead (:func:`track_nearest_ahead`: the last three ego columns); a
    vehicle that takes a slot starts both afresh. ``extras``: ``braking_signal`` float64[n],
    ``n_visible`` int64[n], ``peer_sender`` int64[n, K] (sender slots, -1 padding),
    ``ahead_distance``, ``ahead_closing``, ``required_decel`` (float64[n], m, m/s, m/s^2, the
    track at full precision) and ``ahead_sender`` (int64[n], the tracked sender's slot, -1 none).

    :param backend: ``"auto"`` (the compiled twin in :mod:`roadsense_marl.env.kernels` when
        numba is installed), ``"numba"`` or ``"numpy"`` (:func:`build_observations`, the reference).
    """

    def __init__(self, backend: str = "auto") -> None:
        from roadsense_marl.env import kernels

        self.backend = backend
        self._compiled = kernels.resolve_backend(backend)

    def space(self, config) -> spaces.Dict:
        return observation_space(config.max_peers)

    def reset(self, n_slots: int) -> None:
        self.braking_signal = np.zeros(n_slots)
        self.ahead_distance = np.zeros(n_slots)
        self.ahead_closing = np.zeros(n_slots)
        self.ahead_sender = np.full(n_slots, -1, dtype=np.int64)

    def clear(self, slots: np.ndarray) -> None:
        self.braking_signal[slots] = 0.0
        self.ahead_sender[slots] = -1

    def __call__(self, view) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        obs, extras = self._compiled_call(view) if self._compiled else self._beacon_call(view)
        slots = view.slots
        speed = np.asarray(view.states.speed, dtype=np.float64)
        if self._compiled:
            distance, closing, need, sender = self._compiled_track(obs, extras, speed, slots, view.step_length)
        else:
            distance, closing, need, sender = track_nearest_ahead(
                obs["peers"], obs["peer_mask"], extras["peer_sender"], speed,
                self.ahead_distance[slots], self.ahead_closing[slots], self.ahead_sender[slots], view.step_length,
            )
        self.ahead_distance[slots], self.ahead_closing[slots], self.ahead_sender[slots] = distance, closing, sender
        track = np.stack([v / EGO_TABLE[EGO_INDEX[k]].scale for k, v in
                          (("ahead_distance", distance), ("ahead_closing", closing), ("required_decel", need))], axis=1)
        obs["ego"] = np.concatenate([obs["ego"], track.astype(np.float32)], axis=1)
        extras.update(ahead_distance=distance, ahead_closing=closing, required_decel=need, ahead_sender=sender)
        return obs, extras

    def _compiled_track(self, obs, extras, speed, slots, step_length):
        from roadsense_marl.env import kernels
        from roadsense_marl.env.rewards import HEADWAY_S, STOP_MARGIN

        n = len(slots)
        distance, closing, need = np.empty(n), np.empty(n), np.empty(n)
        sender = np.empty(n, dtype=np.int64)
        kernels.track_ahead(
            obs["peers"], obs["peer_mask"], extras["peer_sender"], np.ascontiguousarray(speed),
            self.ahead_distance[slots], self.ahead_closing[slots], self.ahead_sender[slots], float(step_length),
            math.exp(-step_length / TRACK_TIME_CONSTANT_S), PEER_INDEX["forward"], PEER_INDEX["rel_speed"],
            PEER_INDEX["age"], OFFSET_SCALE, SPEED_SCALE, AGE_SCALE_MS / 1000.0, TRACK_NO_PEER_M, NOMINAL_LENGTH_M,
            STOP_MARGIN, HEADWAY_S, REQUIRED_DECEL_CAP, distance, closing, need, sender,
        )
        return distance, closing, need, sender

    def _beacon_call(self, view) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The :data:`BEACON_EGO_DIM` ego columns, the peer table and mask (NumPy reference)."""
        s, slots, rx = view.states, view.slots, view.rx
        built = build_observations(
            np.stack([s.x, s.y], axis=1),
            s.speed,
            s.accel,
            s.heading_deg,
            self.braking_signal[slots],
            view.row_of_slot[rx.receiver],
            rx.sender,
            rx.payload,
            rx.age_ms,
            max_peers=view.config.max_peers,
            cone_half_angle_deg=view.config.cone_half_angle_deg,
            braking_decay=braking_signal_decay(view.step_length),
        )
        self.braking_signal[slots] = built.braking_signal
        obs = {"ego": built.ego, "peers": built.peers, "peer_mask": built.peer_mask}
        extras = {"braking_signal": built.braking_signal, "n_visible": built.n_visible, "peer_sender": built.peer_sender}
        return obs, extras

    def _compiled_call(self, view) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        from roadsense_marl.env import kernels

        s, slots, rx, cfg = view.states, view.slots, view.rx, view.config
        n, k = len(slots), cfg.max_peers
        ego = np.zeros((n, BEACON_EGO_DIM), dtype=np.float32)
        peers = np.zeros((n, k, PEER_DIM), dtype=np.float32)
        mask = np.zeros((n, k), dtype=np.float32)
        sender = np.full((n, k), -1, dtype=np.int64)
        signal = np.empty(n)
        n_visible = np.empty(n, dtype=np.int64)
        cone = -1.0 if cfg.cone_half_angle_deg is None else float(cfg.cone_half_angle_deg)
        kernels.observe(
            s.x, s.y, s.speed, s.accel, s.heading_deg, self.braking_signal[slots], view.row_of_slot[rx.receiver],
            rx.sender, np.ascontiguousarray(rx.payload, dtype=np.float64), rx.age_ms, k, cone, OFFSET_SCALE,
            SPEED_SCALE, HEADING_SCALE, ACCEL_SCALE, AGE_SCALE_MS, BRAKING_ACCEL_THRESHOLD,
            braking_signal_decay(view.step_length), _KERNEL_EGO_COL, _KERNEL_PEER_COL, ego, peers, mask, sender,
            signal, n_visible,
        )
        self.braking_signal[slots] = signal
        return (
            {"ego": ego, "peers": peers, "peer_mask": mask},
            {"braking_signal": signal, "n_visible": n_visible, "peer_sender": sender},
        )


#: The extra ego column of :class:`ChannelAwareObservation`.
CBR_FEATURE = Feature("cbr", 1.0, 0.0, 1.0, "1", "own channel busy ratio over the radio's CBR window (0..1)")


class ChannelAwareObservation(DeepSetObservation):
    """The shipped observation plus one ego column: the vehicle's own channel busy ratio (what its
    radio measures, :attr:`StepView.cbr`), so a policy can learn that a busy channel means late
    or missing messages. Opt-in (``parallel_env(observation_fn=ChannelAwareObservation())``): the
    shipped observation contract stays :data:`EGO_DIM` (9) ego features. ``ego`` is ``[n, EGO_DIM + 1]``, the last
    column :data:`CBR_FEATURE` (0 with the shared channel off); ``extras`` gains ``cbr`` float64[n].
    """

    def space(self, config) -> spaces.Dict:
        base = observation_space(config.max_peers)
        ego = base.spaces["ego"]
        low = np.r_[ego.low, np.float32(CBR_FEATURE.low)].astype(np.float32)
        high = np.r_[ego.high, np.float32(CBR_FEATURE.high)].astype(np.float32)
        return spaces.Dict({**base.spaces, "ego": spaces.Box(low, high, dtype=np.float32)})

    def __call__(self, view) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        obs, extras = super().__call__(view)
        cbr = np.zeros(len(view.slots)) if view.cbr is None else np.asarray(view.cbr, np.float64)[view.slots]
        obs = {**obs, "ego": np.concatenate([obs["ego"], cbr[:, None].astype(np.float32)], axis=1)}
        return obs, {**extras, "cbr": cbr}


def track_nearest_ahead(
    peers: np.ndarray,
    peer_mask: np.ndarray,
    peer_sender: np.ndarray,
    own_speed: np.ndarray,
    prev_distance: np.ndarray,
    prev_closing: np.ndarray,
    prev_sender: np.ndarray,
    step_length: float,
    time_constant_s: float = TRACK_TIME_CONSTANT_S,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Track the nearest visible peer ahead from each agent's peer table (what a receiver can smooth on board).

    One message's position carries the GPS error (``sensor_noise.gps_std_m``, ~3 m measured) and its
    speed ~0.43 m/s: closing at 0.5 m/s on a car held ahead is noise in any single message, and
    creeping into such a car over 20-30 s is how learned policies crash most often (issue 12).

    The measurement is the visible peer with the smallest positive ``forward`` offset (a forward
    cone, no lane test: on several lanes a car in the next lane can be "ahead"), its position moved
    on by its reported speed times the message age (where it is now), and closing = own speed - its
    reported speed. The filter is per agent: the distance is predicted with the tracked closing
    speed and corrected towards the measurement, the closing speed is an exponential average, both
    weighting the new measurement by ``1 - exp(-step_length / time_constant_s)`` (at 0.1 s steps
    the closing-speed noise falls to ~0.1 m/s within 1 s). A track restarts at the measurement when
    the nearest peer ahead is another sender than the one tracked (a cut-in, a lost beacon); with
    no peer ahead the output is :data:`TRACK_NO_PEER_M` and 0, unfiltered, and the next peer starts
    a new track. A message re-read while no newer one arrived counts as a new measurement.

    :param peers: float32[n, K, PEER_DIM] peer tables (scaled, :data:`PEER_TABLE`).
    :param peer_mask: float[n, K], 1 for a visible peer.
    :param peer_sender: int64[n, K] the sender slot of each row (the observation's ``peer_sender``).
    :param own_speed: float64[n] own true speed (m/s).
    :param prev_distance, prev_closing: float64[n] the previous track (m, m/s), used where
        ``prev_sender`` (int64[n], -1: no track) is the sender measured now.
    :param step_length: s since the previous observation.
    :returns: ``(distance m, closing m/s, required deceleration m/s^2, sender)``: float64[n] each
        and int64[n] (-1: no peer ahead). The required deceleration is
        :func:`roadsense_marl.env.rewards.required_decel` (the reward's ``brake_shortfall``
        formula) of the gap ``distance - NOMINAL_LENGTH_M``, capped at :data:`REQUIRED_DECEL_CAP`.
    """
    from roadsense_marl.env.rewards import required_decel

    n = peers.shape[0]
    fwd = peers[:, :, PEER_INDEX["forward"]].astype(np.float64) * OFFSET_SCALE
    rel = peers[:, :, PEER_INDEX["rel_speed"]].astype(np.float64) * SPEED_SCALE
    age_s = peers[:, :, PEER_INDEX["age"]].astype(np.float64) * (AGE_SCALE_MS / 1000.0)
    ahead = (np.asarray(peer_mask) > 0) & (fwd > 0.0)
    j = np.argmin(np.where(ahead, fwd, np.inf), axis=1)  # K >= 1 (max_peers)
    r = np.arange(n)
    seen = ahead[r, j]
    own = np.asarray(own_speed, dtype=np.float64)
    peer_speed = own + rel[r, j]
    z_distance = np.where(seen, fwd[r, j] + peer_speed * age_s[r, j], TRACK_NO_PEER_M)
    z_closing = np.where(seen, -rel[r, j], 0.0)
    sender = np.where(seen, np.asarray(peer_sender)[r, j], -1).astype(np.int64)
    same = seen & (np.asarray(prev_sender) == sender)
    keep = math.exp(-step_length / time_constant_s)
    predicted = prev_distance - prev_closing * step_length
    distance = np.where(same, predicted + (1.0 - keep) * (z_distance - predicted), z_distance)
    closing = np.where(same, keep * prev_closing + (1.0 - keep) * z_closing, z_closing)
    need = np.minimum(required_decel(distance - NOMINAL_LENGTH_M, closing, own), REQUIRED_DECEL_CAP)
    return distance, closing, need, sender
