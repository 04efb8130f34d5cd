"""The slot chain: one visible list per phase, and per-resource plans of what applies."""

from __future__ import annotations

from typing import Any

from guard import Guard, ManualClock
from guard.chain import NodeSelectorSlot, SlotBuild, SlotChain, StatisticSlot
from guard.engine import default_chain
from guard.flow.slot import FlowSlot


def test_default_chain_phases() -> None:
    chain = default_chain()
    assert [type(s) for s in chain.prepare] == [NodeSelectorSlot]
    assert [type(s) for s in chain.stat] == [StatisticSlot]
    # Sentinel's order: authority, system, param_flow, flow, degrade.
    names = [s.name for s in Guard(clock=ManualClock(0)).chain.check]
    assert names == ["authority", "system", "param_flow", "flow", "degrade"]
    assert FlowSlot in [type(s) for s in chain.check]
    orders = [s.order for s in chain.check]
    assert orders == sorted(orders)


class Named:
    def __init__(self, order: int) -> None:
        self.order = order
        self.has_stat = False
        self.uses_origin_node = False


def test_phases_are_sorted_by_order() -> None:
    a, b, c = Named(300), Named(100), Named(200)
    chain = SlotChain(prepare=[], check=[a, b, c], stat=[])
    assert chain.check == [b, c, a]


def test_plans_hold_only_the_checks_that_apply() -> None:
    stat = Named(0)
    stat_check = Named(1)
    stat_check.has_stat = True
    flow_r = Named(2)
    every = Named(3)
    chain = SlotChain(prepare=[], check=[], stat=[stat])
    builds = [
        SlotBuild(per_resource={"r": flow_r}),
        SlotBuild(per_resource={"s": stat_check}, every_resource=every),
    ]
    plans, default_plan = chain.plans(builds)
    assert set(plans) == {"r", "s"}
    assert plans["r"].checks == [flow_r, every]
    assert plans["s"].checks == [stat_check]  # its own check replaces the global one
    assert plans["s"].stats == [stat, stat_check]  # checks that want feedback hear it
    assert plans["r"].stats == [stat]
    assert default_plan.checks == [every]
    assert not any(p.origin_nodes for p in (*plans.values(), default_plan))
    flow_r.uses_origin_node = True
    plans, default_plan = chain.plans(builds)
    assert plans["r"].origin_nodes and not plans["s"].origin_nodes
    assert not default_plan.origin_nodes


def test_resources_without_rules_run_no_check() -> None:
    g = Guard(clock=ManualClock(0))
    g.load_rules({"flow": [{"resource": "limited", "count": 1}]})
    core: Any = g._core
    assert [type(c).__name__ for c in core.plans["limited"].checks] == ["FlowCheck"]
    assert core.default_plan.checks == []
    assert "free" not in core.plans
    assert not core.plans["limited"].origin_nodes  # no rule reads origins
    g.load_rules({"flow": [{"resource": "limited", "count": 1, "limit_app": "other"}]})
    assert core.plans["limited"].origin_nodes
