"""The data plane's three twins (client protocol, exchange, upstream) load together."""

from __future__ import annotations

from ext.sidecar import exchange, protocol, upstream
from guard._select import PURE


def test_one_implementation_for_the_whole_data_plane() -> None:
    # The compiled exchange is typed against the compiled protocol and upstream classes,
    # so a broken build must not mix twins silently.
    want = "py" if PURE else "c"
    got = (protocol.IMPLEMENTATION, exchange.IMPLEMENTATION, upstream.IMPLEMENTATION)
    assert got == (want, want, want)
