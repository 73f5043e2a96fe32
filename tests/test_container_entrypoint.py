"""The image's entrypoint starts, here: the local stand-in for "the image starts".

No Docker engine is available, so the container is emulated as closely as this machine allows,
from the text of ``docker/Dockerfile``:

- a private mount namespace with a fresh root: the host's ``/usr``, ``/etc`` and the project
  mounted **read-only**, the weights read-only at ``/models``, the model repository read-only at
  ``/opt/pattern-tts/model_repository``, an empty writable ``/tmp`` and a fresh ``/dev/shm``, the
  only writable places (as in the Helm chart: readOnlyRootFilesystem + emptyDirs);
- the final stage's ``ENV`` verbatim (``/opt/venv`` maps to this venv), run as UID/GID 1000 with
  no supplementary groups, no capabilities and ``no_new_privs``, in ``WORKDIR /tmp``;
- the exact ``ENTRYPOINT`` + ``CMD`` (``pattern-tts serve``).

The only change to the environment: the four ports are moved to free ones so that parallel test
runs do not collide (the chart sets the same variables).

It then waits for ``GET /ready`` and synthesises speech through ``POST /v1/audio/speech``.
Needs root (mount namespaces, setuid), ``unshare``/``setpriv``/``chroot`` (util-linux, coreutils)
and the tiny test weights (``tests/conftest.py``'s fixture, or written here); skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from tests.conftest import free_ports

try:  # tests/ on sys.path (pytest's default import mode)
    from test_docker import DOCKERFILES, env_of, parse
except ImportError:  # tests/ as a package
    from tests.test_docker import DOCKERFILES, env_of, parse

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(os.path.abspath(sys.executable)).parent
APP_UID = APP_GID = 1000
# Base image environment of python:3.11-slim (the Dockerfile's `$PATH` and LANG come from it).
BASE_ENV = {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Names the tiny-weights session fixture of tests/conftest.py may have.
WEIGHTS_FIXTURES = ("tiny_weights_dir", "tiny_weights", "test_weights_dir", "weights_dir")
READY_TIMEOUT_S = float(os.environ.get("PATTERN_TTS_TEST_READY_TIMEOUT_S", "480"))

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(sys.platform != "linux", reason="Linux namespaces"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a mount namespace and setuid to 1000"),
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("unshare", "setpriv", "chroot", "mount")),
        reason="needs util-linux unshare/setpriv/mount and chroot",
    ),
]

# Runs as root inside `unshare --mount`: builds the container's file system under $R, then
# execs the entrypoint as UID 1000. Arguments: R, WEIGHTS, PROJECT, PYHOME, TMPDIR_HOST, MODEL_REPO,
# then `VAR=value`... and the command (passed to `env -i`).
ROOTFS_SCRIPT = r"""
set -eu
R=$1 WEIGHTS=$2 PROJECT=$3 PYHOME=$4 TMP_HOST=$5 MODEL_REPO=$6
shift 6
mount --make-rprivate /
mount -t tmpfs -o mode=755,size=16m rootfs "$R"
cd "$R"
ln -s usr/bin bin; ln -s usr/lib lib; ln -s usr/lib64 lib64; ln -s usr/sbin sbin
mkdir -p usr etc proc sys dev tmp models opt/pattern-tts/model_repository .image
# /tmp first: the project or the interpreter may live under the host's /tmp (a CI checkout)
mount --bind "$TMP_HOST" tmp
mkdir -p "./$PROJECT" "./$PYHOME"
chmod 755 opt opt/pattern-tts
ro() { mount --rbind "$1" "$2"; mount -o remount,bind,ro "$2"; }
ro /usr usr
ro /etc etc
# an image's project and interpreter directories are world-traversable; a checkout may be 0700
# (e.g. under mktemp -d): open its top directory to UID 1000 before making it read-only
for p in "$PROJECT" "$PYHOME"; do mount --rbind "$p" "./$p"; chmod o+rx "./$p"; mount -o remount,bind,ro "./$p"; done
ro "$WEIGHTS" models
ro "$MODEL_REPO" opt/pattern-tts/model_repository
# every directory on the way to the project and the interpreter: traversable, like an image's
for p in "$PROJECT" "$PYHOME"; do
    d="$p"; while [ "$d" != / ] && [ "$d" != /tmp ]; do chmod 755 "./$d" 2>/dev/null || true; d=$(dirname "$d"); done
