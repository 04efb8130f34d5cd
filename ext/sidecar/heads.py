"""Header fields on their way through the proxy: which ones it reads, drops or adds.

Requests: ``REQUEST_FIELDS`` names, by lower-case name, every field the client side must
look at; any other field is forwarded as received without a second look.

Responses: the upstream's head arrives as raw bytes (llhttp has validated it: CRLF line
endings, no folding, no space before a colon), so ``response_fields`` finds the few
hop-by-hop fields with one regular-expression scan of the lower-cased block instead of
splitting every line; only a ``Connection`` field that names other fields sends a head
line by line.
"""

from __future__ import annotations

import re

from ext.sidecar.responses import HOP_BY_HOP

__all__ = [
    "CONNECTION",
    "CONNECTION_WORDS",
    "CONTENT_LENGTH",
    "DROP",
    "EXPECT",
    "FORWARDED_FOR",
    "FORWARDED_HOST",
    "FORWARDED_PROTO",
    "HOST",
    "REQUEST_FIELDS",
    "TRANSFER_ENCODING",
    "RequestExtras",
    "response_fields",
]

# Kinds of request fields. The two forwarded ones are also bit flags ("the client sent it").
FORWARDED_PROTO = 1  # forwarded; the proxy adds its own only when absent
FORWARDED_HOST = 2  # likewise
HOST = 3  # forwarded; read for the 1.1 check and X-Forwarded-Host
CONTENT_LENGTH = 4  # forwarded; read for framing
TRANSFER_ENCODING = 5  # dropped; the body is re-chunked
EXPECT = 6  # dropped; the proxy answers 100-continue itself
CONNECTION = 7  # dropped, with the fields it names
FORWARDED_FOR = 8  # dropped; re-added with the client's address appended
DROP = 9  # other hop-by-hop fields

REQUEST_FIELDS: dict[bytes, int] = {
    **dict.fromkeys(HOP_BY_HOP, DROP),
    b"host": HOST,
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"expect": EXPECT,
    b"connection": CONNECTION,
    b"x-forwarded-for": FORWARDED_FOR,
    b"x-forwarded-proto": FORWARDED_PROTO,
    b"x-forwarded-host": FORWARDED_HOST,
}

# Connection tokens that name no field to drop beyond the hop-by-hop ones.
CONNECTION_WORDS = HOP_BY_HOP | {b"close", b""}
# A hop-by-hop field line in a lower-cased head: its name and value.
_HOP_LINE = re.compile(
    rb"\r\n(connection|keep-alive|proxy-connection|te|trailer|transfer-encoding|upgrade"
    rb"|proxy-authenticate|proxy-authorization):([^\r]*)"
)


class RequestExtras:
    """What a request's less common fields said; absent when it had none of them.

    Most requests carry no field the proxy must act on besides Host, so the client side
    creates this only when one arrives and resets a single reference per request.
    """

    __slots__ = ("dropped", "expect", "forwarded", "length", "te", "te_codings", "tokens", "xff")

    def __init__(self) -> None:
        self.length = -1  # Content-Length, -1 when absent or not a number
        self.te: bytes | None = None  # Transfer-Encoding values, joined
        self.te_codings = b""  # codings before "chunked", e.g. b"gzip, " (to forward)
        self.expect = False  # "Expect: 100-continue" on a request with a body
        self.tokens: frozenset[bytes] = frozenset()  # Connection tokens, lower case
        self.xff: bytes | None = None  # the client's X-Forwarded-For values, joined
        self.forwarded = 0  # FORWARDED_PROTO | FORWARDED_HOST: fields the client sent
        # fields not forwarded, still readable by route params and the origin header
        self.dropped: list[tuple[bytes, bytes]] = []


def response_fields(block: bytes, kept_alive: bool) -> tuple[bytes, bool, bool]:
    """The fields of an upstream response head to forward, minus hop-by-hop ones.

    :param block: the head after the status line: ``b"\\r\\n"`` then each field line with
        its CRLF.
    :param kept_alive: llhttp's ``should_keep_alive()`` for the response: true only when
        the body's end is marked (Content-Length, chunked, or a status without a body),
        which spares a search for Content-Length in the common case.
    :returns: ``(lines, has_length, was_chunked)``: the lines to forward (each ending
        with CRLF), whether the head delimits the body (Content-Length, or a status
        without one), and whether the upstream sent it chunked.
    """
    low = block.lower()
    m = _HOP_LINE.search(low)
    if m is None:  # nothing to drop: forwarded as received
        return block[2:], kept_alive or b"\ncontent-length:" in low, False
    kept = []
    chunked = False
    start = 2
    while m is not None:
        name = m.group(1)
        if name == b"connection":
            if m.group(2).strip() not in CONNECTION_WORDS:
                return _fields_by_line(block, kept_alive)  # names fields to drop: rare
        elif name == b"transfer-encoding":
            chunked = True
        cut, end = m.span()
        kept.append(block[start : cut + 2])
        start = end + 2
        m = _HOP_LINE.search(low, end)
    kept.append(block[start:])
    has_length = (kept_alive and not chunked) or b"\ncontent-length:" in low
    return b"".join(kept), has_length, chunked


def _fields_by_line(block: bytes, kept_alive: bool) -> tuple[bytes, bool, bool]:
    """``response_fields`` for any head: one line at a time."""
    if len(block) <= 2:
        return b"", kept_alive, False
    lines = block[2:-2].split(b"\r\n")
    drop = HOP_BY_HOP
    chunked = has_length = False
    for line in lines:
        name, _, value = line.partition(b":")
        lname = name.lower()
        if lname == b"transfer-encoding":
            chunked = True
        elif lname == b"connection" and value.strip().lower() not in CONNECTION_WORDS:
            # also drop the fields the upstream named as hop-by-hop
            drop = drop | ({t.strip().lower() for t in value.split(b",")} - CONNECTION_WORDS)
        elif lname == b"content-length":
            has_length = True
    kept = [line + b"\r\n" for line in lines if line.partition(b":")[0].lower() not in drop]
    return b"".join(kept), has_length or (kept_alive and not chunked), chunked
