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
