"""Run Triton and the gateway as child processes, wait for readiness, stop both on a signal."""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from pattern_tts.settings import Settings
from pattern_tts.triton_logs import LogEvent, TritonLogParser
from pattern_tts.triton_server import find_triton, render_model_repository, triton_command, triton_env

log = logging.getLogger("pattern_tts.supervisor")
triton_log = logging.getLogger("triton")


class StartupError(RuntimeError):
    """The stack could not start; the message is the one line the user sees."""


# Past `shutdown_timeout_s` (the time each child gives requests in flight), how long `serve` waits for a
# child to exit before it kills it.
STOP_MARGIN_S = 10


class TritonProcess:
    """A tritonserver child whose output is logged as events (pattern_tts/triton_logs.py) and whose
    last errors are kept."""

    def __init__(self, settings: Settings, weights_dir: Path) -> None:
        self.settings = settings
        install = find_triton(settings.cache_dir)
        repository = render_model_repository(settings, weights_dir)
        self.errors: collections.deque[str] = collections.deque(maxlen=5)
        self.load_failures: list[str] = []
        self.process = subprocess.Popen(
            triton_command(settings, install, repository),
            env=triton_env(settings, install),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # Ctrl-C reaches us; we stop Triton in order
        )
        self._reader = threading.Thread(target=self._forward, daemon=True)
        self._reader.start()

    def _forward(self) -> None:
        assert self.process.stdout is not None
        parser = TritonLogParser(without_gpu=self.settings.device == "cpu")
        for line in self.process.stdout:
            for event in parser.feed(line):
                self._log(event)
        for event in parser.close():
            self._log(event)

    def _log(self, event: LogEvent) -> None:
        triton_log.log(event.level, event.msg, extra=event.fields)
        if "failed to load '" in event.msg:  # the root cause of "failed to load all models"
            self.load_failures.append(event.msg.split("\n")[0].strip())
        elif event.level >= logging.ERROR:
            self.errors.append(event.msg)

    def wait(self) -> int:
        """Wait for Triton to exit and its output to be logged; its exit status."""
        code = self.process.wait()
        self._end_leftovers()
        self._reader.join(timeout=5)
        return code

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.settings.triton_http_port}/v2/health/ready"
        if self.settings.triton_host not in ("0.0.0.0", "::", "127.0.0.1"):
            url = f"http://{self.settings.triton_host}:{self.settings.triton_http_port}/v2/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float, stopping: threading.Event) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not stopping.is_set():
            if self.process.poll() is not None:
                self._reader.join(timeout=2)
                if self.load_failures:
                    reason = "; ".join(self.load_failures)
                else:
                    reason = self.errors[-1] if self.errors else "no error was logged"
                raise StartupError(
                    f"Triton exited with code {self.process.returncode} before its models were "
                    f"ready: {reason}"
                )
            if self.ready():
                return
            time.sleep(0.5)
        if not stopping.is_set():
            raise StartupError(f"Triton's models were not ready after {timeout_s:.0f} s")

    def stop(self) -> None:
        _terminate(self.process, timeout_s=self.settings.shutdown_timeout_s + STOP_MARGIN_S)
        self._end_leftovers()

    def _end_leftovers(self) -> None:
        """Kill what is left of Triton's process group once Triton has exited.

        Its python-backend stubs ignore SIGTERM, and one still busy when Triton gives up waiting for it
        (past the exit timeout, or after a crash) can outlive Triton, holding the model's memory."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return  # nothing left: the usual case
        log.warning("killed processes triton left behind", extra={"process_group": self.process.pid})


def _terminate(process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_triton(settings: Settings, weights_dir: Path) -> int:
    """Triton alone until it exits; SIGTERM and SIGINT are passed on to it. Its exit status, as a shell
    gives it (128 + the signal's number if a signal ended it)."""
    log.info("starting triton", extra={"weights_dir": str(weights_dir)})
    triton = TritonProcess(settings, weights_dir)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        triton.process.send_signal(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = triton.wait()
    log.info("stopped", extra={"exit_code": code})
    return code if code >= 0 else 128 - code


def serve(settings: Settings, weights_dir: Path) -> int:
    """Start Triton, then the gateway once the models are ready; supervise until a signal."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    log.info("starting triton", extra={"weights_dir": str(weights_dir)})
    triton = TritonProcess(settings, weights_dir)
    gateway: subprocess.Popen[bytes] | None = None
    try:
        start = time.monotonic()
        triton.wait_ready(settings.triton_startup_timeout_s, stopping)
        if stopping.is_set():
            return 0
        log.info("triton ready", extra={"seconds": round(time.monotonic() - start, 1)})
        env = {**os.environ, **settings.to_env(), "PATTERN_TTS_WEIGHTS_DIR": str(weights_dir)}
        gateway = subprocess.Popen(
            [sys.executable, "-m", "pattern_tts", "gateway"], env=env, start_new_session=True
        )
        log.info("gateway started", extra={"url": f"http://{settings.host}:{settings.port}"})
        while not stopping.is_set():
            if triton.process.poll() is not None:
                raise StartupError(f"Triton exited unexpectedly with code {triton.process.returncode}")
            if gateway.poll() is not None:
                raise StartupError(f"the gateway exited unexpectedly with code {gateway.returncode}")
            stopping.wait(0.5)
        return 0
    finally:
        if gateway is not None:
            _terminate(gateway, timeout_s=settings.shutdown_timeout_s + STOP_MARGIN_S)
        triton.stop()
        log.info("stopped")
