"""Evaluation metrics: pure functions over the arrays one episode recorded.

An :class:`EpisodeRecord` holds, per env step ``t`` (the ``t``-th call to ``env.step``) and per
agent slot ``j`` (index in ``env.possible_agents``), what the runner saw. Every metric is a
function of those arrays, so the tests can feed hand-made episodes with known answers.

Conventions (also written into ``metrics.json`` under ``definitions``):

- *Reaction step* of a follower: the first step ``t > onset_step`` whose action starts braking,
  i.e. commands a deceleration above 0.5 m/s^2 while the action of step ``t - 1`` did not (a
  follower already braking when the hazard starts reacts only when it brakes again after a
  pause, so a policy that always brakes cannot claim an instant reaction); reaction time =
  ``(t - onset_step) * step_length``. The hazard starts inside the ``onset_step`` call; the
  braking car's first message is broadcast at the end of that call, can be in a buffer by the
  end of the next one, so ``t = onset_step + 2`` (0.2 s) is the earliest reaction informed by
  the radio (``onset_step + 1`` is possible only by chance).
- *Followers* of the hazard vehicle: agents whose leader chain at onset (the states the onset
  step started from) reaches the hazard vehicle.
- *Received*: a delivered transmission from the hazard vehicle to the follower broadcast in a
  step ``t >= onset_step`` (its payload is already the braking state).
- *Crash*: SUMO reports both vehicles of a rear-end collision; a crash is counted once, at the
  collider (a collided agent whose leader collided in the same step); a collided agent that is
  neither a collider nor the leader of one counts as a crash of its own.
- Gap share: share of live agent-steps whose true bumper-to-bumper gap is below 10 m (agents
  without a leader count as not close).
- Mean speed: true speed averaged over live agent-steps; stopped share: share of live
  agent-steps slower than 0.5 m/s. A policy can reach zero collisions by parking the convoy;
  these two numbers expose that (compare them with the ``no-v2v`` baseline on the same seeds).
- *Hard braking* (:data:`HARD_BRAKE_DECEL`, 2.5 m/s^2): a deceleration that matters. Measured
  from the vehicle's **actual** deceleration (minus SUMO's acceleration of the step), not the
  command: the first step ``t > onset_step`` whose state shows a deceleration >= 2.5 m/s^2;
  time = ``(t - onset_step) * step_length`` (same clock as the reaction step). The *direct
  follower* is the follower whose leader at onset is the hazard vehicle; it is reported apart
  from the followers further back. "Within 1.0 s" (:data:`HARD_BRAKE_WITHIN_S`) is the share of
  episodes with a direct follower in which it reached hard braking within 1.0 s of onset.
- *Followers' speed deficit* (m/s): over the followers' agent-steps from the onset step to the end
  of the episode, the mean of ``max(0, v_onset - v)``, where ``v_onset`` is the follower's own
  speed in the state the onset step started from (its free-flow cruising speed before the
  hazard). A follower removed by a collision counts as stopped (``v = 0``) for the rest of the
  episode, so crashing does not shorten the deficit. *Followers' stopped share*: the share of
  the same agent-steps with ``v < 0.5`` m/s (crashed: stopped).
- *Released* hazards: the hazard vehicle was handed back to its policy before the episode ended;
  *never released*: it held its reduced speed (or stop) to the end. Both are reported apart.
- Intervals (95 %): Wilson score interval for rates (``k`` of ``n``); Student's t interval for
  means over episodes (or over followers for reaction time).
- *Paired comparisons* (:func:`paired_comparison`, same seeds for both policies): collision
  episodes by McNemar's exact test (two-sided binomial test on the discordant pairs, ``b`` = only
  the policy crashed, ``c`` = only the baseline crashed; ``p_worse`` one-sided for "the policy
  crashes more"); continuous figures by the Student t 95 % interval of the per-seed difference
  ``policy - baseline`` over the seeds where both are defined. "Better" means the whole interval
  lies on the better side of 0 (higher speed and min gap, lower deficit and stopped share).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from roadsense_marl.env.actions import commanded_decel  # noqa: F401 - re-exported: the one action mapping

REACTION_DECEL = 0.5  # m/s^2: a commanded deceleration above this counts as braking
HARD_BRAKE_DECEL = 2.5  # m/s^2: an actual deceleration at or above this is a reaction that matters
HARD_BRAKE_WITHIN_S = 1.0  # s after onset: the direct follower's hard-braking target
#: How tables name the hard-braking share (from the two constants above).
HARD_BRAKE_LABEL = f">= {HARD_BRAKE_DECEL:g} m/s^2 within {HARD_BRAKE_WITHIN_S:g} s"
CLOSE_GAP_M = 10.0
STOPPED_SPEED = 0.5  # m/s: an agent slower than this counts as stopped
DISTANCE_BINS_M: tuple[float, ...] = (0.0, 20.0, 50.0, 100.0, math.inf)
Z95 = 1.959963984540054

# Student t 0.975 quantiles for 1..30 degrees of freedom (above 30 a Cornish-Fisher expansion).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)

DEFINITIONS = {
    "reaction_step": "first step t > hazard onset step whose action commands a deceleration > 0.5 m/s^2",
    "reaction_time_s": "(reaction_step - onset_step) * step_length",
    "followers": "agents whose leader chain at hazard onset reaches the hazard vehicle",
    "received": "a delivered transmission from the hazard vehicle to the follower, broadcast at a step >= onset",
    "crashes": "collision events counted once: the collider of each rear-end pair (SUMO reports both vehicles)",
    "close_gap_share": "share of live agent-steps with true bumper-to-bumper gap < 10 m (no leader = not close)",
    "mean_speed_mps": "true speed (m/s) averaged over live agent-steps of the episode",
    "stopped_share": "share of live agent-steps with true speed < 0.5 m/s",
    "rate_interval": "Wilson score interval, 95 %",
    "mean_interval": "Student t interval, 95 %, over episodes (reaction time: over reacting followers)",
    "expected_pdr": "configured loss model of the episode's radio parameters (after domain randomisation), "
    "with the stationary burst-loss Markov chain, averaged over the bin's links",
    "message_age_ms": "age of every visible peer message at the step it was observed",
    "hard_brake_time_s": "(t - onset_step) * step_length for the first step t > onset whose ACTUAL deceleration "
    f"(-SUMO acceleration) is >= {HARD_BRAKE_DECEL:g} m/s^2",
    "direct_follower": "the follower whose leader at hazard onset is the hazard vehicle",
    "direct_hard_brake_within_1s": "share of episodes with a direct follower in which it reached an actual "
    f"deceleration >= {HARD_BRAKE_DECEL:g} m/s^2 within {HARD_BRAKE_WITHIN_S:g} s of onset (Wilson interval)",
    "follower_speed_deficit_mps": "mean over followers' agent-steps from onset to the episode end of "
    "max(0, v_onset - v); v_onset = the follower's speed when the hazard started; crashed followers count as v = 0",
    "follower_stopped_share": "share of the same follower agent-steps with v < 0.5 m/s (crashed: stopped)",
    "hazard_released": "the hazard vehicle was handed back to its policy before the episode ended",
    "mcnemar": "exact two-sided binomial test on discordant collision episodes (b: only the policy, c: only the "
    "baseline); p_worse: one-sided P(policy crashes more)",
    "paired_difference": "policy - baseline per seed, mean with Student t 95 % interval over seeds defined for both",
}


# ---- intervals -------------------------------------------------------------------------------

def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes out of ``n`` (NaNs when ``n == 0``)."""
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval needs 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the ends (no 1e-17 rounding residue)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def t_quantile_975(df: int) -> float:
    """Two-sided 95 % Student t critical value for ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z95
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def mean_interval(values: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """Mean with a 95 % Student t interval over the finite ``values`` (NaN bounds for n < 2)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    m = float(x.mean())
    if n < 2:
        return {"mean": m, "lo": math.nan, "hi": math.nan, "n": n}
    half = t_quantile_975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return {"mean": m, "lo": m - half, "hi": m + half, "n": n}


