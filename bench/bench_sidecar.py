"""Sidecar throughput, latency and CPU per request against nginx, in one run.

    python bench/bench_sidecar.py [--seconds 4] [--repeats 3]

Setup (2 cores): the upstream (an nginx ``return 200``) and wrk share core 0; the proxy
under test (nginx ``proxy_pass`` with upstream keepalive, or ``guard sidecar``) runs alone
on core 1. CPU per request is the proxy's own CPU time (``/proc/PID/task/*/schedstat``)
divided by the requests wrk completed, so other load on the machine does not inflate it.

Cases: upstream direct; nginx proxy; sidecar without rules; sidecar with a QPS rule that
never blocks; sidecar with a QPS rule that blocks ~90% (its count is 10% of the
non-blocking throughput), measured in turns with the non-blocking one so the cost of a
rejection is compared with a proxied request from the same minutes (each block90 run is
paired with the proxied run just before it). Cases take turns in every repeat and medians
are reported, since the machine is shared. Then p50 at one connection (direct, nginx and
sidecar: both proxies pay the same cross-core hops, so nginx shows the floor) and the
sidecar's peak RSS while 32 connections stream 50 MB bodies. wrk and nginx come from
Debian packages; this script installs them with apt-get when missing (nginx is only
needed as the reference and the upstream; without it the script stops with a message).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROXY_CORE, LOAD_CORE = "1", "0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_tools() -> tuple[str, str | None]:
    missing = [p for p, b in (("wrk", "wrk"), ("nginx-light", "nginx")) if not shutil.which(b)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(missing)} with apt-get ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env, capture_output=True)
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench_sidecar: wrk is required (apt-get install wrk)")
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        print("bench_sidecar: nginx could not be installed; the nginx reference is skipped")
    return wrk, nginx


def cpu_ns(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            pass
    return total


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(wrk: str, url: str, seconds: float, conns: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            wrk,
            "-t1",
            f"-c{conns}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out, re.M)
        lat[pct] = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {
        "requests": requests,
        "rps": rps,
        "p50_ms": lat["50"],
        "p99_ms": lat["99"],
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


class Proc:
    def __init__(self, argv: list[str], core: str, **kw: Any) -> None:
        self.p = subprocess.Popen(["taskset", "-c", core, *argv], **kw)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def nginx_conf(work: Path, upstream_port: int, proxy_port: int, big: Path) -> tuple[Path, Path]:
    common = f"""worker_processes 1; daemon off; error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
"""
    http_head = f"""access_log off; client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp;
