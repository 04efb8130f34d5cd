"""CPU and load sampling from fixture trees of cgroup v2 and /proc files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from guard.system.sampler import (
    SystemSampler,
    find_cgroup_cpu,
    parse_cpu_max,
    parse_cpu_stat,
    parse_proc_stat,
)

DATA = Path(__file__).parent / "data"
POD = "sys/fs/cgroup/kubepods/pod1"


@pytest.fixture
def container(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / "container", tmp_path / "container"))


@pytest.fixture
def host(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / "host", tmp_path / "host"))


def test_parse_cpu_max() -> None:
    assert parse_cpu_max("max 100000\n") is None
    assert parse_cpu_max("50000 100000\n") == 0.5
    assert parse_cpu_max("200000 100000") == 2.0
    assert parse_cpu_max("150000") == 1.5  # period defaults to 100 ms
    assert parse_cpu_max("") is None


def test_parse_cpu_stat() -> None:
    assert parse_cpu_stat("usage_usec 42\nuser_usec 40\n") == 42
    with pytest.raises(ValueError, match="usage_usec"):
        parse_cpu_stat("user_usec 40\n")


def test_parse_proc_stat() -> None:
    busy, total = parse_proc_stat((DATA / "host/proc/stat").read_text())
    # user+nice+system = 1300 busy; idle+iowait = 7200 idle.
    assert (busy, total) == (1300, 8500)
    with pytest.raises(ValueError):
        parse_proc_stat("intr 1\n")


def test_find_cgroup_walks_up_to_the_limited_ancestor(container: Path) -> None:
    found = find_cgroup_cpu(container)
    assert found is not None
    assert found.path == container / POD  # the app's own cpu.max says "max"
    assert found.cpus == 0.5
    assert found.usage_usec() == 2_000_000


def test_own_limit_wins_over_ancestor(container: Path) -> None:
    (container / POD / "app/cpu.max").write_text("200000 100000\n")
    found = find_cgroup_cpu(container)
    assert found is not None and found.path == container / POD / "app"
    assert found.cpus == 2.0


def test_no_limit_anywhere_means_host(container: Path, host: Path) -> None:
    (container / POD / "cpu.max").write_text("max 100000\n")
    assert find_cgroup_cpu(container) is None
    assert find_cgroup_cpu(host) is None  # cgroup v1 only: no cgroup2 mount
    assert SystemSampler(root=host).source == "host"


def test_container_cpu_and_load_from_usage_deltas(container: Path) -> None:
    sampler = SystemSampler(root=container)
    assert sampler.source == "cgroup"
    sampler.sample(now=100.0)
    assert (sampler.status.cpu, sampler.status.load) == (-1.0, -1.0)  # needs two readings
    stat = container / POD / "cpu.stat"
    stat.write_text("usage_usec 2250000\n")  # 0.25 CPU-seconds in 1 s, limit 0.5 CPU
    sampler.sample(now=101.0)
    assert sampler.status.cpu == pytest.approx(0.5)
    assert sampler.status.load == pytest.approx(0.25)  # first load: the busy CPUs
    stat.write_text("usage_usec 3250000\n")  # 1 CPU-second in 1 s: over the quota (clamped)
    sampler.sample(now=102.0)
    assert sampler.status.cpu == 1.0
    decay = 2.718281828459045 ** (-1 / 60)
    assert sampler.status.load == pytest.approx(0.25 * decay + 1.0 * (1 - decay))
    # The host load average (7.5 in the fixture) is not what a container sees.
    assert sampler.status.load < 1.0


def test_host_cpu_from_proc_stat_and_loadavg(host: Path) -> None:
    sampler = SystemSampler(root=host)
    sampler.sample(now=10.0)
    assert sampler.status.load == 3.25
    assert sampler.status.cpu == -1.0
    (host / "proc/stat").write_text("cpu  1600 50 350 7300 200 0 0 0 0 0\n")
    (host / "proc/loadavg").write_text("4.50 2.00 1.00 1/200 999\n")
    sampler.sample(now=11.0)
    assert sampler.status.cpu == pytest.approx(700 / 1000)  # busy +700 of +1000 jiffies
    assert sampler.status.load == 4.5


def test_background_thread_samples_about_once_per_interval(container: Path) -> None:
    sampler = SystemSampler(root=container, interval=0.05)
    sampler.start()
    sampler.start()  # idempotent
    try:
        stat = container / POD / "cpu.stat"
        deadline = time.monotonic() + 5
        usage = 2_000_000
        while sampler.status.cpu < 0 and time.monotonic() < deadline:
            usage += 10_000
            stat.write_text(f"usage_usec {usage}\n")
            time.sleep(0.02)
        assert 0.0 <= sampler.status.cpu <= 1.0
        assert sampler.running
    finally:
        sampler.stop()
    assert not sampler.running


def test_broken_source_is_logged_once_and_thread_survives(
    container: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sampler = SystemSampler(root=container, interval=0.02)
    (container / POD / "cpu.stat").unlink()
    sampler.start()
    try:
        time.sleep(0.2)
        assert sampler.running
    finally:
        sampler.stop()
    assert caplog.text.count("reading CPU/load failed") == 1


def test_real_machine_gives_sane_values() -> None:
    sampler = SystemSampler()
    sampler.sample(now=time.monotonic())
    time.sleep(0.2)
    sampler.sample(now=time.monotonic())
    assert 0.0 <= sampler.status.cpu <= 1.0
    assert sampler.status.load >= 0.0