def rate_interval(k: int, n: int) -> dict[str, float | int]:
    """A rate ``k / n`` with its Wilson 95 % interval."""
    lo, hi = wilson_interval(int(k), int(n))
    return {"rate": (k / n) if n else math.nan, "lo": lo, "hi": hi, "k": int(k), "n": int(n)}


# ---- one episode -----------------------------------------------------------------------------

@dataclass
class EpisodeRecord:
    """What one episode recorded. ``T`` steps, ``M`` agent slots; NaN where an agent was absent.

    Per step ``t`` the row holds the action taken in the ``t``-th ``env.step`` call and the state
    that call produced. ``leader_before[t]`` is each agent's leader slot in the state the step
    started from (-1: none or absent).
    """

    seed: int
    step_length: float
    agents: tuple[str, ...]
    present: np.ndarray  # bool[T, M]: live in the state after step t (ended agents excluded)
    gap: np.ndarray  # float[T, M]: true gap after step t (inf: no leader, NaN: absent)
    decel_cmd: np.ndarray  # float[T, M]: commanded deceleration of the action at step t (NaN: not acting)
    leader_before: np.ndarray  # int[T, M]
    reward: np.ndarray  # float[T, M] (NaN: absent)
    components: np.ndarray  # float[T, M, C]
    component_names: tuple[str, ...]
    n_visible: np.ndarray  # float[T, M] (NaN: absent)
    collided_step: np.ndarray  # int[M]: step whose call reported the agent's collision, -1 none
    onset_step: int | None = None
    hazard_slot: int = -1  # -1: no hazard vehicle was picked
    link_step: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    link_sender: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    link_receiver: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    link_distance: np.ndarray = field(default_factory=lambda: np.empty(0))
    link_delivered: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    link_expected_pdr: np.ndarray = field(default_factory=lambda: np.empty(0))
    link_cbr: np.ndarray = field(default_factory=lambda: np.empty(0))  # receiver's CBR at that step
    message_age_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    speed: np.ndarray | None = None  # float[T, M]: true speed after step t (NaN: absent); None: not recorded
    accel: np.ndarray | None = None  # float[T, M]: SUMO's actual acceleration in step t (m/s^2); None: not recorded
    release_step: int | None = None  # step at which the hazard vehicle is handed back (None: never)

    @property
    def n_steps(self) -> int:
        return int(self.present.shape[0])

    @property
    def appeared(self) -> np.ndarray:
        """bool[M]: agents that were live at some step (or collided)."""
        return self.present.any(axis=0) | (self.collided_step >= 0) | np.isfinite(self.decel_cmd).any(axis=0)