fastcgi_temp_path {work}/tmp; uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
keepalive_requests 1000000;"""
    up = work / "upstream.conf"
    up.write_text(
        common + f"pid {work}/up.pid;\nhttp {{ {http_head}\n"
        f"server {{ listen 127.0.0.1:{upstream_port} backlog=4096; "
        f'location / {{ return 200 "hello world\\n"; }} '
        f"location = /big {{ alias {big}; }} "
        f'location = /sink {{ client_max_body_size 0; return 200 "ok\\n"; }} }} }}\n'
    )
    px = work / "proxy.conf"
    px.write_text(
        common + f"pid {work}/px.pid;\nhttp {{ {http_head}\n"
        f"upstream app {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}\n"
        f"server {{ listen 127.0.0.1:{proxy_port} backlog=4096; "
        f"location / {{ proxy_pass http://app; "
        f'proxy_http_version 1.1; proxy_set_header Connection ""; '
        f"proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }} }} }}\n"
    )
    (work / "tmp").mkdir(exist_ok=True)
    return up, px


def nginx_worker(master: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        kids = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True)
        pids = [int(x) for x in kids.stdout.split()]
        # taskset execs nginx in place, so the master is the Popen pid
        if pids:
            return pids[0]
        time.sleep(0.05)
    raise RuntimeError("nginx worker not found")


def sidecar_conf(work: Path, name: str, port: int, upstream_port: int, rules: dict) -> Path:
    import yaml

    path = work / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                **rules,
                "sidecar": {
                    "listen": f"127.0.0.1:{port}",
                    "admin": f"127.0.0.1:{free_port()}",
                    "upstreams": [{"url": f"http://127.0.0.1:{upstream_port}"}],
                    "routes": [{"prefix": "/", "resource": "bench"}],
                },
            }
        )
    )
    return path


def start_sidecar(conf: Path, port: int) -> Proc:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = Proc(
        [sys.executable, "-m", "ext.cli", "sidecar", "-c", str(conf), "--log-level", "warning"],
        PROXY_CORE,
        env=env,
        cwd=ROOT,
    )
    wait_port(port)
    return proc


def measure_in_turns(
    wrk: str, targets: dict[str, tuple[str, int | None, int]], seconds: float, repeats: int
) -> dict[str, Any]:
    """Median of ``repeats`` runs per target, the targets taking turns in each repeat."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for url, _, conns in targets.values():
        run_wrk(wrk, url, 1, conns)  # warm-up
    for _ in range(repeats):
        for name, (url, pid, conns) in targets.items():
            before = cpu_ns(pid) if pid else 0
            r = run_wrk(wrk, url, seconds, conns)
            if pid:
                r["cpu_us_per_req"] = (cpu_ns(pid) - before) / 1e3 / max(1, r["requests"])
            runs[name].append(r)
    out: dict[str, Any] = {}
    for name, rs in runs.items():
        med: dict[str, Any] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        med["runs"] = rs
        out[name] = med
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--callgrind",
        action="store_true",
        help="also count user-space instructions per request (nginx vs sidecar) with callgrind",
    )
    args = ap.parse_args()
    wrk, nginx = ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="bench_sidecar."))
    work.chmod(0o755)  # nginx workers run as nobody and must read big.bin
    big = work / "big.bin"
    with open(big, "wb") as f:
        f.truncate(50 * 1024 * 1024)
    up_port, ngx_port = free_port(), free_port()
    up_conf, px_conf = nginx_conf(work, up_port, ngx_port, big)
    procs: list[Proc] = []
    results: dict[str, Any] = {}
    try:
        if nginx is None:
            sys.exit("bench_sidecar: nginx is needed as the upstream")
        upstream = Proc([nginx, "-c", str(up_conf), "-p", str(work)], LOAD_CORE)
        procs.append(upstream)
        wait_port(up_port)
        print(
            f"loop: {'uvloop' if _has_uvloop() else 'asyncio'}; "
            f"{args.repeats} x {args.seconds}s per case; "
            f"proxy on core {PROXY_CORE}, upstream + wrk on core {LOAD_CORE}",
            flush=True,
        )
        ngx = Proc([nginx, "-c", str(px_conf), "-p", str(work)], PROXY_CORE)
        procs.append(ngx)
        wait_port(ngx_port)
        targets: dict[str, tuple[str, int | None, int]] = {
            "direct": (f"http://127.0.0.1:{up_port}/", None, 32),
            "nginx": (f"http://127.0.0.1:{ngx_port}/", nginx_worker(ngx.p), 32),
        }
        sidecars = {}
        for name, rules in (
            ("sidecar", {}),
            ("sidecar+rule", {"flow": [{"resource": "bench", "count": 1e9}]}),
        ):
            port = free_port()
            conf = sidecar_conf(work, name.replace("+", "_"), port, up_port, rules)
            sidecars[name] = sc = start_sidecar(conf, port)
            procs.append(sc)
            targets[name] = (f"http://127.0.0.1:{port}/", sc.p.pid, 32)
        # Cases take turns within each repeat, so a burst of load from other users of the
        # machine hits them alike instead of whichever happened to run then.
        results.update(measure_in_turns(wrk, targets, args.seconds, args.repeats))
        # One connection: latency, not throughput. The proxy sits on the other core from
        # wrk and the upstream, so every request crosses cores twice more than direct;
        # nginx in the same seat shows what any proxy pays for that here.
        results.update(
            measure_in_turns(
                wrk,
                {
                    "p50_1conn_direct": (targets["direct"][0], None, 1),
                    "p50_1conn_nginx": (targets["nginx"][0], targets["nginx"][1], 1),
                    "p50_1conn_sidecar": (targets["sidecar"][0], sidecars["sidecar"].p.pid, 1),
                },
                args.seconds,
                args.repeats,
            )
        )
        count = max(1, int(results["sidecar+rule"]["rps"] * 0.1))
        port = free_port()
        conf = sidecar_conf(
            work, "block90", port, up_port, {"flow": [{"resource": "bench", "count": count}]}
        )
        block = start_sidecar(conf, port)
        procs.append(block)
        phase2 = measure_in_turns(
            wrk,
            {
                "sidecar+rule (again)": targets["sidecar+rule"],
                "sidecar+block90": (f"http://127.0.0.1:{port}/", block.p.pid, 32),
            },
            args.seconds,
            args.repeats,
        )
        results.update(phase2)
        for proc in (block, *sidecars.values(), ngx):
            proc.stop()
        if args.callgrind and shutil.which("valgrind"):
            results["callgrind"] = callgrind_pair(wrk, nginx, work, up_port)
        port = free_port()
        sc = start_sidecar(sidecar_conf(work, "stream", port, up_port, {}), port)
        results["stream_rss_mb"] = stream_rss(wrk, port, sc.p.pid, big.stat().st_size)
        sc.stop()
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sidecar.json").write_text(json.dumps(results, indent=2))
    return 0


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def stream_rss(wrk: str, port: int, pid: int, size: int) -> dict[str, float]:
    """32 connections: 24 download and 8 upload 50 MB bodies through the sidecar."""
    base = peak_rss_mb(pid)
    uploads = [
        subprocess.Popen(
            [
                "taskset",
                "-c",
                LOAD_CORE,
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "--data-binary",
                f"@{Path(tempfile.gettempdir())}/{p}",
                "-H",
                "Expect:",
                f"http://127.0.0.1:{port}/sink",
            ]
        )
        for p in _upload_files(size, 8)
    ]
    dl = run_wrk(wrk, f"http://127.0.0.1:{port}/big", 6, 24)
    for u in uploads:
        u.wait(120)
    for p in _upload_files(size, 8):
        (Path(tempfile.gettempdir()) / p).unlink(missing_ok=True)
    if dl["non2xx"]:
        raise RuntimeError(f"streaming run got {dl['non2xx']} non-2xx answers")
    return {
        "baseline_mb": base,
        "peak_mb": peak_rss_mb(pid),
        "downloads": dl["requests"],
        "download_mb_per_s": dl["requests"] * size / 1e6 / 6,
    }


