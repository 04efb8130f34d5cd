"""Hop-by-hop fields of upstream response heads, found without splitting every line."""

from __future__ import annotations

import pytest

from ext.sidecar.heads import REQUEST_FIELDS, response_fields
from ext.sidecar.responses import HOP_BY_HOP


@pytest.mark.parametrize(
    ("block", "kept_alive", "expected"),
    [
        (b"\r\n", True, (b"", True, False)),
        (
            b"\r\nA: 1\r\nContent-Length: 5\r\n",
            False,
            (b"A: 1\r\nContent-Length: 5\r\n", True, False),
        ),
        (b"\r\nA: 1\r\n", False, (b"A: 1\r\n", False, False)),  # read until close
        (
            b"\r\nServer: x\r\nContent-Length: 5\r\nConnection: keep-alive\r\n",
            True,
            (b"Server: x\r\nContent-Length: 5\r\n", True, False),
        ),
        (b"\r\nConnection: close\r\nA: 1\r\n", False, (b"A: 1\r\n", False, False)),
        (
            b"\r\nA: 1\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\nB: 2\r\n",
            True,
            (b"A: 1\r\nB: 2\r\n", False, True),
        ),
        # a Connection field naming other fields drops them too
        (b"\r\nConnection: X-A\r\nX-A: 1\r\nB: 2\r\n", True, (b"B: 2\r\n", True, False)),
        # names that merely start like hop-by-hop ones are kept
        (
            b"\r\nTEST: 1\r\nUpgraded: no\r\nTE: x\r\n",
            True,
            (b"TEST: 1\r\nUpgraded: no\r\n", True, False),
        ),
    ],
)
def test_response_fields(
    block: bytes, kept_alive: bool, expected: tuple[bytes, bool, bool]
) -> None:
    assert response_fields(block, kept_alive) == expected


def test_every_hop_by_hop_request_field_is_sorted_out() -> None:
    assert REQUEST_FIELDS.keys() >= HOP_BY_HOP
