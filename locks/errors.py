"""Errors of the locks package: one root, two precise subclasses."""

from __future__ import annotations

__all__ = ["LockError", "LockNotOwnedError", "LockTimeoutError"]


class LockError(Exception):
    """Root of every error raised by :mod:`locks`.

    :param name: the lock's name, kept in ``.name``.
    """

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class LockNotOwnedError(LockError):
    """Raised by ``release()`` or ``extend()`` when this owner does not hold the lock.

    The lock expired, was taken over, was released already or was never acquired. Nothing was
    changed in Redis: another holder's key is never touched.
    """


class LockTimeoutError(LockError, TimeoutError):
    """Raised by ``with lock:`` when the lock's ``timeout`` runs out before it is acquired."""