def _upload_files(size: int, n: int) -> list[str]:
    names = [f"bench_sidecar_upload_{i}.bin" for i in range(n)]
    for name in names:
        path = Path(tempfile.gettempdir()) / name
        if not path.exists():
            with open(path, "wb") as f:
                f.truncate(size)
    return names


def callgrind_pair(wrk: str, nginx: str, work: Path, up_port: int) -> dict[str, float]:
    """User-space instructions per proxied request, nginx vs sidecar+rule, under callgrind.

    Instruction counts do not move with the machine's load; they leave out the kernel's
    share (the same syscalls for both), so their ratio overstates the CPU ratio.
    """
    out: dict[str, float] = {}
    ngx_port = free_port()
    _, px_conf = nginx_conf(work, up_port, ngx_port, work / "big.bin")
    port = free_port()
    sc_conf = sidecar_conf(
        work, "callgrind", port, up_port, {"flow": [{"resource": "bench", "count": 1e9}]}
    )
    cases = {
        "nginx": (
            [nginx, "-c", str(px_conf), "-p", str(work), "-g", "master_process off;"],
            ngx_port,
        ),
        "sidecar+rule": (
            [
                sys.executable,
                "-m",
                "ext.cli",
                "sidecar",
                "-c",
                str(sc_conf),
                "--log-level",
                "warning",
            ],
            port,
        ),
    }
    for name, (argv, p) in cases.items():
        dump = work / f"callgrind.{name}.out"
        proc = Proc(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={dump}",
                *argv,
            ],
            PROXY_CORE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(p, timeout=120)
            run_wrk(wrk, f"http://127.0.0.1:{p}/", 2, 8)  # warm-up
            vg = proc.p.pid
            kids = subprocess.run(["pgrep", "-P", str(vg)], capture_output=True, text=True)
            vg = int(kids.stdout.split()[0]) if kids.stdout.split() else vg  # taskset execs
            subprocess.run(["callgrind_control", "-i", "on", str(vg)], capture_output=True)
            r = run_wrk(wrk, f"http://127.0.0.1:{p}/", 5, 8)
            subprocess.run(["callgrind_control", "-i", "off", str(vg)], capture_output=True)
            subprocess.run(["callgrind_control", "-d", str(vg)], capture_output=True)
            time.sleep(1)
        finally:
            proc.stop()
        total = 0
        for f in work.glob(f"callgrind.{name}.out*"):
            counts = [
                int(line.split()[1])
                for line in f.read_text(errors="replace").splitlines()
                if line.startswith(("summary:", "totals:"))
            ]
            total += max(counts, default=0)
        out[name] = total / max(1, r["requests"])
    return out


