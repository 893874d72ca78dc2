"""Annotated frames from arrays: vehicles coloured by state where they are, links, header, legend."""

from __future__ import annotations

import numpy as np
import pytest

from roadsense_marl.env.render import (
    BRAKING,
    CRASHED,
    DRIVING,
    HAZARD,
    HEADER_PX,
    LEGEND_PX,
    LINK,
    HumanViewer,
    draw_frame,
)


def colour_mask(frame: np.ndarray, colour) -> np.ndarray:
    return (frame == np.array(colour, dtype=np.uint8)).all(axis=-1)


def road_area(frame: np.ndarray) -> np.ndarray:
    return frame[HEADER_PX : frame.shape[0] - LEGEND_PX]


XY = np.array([[0.0, -1.6], [50.0, -1.6], [100.0, -1.6]])
LENGTH = np.full(3, 5.0)


def test_vehicles_appear_in_their_state_colour_in_driving_order():
    frame = draw_frame(XY, LENGTH, braking=np.array([False, True, False]), ids=["a", "b", "c"])
    area = road_area(frame)
    driving_cols = np.flatnonzero(colour_mask(area, DRIVING).any(axis=0))
    braking_cols = np.flatnonzero(colour_mask(area, BRAKING).any(axis=0))
    assert driving_cols.size > 0 and braking_cols.size > 0
    # Two driving boxes, one left and one right of the braking one (x grows to the right).
    assert driving_cols.min() < braking_cols.min() and braking_cols.max() < driving_cols.max()
    # Boxes are a few px tall and about 5 m long: the middle one spans ~1/21 of the fitted 5+100+30 m.
    rows = np.flatnonzero(colour_mask(area, BRAKING).any(axis=1))
    assert 4 <= rows.size <= 30
    assert 0.02 * frame.shape[1] < braking_cols.size < 0.08 * frame.shape[1]


def test_crashed_and_hazard_vehicles_are_marked():
    frame = draw_frame(
        XY, LENGTH, crashed=np.array([True, False, False]), ids=["a", "b", "c"], hazard_id="c"
    )
    area = road_area(frame)
    crashed_cols = np.flatnonzero(colour_mask(area, CRASHED).any(axis=0))
    hazard_cols = np.flatnonzero(colour_mask(area, HAZARD).any(axis=0))
    assert crashed_cols.size and hazard_cols.size
    assert crashed_cols.max() < frame.shape[1] / 3  # the wreck is the rearmost vehicle
    assert hazard_cols.min() > 2 * frame.shape[1] / 3  # the hazard vehicle leads
    white_in_wreck = colour_mask(area[:, crashed_cols.min() : crashed_cols.max() + 1], (255, 255, 255))
    assert white_in_wreck.any()  # the cross over the wreck


def test_links_are_drawn_above_the_road_between_sender_and_receiver():
    without = draw_frame(XY, LENGTH, ids=["a", "b", "c"])
    frame = draw_frame(XY, LENGTH, ids=["a", "b", "c"], links=np.array([[2, 1]]))
    area_links = colour_mask(road_area(frame), LINK)
    assert not colour_mask(road_area(without), LINK).any()
    assert area_links.any()
    cols = np.flatnonzero(area_links.any(axis=0))
    driving_cols = np.flatnonzero(colour_mask(road_area(frame), DRIVING).any(axis=0))
    assert cols.min() > driving_cols.min() + 100  # starts at the middle vehicle, not the rear one
    link_rows = np.flatnonzero(area_links.any(axis=1))
    car_rows = np.flatnonzero(colour_mask(road_area(frame), DRIVING).any(axis=1))
    assert link_rows.min() < car_rows.min() - 20  # an arc rising above the road


def test_header_shows_time_and_step():
    a = draw_frame(XY, LENGTH, time_s=1.0, step=10, max_steps=500)
    b = draw_frame(XY, LENGTH, time_s=2.0, step=20, max_steps=500)
    header_a, header_b = a[:HEADER_PX], b[:HEADER_PX]
    assert (header_a != header_b).any()  # the text changed
    assert (a[HEADER_PX:] == b[HEADER_PX:]).all()  # nothing else did
    dark = (header_a.sum(axis=-1) < 200).sum()
    assert dark > 50  # text pixels


def test_legend_names_every_state_colour():
    legend = draw_frame(XY, LENGTH)[-LEGEND_PX:]
    for colour in (DRIVING, BRAKING, CRASHED, HAZARD):
        assert colour_mask(legend, colour).any(), colour


def test_ids_are_written_under_the_vehicles():
    plain = draw_frame(XY, LENGTH)
    labelled = draw_frame(XY, LENGTH, ids=["V001", "V002", "V003"])
    diff = (plain != labelled).any(axis=-1)
    rows = np.flatnonzero(diff.any(axis=1))
    car_rows = np.flatnonzero(colour_mask(plain, DRIVING)[HEADER_PX:-LEGEND_PX].any(axis=1)) + HEADER_PX
    assert rows.size and rows.min() > car_rows.max()


def test_empty_road_is_still_a_frame():
    frame = draw_frame(np.empty((0, 2)), np.empty(0), time_s=0.0, step=0)
    assert frame.shape == (260, 800, 3) and frame.dtype == np.uint8
    assert (frame[:HEADER_PX].sum(axis=-1) < 200).any()


def test_custom_size():
    assert draw_frame(XY, LENGTH, width=400, height=150).shape == (150, 400, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"xy": np.zeros((3, 3))}, "xy must have shape"),
        ({"length": np.ones(2)}, "length must have shape"),
        ({"braking": np.zeros(4, bool)}, "braking must have shape"),
        ({"ids": ["a"]}, "ids must name the 3 vehicles"),
        ({"links": np.array([[0, 3]])}, "links index vehicles 0..2"),
        ({"width": 100}, "at least 200x100"),
        ({"xy": np.array([[0.0, 0.0], [np.nan, 0.0], [1.0, 0.0]])}, "non-finite"),
    ],
)
def test_bad_inputs_are_clear_errors(kwargs, match):
    args = {"xy": XY, "length": LENGTH} | kwargs
    with pytest.raises(ValueError, match=match):
        draw_frame(args.pop("xy"), args.pop("length"), **args)


def test_human_viewer_without_display_says_what_to_use(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(RuntimeError, match="no display.*rgb_array.*record"):
        HumanViewer()


def test_human_viewer_shows_the_frame_it_is_given(monkeypatch):
    import warnings

    import matplotlib

    matplotlib.use("Agg", force=True)  # no real window here; the figure logic is the same
    import matplotlib.pyplot as plt

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("sys.platform", "linux")
    viewer = HumanViewer(title="test", fps=1000.0)
    first, second = draw_frame(XY, LENGTH, step=1), draw_frame(XY, LENGTH, step=2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Agg: "FigureCanvasAgg is non-interactive"
            viewer.show(first)
            fig = viewer._fig
            viewer.show(second)
        assert viewer._fig is fig  # one window, updated in place
        assert np.array_equal(np.asarray(viewer._image.get_array()), second)
    finally:
        viewer.close()
    assert not plt.fignum_exists(fig.number)
