"""asyncio twins of :class:`locks.RedisLock` and :class:`locks.Redlock`.

They take ``redis.asyncio`` clients and have the same methods as coroutines (``token``,
``fencing_token`` and ``validity`` stay properties). The owner is the asyncio task: two tasks
sharing one lock object never share a token. Wait with ``acquire(timeout=...)`` rather than
``asyncio.wait_for``, which runs the acquire in another task. A cancelled acquire, release or
extend finishes its command first, so it never leaves a key that no owner holds.
"""

from __future__ import annotations

from locks._async import RedisLock
from locks._redlock_async import Redlock
from locks.errors import LockError as LockError
from locks.errors import LockNotOwnedError as LockNotOwnedError
from locks.errors import LockTimeoutError as LockTimeoutError

# The errors above are the same classes as in `locks`, re-exported for convenience.
__all__ = ["RedisLock", "Redlock"]