def hazard_followers(leader_at_onset: np.ndarray, hazard_slot: int) -> np.ndarray:
    """bool[M]: agents whose leader chain (``leader_at_onset``, slot indices, -1 none) reaches ``hazard_slot``."""
    lead = np.asarray(leader_at_onset, dtype=np.int64)
    m = lead.size
    out = np.zeros(m, dtype=bool)
    if hazard_slot < 0:
        return out
    cur = lead.copy()
    for _ in range(m):  # a chain is at most M long; the loop is over chain depth, not agents
        alive = cur >= 0
        out |= alive & (cur == hazard_slot)
        if not alive.any():
            break
        cur = np.where(alive, lead[np.maximum(cur, 0)], -1)
    out[hazard_slot] = False
    return out


def reaction_steps(decel_cmd: np.ndarray, onset_step: int, threshold: float = REACTION_DECEL) -> np.ndarray:
    """int[M]: first step ``t > onset_step`` whose commanded deceleration rises above ``threshold``
    from at or below it at ``t - 1`` (-1 none); see the module docstring."""
    d = np.nan_to_num(np.asarray(decel_cmd, dtype=np.float64), nan=0.0) > threshold
    starts = d[onset_step + 1 :] & ~d[onset_step:-1]
    if starts.shape[0] == 0:  # the hazard started in the last recorded step
        return np.full(d.shape[1], -1, dtype=np.int64)
    first = np.argmax(starts, axis=0)
    return np.where(starts.any(axis=0), first + onset_step + 1, -1)


def hard_brake_steps(accel: np.ndarray | None, onset_step: int, threshold: float = HARD_BRAKE_DECEL) -> np.ndarray:
    """int[M]: first step ``t > onset_step`` whose actual deceleration ``-accel[t]`` is at least
    ``threshold`` m/s^2 (-1: never; all -1 when ``accel`` was not recorded).

    :param accel: float[T, M] SUMO's acceleration of each step (m/s^2, negative = braking; NaN: absent).
    """
    if accel is None:
        return np.full(0, -1, dtype=np.int64)
    a = np.asarray(accel, dtype=np.float64)[onset_step + 1 :]
    hard = np.nan_to_num(-a, nan=-np.inf) >= threshold
    if hard.shape[0] == 0:
        return np.full(a.shape[1], -1, dtype=np.int64)
    first = np.argmax(hard, axis=0)
    return np.where(hard.any(axis=0), first + onset_step + 1, -1)


