"""The default chain runs the five check slots in Sentinel's order."""

from __future__ import annotations

import pytest

from guard import (
    AuthorityBlocked,
    BlockError,
    DegradeBlocked,
    FlowBlocked,
    Guard,
    ManualClock,
    ParamFlowBlocked,
    SystemBlocked,
)
from guard.engine import default_chain


def test_check_slots_in_sentinel_order() -> None:
    chain = default_chain()
    assert [s.name for s in chain.check] == [
        "authority",
        "system",
        "param_flow",
        "flow",
        "degrade",
    ]
    assert [s.order for s in chain.check] == [1000, 2000, 3000, 4000, 5000]


def test_first_refusing_slot_wins() -> None:
    clock = ManualClock(0)
    g = Guard(clock=clock)
    every = {
        "authority": [{"resource": "r", "strategy": "black", "origins": ["bad"]}],
        "system": {"max_qps": 0},
        "param_flow": [{"resource": "r", "param_index": 0, "count": 0}],
        "flow": [{"resource": "r", "count": 0}],
        "degrade": [
            {"resource": "r", "strategy": "error_count", "threshold": 0, "recovery_sec": 1}
        ],
    }
    g.load_rules(every)
    # Open the breaker first, with only the degrade rule loaded.
    g.load_rules({"degrade": every["degrade"]})
    for _ in range(5):
        try:
            with g.entry("r"):
                raise ValueError
        except ValueError:
            pass
    g.load_rules(every)  # the unchanged degrade rule keeps its open breaker
    expected = [
        (AuthorityBlocked, {"origin": "bad", "inbound": True, "args": ("v",)}),
        (SystemBlocked, {"inbound": True, "args": ("v",)}),
        (ParamFlowBlocked, {"args": ("v",)}),
        (FlowBlocked, {}),
    ]
    for error, kwargs in expected:
        with pytest.raises(BlockError) as info:
            g.enter("r", **kwargs)
        assert type(info.value) is error
    g.load_rules({"degrade": every["degrade"]})
    with pytest.raises(DegradeBlocked):
        g.enter("r")
