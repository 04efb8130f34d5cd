"""Redis locks and Redlock, with a sync front here and asyncio twins in :mod:`locks.aio`.

Model. :class:`RedisLock` is a lease on one Redis server: ``SET NX PX`` with a random token per
acquisition, released and extended only by compare-and-act Lua scripts, so an owner never
touches another owner's key. :class:`Redlock` takes the same lease on a majority (N//2+1) of N
independent masters and counts it valid for ``ttl - elapsed - drift`` (drift = ttl * 0.01 + 2 ms).

Fencing. Every successful acquisition bumps a counter in the same script and returns it as
``fencing_token``: an integer that strictly increases for a name, also across expiry and a
restart of a node without persistence (a missing counter is seeded from the server clock in
microseconds). A store that rejects writes carrying a lower token than one it has seen stays
safe when a holder stalls past its lease. Redlock takes the maximum over its quorum and writes
it back to a majority before returning, so every later quorum overlaps it.

Waiting. Losers learn the holder's remaining PTTL. One pub/sub subscription per client wakes the
head of a local FIFO of waiters on each release; every wait is bounded by the holder's PTTL, so
an expiry without a release is noticed. Hand-over is near-FIFO within a process.

Ownership. In :mod:`locks` the owner is the lock instance; in :mod:`locks.aio` it is the task:
two tasks sharing one lock object never share a token. ``auto_renew=True`` extends the lock
every ttl/3 from one scheduler per process; on the first failed renewal the lock is marked
lost, ``owned()`` turns False (no later than the local deadline t0 + ttl - drift) and
``on_lost`` is called. ``reentrant=True`` keeps hold counts in a Redis hash, one field per owner.

Cost. An uncontended acquire or release is one EVALSHA round trip; Redlock is one multiplexed
round to all masters (plus a write-back of the fencing token when the counters disagree).
"""

from __future__ import annotations

from locks._redlock_sync import Redlock
from locks._sync import RedisLock
from locks.errors import LockError, LockNotOwnedError, LockTimeoutError

__all__ = ["RedisLock", "Redlock", "LockError", "LockNotOwnedError", "LockTimeoutError"]
