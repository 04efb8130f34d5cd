"""Picks the compiled header-field code, or its pure twin under ``GUARD_PURE=1``.

``IMPLEMENTATION`` is ``"c"`` or ``"py"``; see ``ext.sidecar._heads_py`` for the code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from ext.sidecar._heads_py import (
        CONNECTION,
        CONNECTION_WORDS,
        CONTENT_LENGTH,
        DROP,
        EXPECT,
        FORWARDED_FOR,
        FORWARDED_HOST,
        FORWARDED_PROTO,
        HOST,
        REQUEST_FIELDS,
        TRANSFER_ENCODING,
        RequestExtras,
        request_field_kind,
        response_fields,
        scan_fields,
    )

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("ext.sidecar._heads")
    CONNECTION = _mod.CONNECTION
    CONNECTION_WORDS = _mod.CONNECTION_WORDS
    CONTENT_LENGTH = _mod.CONTENT_LENGTH
    DROP = _mod.DROP
    EXPECT = _mod.EXPECT
    FORWARDED_FOR = _mod.FORWARDED_FOR
    FORWARDED_HOST = _mod.FORWARDED_HOST
    FORWARDED_PROTO = _mod.FORWARDED_PROTO
    HOST = _mod.HOST
    REQUEST_FIELDS = _mod.REQUEST_FIELDS
    TRANSFER_ENCODING = _mod.TRANSFER_ENCODING
    RequestExtras = _mod.RequestExtras
    request_field_kind = _mod.request_field_kind
    response_fields = _mod.response_fields
    scan_fields = _mod.scan_fields

__all__ = [
    "IMPLEMENTATION",
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
