"""The data plane's twins (protocol, exchange, upstream, admission, heads) load together."""

from __future__ import annotations

from ext.sidecar import admission, exchange, heads, protocol, upstream
from guard._select import PURE


def test_one_implementation_for_the_whole_data_plane() -> None:
    # The compiled twins are typed against each other's classes and functions, so a
    # broken build must not mix twins silently.
    want = "py" if PURE else "c"
    got = {m.__name__: m.IMPLEMENTATION for m in (admission, exchange, heads, protocol, upstream)}
    assert set(got.values()) == {want}, got
