# cython: annotation_typing=False
# (C types come from the .pxd; the annotations are for mypy and readers)
"""Header fields the proxy reads, drops or adds, both ways (pure-Python truth of the twin).

Requests: ``REQUEST_FIELDS`` names, by lower-case name, every field the client side must
look at (``request_field_kind``); any other field is forwarded as received without a
second look. The few fields it acts on are kept in a ``RequestExtras``, created only for
requests that carry one.

Responses: ``response_fields`` drops the hop-by-hop fields of an upstream head.

Both run on every request, so the compiled twin walks the bytes itself (field names are
compared case-insensitively in place, nothing is lower-cased or split); the pure twin
uses ``bytes.lower``, a dict and a regular expression, since a byte loop is slow in
Python. Tests check that the two ways agree.
"""

from __future__ import annotations

import re

import cython

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
    "request_field_kind",
    "response_fields",
    "scan_fields",
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

# The same names by length, for the compiled twin's in-place comparison.
_BY_LENGTH: dict[int, tuple[tuple[bytes, int], ...]] = {}
for _name, _kind in REQUEST_FIELDS.items():
    _BY_LENGTH[len(_name)] = (*_BY_LENGTH.get(len(_name), ()), (_name, _kind))

# Connection tokens that name no field to drop beyond the hop-by-hop ones.
CONNECTION_WORDS = HOP_BY_HOP | {b"close", b""}


def request_field_kind(name: bytes) -> int:
    """``REQUEST_FIELDS``' kind for a field name in any case; 0 for any other field."""
    if cython.compiled:
        candidates = _BY_LENGTH.get(len(name))
        if candidates is not None:
            for known, kind in candidates:
                if name_is(name, 0, known):
                    return kind
        return 0
    return REQUEST_FIELDS.get(name.lower(), 0)


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


# A hop-by-hop field line in a lower-cased head: its name and value.
_HOP_LINE = re.compile(
    rb"\r\n(connection|keep-alive|proxy-connection|te|trailer|transfer-encoding|upgrade"
    rb"|proxy-authenticate|proxy-authorization):([^\r]*)"
)
# What scan_fields makes of a field name.
_OTHER, _LENGTH, _CONNECTION, _CHUNKED, _HOP = range(5)


def response_fields(head: bytes, kept_alive: bool) -> tuple[bytes, bool, bool]:
    """The fields of an upstream response head to forward, minus hop-by-hop ones.

    The head arrives as raw bytes that llhttp has validated (CRLF line endings, no
    folding, no space before a colon). The compiled twin walks it once, byte by byte
    (``scan_fields``); the pure one finds the few hop-by-hop fields with one
    regular-expression scan of the lower-cased head, since a byte loop is slow in Python.
    Only a ``Connection`` field that names other fields sends a head line by line.

    :param head: the status line and each field line, each with its CRLF (not the
        empty line that ends the head).
    :param kept_alive: llhttp's ``should_keep_alive()`` for the response: true only when
        the body's end is marked (Content-Length, chunked, or a status without a body),
        which spares a search for Content-Length in the common case.
    :returns: ``(lines, has_length, was_chunked)``: the lines to forward (each ending
        with CRLF), whether the head delimits the body (Content-Length, or a status
        without one), and whether the upstream sent it chunked.
    """
    if cython.compiled:
        return scan_fields(head, kept_alive)
    first = head.find(b"\r\n")  # the status line's end
    low = head.lower()
    m = _HOP_LINE.search(low, first)
    start = first + 2
    if m is None:  # nothing to drop: forwarded as received
        return head[start:], kept_alive or b"\ncontent-length:" in low, False
    kept = []
    chunked = False
    while m is not None:
        name = m.group(1)
        if name == b"connection":
            if m.group(2).strip() not in CONNECTION_WORDS:
                return _fields_by_line(head, kept_alive)  # names fields to drop: rare
        elif name == b"transfer-encoding":
            chunked = True
        cut, end = m.span()
        kept.append(head[start : cut + 2])
        start = end + 2
        m = _HOP_LINE.search(low, end)
    kept.append(head[start:])
    has_length = (kept_alive and not chunked) or b"\ncontent-length:" in low
    return b"".join(kept), has_length, chunked


