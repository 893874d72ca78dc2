"""Training-time logging that SB3 does not do by itself."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback


class CollisionRateCallback(BaseCallback):
    """Logs ``rollout/collision_rate``: the share of vehicle-episodes that ended in a collision.

    A vehicle's episode ends when its info carries a ``reason`` (``"collision"``, ``"arrived"``
    or ``"max_steps"``; set by the env for the step an agent leaves). Padded slots of absent
    vehicles carry none and are not counted. Also logs ``rollout/vehicle_episodes``.
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.ended = 0
        self.collisions = 0
        self.last_rate: float | None = None

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            reason = info.get("reason")
            if reason is not None:
                self.ended += 1
                self.collisions += reason == "collision"
        return True

    def _on_rollout_end(self) -> None:
        if self.ended:
            self.last_rate = self.collisions / self.ended
            self.logger.record("rollout/collision_rate", self.last_rate)
            self.logger.record("rollout/vehicle_episodes", self.ended)
        self.ended = self.collisions = 0


class CriticNotLearningError(Exception):
    """The critic did not learn: the run stops (see :class:`CriticCheckCallback`). Printed as one line."""


class CriticCheckCallback(BaseCallback):
    """Stops training with :class:`CriticNotLearningError` when the value function does not learn.

    After ``after_updates`` PPO updates, the mean ``train/explained_variance`` (over the valid
    samples, :class:`~roadsense_marl.training.ppo.MaskedPPO`) of the last ``window`` updates must
    be at least ``min_explained_variance``; the check is made once, at that update. A critic that
    has not learned by then gives advantages that are noise, so the run would only burn time
    (measured on convoy_6 with the shipped recipe: see ``configs/train/marl_ppo.yaml``).
    ``after_updates = 0`` disables it. Every update's value is kept in ``history``.
    """

    def __init__(self, after_updates: int, min_explained_variance: float, window: int = 5, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.after_updates = int(after_updates)
        self.min_explained_variance = float(min_explained_variance)
        self.window = max(1, min(int(window), self.after_updates or 1))
        self.history: list[float] = []
        self.checked: float | None = None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        # SB3 calls this before dumping the logs of the previous update (and before the next one),
        # so the logger still holds the explained variance of the update that just ran.
        ev = self.logger.name_to_value.get("train/explained_variance")
        if ev is None:
            return
        self.history.append(float(ev))
        if self.after_updates and len(self.history) == self.after_updates:
            recent = self.history[-self.window:]
            self.checked = sum(recent) / len(recent)
            self.logger.record("train/critic_check_explained_variance", self.checked)
            if self.checked < self.min_explained_variance:
                raise CriticNotLearningError(
                    f"the critic is not learning: mean explained variance {self.checked:.3f} over updates "
                    f"{self.after_updates - len(recent) + 1}..{self.after_updates} is below "
                    f"critic_check.min_explained_variance={self.min_explained_variance:g} (at "
                    f"{self.num_timesteps} agent-steps); check the reward scale, learning_rate and vf_coef, or "
                    "set critic_check.after_updates: 0 to train anyway"
                )