def reject_cost(block: dict[str, Any], proxied: dict[str, Any]) -> tuple[float, float, float]:
    """Blocked share, CPU us per rejected request, and its ratio to a proxied one.

    Per repeat: the block90 run's proxy CPU, less its passed requests at the CPU per
    request of the proxied run taken just before it, divided by its rejections. Runs are
    paired (not medians of totals mixed across runs), then the median is reported.
    """
    shares, costs, ratios = [], [], []
    for b, p in zip(block["runs"], proxied["runs"]):
        rejected = b["non2xx"]
        passed = b["requests"] - rejected
        cost = (b["cpu_us_per_req"] * b["requests"] - passed * p["cpu_us_per_req"]) / max(
            1, rejected
        )
        shares.append(rejected / max(1, b["requests"]))
        costs.append(cost)
        ratios.append(cost / p["cpu_us_per_req"])
    return statistics.median(shares), statistics.median(costs), statistics.median(ratios)


def report(r: dict[str, Any]) -> None:
    ngx = r.get("nginx")
    print()
    print(
        f"{'case':<22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}"
        f"{'vs nginx rps':>14}{'CPU x nginx':>13}"
    )
    for name in ("direct", "nginx", "sidecar", "sidecar+rule", "sidecar+block90"):
        m = r[name]
        cpu = m.get("cpu_us_per_req")
        ratio_rps = f"{m['rps'] / ngx['rps']:.2f}" if ngx else "-"
        ratio_cpu = f"{cpu / ngx['cpu_us_per_req']:.2f}" if ngx and cpu else "-"
        print(
            f"{name:<22}{m['rps']:>10.0f}{m['p50_ms']:>9.3f}{m['p99_ms']:>9.3f}"
            f"{(f'{cpu:.1f}' if cpu else '-'):>12}{ratio_rps:>14}{ratio_cpu:>13}"
        )
    d, s = r["p50_1conn_direct"], r["p50_1conn_sidecar"]
    n = r.get("p50_1conn_nginx")
    added = s["p50_ms"] - d["p50_ms"]
    print(f"\np50 at 1 connection: direct {d['p50_ms']:.3f} ms", end="")
    if n:
        print(
            f", nginx {n['p50_ms']:.3f} ms (+{n['p50_ms'] - d['p50_ms']:.3f}, "
            f"{n['cpu_us_per_req']:.0f} us CPU/req)",
            end="",
        )
    print(f", sidecar {s['p50_ms']:.3f} ms (+{added:.3f}, {s['cpu_us_per_req']:.0f} us CPU/req)")
    if n:
        print(
            f"  sidecar adds {added:.3f} ms over direct (target <= 0.2), "
            f"{s['p50_ms'] - n['p50_ms']:.3f} ms more than nginx in the same seat"
        )
    blocked, per_reject, ratio = reject_cost(r["sidecar+block90"], r["sidecar+rule (again)"])
    print(
        f"block90: {blocked:.0%} blocked; CPU per rejected request {per_reject:.1f} us = "
        f"{ratio:.2f}x a proxied one (target <= 0.5)"
    )
    if ngx:
        print(
            f"sidecar+rule: {r['sidecar+rule']['rps'] / ngx['rps']:.0%} of nginx req/s "
            f"(target >= 50%), "
            f"{r['sidecar+rule']['cpu_us_per_req'] / ngx['cpu_us_per_req']:.2f}x its CPU per "
            "request "
            "(target <= 2.5)"
        )
    cg = r.get("callgrind")
    if cg:
        print(
            f"callgrind, user-space instructions per proxied request: nginx {cg['nginx']:,.0f}, "
            f"sidecar+rule {cg['sidecar+rule']:,.0f} ({cg['sidecar+rule'] / cg['nginx']:.2f}x; "
            "kernel work, the same for both, not counted)"
        )
    st = r["stream_rss_mb"]
    print(
        f"streaming 50 MB bodies on 32 connections: peak RSS {st['peak_mb']:.1f} MB "
        f"(idle {st['baseline_mb']:.1f} MB; target < 100), {st['downloads']} downloads "
        f"at {st['download_mb_per_s']:.0f} MB/s"
    )


if __name__ == "__main__":
    sys.exit(main())
