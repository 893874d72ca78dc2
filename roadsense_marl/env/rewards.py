"""Per-agent rewards from ground truth: pure, vectorised functions.

Rewards and termination read the same truth (SUMO's bumper-to-bumper gap and collision
list), so a collision penalty and a termination can never disagree. The one thing that
comes from the radio is the braking signal the agent itself observes: the warning terms
judge what the agent did with what it knew.

Terms (weights from :class:`roadsense_marl.env.config.RewardConfig`; defaults in brackets):

- ``safety``: collision -> ``collision`` [-100]. Otherwise by gap to the leader:
  below 5 m -> ``gap_close`` [-5]; 5..20 m linear from ``gap_close`` to ``gap_good``;
  20..35 m -> ``gap_good`` [+4]; above 35 m -> ``gap_far`` [-2] (lagging behind the convoy);
  no leader within SUMO's look-ahead -> ``no_leader`` [0] (nothing to keep a gap to).
- ``comfort``: by deceleration d = max(0, -accel): d <= 0.5 -> 0; up to 3 -> -2(d-0.5)/2.5;
  up to 4.5 -> -2 - 3(d-3)/1.5; beyond -> -5. Below a 20 m gap it is scaled by
  max(0.1, (gap-5)/15): braking hard close to a leader is what one should do.
- ``hard_brake``: with a gap above 35 m (or no leader), d > 0.5 -> ``hard_brake_large_gap`` [-2],
  d >= 4.5 -> ``very_hard_brake_large_gap`` [-4].
- ``ignore_warning``: braking signal set (>= ``signal_threshold``), not braking (d <= 0.5),
  moving (v > 0.5 m/s) and closing on the leader -> ``ignore_warning`` [-5] x signal.
- ``early_reaction``: signal set, braking (d > 0.5) and gap > 15 m -> ``early_reaction`` [+2] x signal.
- ``progress``: ``progress`` [0] x speed / 30 m/s. Off by default (the original reward has no such
  term). Without it, a convoy that stops at a 20..35 m gap collects the best safety reward
  forever without moving; the shipped training config turns it on for that reason.

Vehicles whose motion is imposed (the hazard vehicle while it brakes) get no comfort,
hard-brake or warning terms: they did not choose that motion.
"""

from __future__ import annotations

import numpy as np

from roadsense_marl.env.config import RewardConfig

REWARD_COMPONENTS = ("safety", "comfort", "hard_brake", "ignore_warning", "early_reaction", "progress")
#: RewardConfig fields in the order the compiled reward kernel takes them.
REWARD_WEIGHT_ORDER = (
    "collision", "gap_close", "gap_good", "gap_far", "no_leader", "comfort_scale", "hard_brake_large_gap",
    "very_hard_brake_large_gap", "ignore_warning", "early_reaction", "progress", "signal_threshold",
)
BRAKING_DECEL = 0.5  # m/s^2: below this an agent counts as not braking
HARD_DECEL = 4.5
MOVING_SPEED = 0.5


def comfort_penalty(decel: np.ndarray) -> np.ndarray:
    """Piecewise-linear penalty for deceleration ``decel`` >= 0 (m/s^2), in [-5, 0]."""
    d = np.asarray(decel, dtype=np.float64)
    # Continuous pieces: 0 up to 0.5, -2 at 3, -5 at 4.5 and beyond.
    return np.where(
        d <= 3.0,
        -2.0 * np.clip(d - 0.5, 0.0, None) / 2.5,
        -2.0 - 3.0 * np.clip(d - 3.0, None, 1.5) / 1.5,
    )


def safety_reward(gap: np.ndarray, collided: np.ndarray, w: RewardConfig) -> np.ndarray:
    """Gap-keeping reward; ``gap`` is ``inf`` where there is no leader."""
    g = np.asarray(gap, dtype=np.float64)
    lin = w.gap_close + (w.gap_good - w.gap_close) * (np.clip(g, 5.0, 20.0) - 5.0) / 15.0
    far = np.where(np.isfinite(g), w.gap_far, w.no_leader)
    r = np.where(g < 20.0, lin, np.where(g <= 35.0, w.gap_good, far))
    return np.where(collided, w.collision, r)