def follower_speed_deficit(
    speed: np.ndarray | None,
    present: np.ndarray,
    collided_step: np.ndarray,
    followers: np.ndarray,
    onset_step: int,
    threshold: float = STOPPED_SPEED,
) -> tuple[float, float]:
    """``(speed deficit m/s, stopped share)`` of the ``followers`` (bool[M]) from ``onset_step`` to the end.

    Deficit: mean of ``max(0, v_onset - v)`` over the followers' agent-steps ``t >= onset_step``,
    ``v_onset`` the follower's speed after step ``onset_step - 1``; from its collision step on a
    crashed follower counts with ``v = 0``. NaN, NaN when no follower has a speed at onset.
    """
    if speed is None or onset_step < 1:
        return (math.nan, math.nan)
    v = np.asarray(speed, dtype=np.float64)
    t = np.arange(v.shape[0])[:, None]
    cs = np.asarray(collided_step, dtype=np.int64)[None, :]
    crashed = (cs >= 0) & (t >= cs)
    v_on = v[onset_step - 1]
    cols = np.asarray(followers, bool) & np.isfinite(v_on)
    after = t >= onset_step
    live = np.asarray(present, bool) & np.isfinite(v)
    mask = after & cols[None, :] & (live | crashed)
    if not mask.any():
        return (math.nan, math.nan)
    vv = np.where(crashed, 0.0, np.nan_to_num(v, nan=0.0))
    deficit = np.maximum(0.0, v_on[None, :] - vv)
    return (float(deficit[mask].mean()), float((vv[mask] < threshold).mean()))


def received_from(
    link_step: np.ndarray,
    sender: np.ndarray,
    receiver: np.ndarray,
    delivered: np.ndarray,
    hazard_slot: int,
    onset_step: int,
    n_slots: int,
) -> np.ndarray:
    """bool[M]: receivers of a delivered message from ``hazard_slot`` broadcast at a step >= ``onset_step``."""
    ok = np.asarray(delivered, bool) & (np.asarray(sender) == hazard_slot) & (np.asarray(link_step) >= onset_step)
    out = np.zeros(n_slots, dtype=bool)
    out[np.asarray(receiver)[ok]] = True
    return out


def crash_colliders(collided_step: np.ndarray, leader_before: np.ndarray) -> np.ndarray:
    """bool[M]: one True per crash (see module doc: the collider of each pair)."""
    cs = np.asarray(collided_step, dtype=np.int64)
    collided = cs >= 0
    m = cs.size
    if not collided.any():
        return np.zeros(m, dtype=bool)
    steps = np.maximum(cs, 0)
    lead = np.asarray(leader_before, dtype=np.int64)[steps, np.arange(m)]
    has_lead = lead >= 0
    lead_c = np.maximum(lead, 0)
    collider = collided & has_lead & collided[lead_c] & (cs[lead_c] == cs)
    victim = np.zeros(m, dtype=bool)
    victim[lead_c[collider]] = True
    return collider | (collided & ~collider & ~victim)


def min_gap(gap: np.ndarray, present: np.ndarray) -> float:
    """Smallest true gap over live agent-steps (inf when no agent ever had a leader)."""
    g = np.where(np.asarray(present, bool), np.asarray(gap, np.float64), np.inf)
    g = np.where(np.isnan(g), np.inf, g)
    return float(g.min()) if g.size else math.inf


def close_gap_share(gap: np.ndarray, present: np.ndarray, threshold_m: float = CLOSE_GAP_M) -> float:
    """Share of live agent-steps with a gap below ``threshold_m`` (NaN with no live agent-step)."""
    p = np.asarray(present, bool)
    n = int(p.sum())
    if n == 0:
        return math.nan
    g = np.asarray(gap, np.float64)
    return float((p & (np.nan_to_num(g, nan=np.inf) < threshold_m)).sum() / n)


def mean_speed(speed: np.ndarray | None, present: np.ndarray) -> float:
    """Mean true speed (m/s) over live agent-steps (NaN without any, or when speed was not recorded)."""
    if speed is None:
        return math.nan
    p = np.asarray(present, bool)
    v = np.asarray(speed, np.float64)[p]
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def stopped_share(speed: np.ndarray | None, present: np.ndarray, threshold: float = STOPPED_SPEED) -> float:
    """Share of live agent-steps with a true speed below ``threshold`` m/s (NaN without any)."""
    if speed is None:
        return math.nan
    p = np.asarray(present, bool)
    v = np.asarray(speed, np.float64)[p]
    v = v[np.isfinite(v)]
    return float((v < threshold).mean()) if v.size else math.nan


