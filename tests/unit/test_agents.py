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
