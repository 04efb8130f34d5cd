"""Request header fields the proxy reads, drops or adds on their way to the upstream.

``REQUEST_FIELDS`` names, by lower-case name, every field the client side must look at;
any other field is forwarded as received without a second look. The few fields it acts
on are kept in a ``RequestExtras``, created only for requests that carry one. (Response
heads are read by ``ext.sidecar._upstream_py.response_fields``.)
"""

from __future__ import annotations

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