done
mount --rbind /proc proc
mount --rbind /sys sys
mount -o remount,bind,ro sys
mount --rbind /dev dev
mount -t tmpfs -o mode=1777,size=1g shm dev/shm
# the image's user and group 1000
cp /etc/passwd .image/passwd; cp /etc/group .image/group
sed -i '/^[^:]*:[^:]*:1000:/d' .image/passwd .image/group
echo 'pattern-tts:x:1000:1000::/tmp:/usr/sbin/nologin' >> .image/passwd
echo 'pattern-tts:x:1000:' >> .image/group
mount --bind .image/passwd etc/passwd
mount --bind .image/group etc/group
mount -o remount,ro "$R"
exec chroot "$R" /usr/bin/setpriv --reuid=1000 --regid=1000 --clear-groups --no-new-privs \
    --inh-caps=-all --bounding-set=-all /usr/bin/env -i -C /tmp "$@"
"""


def image_command_and_env() -> tuple[list[str], dict[str, str]]:
    """ENTRYPOINT + CMD and the ENV of the CPU image's final stage."""
    _, stages = parse(DOCKERFILES["cpu"])
    final = stages[-1]
    command = json.loads(final.args("ENTRYPOINT")[-1]) + json.loads(final.args("CMD")[-1])
    env = dict(BASE_ENV)
    for key, value in env_of(final).items():
        env[key] = value.replace("$PATH", BASE_ENV["PATH"]).replace("${PATH}", BASE_ENV["PATH"])
    # the image's venv is /opt/venv; here it is this interpreter's venv (mounted read-only)
    env["PATH"] = env["PATH"].replace("/opt/venv/bin", str(VENV_BIN))
    # In the image the dynamic loader finds the interpreter's own libpython (/usr/local/lib), which
    # Triton's python-backend stub links. Here the interpreter may be a private build beside a
    # different system libpython3.11: point the loader at the interpreter's, as the image does.
    libdir = sysconfig.get_config_var("LIBDIR")
    ldlibrary = sysconfig.get_config_var("INSTSONAME") or ""
    if libdir and ldlibrary and (Path(libdir) / ldlibrary).is_file():
        env["LD_LIBRARY_PATH"] = libdir
    return command, env


def launch(
    command: list[str],
    env: dict[str, str],
    weights: Path,
    rootfs: Path,
    tmp_host: Path,
    log: Path,
    model_repository: Path = ROOT / "model_repository",
) -> subprocess.Popen:
    """Start `command` in the emulated container; returns the Popen (its own process group)."""
    pyhome = Path(os.path.realpath(sys.executable)).parent.parent  # the venv's base interpreter
    args = [
        "unshare", "--mount", "--propagation", "private", "--fork",
        "sh", "-c", ROOTFS_SCRIPT, "rootfs",
        str(rootfs), str(weights), str(ROOT), str(pyhome), str(tmp_host), str(model_repository),
        *[f"{k}={v}" for k, v in env.items()],
        *command,
    ]  # fmt: skip
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _log_summary(log: Path) -> str:
    """The error lines of the container log (Triton prints its model-load errors early), then its tail."""
    text = log.read_text(errors="replace")
    errors = [
        line[:1500]
        for line in text.splitlines()
        if re.search(r'"level": "error"|failed to load|UNAVAILABLE|Traceback|Error:|pattern-tts:', line)
    ]
    return "\n".join(errors[:30]) + "\n--- tail ---\n" + text[-3000:]


