"""Failures on the way to the upstream and back, as the exchange traces them.

``UpstreamError`` (and its timeout) and ``UpstreamStatusError`` are traced on the request's
guard entry as exceptions, so degrade rules count them; ``ClientGoneError`` is not.
"""

from __future__ import annotations

__all__ = ["ClientGoneError", "UpstreamError", "UpstreamStatusError", "UpstreamTimeoutError"]


class UpstreamError(Exception):
    """The upstream failed: refused connection, reset, malformed or truncated response.

    Traced on the resource's entry as an exception, so degrade rules count it.
    """


class UpstreamTimeoutError(UpstreamError, TimeoutError):
    """The upstream did not connect or answer in time (answered 504)."""


class UpstreamStatusError(Exception):
    """The upstream answered 5xx (traced for degrade rules)."""


class ClientGoneError(Exception):
    """The client went away before its answer was complete (not traced)."""