def scan_fields(head: bytes, kept_alive: bool) -> tuple[bytes, bool, bool]:
    """``response_fields`` in one pass over the bytes (fast only when compiled)."""
    n = len(head)
    i = 0
    while i < n and head[i] != 13:  # b"\r": the status line's end
        i += 1
    i += 2
    start = piece = i  # the first field line; the current run of kept lines
    kept: list[bytes] | None = None
    has_length = chunked = False
    while i < n:
        j = i
        while j < n and head[j] != 13:  # this line's end
            j += 1
        k = i
        while k < j and head[k] != 58:  # b":"
            k += 1
        kind = _field_kind(head, i, k - i)
        if kind == _LENGTH:
            has_length = True
        elif kind != _OTHER:
            if kind == _CONNECTION and not _names_nothing(head, k + 1, j):
                return _fields_by_line(head, kept_alive)  # names fields to drop: rare
            elif kind == _CHUNKED:
                chunked = True
            if kept is None:
                kept = []
            kept.append(head[piece:i])
            piece = j + 2
        i = j + 2
    if kept is None:
        fields = head[start:]
    else:
        kept.append(head[piece:])
        fields = b"".join(kept)
    return fields, has_length or (kept_alive and not chunked), chunked


def _names_nothing(head: bytes, i: int, j: int) -> bool:
    """The Connection value ``head[i:j]`` is just "keep-alive" or "close" (any case)."""
    while i < j and (head[i] == 32 or head[i] == 9):  # leading spaces and tabs
        i += 1
    while j > i and (head[j - 1] == 32 or head[j - 1] == 9):
        j -= 1
    if j - i == 10 and name_is(head, i, b"keep-alive"):
        return True
    if j - i == 5 and name_is(head, i, b"close"):
        return True
    return head[i:j].lower() in CONNECTION_WORDS  # other hop-by-hop names, or empty


def _field_kind(head: bytes, i: int, n: int) -> int:
    """What the field name ``head[i:i + n]`` is to the proxy (case-insensitive)."""
    if n == 14:
        return _LENGTH if name_is(head, i, b"content-length") else _OTHER
    if n == 10:
        if name_is(head, i, b"connection"):
            return _CONNECTION
        return _HOP if name_is(head, i, b"keep-alive") else _OTHER
    if n == 17:
        return _CHUNKED if name_is(head, i, b"transfer-encoding") else _OTHER
    if n == 2:
        return _HOP if name_is(head, i, b"te") else _OTHER
    if n == 7:
        return _HOP if name_is(head, i, b"trailer") or name_is(head, i, b"upgrade") else _OTHER
    if n == 16:
        return _HOP if name_is(head, i, b"proxy-connection") else _OTHER
    if n == 18:
        return _HOP if name_is(head, i, b"proxy-authenticate") else _OTHER
    if n == 19:
        return _HOP if name_is(head, i, b"proxy-authorization") else _OTHER
    return _OTHER


def name_is(head: bytes, i: int, name: bytes) -> bool:
    """``head[i:]`` starts with the lower-case ``name``, in any case.

    OR-ing 0x20 lower-cases ASCII letters and leaves "-" alone; no other token character
    turns into a letter or "-" that way.
    """
    for k in range(len(name)):  # noqa: SIM110 (a C loop when compiled; all() is not)
        if head[i + k] | 32 != name[k]:
            return False
    return True


def _fields_by_line(head: bytes, kept_alive: bool) -> tuple[bytes, bool, bool]:
    """``response_fields`` for any head: one line at a time."""
    start = head.find(b"\r\n") + 2
    if len(head) <= start:
        return b"", kept_alive, False
    lines = head[start : len(head) - 2].split(b"\r\n")
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
