"""Agent slots: who is an agent and where, without SUMO (the bookkeeping is pure)."""

import numpy as np
import pytest

from roadsense_marl.env.agents import AgentSlots

AGENTS = ("a", "b", "c", "d", "e")


def test_joining_vehicles_take_the_lowest_free_slots_in_possible_agents_order():
    slots = AgentSlots(AGENTS, 3)
    ch = slots.update(("c", "a"), departed=("c", "a"))
    assert ch.joined.tolist() == [0, 1]
    assert slots.agent_of_slot == ["a", "c", None]
    assert slots.row_slot.tolist() == [1, 0]  # rows follow SUMO's order, slots possible_agents order


def test_a_freed_slot_is_reused_only_from_the_next_step():
    slots = AgentSlots(AGENTS, 2)
    slots.update(("a", "b"), departed=("a", "b"))
    ch = slots.update(("b",), arrived=("a",))
    assert ch.left.tolist() == [0] and ch.collided.size == 0
    assert slots.agent_of_slot[0] == "a", "an agent that ended is still named in the step it ended"
    with pytest.raises(RuntimeError, match="max_vehicles=2"):
        slots.update(("b", "c"), departed=("c",))  # slot 0 not free yet in this step
    slots = AgentSlots(AGENTS, 2)
    slots.update(("a", "b"), departed=("a", "b"))
    ch = slots.update(("b",), arrived=("a",))
    slots.release_ended(np.flatnonzero(ch.left == 0))
    ch = slots.update(("b", "c"), departed=("c",))
    assert ch.joined.tolist() == [0] and slots.agent_of_slot == ["c", "b"]


def test_collided_and_vanished_agents_are_told_apart():
    slots = AgentSlots(AGENTS, 4)
    slots.update(("a", "b", "c"), departed=("a", "b", "c"))
    ch = slots.update(("c",), collided=("a",))  # b vanished without SUMO saying why
    assert ch.collided.tolist() == [0] and ch.left.tolist() == [1]
    assert slots.live.tolist() == [False, False, True, False]


def test_a_quiet_step_reuses_the_row_mapping():
    slots = AgentSlots(AGENTS, 3)
    slots.update(("a", "b"), departed=("a", "b"))
    before = slots.row_slot
    ch = slots.update(("a", "b"))
    assert ch.joined.size == ch.left.size == ch.collided.size == 0
    assert slots.row_slot is before


def test_unknown_and_revived_vehicles_are_named():
    slots = AgentSlots(AGENTS, 3)
    with pytest.raises(RuntimeError, match="'zz' at t=1 s, which is not among the scenario's possible agents"):
        slots.update(("zz",), departed=("zz",), time_s=1.0)
    slots = AgentSlots(AGENTS, 3)
    slots.update(("a",), departed=("a",))
    slots.update((), arrived=("a",))
    with pytest.raises(RuntimeError, match="'a' is on the road again"):
        slots.update(("a",), departed=("a",))


# --------------------------------------------------------------------------- who is an agent, who is equipped

from roadsense_marl.env.agents import (  # noqa: E402
    MOTOR_VCLASSES,
    OtherSlots,
    VehicleSelector,
    draw_equipped,
    parse_selector,
    select_vehicles,
    type_alternatives,
)

IDS = ("car1", "bike1", "tram1", "bus1", "ped_like", "truck1")
TYPES = ("car", "bike", "tram", "citybus", "walker", "lorry")
CLASSES = ("passenger", "bicycle", "tram", "bus", "pedestrian", "truck")


def test_default_agents_are_the_road_motor_vehicles():
    chosen = select_vehicles(None, "agents", IDS, TYPES, CLASSES, "s")
    assert [v for v, c in zip(IDS, chosen) if c] == ["car1", "bus1", "truck1"]
    for not_motor in ("bicycle", "pedestrian", "tram", "rail", "rail_urban", "rail_electric", "rail_fast", "ship",
                      "scooter", "subway", "cable_car", "wheelchair"):
        assert not_motor not in MOTOR_VCLASSES


def test_selector_keys_and_their_globs_combine_and_exclude_wins():
    sel = parse_selector({"vclass": ["passenger", "b*"], "exclude": {"id": "bike*"}}, "agents")
    assert sel.matches(IDS, TYPES, CLASSES).tolist() == [True, False, False, True, False, False]
    sel = parse_selector({"vclass": "*", "vtype": ["tr?m", "lorry"]}, "agents")  # every key given must match
    assert sel.matches(IDS, TYPES, CLASSES).tolist() == [False, False, True, False, False, True]
    only_exclude = parse_selector({"exclude": {"vtype": "citybus"}}, "agents")  # starts from the motor vehicles
    assert only_exclude.matches(IDS, TYPES, CLASSES).tolist() == [True, False, False, False, False, True]
    assert parse_selector(None, "agents") is None
    assert parse_selector({"id": "car*"}, "equipped") == VehicleSelector(id=("car*",))


