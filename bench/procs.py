"""Processes of a benchmark run: the machine-wide bench lock, free ports, start/stop, readiness, peak RSS,
a measuring process set up as Triton's, and the run's timestamped log lines."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

LOCK_PATH = Path("/tmp/pattern-tts-bench.lock")
# Development only (`bench.run --no-lock`): figures taken without the lock are not comparable.
USE_LOCK = True
_held = threading.local()
# Ports other sessions use on this machine; never hand these out.
RESERVED_PORTS = frozenset({8000, 8001, 8002, 18000, 18001, 18002, 8205})


def log(message: str) -> None:
    """One line of a benchmark's progress, with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextlib.contextmanager
def bench_lock(what: str) -> Iterator[None]:
    """Hold ``/tmp/pattern-tts-bench.lock`` (flock) while timing: other benchmarks share the cores."""
    depth: int = getattr(_held, "depth", 0)
    if not USE_LOCK or depth:
        _held.depth = depth + 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    with LOCK_PATH.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[lock] waiting for {LOCK_PATH} ({what}) ...", flush=True)
            start = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            print(f"[lock] acquired after {time.monotonic() - start:.0f} s", flush=True)
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback TCP ports that are free now and not reserved ones (all bound at once:
    ports picked one at a time can repeat)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in RESERVED_PORTS:
                ports.append(port)
        return ports
    finally:
        for sock in held:
            sock.close()


def free_port() -> int:
    """A loopback TCP port that is free now and not one of the reserved ones."""
    return free_ports(1)[0]


def start(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own session, output to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> float:
    """Poll ``url`` until 200; raise with the log tail if the process exits. Returns seconds waited."""
    start_t = time.monotonic()
    while time.monotonic() - start_t < timeout_s:
        if process.poll() is not None:
            text = log_path.read_text(errors="replace")
            keys = [line[:600] for line in text.splitlines() if "Failed to initialize Python stub" in line]
            raise RuntimeError(
                f"process exited with {process.returncode} before {url} was up: "
                + " | ".join(keys[:1])
                + "\n"
                + text[-3000:]
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start_t
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f} s (log: {log_path})")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """SIGTERM the process (it stops its children), SIGKILL its process group if it does not exit."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def role(proc: psutil.Process) -> str:
    """What a process of the stack is: tritonserver, python stub, gateway, launcher, other."""
    try:
        name = proc.name()
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    if "triton_python_backend_stub" in cmd or "stub" in name or name.startswith("triton_python_b"):
        return "python_stub"
    if name in ("cc1plus", "g++", "gcc", "as", "ld", "cc1") or "_inductor" in cmd or "compile_worker" in cmd:
        return "compile_workers"
    if "tritonserver" in name or "tritonserver" in cmd.split(" ")[0]:
        return "tritonserver"
    if "gateway" in cmd or "uvicorn" in cmd:
        return "gateway"
    if "pattern_tts" in cmd and "serve" in cmd:
        return "launcher"
    return name


class RssMonitor:
    """Samples the RSS of a process tree in a thread; keeps the peak of the sum and of each role, what
    each role held at the sum's peak, and in which phase (set by the caller: ``monitor.phase = "c=16"``)
    and when the sum peaked."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_total = 0
        self.peak_by_role: dict[str, int] = {}
        self.at_peak_by_role: dict[str, int] = {}
        self.phase = "start"
        self.peak_phase = self.phase
        self.peak_at_s = 0.0
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        procs = [self.root]
        with contextlib.suppress(psutil.NoSuchProcess):
            procs += self.root.children(recursive=True)
        total = 0
        by_role: dict[str, int] = {}
        for proc in procs:
            try:
                rss = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            key = role(proc)
            if key == "gone":
                continue
            total += rss
            by_role[key] = by_role.get(key, 0) + rss
        if total > self.peak_total:
            self.peak_total, self.peak_phase, self.at_peak_by_role = total, self.phase, by_role
            self.peak_at_s = time.monotonic() - self._start
        for key, rss in by_role.items():
            self.peak_by_role[key] = max(self.peak_by_role.get(key, 0), rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def result(self) -> dict[str, Any]:
        mib = 1024 * 1024
        return {
            "peak_total_mib": round(self.peak_total / mib, 1),
            "peak_by_role_mib": {k: round(v / mib, 1) for k, v in sorted(self.peak_by_role.items())},
            "at_peak_by_role_mib": {k: round(v / mib, 1) for k, v in sorted(self.at_peak_by_role.items())},
            "peak_phase": self.peak_phase,
            "peak_at_s": round(self.peak_at_s, 1),
        }


def _busy(times: Any) -> float:
    return float(times.user + times.system + getattr(times, "nice", 0.0) + getattr(times, "irq", 0.0)
                 + getattr(times, "softirq", 0.0))  # fmt: skip


class CpuWatch:
    """CPU seconds used on the machine during a phase by processes outside this benchmark's tree.

    Other sessions share the cores; a phase measured while they were busy is flagged in the report.
    """

    def __init__(self, interval_s: float = 0.5) -> None:
        self.me = psutil.Process()
        self.interval_s = interval_s
        self._ours: dict[int, float] = {}
        self._ours_total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample_ours(self) -> None:
        procs = [self.me]
        with contextlib.suppress(psutil.NoSuchProcess):
            procs += self.me.children(recursive=True)
        for proc in procs:
            try:
                t = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            used = t.user + t.system
            self._ours_total += max(0.0, used - self._ours.get(proc.pid, used if proc.pid in self._ours else 0.0))
            self._ours[proc.pid] = used

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample_ours()

    def __enter__(self) -> CpuWatch:
        self._sample_ours()
        self._ours_total = 0.0
        self._start_busy = _busy(psutil.cpu_times())
        self._start_wall = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample_ours()
        self.wall_s = time.monotonic() - self._start_wall
        self.busy_s = _busy(psutil.cpu_times()) - self._start_busy

    def result(self) -> dict[str, Any]:
        cpus = psutil.cpu_count() or 1
        foreign = max(0.0, self.busy_s - self._ours_total)
        return {
            "wall_s": round(self.wall_s, 1),
            "ours_cpu_s": round(self._ours_total, 1),
            "foreign_cpu_s": round(foreign, 1),
            "foreign_share": round(foreign / (self.wall_s * cpus), 3) if self.wall_s else 0.0,
        }


def served_child(code: str, args: list[str], weights_kind: str, voice: str, note: str = "") -> dict[str, Any]:
    """Run ``python -c code *args`` with the environment ``pattern-tts serve`` gives Triton (the allocator
    ``auto`` picks, oneDNN's cache bound), offline, and return the results of a run: the date, git state,
    machine, weights and voice, the JSON object the child printed last, and ``note`` if given."""
    from bench.run import git_state, machine
    from pattern_tts import allocator
    from pattern_tts.cpu import onednn_env

    env = {**os.environ, "HF_HUB_OFFLINE": "1", **allocator.allocator_env("auto", environ={}), **onednn_env(environ={})}
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the measuring process exited with {done.returncode}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(), "git": git_state(), "machine": machine(), "weights": weights_kind,
        "voice": voice, **child,
    }  # fmt: skip
    if note:
        results["note"] = note
    return results
