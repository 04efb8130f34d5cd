"""Hot-parameter flow control: a limit per distinct value of one call argument."""

from __future__ import annotations

from guard.param_flow.rule import ParamFlowControl, ParamFlowRule, ParamValue

__all__ = ["ParamFlowControl", "ParamFlowRule", "ParamValue"]
