"""How the python-backend stub is pointed at this interpreter (pattern_tts/triton_server.py)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pattern_tts import triton_server
from pattern_tts.cpu import ONEDNN_CACHE_CAPACITY, ONEDNN_CACHE_ENV, onednn_env
from pattern_tts.settings import Settings
from tests.conftest import Stack


def config_vars(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    real = sysconfig.get_config_var
    monkeypatch.setattr(triton_server.sysconfig, "get_config_var", lambda name: values.get(name, real(name)))


def test_a_private_pythons_libpython_directory_goes_on_the_loader_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "libpython3.11.so.1.0").write_bytes(b"")
    config_vars(monkeypatch, LIBDIR=str(tmp_path), INSTSONAME="libpython3.11.so.1.0")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/other")
    assert triton_server._python_env()["LD_LIBRARY_PATH"] == f"{tmp_path}:/opt/other"


@pytest.mark.parametrize("libdir", ["/usr/lib/x86_64-linux-gnu", "/usr/lib", "/usr/lib64/"])
def test_a_system_library_directory_stays_off_the_loader_path(libdir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On LD_LIBRARY_PATH a system directory would outrank torch's RUNPATH (a system cuDNN would
    shadow torch's own)."""
    monkeypatch.setattr(triton_server.Path, "exists", lambda self: True)
    config_vars(monkeypatch, LIBDIR=libdir, INSTSONAME="libpython3.11.so.1.0", MULTIARCH="x86_64-linux-gnu")
    assert "LD_LIBRARY_PATH" not in triton_server._python_env()


def test_request_tracing_is_configured_only_when_a_trace_file_is_set(tmp_path: Path) -> None:
    install = triton_server.TritonInstall(binary=Path("/opt/tritonserver/bin/tritonserver"), backend_dir=None)
    plain = triton_server.triton_command(Settings(), install, tmp_path)
    assert not [arg for arg in plain if arg.startswith("--trace")]
    trace_file = tmp_path / "trace.json"
    traced = triton_server.triton_command(Settings(triton_trace_file=trace_file), install, tmp_path)
    # Written to the file, and off until the trace API turns it on.
    assert f"--trace-config=triton,file={trace_file}" in traced
    assert "--trace-config=level=OFF" in traced


def test_triton_lets_requests_in_flight_finish_for_the_shutdown_timeout(tmp_path: Path) -> None:
    install = triton_server.TritonInstall(binary=Path("/opt/tritonserver/bin/tritonserver"), backend_dir=None)
    assert "--exit-timeout-secs=30" in triton_server.triton_command(Settings(), install, tmp_path)
    longer = triton_server.triton_command(Settings(shutdown_timeout_s=75), install, tmp_path)
    assert [arg for arg in longer if arg.startswith("--exit-timeout-secs")] == ["--exit-timeout-secs=75"]


def test_a_cpu_triton_does_not_look_for_gpu_metrics_or_pinned_memory(tmp_path: Path) -> None:
    install = triton_server.TritonInstall(binary=Path("/opt/tritonserver/bin/tritonserver"), backend_dir=None)
    cpu = triton_server.triton_command(Settings(device="cpu"), install, tmp_path)
    assert {"--allow-gpu-metrics=false", "--pinned-memory-pool-byte-size=0"} <= set(cpu)
    gpu = triton_server.triton_command(Settings(device="cuda"), install, tmp_path)
    assert not [arg for arg in gpu if arg.startswith(("--allow-gpu-metrics", "--pinned-memory"))]


def test_onednns_primitive_cache_is_bounded_unless_the_operator_set_it() -> None:
    assert onednn_env(environ={}) == {ONEDNN_CACHE_ENV: str(ONEDNN_CACHE_CAPACITY)}
    assert onednn_env(environ={ONEDNN_CACHE_ENV: "512"}) == {ONEDNN_CACHE_ENV: "512"}


def test_tritonserver_is_assembled_from_pytriton_without_importing_its_client_stack(tmp_path: Path) -> None:
    """The launcher lives as long as the service: it finds pytriton's files but must not import the
    package, which pulls in gevent, grpc and aiohttp (about 30 MiB held for nothing)."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pattern_tts.triton_server import _assemble_from_pytriton\n"
        f"install = _assemble_from_pytriton(Path({str(tmp_path)!r}))\n"
        "assert install.binary.is_file(), install.binary\n"
        "assert (install.backend_dir / 'python' / 'triton_python_backend_stub').is_file()\n"
        "print(sorted(m for m in ('pytriton', 'tritonclient', 'gevent', 'grpc') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_running_launcher_has_loaded_neither_numpy_nor_torch(stack: Stack) -> None:
    """``pattern-tts serve`` supervises for the life of the service; numpy alone would hold about
    20 MiB in it for nothing (it is only needed to convert the packaged weights)."""
    libraries = {line.split()[-1] for line in Path(f"/proc/{stack.process.pid}/maps").read_text().splitlines()}
    assert not [path for path in libraries if "/numpy/" in path or "/torch/" in path]