def compute_rewards(
    gap: np.ndarray,
    collided: np.ndarray,
    accel: np.ndarray,
    speed: np.ndarray,
    closing_speed: np.ndarray,
    braking_signal: np.ndarray,
    imposed: np.ndarray,
    w: RewardConfig,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Total reward and each component for ``n`` agents.

    :param gap: true bumper-to-bumper gap to the leader (m), ``inf`` = no leader.
    :param collided: bool, the agent was in a collision this step.
    :param accel: true longitudinal acceleration (m/s^2) this step.
    :param speed: true speed (m/s).
    :param closing_speed: own speed minus the leader's speed (m/s), 0 without a leader.
    :param braking_signal: the agent's observed braking signal in [0, 1].
    :param imposed: bool, the agent's motion was imposed (hazard), not chosen.
    """
    gap = np.asarray(gap, dtype=np.float64)
    decel = np.maximum(0.0, -np.asarray(accel, dtype=np.float64))
    chosen = ~np.asarray(imposed, dtype=bool)
    braking = decel > BRAKING_DECEL
    signal_set = braking_signal >= w.signal_threshold

    safety = safety_reward(gap, collided, w)
    scale = np.where(gap < 20.0, np.maximum(0.1, (gap - 5.0) / 15.0), 1.0)
    comfort = w.comfort_scale * comfort_penalty(decel) * scale
    large_gap = gap > 35.0
    hard_brake = np.where(
        large_gap & braking,
        np.where(decel >= HARD_DECEL, w.very_hard_brake_large_gap, w.hard_brake_large_gap),
        0.0,
    )
    ignoring = signal_set & ~braking & (speed > MOVING_SPEED) & (closing_speed > 0.0)
    ignore_warning = np.where(ignoring, w.ignore_warning * braking_signal, 0.0)
    early = np.where(signal_set & braking & (gap > 15.0), w.early_reaction * braking_signal, 0.0)

    components = {
        "safety": safety,
        "comfort": np.where(chosen, comfort, 0.0),
        "hard_brake": np.where(chosen, hard_brake, 0.0),
        "ignore_warning": np.where(chosen, ignore_warning, 0.0),
        "early_reaction": np.where(chosen, early, 0.0),
        "progress": w.progress * np.asarray(speed, dtype=np.float64) / 30.0,
    }
    total = sum(components.values())
    return np.asarray(total, dtype=np.float64), components


class RewardFunction:
    """Pluggable per-agent reward (the shape of sumo-rl's ``reward_fn``, vectorised).

    Subclass and pass ``parallel_env(..., reward_fn=MyReward())`` to change the reward without
    forking. ``components`` names the terms reported in ``info["reward_components"]``.

    - ``__call__(view, extras)``: rewards of the agents still on the road after a step.
      ``view`` is a :class:`~roadsense_marl.env.core.StepView` (ground truth ``states`` rows, their
      ``slots``, ``imposed`` mask, ``config``...); ``extras`` is what the observation function
      returned besides the observation (the shipped one: ``braking_signal``, ``n_visible``).
      Returns ``(total float64[n], {component: float64[n]})``.
    - ``terminal(view, collided)``: rewards of the agents that left in this step (``collided``
      bool[k]: collision, else arrival / vanishing), same return shape with k rows.
    """

    components: tuple[str, ...] = ()

    def __call__(self, view, extras: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError

    def terminal(self, view, collided: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError


class ConvoyReward(RewardFunction):
    """The shipped reward (module docstring), weights from ``config.reward``.

    Closing speed is the own speed minus the true leader's speed (0 without a leader). An agent
    that collided gets ``collision`` (in ``safety``) and nothing else; one that arrived gets 0.
    """

    components = REWARD_COMPONENTS

    def __init__(self, backend: str = "auto") -> None:
        """:param backend: ``"auto"`` (the compiled twin in :mod:`roadsense_marl.env.kernels` when
        numba is installed), ``"numba"`` or ``"numpy"`` (:func:`compute_rewards`, the reference)."""
        from roadsense_marl.env import kernels

        self.backend = backend
        self._compiled = kernels.resolve_backend(backend)
        self._weights: tuple[RewardConfig, np.ndarray] | None = None

    def __call__(self, view, extras: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        s = view.states
        if self._compiled:
            from roadsense_marl.env import kernels

            w = view.config.reward
            if self._weights is None or self._weights[0] is not w:
                self._weights = (w, np.array([float(getattr(w, f)) for f in REWARD_WEIGHT_ORDER]))
            n = s.n
            out = np.empty((7, n))
            kernels.rewards(s.gap, s.accel, s.speed, s.leader, np.asarray(extras["braking_signal"], dtype=np.float64),
                            np.asarray(view.imposed, dtype=np.bool_), self._weights[1], *out)
            return out[0], dict(zip(REWARD_COMPONENTS, out[1:]))
        has_leader = s.leader >= 0
        closing = np.where(has_leader, s.speed - s.speed[np.maximum(s.leader, 0)], 0.0) if s.n else np.zeros(0)
        return compute_rewards(
            s.gap, np.zeros(s.n, dtype=bool), s.accel, s.speed, closing, extras["braking_signal"], view.imposed,
            view.config.reward,
        )

    def terminal(self, view, collided: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        total = np.where(collided, float(view.config.reward.collision), 0.0)
        comps = {c: np.zeros(len(collided)) for c in REWARD_COMPONENTS}
        comps["safety"] = total.copy()
        return total, comps
