"""Top-down RGB frames of the road window around the vehicles (pure NumPy, no GUI needed)."""

from __future__ import annotations

import numpy as np

BACKGROUND = np.array([34, 102, 34], dtype=np.uint8)  # grass
ROAD = np.array([70, 70, 70], dtype=np.uint8)
CAR = np.array([60, 140, 230], dtype=np.uint8)
BRAKING = np.array([230, 40, 40], dtype=np.uint8)
LINK = np.array([250, 220, 60], dtype=np.uint8)


def draw_frame(
    xy: np.ndarray,
    length: np.ndarray,
    braking: np.ndarray,
    link_from: np.ndarray,
    link_to: np.ndarray,
    *,
    width: int = 640,
    height: int = 240,
    margin_m: float = 20.0,
) -> np.ndarray:
    """Draw vehicles (blue, red when braking) and delivered links (yellow lines).

    :param xy: float[n, 2] vehicle positions (front bumper, SUMO convention), metres.
    :param length: float[n] vehicle lengths (m).
    :param braking: bool[n] vehicles decelerating noticeably.
    :param link_from, link_to: float[m, 2] endpoints of links that delivered a message.
    :returns: uint8[height, width, 3].
    """
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = BACKGROUND
    if xy.shape[0] == 0:
        return frame
    lo = xy.min(axis=0) - margin_m
    hi = xy.max(axis=0) + margin_m
    span = np.maximum(hi - lo, 1.0)
    scale = min((width - 1) / span[0], (height - 1) / span[1])
    centre = (lo + hi) / 2.0

    def to_px(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        col = (p[..., 0] - centre[0]) * scale + width / 2.0
        row = height / 2.0 - (p[..., 1] - centre[1]) * scale
        return row, col

    # Road band through the vehicles' y extent (straight scenarios run along x).
    r_lo, _ = to_px(np.array([0.0, xy[:, 1].max() + 6.0]))
    r_hi, _ = to_px(np.array([0.0, xy[:, 1].min() - 6.0]))
    frame[max(0, int(r_lo)) : min(height, int(r_hi) + 1)] = ROAD

    if link_from.shape[0]:
        t = np.linspace(0.0, 1.0, 64)[None, :, None]
        pts = link_from[:, None, :] * (1 - t) + link_to[:, None, :] * t
        rows, cols = to_px(pts)
        rows, cols = rows.astype(int).ravel(), cols.astype(int).ravel()
        ok = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        frame[rows[ok], cols[ok]] = LINK

    half_px = max(1, int(round(1.0 * scale)))
    rows, cols = to_px(xy)
    length_px = np.maximum(2, np.round(length * scale)).astype(int)
    for r, c, lp, b in zip(rows.astype(int), cols.astype(int), length_px, braking):  # one box per vehicle
        r0, r1 = max(0, r - half_px), min(height, r + half_px + 1)
        c0, c1 = max(0, c - lp), min(width, c + 1)
        if r0 < r1 and c0 < c1:
            frame[r0:r1, c0:c1] = BRAKING if b else CAR
    return frame
