"""Annotated top-down frames of the road around the vehicles, and a window that shows them.

:func:`draw_frame` is a pure function of arrays (no SUMO, no env): the road, every vehicle
coloured by its state (driving, braking, crashed; the hazard vehicle outlined), vehicle ids,
the radio links that delivered a message this step (arcs above the road, sender to receiver),
a header with simulation time and step, and a legend. The env's ``render()`` passes its
current state in; ``roadsense-marl record`` writes the frames to a GIF or MP4.

:class:`HumanViewer` shows frames in a matplotlib window (``render_mode="human"``) where a
display exists.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import Sequence

import numpy as np

__all__ = [
    "BACKGROUND",
    "BRAKING",
    "CRASHED",
    "DRIVING",
    "HAZARD",
    "LINK",
    "ROAD",
    "HumanViewer",
    "display_available",
    "draw_frame",
]

BACKGROUND = (34, 102, 34)  # grass
ROAD = (70, 70, 70)
LANE_MARK = (200, 200, 200)
DRIVING = (60, 140, 230)
BRAKING = (230, 40, 40)
CRASHED = (20, 20, 20)
CRASH_MARK = (255, 255, 255)
HAZARD = (255, 0, 255)  # outline of the hazard vehicle
LINK = (250, 220, 60)
PANEL = (245, 245, 245)
TEXT = (20, 20, 20)

HEADER_PX = 22
LEGEND_PX = 22
#: Vehicles beyond this many on screen get no id labels (they would only overlap).
MAX_LABELLED = 60

LEGEND = (
    ("driving", DRIVING),
    ("braking", BRAKING),
    ("crashed", CRASHED),
    ("hazard vehicle", HAZARD),
    ("radio link delivered", LINK),
)


@lru_cache(maxsize=4)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size)


def _check_arrays(xy: np.ndarray, length: np.ndarray, flags: dict[str, np.ndarray], ids: Sequence[str] | None) -> int:
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"xy must have shape (n, 2) (metres), got {xy.shape}")
    n = xy.shape[0]
    if length.shape != (n,):
        raise ValueError(f"length must have shape ({n},) like xy, got {length.shape}")
    for name, arr in flags.items():
        if arr.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},) like xy, got {arr.shape}")
    if ids is not None and len(ids) != n:
        raise ValueError(f"ids must name the {n} vehicles of xy, got {len(ids)} ids")
    if not np.isfinite(xy).all():
        raise ValueError("xy holds non-finite positions")
    return n


def draw_frame(
    xy: np.ndarray,
    length: np.ndarray,
    *,
    braking: np.ndarray | None = None,
    crashed: np.ndarray | None = None,
    ids: Sequence[str] | None = None,
    hazard_id: str | None = None,
    links: np.ndarray | None = None,
    time_s: float | None = None,
    step: int | None = None,
    max_steps: int | None = None,
    title: str = "",
    width: int = 800,
    height: int = 260,
    margin_m: float = 15.0,
    lane_width_m: float = 3.2,
) -> np.ndarray:
    """One annotated top-down frame.

    The view fits every vehicle (plus ``margin_m``) into the road area, same scale on both
    axes; vehicles are drawn at least 4 px tall so a long road stays readable. A vehicle is
    a box from its rear to its front bumper, filled by state: crashed (``CRASHED`` with a white
    cross), else braking (``BRAKING``), else ``DRIVING``; the hazard vehicle (``hazard_id``) has
    a ``HAZARD`` outline. Each delivered radio link is an arc above the road from the sender's
    front bumper to the receiver's (``LINK``), its height growing with the distance.

    :param xy: float[n, 2] front-bumper positions (SUMO network coordinates, m).
    :param length: float[n] vehicle lengths (m); the box extends ``length`` against the
        direction of travel (+x for the straight scenarios; SUMO's heading is not needed).
    :param braking: bool[n] vehicles decelerating (default: none).
    :param crashed: bool[n] vehicles in a collision (default: none). SUMO removes collided
        vehicles, so callers pass their last known position.
    :param ids: n vehicle ids drawn above the boxes (skipped when more than 60 vehicles, and
        where a label would overlap the previous one).
    :param hazard_id: id of the hazard vehicle (outlined), or None.
    :param links: int[m, 2] ``(sender, receiver)`` row indices into ``xy`` of the links that
        delivered a message this step.
    :param time_s, step, max_steps: shown in the header when given (simulation seconds, env steps).
    :param title: extra header text (e.g. policy and seed).
    :returns: uint8[height, width, 3] RGB frame.
    :raises ValueError: mis-shaped arrays, link indices out of range, or a frame too small
        (``width < 200`` or ``height < 100``).
    """
    from PIL import Image, ImageDraw

    if width < 200 or height < 100:
        raise ValueError(f"frame must be at least 200x100 px, got {width}x{height}")
    xy = np.asarray(xy, dtype=np.float64)
    if xy.size == 0:
        xy = xy.reshape(0, 2)
    length = np.asarray(length, dtype=np.float64).reshape(-1)
    n_guess = xy.shape[0] if xy.ndim == 2 else -1
    braking = np.zeros(max(n_guess, 0), bool) if braking is None else np.asarray(braking, dtype=bool).reshape(-1)
    crashed = np.zeros(max(n_guess, 0), bool) if crashed is None else np.asarray(crashed, dtype=bool).reshape(-1)
    n = _check_arrays(xy, length, {"braking": braking, "crashed": crashed}, ids)
    links = np.empty((0, 2), np.int64) if links is None else np.asarray(links, dtype=np.int64).reshape(-1, 2)
    if links.size and (links.min() < 0 or links.max() >= n):
        raise ValueError(f"links index vehicles 0..{n - 1}, got indices {links.min()}..{links.max()}")

    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    font = _font(12)
    top, bottom = HEADER_PX, height - LEGEND_PX  # road area rows [top, bottom)
    area_h = bottom - top

    if n:
        rear_x = xy[:, 0] - length
        lo = np.array([rear_x.min(), xy[:, 1].min()]) - margin_m
        hi = np.array([xy[:, 0].max(), xy[:, 1].max()]) + margin_m
        span = np.maximum(hi - lo, 1.0)
        # The lower 45 % of the road area holds the road; the arcs of the links use the rest.
        scale = min((width - 1) / span[0], (0.45 * area_h) / max(span[1] - 2 * margin_m + 2 * lane_width_m, 1.0))
        cx, cy = (lo[0] + hi[0]) / 2.0, (xy[:, 1].min() + xy[:, 1].max()) / 2.0
        road_mid = top + 0.72 * area_h

        def col(x: np.ndarray) -> np.ndarray:
            return (x - cx) * scale + width / 2.0

        def row(y: np.ndarray) -> np.ndarray:
            return road_mid - (y - cy) * scale

        half_road = (xy[:, 1].max() - xy[:, 1].min()) / 2.0 * scale + lane_width_m * scale
        half_road = max(half_road, 8.0)
        draw.rectangle([0, road_mid - half_road, width, road_mid + half_road], fill=ROAD)
        for edge in (road_mid - half_road, road_mid + half_road):
            draw.line([0, edge, width, edge], fill=LANE_MARK, width=1)

        front_c, rear_c = col(xy[:, 0]), col(rear_x)
        r = row(xy[:, 1])
        half_h = max(2.0, 0.9 * scale)

        if links.size:
            # Arcs: parabolas from sender to receiver, all links at once.
            s_idx, r_idx = links[:, 0], links[:, 1]
            x0, x1 = front_c[s_idx], front_c[r_idx]
            y0, y1 = r[s_idx] - half_h, r[r_idx] - half_h
            rise = np.minimum(0.5 * np.abs(x1 - x0) + 6.0, road_mid - half_road - top - 4.0)
            u = np.linspace(0.0, 1.0, 48)[None, :]
            px = x0[:, None] * (1 - u) + x1[:, None] * u
            py = y0[:, None] * (1 - u) + y1[:, None] * u - 4.0 * rise[:, None] * u * (1 - u)
            pts = np.stack([px, py], axis=-1)
            for line in pts:  # one polyline per link (PIL draws lines one at a time)
                draw.line([tuple(p) for p in line], fill=LINK, width=1)

        for i in np.argsort(crashed, kind="stable"):  # crashed drawn last, on top
            box = [rear_c[i], r[i] - half_h, max(front_c[i], rear_c[i] + 3.0), r[i] + half_h]
            fill = CRASHED if crashed[i] else BRAKING if braking[i] else DRIVING
            is_hazard = ids is not None and hazard_id is not None and ids[i] == hazard_id
            draw.rectangle(box, fill=fill)
            if is_hazard:
                draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], outline=HAZARD, width=2)
            if crashed[i]:
                draw.line([box[0], box[1], box[2], box[3]], fill=CRASH_MARK, width=2)
                draw.line([box[0], box[3], box[2], box[1]], fill=CRASH_MARK, width=2)

        if ids is not None and n <= MAX_LABELLED:
            last_right = -1e9
            for i in np.argsort(front_c, kind="stable"):
                label = str(ids[i])
                w = draw.textlength(label, font=font)
                x_left = (rear_c[i] + front_c[i]) / 2.0 - w / 2.0
                if x_left < last_right + 2:
                    continue
                draw.text((x_left, r[i] + half_h + 3), label, fill=(255, 255, 255), font=font)
                last_right = x_left + w

        # Scale bar (bottom-left of the road area).
        bar_m = _nice_length(80.0 / scale)
        bar_px = bar_m * scale
        y_bar = bottom - 8
        draw.line([8, y_bar, 8 + bar_px, y_bar], fill=(255, 255, 255), width=2)
        draw.text((12 + bar_px, y_bar - 8), f"{bar_m:g} m", fill=(255, 255, 255), font=font)

    # Header: time, step, counts.
    draw.rectangle([0, 0, width, HEADER_PX - 1], fill=PANEL)
    parts = []
    if time_s is not None:
        parts.append(f"t = {time_s:.1f} s")
    if step is not None:
        parts.append(f"step {step}" + (f"/{max_steps}" if max_steps is not None else ""))
    parts.append(f"{int((~crashed).sum())} on the road")
    parts.append(f"{int((braking & ~crashed).sum())} braking")
    if crashed.any():
        parts.append(f"{int(crashed.sum())} crashed")
    parts.append(f"{len(links)} links delivered")
    if hazard_id is not None:
        parts.append(f"hazard: {hazard_id}")
    header = "   ".join(parts)
    if title:
        header = f"{title}   {header}"
    draw.text((6, 4), header, fill=TEXT, font=font)

    # Legend.
    draw.rectangle([0, height - LEGEND_PX, width, height], fill=PANEL)
    x = 6
    y = height - LEGEND_PX + 5
    for label, colour in LEGEND:
        if colour == HAZARD:
            draw.rectangle([x, y, x + 14, y + 11], fill=DRIVING, outline=HAZARD, width=2)
        elif colour == LINK:
            draw.line([x, y + 10, x + 7, y + 1, x + 14, y + 10], fill=(200, 160, 0), width=2)
        else:
            draw.rectangle([x, y, x + 14, y + 11], fill=colour)
        x += 18
        draw.text((x, y - 1), label, fill=TEXT, font=font)
        x += int(draw.textlength(label, font=font)) + 14
    return np.asarray(img, dtype=np.uint8)


def _nice_length(m: float) -> float:
    """The largest of 1, 2, 5 x 10^k not above ``m`` (a round scale-bar length, metres)."""
    if m <= 0 or not np.isfinite(m):
        return 1.0
    k = 10.0 ** np.floor(np.log10(m))
    for f in (5.0, 2.0, 1.0):
        if f * k <= m:
            return float(f * k)
    return float(k)


def display_available() -> bool:
    """True when a window can be opened: a display on Linux/BSD, always on macOS and Windows."""
    if sys.platform.startswith(("darwin", "win")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class HumanViewer:
    """A matplotlib window that shows frames as they come (``render_mode="human"``).

    :raises RuntimeError: at construction when no display exists (headless machine), naming
        the alternatives.
    """

    def __init__(self, title: str = "roadsense-marl", fps: float = 10.0) -> None:
        if not display_available():
            raise RuntimeError(
                "render_mode='human' opens a window but no display is available (DISPLAY is unset); "
                "use render_mode='rgb_array', or `roadsense-marl record` to write a GIF/MP4"
            )
        self.title = title
        self.pause_s = 1.0 / max(fps, 1e-3)
        self._fig = None
        self._image = None

    def show(self, frame: np.ndarray) -> None:
        """Draw ``frame`` (uint8[h, w, 3]) in the window, opening it on first use."""
        import matplotlib.pyplot as plt

        if self._fig is None or not plt.fignum_exists(self._fig.number):
            plt.ion()
            h, w = frame.shape[:2]
            self._fig = plt.figure(self.title, figsize=(w / 100.0, h / 100.0), dpi=100)
            ax = self._fig.add_axes((0, 0, 1, 1))
            ax.set_axis_off()
            self._image = ax.imshow(frame, interpolation="nearest")
        else:
            self._image.set_data(frame)
        self._fig.canvas.draw_idle()
        plt.pause(self.pause_s)

    def close(self) -> None:
        """Close the window (no-op when none is open)."""
        if self._fig is not None:
            import matplotlib.pyplot as plt

            plt.close(self._fig)
            self._fig = None
            self._image = None