def expected_delivery_ratio(params: Any, distance_m: np.ndarray) -> np.ndarray:
    """Long-run delivery ratio of the configured loss model at each distance (metres, any shape).

    The radio's own burst loss model, :attr:`roadsense_marl.espnow.LinkLoss.stationary_delivery_ratio`
    of :func:`roadsense_marl.espnow.link_loss` (per-link two-state chain; 0 at or past the hard range).
    """
    from roadsense_marl.espnow import link_loss

    return link_loss(params, distance_m).stationary_delivery_ratio


def pdr_by_distance(
    distance_m: np.ndarray,
    delivered: np.ndarray,
    expected: np.ndarray,
    edges: Sequence[float] = DISTANCE_BINS_M,
) -> list[dict[str, Any]]:
    """Emulated delivery ratio (Wilson interval) per distance bin next to the expected ratio."""
    d = np.asarray(distance_m, dtype=np.float64)
    ok = np.asarray(delivered, bool)
    exp = np.asarray(expected, dtype=np.float64)
    idx = np.searchsorted(np.asarray(edges[1:-1]), d, side="right")
    n_bins = len(edges) - 1
    count = np.bincount(idx, minlength=n_bins)
    hits = np.bincount(idx, weights=ok.astype(np.float64), minlength=n_bins)
    exp_sum = np.bincount(idx, weights=exp, minlength=n_bins)
    out = []
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        n, k = int(count[b]), int(round(hits[b]))
        ci = wilson_interval(k, n)
        out.append(
            {
                "bin": f"{lo:g}-{hi:g} m" if math.isfinite(hi) else f"{lo:g}+ m",
                "lo_m": float(lo),
                "hi_m": float(hi),
                "links": n,
                "delivered": k,
                "pdr": k / n if n else math.nan,
                "pdr_lo": ci[0],
                "pdr_hi": ci[1],
                "expected_pdr": float(exp_sum[b] / n) if n else math.nan,
            }
        )
    return out


#: Channel busy ratio bins of :func:`pdr_by_cbr` (ETSI DCC's reference CBR target is 0.68).
CBR_BINS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)


