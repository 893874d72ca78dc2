"""The policy shipped with the package, in the exported format of :mod:`roadsense_marl.training.runs`.

``MODEL`` = ``pretrained`` in ``roadsense-marl evaluate`` and ``record`` means the policy folder
inside the package (:data:`SHIPPED_DIR`: ``policy.pt``, tensors read with
``torch.load(weights_only=True)``, plus ``policy.json`` with the env contract it was trained
under). Evaluation checks that contract against the env's (id/version, features, action mode,
...) like any exported policy, so a policy trained under an older contract is never used
silently. An install without the folder (or one whose policy was removed) gets a one-line error
from ``shipped_policy_dir`` saying how to make one (:data:`RETRAIN_COMMAND`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PRETRAINED_NAME", "RETRAIN_COMMAND", "SHIPPED_DIR", "resolve_pretrained", "shipped_policy_dir"]

#: The MODEL name that means the policy shipped with the package.
PRETRAINED_NAME = "pretrained"
#: Where the shipped policy lives (package data; empty until one is trained and exported there).
SHIPPED_DIR = Path(__file__).resolve().parent / "pretrained"
#: The documented way to produce the shipped policy (from the shipped training config).
RETRAIN_COMMAND = (
    "roadsense-marl train --config marl_ppo --out runs/pretrained && "
    f"roadsense-marl export runs/pretrained --out {SHIPPED_DIR}"
)


def shipped_policy_dir() -> Path:
    """The shipped policy's folder.

    :raises FileNotFoundError: no policy is shipped in this install, with the command that makes one.
    """
    from roadsense_marl.training.runs import is_exported_policy

    if not is_exported_policy(SHIPPED_DIR):
        raise FileNotFoundError(
            f"no pretrained policy is shipped with this version of roadsense-marl ({SHIPPED_DIR} holds no exported "
            f"policy); train and export one with: {RETRAIN_COMMAND}"
        )
    return SHIPPED_DIR


def resolve_pretrained(model: str | Path) -> str | Path:
    """``model`` itself, or the shipped policy's folder when ``model`` is ``"pretrained"`` (and no such path exists)."""
    if str(model) == PRETRAINED_NAME and not Path(model).exists():
        return shipped_policy_dir()
    return model