def stop(proc: subprocess.Popen, grace_s: float = 60.0) -> int | None:
    """SIGTERM the container's processes (as `docker stop`), SIGKILL after `grace_s`."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    return proc.returncode


@pytest.fixture(scope="module")
def weights(request, tmp_path_factory) -> Path:
    """A root-owned, world-readable copy of the tiny test weights (read-only to UID 1000).

    From the tiny-weights fixture of tests/conftest.py when there is one, else written here with
    the same generator (random tiny Kokoro in the real file layout).
    """
    source = None
    for name in WEIGHTS_FIXTURES:
        try:
            source = request.getfixturevalue(name)
            break
        except pytest.FixtureLookupError:
            continue
    dest = tmp_path_factory.mktemp("image-models") / "models"
    if source is None:
        from pattern_tts.synthesis.random_weights import write_random_kokoro

        write_random_kokoro(dest, "tiny", voices=("af_heart",))
    else:
        source = getattr(source, "weights_dir", source)
        if not isinstance(source, str | os.PathLike) or not (Path(source) / "config.json").is_file():
            pytest.fail(f"the tiny-weights fixture is not a weights directory: {source!r}")
        shutil.copytree(Path(source), dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


def test_entrypoint_serves_speech_as_uid_1000_with_read_only_root(weights, tmp_path_factory) -> None:
    if importlib.util.find_spec("pattern_tts.cli") is None:
        pytest.skip("pattern_tts.cli (the `pattern-tts` command) does not exist yet")
    import httpx

    command, env = image_command_and_env()
    assert command == ["pattern-tts", "serve"]
    assert env["PATTERN_TTS_WEIGHTS_DIR"] == "/models" and env["HOME"] == "/tmp"
    port, http, grpc, metrics = free_ports(4)
    env |= {
        "PATTERN_TTS_PORT": str(port),
        "PATTERN_TTS_TRITON_HTTP_PORT": str(http),
        "PATTERN_TTS_TRITON_GRPC_PORT": str(grpc),
        "PATTERN_TTS_TRITON_METRICS_PORT": str(metrics),
    }
    base = tmp_path_factory.mktemp("image")
    rootfs, tmp_host = base / "rootfs", base / "tmp"
    rootfs.mkdir()
    tmp_host.mkdir()
    tmp_host.chmod(0o1777)  # the emptyDir /tmp
    log = base / "container.log"
    voice = sorted(p.stem for p in (weights / "voices").glob("*.pt"))[0]

    proc = launch(command, env, weights, rootfs, tmp_host, log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready = False
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if client.get(f"{url}/ready").status_code == 200:
                        ready = True
                        break
                except httpx.TransportError:
                    pass
                time.sleep(2)
            assert ready, f"not ready (exit code {proc.poll()}):\n{_log_summary(log)}"
            assert client.get(f"{url}/health").status_code == 200

            resp = client.post(
                f"{url}/v1/audio/speech",
                json={
                    "model": "kokoro",
                    "input": "The image starts.",
                    "voice": voice,
                    "response_format": "wav",
                },
                timeout=300,
            )
            assert resp.status_code == 200, resp.text
            audio = resp.content
            assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
            assert len(audio) > 44 + 2400, "less than 50 ms of audio"

            # Triton's metrics came up on the configured port as well
            assert "nv_inference_request_success" in client.get(f"http://127.0.0.1:{metrics}/metrics").text
    finally:
        code = stop(proc)
    # written only under /tmp, by UID 1000: the cache of the run is there
    # (a project or interpreter that lives under the host's /tmp got a root-made mount point there)
    mount_points = {
        tmp_host / Path(*path.relative_to("/tmp").parts[:depth])
        for path in (ROOT, Path(os.path.realpath(sys.executable)).parent.parent)
        if path.is_relative_to("/tmp")
        for depth in range(1, len(path.relative_to("/tmp").parts) + 1)
    }
    written = [p for p in tmp_host.rglob("*") if not p.is_symlink() and p not in mount_points]
    assert written, "nothing written under /tmp"
    assert {p.lstat().st_uid for p in written} == {APP_UID}
    assert (tmp_host / "pattern-tts").is_dir(), "PATTERN_TTS_CACHE_DIR=/tmp/pattern-tts not used"
    assert code is not None