def pdr_by_cbr(cbr: np.ndarray, delivered: np.ndarray, edges: Sequence[float] = CBR_BINS) -> list[dict[str, Any]]:
    """Emulated delivery ratio (Wilson interval) per bin of the receiver's channel busy ratio at the
    link's step (``[lo, hi)``, the last bin closed at 1), with the bin's mean CBR. Empty when no CBR
    was recorded."""
    c = np.asarray(cbr, dtype=np.float64)
    ok = np.asarray(delivered, bool)
    if c.size == 0 or c.size != ok.size:
        return []
    n_bins = len(edges) - 1
    idx = np.clip(np.searchsorted(np.asarray(edges[1:-1]), c, side="right"), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    hits = np.bincount(idx, weights=ok.astype(np.float64), minlength=n_bins)
    c_sum = np.bincount(idx, weights=c, minlength=n_bins)
    out = []
    for b in range(n_bins):
        n, k = int(count[b]), int(round(hits[b]))
        ci = wilson_interval(k, n)
        out.append({"bin": f"{edges[b]:g}-{edges[b + 1]:g}", "lo": float(edges[b]), "hi": float(edges[b + 1]),
                    "links": n, "delivered": k, "pdr": k / n if n else math.nan, "pdr_lo": ci[0], "pdr_hi": ci[1],
                    "cbr_mean": float(c_sum[b] / n) if n else math.nan})
    return out


def age_stats(age_ms: np.ndarray) -> dict[str, float | int]:
    """Mean and 95th percentile of message ages at observation."""
    a = np.asarray(age_ms, dtype=np.float64)
    if a.size == 0:
        return {"mean_ms": math.nan, "p95_ms": math.nan, "n": 0}
    return {"mean_ms": float(a.mean()), "p95_ms": float(np.percentile(a, 95)), "n": int(a.size)}


def episode_metrics(rec: EpisodeRecord) -> dict[str, Any]:
    """Every per-episode metric of one record (plain JSON-able types)."""
    m = len(rec.agents)
    appeared = rec.appeared
    collided = rec.collided_step >= 0
    crashes = crash_colliders(rec.collided_step, rec.leader_before)
    followers_out: list[dict[str, Any]] = []
    hazard = rec.onset_step is not None and rec.hazard_slot >= 0 and rec.onset_step < rec.n_steps
    deficit = stopped_f = math.nan
    direct_within: bool | None = None
    released: bool | None = None
    if hazard:
        onset = int(rec.onset_step)  # type: ignore[arg-type]
        released = rec.release_step is not None and rec.release_step < rec.n_steps
        fol = hazard_followers(rec.leader_before[onset], rec.hazard_slot)
        direct = fol & (rec.leader_before[onset] == rec.hazard_slot)
        hard = hard_brake_steps(rec.accel, onset)
        if hard.size == 0:
            hard = np.full(m, -1, dtype=np.int64)
        hard_t = np.where(hard >= 0, (hard - onset) * rec.step_length, np.inf)
        if direct.any() and rec.accel is not None:
            direct_within = bool((hard_t[direct] <= HARD_BRAKE_WITHIN_S + 1e-9).all())
        deficit, stopped_f = follower_speed_deficit(rec.speed, rec.present, rec.collided_step, fol, onset)
        react = reaction_steps(rec.decel_cmd, onset)
        recv = received_from(
            rec.link_step, rec.link_sender, rec.link_receiver, rec.link_delivered, rec.hazard_slot, onset, m
        )
        for j in np.flatnonzero(fol):
            rs = int(react[j])
            followers_out.append(
                {
                    "agent": rec.agents[j],
                    "received": bool(recv[j]),
                    "reacted": rs >= 0,
                    "reaction_step": rs if rs >= 0 else None,
                    "reaction_time_s": round((rs - onset) * rec.step_length, 9) if rs >= 0 else None,
                    "direct": bool(direct[j]),
                    "hard_brake_time_s": round(float(hard_t[j]), 9) if hard[j] >= 0 else None,
                    "collided": bool(collided[j]),
                }
            )
    live = rec.present
    n_live = int(live.sum())
    rew = np.where(np.isnan(rec.reward), 0.0, rec.reward)
    acted = np.isfinite(rec.reward)
    n_acted = int(acted.sum())
    comps = {
        c: float(np.nansum(rec.components[:, :, i]) / n_acted) if n_acted else math.nan
        for i, c in enumerate(rec.component_names)
    }
    vis = rec.n_visible[live]
    pdr_total = int(rec.link_delivered.sum()), int(rec.link_delivered.size)
    return {
        "seed": int(rec.seed),
        "steps": rec.n_steps,
        "agents": int(appeared.sum()),
        "collision": bool(collided.any()),
        "collided_agents": [rec.agents[j] for j in np.flatnonzero(collided)],
        "n_collided_agents": int(collided.sum()),
        "crashes": int(crashes.sum()),
        "min_gap_m": min_gap(rec.gap, live),
        "close_gap_share": close_gap_share(rec.gap, live),
        "mean_speed_mps": mean_speed(rec.speed, live),
        "stopped_share": stopped_share(rec.speed, live),
        "hazard_onset_step": rec.onset_step,
        "hazard_vehicle": rec.agents[rec.hazard_slot] if rec.hazard_slot >= 0 else None,
        "hazard_released": released,
        "followers": followers_out,
        "direct_hard_brake_within_1s": direct_within,
        "follower_speed_deficit_mps": deficit,
        "follower_stopped_share": stopped_f,
        "pdr": pdr_total[0] / pdr_total[1] if pdr_total[1] else math.nan,
        "message_age": age_stats(rec.message_age_ms),
        "peers_visible_mean": float(vis.mean()) if vis.size else math.nan,
        "reward_mean": float(rew.sum() / n_acted) if n_acted else math.nan,
        "reward_components_mean": comps,
        "agent_steps": n_live,
    }


def aggregate(records: Sequence[EpisodeRecord], episodes: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Aggregate over episodes: rates with Wilson intervals, means with t intervals, pooled radio figures."""
    eps = list(episodes) if episodes is not None else [episode_metrics(r) for r in records]
    n = len(eps)
    fol = [f for e in eps for f in e["followers"]]
    reacted = [f for f in fol if f["reacted"]]
    n_agents = sum(e["agents"] for e in eps)
    if records:
        dist = np.concatenate([r.link_distance for r in records])
        deliv = np.concatenate([r.link_delivered for r in records])
        exp = np.concatenate([r.link_expected_pdr for r in records])
        ages = np.concatenate([r.message_age_ms for r in records])
        cbr = np.concatenate([r.link_cbr for r in records]) if all(
            len(r.link_cbr) == len(r.link_delivered) for r in records) else np.empty(0)
    else:
        dist, deliv, exp, ages, cbr = np.empty(0), np.empty(0, bool), np.empty(0), np.empty(0), np.empty(0)
    comp_names = list(eps[0]["reward_components_mean"]) if eps else []
    min_gaps = [e["min_gap_m"] for e in eps]
    return {
        "episodes": n,
        "collision_rate": rate_interval(sum(e["collision"] for e in eps), n),
        "agent_collision_rate": rate_interval(sum(e["n_collided_agents"] for e in eps), n_agents),
        "crashes_per_episode": mean_interval([e["crashes"] for e in eps]),
        "crashes_total": int(sum(e["crashes"] for e in eps)),
        "min_gap_m": {**mean_interval(min_gaps), "min": float(min(min_gaps)) if min_gaps else math.nan},
        "close_gap_share": mean_interval([e["close_gap_share"] for e in eps]),
        "mean_speed_mps": mean_interval([e.get("mean_speed_mps", math.nan) for e in eps]),
        "stopped_share": mean_interval([e.get("stopped_share", math.nan) for e in eps]),
        "followers": len(fol),
        "follower_received_rate": rate_interval(sum(f["received"] for f in fol), len(fol)),
        "follower_reacted_rate": rate_interval(len(reacted), len(fol)),
        "follower_collision_rate": rate_interval(sum(f["collided"] for f in fol), len(fol)),
        "reaction_time_s": {
            **mean_interval([f["reaction_time_s"] for f in reacted]),
            "median": float(np.median([f["reaction_time_s"] for f in reacted])) if reacted else math.nan,
            "min": float(min(f["reaction_time_s"] for f in reacted)) if reacted else math.nan,
            "max": float(max(f["reaction_time_s"] for f in reacted)) if reacted else math.nan,
        },
        "pdr": rate_interval(int(deliv.sum()), int(deliv.size)),
        "pdr_by_distance": pdr_by_distance(dist, deliv, exp),
        "pdr_by_cbr": pdr_by_cbr(cbr, deliv),
        "cbr_mean": float(cbr.mean()) if cbr.size else math.nan,
        "message_age": age_stats(ages),
        "peers_visible_per_agent": mean_interval([e["peers_visible_mean"] for e in eps]),
        "reward_mean": mean_interval([e["reward_mean"] for e in eps]),
        "reward_components_mean": {c: mean_interval([e["reward_components_mean"][c] for e in eps]) for c in comp_names},
        **hazard_response(eps),
        "by_release": {
            "released": hazard_response([e for e in eps if e.get("hazard_released") is True], with_counts=True),
            "never_released": hazard_response([e for e in eps if e.get("hazard_released") is False], with_counts=True),
        },
    }


def hazard_response(eps: Sequence[dict[str, Any]], with_counts: bool = False) -> dict[str, Any]:
    """The hazard figures over per-episode metrics ``eps``: the direct follower's hard braking
    within 1.0 s (Wilson, over episodes with a direct follower), followers further back (per
    follower), followers' speed deficit and stopped share (t intervals over episodes).
    ``with_counts`` adds the episode count, collision rate and mean speed (for subsets)."""
    def hb(f: dict[str, Any]) -> float:
        t = f.get("hard_brake_time_s")
        return math.inf if t is None else float(t)

    defined = [e["direct_hard_brake_within_1s"] for e in eps if e.get("direct_hard_brake_within_1s") is not None]
    direct = [f for e in eps for f in e["followers"] if f.get("direct")]
    further = [f for e in eps for f in e["followers"] if f.get("direct") is False]
    lim = HARD_BRAKE_WITHIN_S + 1e-9
    out: dict[str, Any] = {}
    if with_counts:
        out["episodes"] = len(eps)
        out["collision_rate"] = rate_interval(sum(e["collision"] for e in eps), len(eps))
        out["mean_speed_mps"] = mean_interval([e.get("mean_speed_mps", math.nan) for e in eps])
    out.update({
        "direct_hard_brake_within_1s": rate_interval(sum(defined), len(defined)),
        "direct_hard_brake_time_s": mean_interval([hb(f) for f in direct if math.isfinite(hb(f))]),
        "further_hard_brake_within_1s": rate_interval(sum(hb(f) <= lim for f in further), len(further)),
        "further_hard_brake_time_s": mean_interval([hb(f) for f in further if math.isfinite(hb(f))]),
        "follower_speed_deficit_mps": mean_interval([e.get("follower_speed_deficit_mps", math.nan) for e in eps]),
        "follower_stopped_share": mean_interval([e.get("follower_stopped_share", math.nan) for e in eps]),
    })
    return out


# ---- paired comparisons on the same seeds ----------------------------------------------------

#: Continuous per-episode figures compared pairwise, and which direction is better (+1 higher, -1 lower).
PAIRED_FIGURES: dict[str, int] = {
    "mean_speed_mps": +1,
    "follower_speed_deficit_mps": -1,
    "stopped_share": -1,
    "follower_stopped_share": -1,
    "min_gap_m": +1,
}


def mcnemar_exact(b: int, c: int) -> dict[str, float | int]:
    """McNemar's exact test on discordant pairs: ``b`` (only the policy had the event), ``c`` (only the baseline).

    ``p`` two-sided: ``min(1, 2 * P(X <= min(b, c)))``, ``X ~ Binomial(b + c, 1/2)``; ``p_worse``
    one-sided ``P(X >= b)`` (evidence that the policy has the event more often); both 1 when ``b + c == 0``.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "p": 1.0, "p_worse": 1.0}
    cdf = [math.comb(n, i) for i in range(n + 1)]
    total = 2.0**n
    p_two = min(1.0, 2.0 * sum(cdf[: min(b, c) + 1]) / total)
    p_worse = sum(cdf[b:]) / total
    return {"b": int(b), "c": int(c), "p": p_two, "p_worse": p_worse}


def paired_difference(a: Sequence[float], b: Sequence[float], better: int = +1) -> dict[str, Any]:
    """Per-pair ``a - b`` over pairs where both are finite: mean, Student t 95 % interval, and
    ``better``/``worse``: the whole interval lies on the better/worse side of 0 (``better`` +1:
    higher is better, -1: lower is better)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    d = mean_interval(x[ok] - y[ok])
    lo, hi = d["lo"], d["hi"]
    known = not (math.isnan(lo) or math.isnan(hi))
    good = known and (lo > 0 if better > 0 else hi < 0)
    bad = known and (hi < 0 if better > 0 else lo > 0)
    return {**d, "better": bool(good), "worse": bool(bad)}


def at_least_as_safe(paired: dict[str, Any]) -> bool:
    """Whether the policy is at least as safe as the baseline of a :func:`paired_comparison`: no more
    episodes where only the policy crashed than where only the baseline did (McNemar's discordant
    pairs ``b <= c``). The one definition the demo verdict and the generalisation table use."""
    col = paired["collision"]
    return col["b"] <= col["c"]


def paired_comparison(policy_eps: Sequence[dict[str, Any]], baseline_eps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Compare two policies' per-episode metrics on the same seeds (see the module doc).

    :raises ValueError: the two lists do not hold the same seeds.
    """
    pa = {int(e["seed"]): e for e in policy_eps}
    pb = {int(e["seed"]): e for e in baseline_eps}
    if set(pa) != set(pb):
        only = sorted(set(pa) ^ set(pb))[:5]
        raise ValueError(f"paired comparison needs the same seeds for both policies; differing seeds include {only}")
    seeds = sorted(pa)
    ca = np.array([bool(pa[s]["collision"]) for s in seeds], bool)
    cb = np.array([bool(pb[s]["collision"]) for s in seeds], bool)
    out: dict[str, Any] = {
        "pairs": len(seeds),
        "collision": {**mcnemar_exact(int((ca & ~cb).sum()), int((~ca & cb).sum())),
                      "policy": int(ca.sum()), "baseline": int(cb.sum())},
    }
    for key, better in PAIRED_FIGURES.items():
        va = [pa[s].get(key, math.nan) for s in seeds]
        vb = [pb[s].get(key, math.nan) for s in seeds]
        va = [math.nan if v is None else v for v in va]
        vb = [math.nan if v is None else v for v in vb]
        out[key] = paired_difference(va, vb, better)
    return out
