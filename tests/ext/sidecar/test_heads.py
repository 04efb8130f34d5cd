"""Which header fields the proxy reads or drops, both ways.

The compiled twin walks the bytes in place (``scan_fields``, ``request_field_kind``); the
pure twin lower-cases and uses a dict and a regular expression. Both must agree.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ext.sidecar import _heads_py
from ext.sidecar.heads import REQUEST_FIELDS, request_field_kind, response_fields, scan_fields
from ext.sidecar.responses import HOP_BY_HOP

STATUS = b"HTTP/1.1 200 OK\r\n"
Reader = Callable[[bytes, bool], tuple[bytes, bool, bool]]
READERS = [response_fields, scan_fields, _heads_py.response_fields]


@pytest.mark.parametrize("read", READERS, ids=["selected", "scan", "pure-regex"])
@pytest.mark.parametrize(
    ("fields", "kept_alive", "expected"),
    [
        (b"", True, (b"", True, False)),
        (b"A: 1\r\nContent-Length: 5\r\n", False, (b"A: 1\r\nContent-Length: 5\r\n", True, False)),
        (b"A: 1\r\n", False, (b"A: 1\r\n", False, False)),  # read until close
        (
            b"Server: x\r\nContent-Length: 5\r\nConnection: keep-alive\r\n",
            True,
            (b"Server: x\r\nContent-Length: 5\r\n", True, False),
        ),
        (b"Connection: close\r\nA: 1\r\n", False, (b"A: 1\r\n", False, False)),
        (b"CONNECTION:Keep-Alive\r\n", True, (b"", True, False)),
        (
            b"A: 1\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\nB: 2\r\n",
            True,
            (b"A: 1\r\nB: 2\r\n", False, True),
        ),
        # a Connection field naming other fields drops them too
        (b"Connection: X-A\r\nX-A: 1\r\nB: 2\r\n", True, (b"B: 2\r\n", True, False)),
        # names that merely start like hop-by-hop ones are kept
        (
            b"TEST: 1\r\nUpgraded: no\r\nTE: x\r\nProxy-Auth: y\r\n",
            True,
            (b"TEST: 1\r\nUpgraded: no\r\nProxy-Auth: y\r\n", True, False),
        ),
    ],
)
def test_response_fields(
    read: Reader, fields: bytes, kept_alive: bool, expected: tuple[bytes, bool, bool]
) -> None:
    assert read(STATUS + fields, kept_alive) == expected


_names = st.sampled_from(
    [
        "Server",
        "Date",
        "Content-Type",
        "Content-Length",
        "content-length",
        "Connection",
        "connection",
        "Keep-Alive",
        "Transfer-Encoding",
        "TE",
        "Trailer",
        "Upgrade",
        "Proxy-Connection",
        "Proxy-Authenticate",
        "proxy-authorization",
        "X-A",
        "Tea",
        "Upgrades",
        "Set-Cookie",
    ]
)
_values = st.sampled_from(["1", "keep-alive", "close", "chunked", "X-A", "Keep-Alive, X-A", ""])


@given(st.lists(st.tuples(_names, _values), max_size=8), st.booleans())
def test_the_byte_walk_agrees_with_the_regular_expression(
    fields: list[tuple[str, str]], kept_alive: bool
) -> None:
    head = STATUS + b"".join(f"{n}: {v}\r\n".encode() for n, v in fields)
    assert scan_fields(head, kept_alive) == _heads_py.response_fields(head, kept_alive)


def test_every_hop_by_hop_request_field_is_sorted_out() -> None:
    assert REQUEST_FIELDS.keys() >= HOP_BY_HOP


@given(
    st.sampled_from(sorted(REQUEST_FIELDS))
    | st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABCXYZ", min_size=1, max_size=20).map(
        str.encode
    ),
    st.booleans(),
)
def test_request_field_kinds_in_any_case(name: bytes, upper: bool) -> None:
    sent = name.upper() if upper else name.title()
    assert request_field_kind(sent) == REQUEST_FIELDS.get(name.lower(), 0)
    assert request_field_kind(sent) == _heads_py.request_field_kind(sent)
