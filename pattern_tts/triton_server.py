"""Find or assemble a ``tritonserver``, render the model repository, build the command line.

In the official Triton image ``tritonserver`` is on PATH. Elsewhere it is assembled from the
``nvidia-pytriton`` wheel (Triton 2.51.0: server binary, python backend, a stub per Python version)
into the writable cache directory, with links rather than copies.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import string
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from pattern_tts.allocator import allocator_env
from pattern_tts.cpu import onednn_env
from pattern_tts.settings import STREAM_PRIORITY_LEVELS, Settings


class TritonNotFound(RuntimeError):
    """Neither a ``tritonserver`` on PATH nor the nvidia-pytriton package is available."""


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    backend_dir: Path | None  # None: the binary's built-in default (/opt/tritonserver/backends)
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the server


def find_triton(cache_dir: Path) -> TritonInstall:
    """``tritonserver`` from PATH, else assembled from nvidia-pytriton under ``cache_dir``."""
    on_path = shutil.which("tritonserver")
    if on_path:
        return TritonInstall(binary=Path(on_path), backend_dir=None, env=_python_env())
    return _assemble_from_pytriton(cache_dir / "tritonserver")


def _python_env() -> dict[str, str]:
    """Make the python-backend stub run models with this interpreter and its packages.

    The stub runs the first python on PATH, and links ``libpython3.x.so``: it must load this
    interpreter's library, not another build of the same version (its extension modules would not
    link: "undefined symbol").
    """
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        # The stub's embedded interpreter takes its text encoding from the locale; under the C
        # locale it reads files as ASCII, and torch.compile's sources are UTF-8.
        "PYTHONUTF8": "1",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
    }
    libdir = sysconfig.get_config_var("LIBDIR")
    library = sysconfig.get_config_var("INSTSONAME") or ""
    if libdir and library and (Path(libdir) / library).exists() and not _searched_by_default(libdir):
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p
        )
    return env


def _searched_by_default(directory: str) -> bool:
    """True for the system library directories the dynamic loader searches anyway.

    Those must stay off LD_LIBRARY_PATH: it outranks the RUNPATH of torch's libraries, so a system
    cuDNN there (the Triton GPU image has one) would shadow the cuDNN bundled with torch. Measured
    on a GPU machine: "cuDNN version incompatibility: PyTorch was compiled against (9, 19, 0) but
    found runtime version (9, 14, 0)".
    """
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    system = {"/lib", "/usr/lib", "/lib64", "/usr/lib64"}
    if multiarch:
        system |= {f"/lib/{multiarch}", f"/usr/lib/{multiarch}"}
    return os.path.normpath(directory) in system


def _assemble_from_pytriton(dest: Path) -> TritonInstall:
    # Found, not imported: importing pytriton loads its whole client stack (gevent, grpc, aiohttp),
    # about 30 MiB and 0.5 s that the launcher would then hold for the life of the service.
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotFound("tritonserver is not on PATH and the nvidia-pytriton package is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    package = root / "tritonserver"
    libs = root.parent / "nvidia_pytriton.libs"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = package / "python_backend_stubs" / python / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonNotFound(f"nvidia-pytriton ships no python-backend stub for Python {python}")

    backend = dest / "backends" / "python"
    backend.mkdir(parents=True, exist_ok=True)
    for source in (*(package / "backends" / "python").glob("*.*"), stub):
        if source.suffix == ".pyc" or source.is_dir():
            continue
        link = backend / source.name
        if not (link.is_symlink() and link.resolve() == source.resolve()):
            link.unlink(missing_ok=True)
            link.symlink_to(source)
    env = _python_env()
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(libs), env.get("LD_LIBRARY_PATH") or os.environ.get("LD_LIBRARY_PATH", "")) if p
    )
    return TritonInstall(binary=package / "bin" / "tritonserver", backend_dir=dest / "backends", env=env)


def render_model_repository(settings: Settings, weights_dir: Path) -> Path:
    """Copy the model repository into the cache dir with ``${name}`` placeholders filled in."""
    values = {
        "weights_dir": str(weights_dir),
        "max_batch_size": str(settings.max_batch_size),
        "max_queue_delay_us": str(settings.max_queue_delay_us),
        "priority_levels": str(STREAM_PRIORITY_LEVELS if settings.stream_priority else 0),
        "instance_count": str(settings.instance_count),
        "instance_kind": "KIND_GPU" if settings.device == "cuda" else "KIND_CPU",
        "threads": str(settings.threads),
        "batch_decoder": settings.batch_decoder,
        "compile": settings.compile,
        "precision": settings.precision,
        "spectral_convs": settings.spectral_convs,
        "compile_cache_dir": str(settings.cache_dir / "compile"),
        "release_memory_after_idle_s": str(settings.release_memory_after_idle_s),
        "release_memory_above_mib": str(settings.release_memory_above_mib),
    }
    dest = settings.cache_dir / "model_repository"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(
        settings.model_repository, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for config in dest.glob("*/config.pbtxt"):
        text = string.Template(config.read_text()).substitute(values)
        config.write_text(text)
    return dest


def triton_env(settings: Settings, install: TritonInstall) -> dict[str, str]:
    """The environment tritonserver runs in: this process's, the settings (``PATTERN_TTS_*``, read
    by the models), the install's, the allocator's (pattern_tts/allocator.py) and oneDNN's cache bound
    (pattern_tts/cpu.py)."""
    return {
        **os.environ,
        **settings.to_env(),
        **install.env,
        **allocator_env(settings.allocator),
        **onednn_env(),
    }


def triton_command(settings: Settings, install: TritonInstall, repository: Path) -> list[str]:
    """The tritonserver command line for ``settings``."""
    host = settings.triton_host
    command = [
        str(install.binary),
        f"--model-repository={repository}",
        f"--http-address={host}",
        f"--http-port={settings.triton_http_port}",
        f"--grpc-address={host}",
        f"--grpc-port={settings.triton_grpc_port}",
        f"--metrics-address={settings.triton_metrics_host or host}",
        f"--metrics-port={settings.triton_metrics_port}",
        "--allow-metrics=true",
        "--strict-readiness=true",
        "--exit-on-error=true",
        f"--exit-timeout-secs={settings.shutdown_timeout_s}",
        "--log-verbose=0",
        # Outputs are whole waveforms (megabytes): grow the python backend's shm in big steps.
        "--backend-config=python,shm-default-byte-size=16777216",
        "--backend-config=python,shm-growth-byte-size=16777216",
    ]
    if settings.device == "cpu":
        # No GPU to collect metrics from or to copy to: without these Triton logs NVML, DCGM and
        # pinned-memory failures at every start.
        command += ["--allow-gpu-metrics=false", "--pinned-memory-pool-byte-size=0"]
    if install.backend_dir is not None:
        command.append(f"--backend-directory={install.backend_dir}")
    if settings.triton_trace_file is not None:  # off until turned on through the trace API
        command += [f"--trace-config=triton,file={settings.triton_trace_file}", "--trace-config=level=OFF"]
    return command