@pytest.mark.parametrize("value, message", [
    ({"vclas": "passenger"}, r"unknown agents key\(s\) \['vclas'\]; valid: vclass, vtype, id, exclude"),
    ({"vclass": "car"}, r"agents.vclass pattern 'car' matches no SUMO vClass; valid vClasses: .*passenger"),
    ({"vtype": []}, r"agents.vtype must be a glob pattern or a non-empty list"),
    ({"id": [3]}, r"agents.id must be a glob pattern"),
    ({"exclude": {"kind": "x"}}, r"unknown agents.exclude key\(s\) \['kind'\]"),
    ({}, r"agents selects nothing"),
    ("passenger", r"agents must be a mapping"),
])
def test_bad_selectors_name_the_key_and_what_is_valid(value, message):
    with pytest.raises(ValueError, match=message):
        parse_selector(value, "agents")


def test_a_selector_matching_no_vehicle_names_it_and_the_scenarios_types_and_classes():
    with pytest.raises(ValueError, match=r"agents selector \{vtype: \['suv'\]\} matches no vehicle of scenario "
                                         r"'mixed'; its vehicles have vClasses \['bicycle', .*\] and vTypes \['bike'"):
        select_vehicles(parse_selector({"vtype": "suv"}, "agents"), "agents", IDS, TYPES, CLASSES, "mixed")
    with pytest.raises(ValueError, match=r"the default \(road motor vehicles\) matches no vehicle"):
        select_vehicles(None, "agents", ("t",), ("train",), ("rail",), "rail")


def test_a_distribution_typed_vehicle_has_every_members_type_and_class():
    owner, types, classes = type_alternatives(
        ("car", "bicycle"), ("passenger", "bicycle"), {"car": "passenger", "bicycle": "bicycle"},
        {"car": ("bicycle", "car"), "bicycle": ("bicycle", "car")})
    assert owner.tolist() == [0, 0, 1, 1]
    assert list(zip(types, classes)) == [("bicycle", "bicycle"), ("car", "passenger")] * 2


def test_penetration_draw_is_seeded_and_its_share_follows_the_rate():
    eligible = np.ones(20_000, dtype=bool)
    a = draw_equipped(np.random.default_rng(7), 0.3, eligible)
    assert np.array_equal(a, draw_equipped(np.random.default_rng(7), 0.3, eligible))
    assert not np.array_equal(a, draw_equipped(np.random.default_rng(8), 0.3, eligible))
    assert abs(a.mean() - 0.3) < 0.015  # 20k Bernoulli(0.3): sd 0.0032
    assert not draw_equipped(np.random.default_rng(7), 0.0, eligible).any()
    assert draw_equipped(np.random.default_rng(7), 1.0, eligible).all()
    half = draw_equipped(np.random.default_rng(7), 0.5, eligible)
    assert np.all(a <= half), "rising rates give nested equipped sets for one seed"
    ineligible = draw_equipped(np.random.default_rng(7), 1.0, np.arange(20_000) % 2 == 0)
    assert not ineligible[1::2].any()


def test_non_agents_are_ignored_by_agent_slots_and_take_their_own_radio_slots():
    slots = AgentSlots(("a", "b"), 2, others=("x", "y", "z"))
    slots.update(("x", "a", "y"), departed=("x", "a", "y"))
    assert slots.row_slot.tolist() == [-1, 0, -1] and slots.live.tolist() == [True, False]
    other = OtherSlots(offset=2, n=2)
    left, joined = other.update(["x", "y"])
    assert joined.tolist() == [2, 3] and left.size == 0
    left, joined = other.update(["y"])
    assert left.tolist() == [2] and joined.size == 0
    left, joined = other.update(["y", "z"])  # a slot freed in one update is reusable from the next
    assert joined.tolist() == [2] and other.ids.tolist() == ["z", "y"]
    other = OtherSlots(offset=2, n=2)
    other.update(["x", "y"])
    with pytest.raises(RuntimeError, match="max_other_vehicles=2"):
        other.update(["y", "z"])  # x leaves and z arrives in the same update: slot 2 is not free yet


def test_an_excluded_vehicle_does_not_join_that_episode_only():
    slots = AgentSlots(("a", "b"), 2)
    slots.exclude("b")
    slots.update(("a", "b"), departed=("a", "b"))
    assert slots.agent_of_slot == ["a", None] and slots.row_slot.tolist() == [0, -1]
    slots.reset()
    slots.update(("b",), departed=("b",))
    assert slots.agent_of_slot == ["b", None]
