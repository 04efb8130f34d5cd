"""CPU usage and load for system rules, sampled once a second off the entry path.

Sentinel reads the host's load and CPU even inside a container (its issues #1146, #2165,
#2260, #3120), so a container limited to one CPU on a 64-CPU host looks idle while it is
saturated. Here, when the process's cgroup (v2) or one of its ancestors has a CPU limit:

* CPU usage is ``delta(cpu.stat usage_usec) / (delta(wall time) x limit in CPUs)``, where the
  limit is ``quota / period`` from that cgroup's ``cpu.max``;
* load is the one-minute exponentially damped average of the CPUs the cgroup kept busy
  (the same damping the kernel applies to its load average), so ``max_load`` compares with
  the container's CPUs as the host load average compares with the host's. Cgroups have no
  run-queue length, so waiting tasks are not counted.

Without a limit (or without cgroup v2) both come from the host: CPU usage from
``/proc/stat`` deltas (at least this process's own share, as Sentinel takes the larger of
the two) and load from the 1-minute load average (``/proc/loadavg``, else
``os.getloadavg``).

``SystemSampler.sample()`` reads once; ``start()`` runs it every ``interval`` seconds on a
daemon thread. Entries only read the ``SystemStatus`` it writes. Every path is under
``root``, so tests point a sampler at a tree of fixture files.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from guard.system import check as _twin

__all__ = [
    "CgroupCpu",
    "SystemSampler",
    "default_sampler",
    "find_cgroup_cpu",
    "parse_cpu_max",
    "parse_cpu_stat",
    "parse_proc_stat",
]

_log = logging.getLogger("guard.system")

LOAD_WINDOW_SEC = 60.0


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a ``cpu.max`` line (``"<quota> <period>"``), None when ``max``."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    quota = int(parts[0])
    period = int(parts[1]) if len(parts) > 1 else 100_000
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def parse_cpu_stat(text: str) -> int:
    """``usage_usec`` of a cgroup v2 ``cpu.stat`` file."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value)
    raise ValueError("cpu.stat: no usage_usec line")


def parse_proc_stat(text: str) -> tuple[int, int]:
    """``(busy, total)`` jiffies of the aggregate ``cpu`` line of ``/proc/stat``.

    Idle time is ``idle + iowait``; guest time is already inside user time.
    """
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]]  # user .. steal
            total = sum(values)
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            return total - idle, total
    raise ValueError("/proc/stat: no cpu line")


class CgroupCpu:
    """The cgroup whose CPU limit applies to this process: its directory and CPUs."""

    def __init__(self, path: Path, cpus: float) -> None:
        self.path = path
        self.cpus = cpus

    def usage_usec(self) -> int:
        return parse_cpu_stat((self.path / "cpu.stat").read_text())

    def __repr__(self) -> str:
        return f"CgroupCpu({str(self.path)!r}, cpus={self.cpus})"


def _cgroup2_mount(root: Path) -> Path | None:
    try:
        mounts = (root / "proc/self/mounts").read_text()
    except OSError:
        return None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return root / fields[1].lstrip("/")
    return None


def find_cgroup_cpu(root: str | os.PathLike[str] = "/") -> CgroupCpu | None:
    """The nearest cgroup v2 (this process's, or an ancestor) with a CPU limit, or None.

    Reads ``proc/self/cgroup`` (the ``0::<path>`` line) and ``proc/self/mounts`` (where
    cgroup2 is mounted) under ``root``.
    """
    base = Path(root)
    mount = _cgroup2_mount(base)
    if mount is None:
        return None
    try:
        lines = (base / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    own = next((line[3:] for line in lines if line.startswith("0::")), None)
    if own is None:
        return None
    path = mount / own.strip().lstrip("/")
    while True:
        try:
            cpus = parse_cpu_max((path / "cpu.max").read_text())
        except (OSError, ValueError):
            cpus = None
        if cpus is not None and (path / "cpu.stat").exists():
            return CgroupCpu(path, cpus)
        if path == mount or mount not in path.parents:
            return None
        path = path.parent


class SystemSampler:
    """Refreshes a ``SystemStatus`` (CPU usage and load) from the cgroup or the host.

    :param status: the status to write; a fresh one by default.
    :param root: the file-system root the ``proc`` and cgroup files are read under.
    :param interval: seconds between samples of the background thread.
    """

    def __init__(
        self, status: Any = None, *, root: str | os.PathLike[str] = "/", interval: float = 1.0
    ):
        self.status = status if status is not None else _twin.SystemStatus()
        self.root = Path(root)
        self.interval = interval
        self.cgroup = find_cgroup_cpu(self.root)
        self._last: tuple[float, int, int, float] | None = None
        self._load = -1.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._failed = False

    @property
    def source(self) -> str:
        """``"cgroup"`` when a cgroup CPU limit is used, else ``"host"``."""
        return "cgroup" if self.cgroup is not None else "host"

    def sample(self, now: float | None = None) -> None:
        """Read the counters once and update the status (CPU needs two samples).

        :param now: monotonic seconds of this reading (``time.monotonic()`` by default).
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            if self.cgroup is not None:
                self._sample_cgroup(now, self.cgroup)
            else:
                self._sample_host(now)

    def _sample_cgroup(self, now: float, cgroup: CgroupCpu) -> None:
        usage = cgroup.usage_usec()
        last = self._last
        self._last = (now, usage, 0, 0.0)
        if last is None or now <= last[0]:
            return
        elapsed_usec = (now - last[0]) * 1e6
        busy_cpus = max(0.0, (usage - last[1]) / elapsed_usec)
        self.status.cpu = min(1.0, busy_cpus / cgroup.cpus)
        if self._load < 0:
            self._load = busy_cpus
        else:
            decay = math.exp(-(now - last[0]) / LOAD_WINDOW_SEC)
            self._load = self._load * decay + busy_cpus * (1.0 - decay)
        self.status.load = self._load

    def _sample_host(self, now: float) -> None:
        busy, total = parse_proc_stat((self.root / "proc/stat").read_text())
        process = time.process_time()
        last = self._last
        self._last = (now, busy, total, process)
        self.status.load = self._host_load()
        if last is None or now <= last[0] or total <= last[2]:
            return
        host = (busy - last[1]) / (total - last[2])
        cpus = os.cpu_count() or 1
        own = (process - last[3]) / (now - last[0]) / cpus if self.root == Path("/") else 0.0
        self.status.cpu = min(1.0, max(0.0, host, own))

    def _host_load(self) -> float:
        try:
            return float((self.root / "proc/loadavg").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return os.getloadavg()[0]

    # -- background thread ----------------------------------------------------------------

    def start(self) -> None:
        """Sample now and then every ``interval`` seconds on a daemon thread (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="guard-system-sampler", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread (the status keeps its last values)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            try:
                self.sample()
                self._failed = False
            except Exception:
                if not self._failed:  # log a broken source once, not every second
                    _log.exception("system sampler: reading CPU/load failed")
                self._failed = True
            if self._stop.wait(self.interval):
                return


_default: SystemSampler | None = None
_default_lock = threading.Lock()


def default_sampler() -> SystemSampler:
    """The process-wide sampler every engine's system rules share (not started)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = SystemSampler()
    return _default
