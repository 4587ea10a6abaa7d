"""The Kubernetes manifests, rendered from every overlay and checked without a cluster.

Core objects are validated against the Kubernetes schemas (kubernetes-validate, strict); the KEDA
and KServe objects, which have no schema offline, by the fields they use. Then what a schema
cannot say: probes, resources, the restricted security context, a writable volume wherever a
process writes, and that selectors, names, ports and references agree with each other.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError

from classifier.core.config import Settings
from classifier.main import create_app
from tests.deploy.conftest import OVERLAYS, PENDING_SETTINGS, ROOT, Manifest

# The oldest Kubernetes minor supported upstream on 2026-12-01, and the newest the validator
# knows. `make lint-deploy` validates against the same two (K8S_VERSIONS in the Makefile).
KUBERNETES_VERSIONS = ("1.35.0", "1.37.0")

# Kinds with no schema offline, and the overlays that may contain them.
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
}

# KServe's ComponentExtensionSpec (pkg/apis/serving/v1beta1/component.go): the fields a predictor
# carries beside its inline pod spec.
KSERVE_COMPONENT_FIELDS = {
    "minReplicas",
    "maxReplicas",
    "scaleTarget",
    "scaleMetric",
    "containerConcurrency",
    "timeout",
    "canaryTrafficPercent",
    "logger",
    "batcher",
    "labels",
    "annotations",
    "deploymentStrategy",
}

# Paths each image writes besides those its environment names (see writable_paths).
IMAGE_WRITES = {
    # Upload spooling, and the Prometheus multiprocess directory `python -m classifier` makes
    # under the temporary directory when it starts several uvicorn workers.
    "classifier": {"/tmp"},
    "logs": {"/fluentd/log", "/fluentd/buffer", "/tmp"},
    "postgres": {"/var/run/postgresql", "/tmp"},
}

# Path-valued variables the classifier only reads.
READ_ONLY_PATH_VARIABLES = {"CLASSIFIER_MODEL_DIR", "CLASSIFIER_IMPORT_DIR"}

JOB_STATUSES = {"queued", "running", "succeeded", "failed", "cancelled"}


@dataclass(frozen=True)
class Workload:
    """One pod template: a Deployment's, or a KServe predictor's inline pod spec."""

    kind: str
    name: str
    pod: Manifest
    labels: dict[str, str]

    @property
    def containers(self) -> list[Manifest]:
        containers: list[Manifest] = self.pod["containers"]
        return containers


def workloads(objects: list[Manifest]) -> Iterator[Workload]:
    for item in objects:
        name = item["metadata"]["name"]
        if item["kind"] in {"Deployment", "StatefulSet", "DaemonSet"}:
            template = item["spec"]["template"]
            yield Workload(item["kind"], name, template["spec"], template["metadata"]["labels"])
        elif item["kind"] == "InferenceService":
            predictor = item["spec"]["predictor"]
            pod = {k: v for k, v in predictor.items() if k not in KSERVE_COMPONENT_FIELDS}
            yield Workload(item["kind"], name, pod, predictor.get("labels", {}))


def only(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    matches = [
        item
        for item in objects
        if item["kind"] == kind and (name is None or item["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def workload(objects: list[Manifest], name: str) -> Workload:
    (found,) = [w for w in workloads(objects) if w.name == name]
    return found


def image_family(image: str) -> str:
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    if repository.endswith("/classifier"):
        return "classifier"
    if repository.endswith("/logs"):
        return "logs"
    if repository.rsplit("/", 1)[-1] == "postgres":
        return "postgres"
    raise AssertionError(f"unknown image {image}: say in IMAGE_WRITES what it writes")


def environment(container: Manifest) -> dict[str, str]:
    """Plain `env` values (values from Secrets are left out)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def writable_paths(container: Manifest) -> set[str]:
    """Every path the container's process writes: its image's, and those its variables name."""
    paths = set(IMAGE_WRITES[image_family(container["image"])])
    for name, value in environment(container).items():
        if not value.startswith("/") or name in READ_ONLY_PATH_VARIABLES:
            continue
        if name.endswith("_FILE"):
            paths.add(os.path.dirname(value))
        elif name.endswith(("_DIR", "DIR")) or name == "PGDATA":
            paths.add(value)
    return paths


def classifier_settings(objects: list[Manifest], container: Manifest) -> dict[str, str]:
    """What the classifier reads: its ConfigMaps' data, then its own env (which wins)."""
    merged: dict[str, str] = {}
    for source in container.get("envFrom", []):
        merged.update(only(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    merged.update(environment(container))
    return merged


# --- rendering and schemas ----------------------------------------------------------------------


def test_the_expected_overlays_exist() -> None:
    assert OVERLAYS == ["kserve", "local", "production", "production-keda"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_core_object_validates_strictly(
    rendered: dict[str, list[Manifest]], overlay: str, version: str
) -> None:
    unknown = []
    for item in rendered[overlay]:
        try:
            kubernetes_validate.validate(item, version, strict=True)
        except SchemaNotFoundError:
            unknown.append((item["apiVersion"], item["kind"]))
    # Anything else without a schema is a typo in apiVersion or kind, not a custom resource.
    assert set(unknown) <= CUSTOM_KINDS


def test_a_misspelt_field_is_refused(rendered: dict[str, list[Manifest]]) -> None:
    deployment = only(rendered["production"], "Deployment", "classifier-api")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_the_makefile_validates_against_the_same_versions() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    line = re.search(r"^K8S_VERSIONS := (.+)$", makefile, re.MULTILINE)
    assert line is not None
    assert tuple(line.group(1).split()) == KUBERNETES_VERSIONS


# --- every container: probes, resources, security, writable paths --------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_three_probes_on_its_own_ports(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    problems = []
    for found in workloads(rendered[overlay]):
        for container in found.containers:
            ports = {p.get("name") for p in container.get("ports", [])} | {
                p["containerPort"] for p in container.get("ports", [])
            }
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                spec = container.get(probe)
                if spec is None:
                    problems.append(f"{found.name}/{container['name']}: no {probe}")
                elif "httpGet" in spec and spec["httpGet"]["port"] not in ports:
                    problems.append(f"{found.name}/{container['name']}: {probe} on another port")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_classifier_http_probes_use_routes_the_app_serves(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    served = set(create_app(Settings(fluentd_host=None)).openapi()["paths"])
    seen = 0
    for found in workloads(rendered[overlay]):
        for container in found.containers:
            if image_family(container["image"]) != "classifier" or "ports" not in container:
                continue
            seen += 1
            ready = {container[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe")}
            live = container["livenessProbe"]["httpGet"]["path"]
            assert len(ready) == 1
            assert ready <= {"/health/ready", "/v2/health/ready"} & served
            assert live in {"/health/live", "/v2/health/live"} & served
            assert live.removesuffix("live") == ready.pop().removesuffix("ready")
    assert seen >= 1


@pytest.mark.parametrize("overlay", ["local", "production", "production-keda"])
def test_workers_are_probed_on_the_age_of_their_heartbeat_file(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    worker = workload(rendered[overlay], "classifier-worker")
    (container,) = worker.containers
    assert container["command"] == ["python", "-m", "classifier", "worker"]
    assert "ports" not in container
    heartbeat = environment(container)["CLASSIFIER_WORKER_HEALTH_FILE"]
    assert heartbeat.startswith("/")
    limits = []
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[:2] == ["python", "-c"]
        assert 'os.environ["CLASSIFIER_WORKER_HEALTH_FILE"]' in command[2]
        age = re.search(r"st_mtime > (\d+)\)$", command[2])
        assert age is not None, command[2]
        limits.append(int(age.group(1)))
    startup, readiness, liveness = limits
    # Liveness is the most patient: a slow loop is first taken out of rotation, then restarted.
    assert startup == readiness < liveness


def test_the_worker_probes_pass_on_a_fresh_heartbeat_only(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    (container,) = workload(rendered["production"], "classifier-worker").containers
    heartbeat = tmp_path / "worker-heartbeat"
    environment = {**os.environ, "CLASSIFIER_WORKER_HEALTH_FILE": str(heartbeat)}

    def probe(name: str) -> int:
        command = [sys.executable, *container[name]["exec"]["command"][1:]]
        return subprocess.run(command, env=environment, capture_output=True, timeout=30).returncode

    assert probe("startupProbe") == 1  # not written yet: still loading
    heartbeat.touch()
    assert [probe(p) for p in ("startupProbe", "readinessProbe", "livenessProbe")] == [0, 0, 0]
    stale = time.time() - 60
    os.utime(heartbeat, (stale, stale))
    assert [probe(p) for p in ("readinessProbe", "livenessProbe")] == [1, 0]
    stale = time.time() - 120
    os.utime(heartbeat, (stale, stale))
    assert probe("livenessProbe") == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}

    def quantity(text: str) -> float:
        parsed = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
        assert parsed is not None, text
        return float(parsed.group(1)) * units[parsed.group(2)]

    problems = []
    for found in workloads(rendered[overlay]):
        for container in found.containers:
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            for name in ("cpu", "memory", "ephemeral-storage"):
                if name not in requests or name not in limits:
                    problems.append(f"{found.name}/{container['name']}: {name} unbounded")
                elif quantity(requests[name]) > quantity(limits[name]):
                    problems.append(f"{found.name}/{container['name']}: {name} request > limit")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_meets_the_restricted_profile(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    problems = []
    for found in workloads(rendered[overlay]):
        pod = found.pod
        context = pod.get("securityContext", {})
        where = found.name
        if context.get("runAsNonRoot") is not True or not context.get("runAsUser"):
            problems.append(f"{where}: not a numeric non-root user")
        if any(pod.get(key) for key in ("hostNetwork", "hostPID", "hostIPC")):
            problems.append(f"{where}: shares a host namespace")
        if any("hostPath" in volume for volume in pod.get("volumes", [])):
            problems.append(f"{where}: hostPath volume")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: mounts an API token it never uses")
        if pod.get("enableServiceLinks") is not False:
            # Service links would inject CLASSIFIER_*_PORT=tcp://... variables into our settings.
            problems.append(f"{where}: service links on")
        for container in found.containers + pod.get("initContainers", []):
            own = container.get("securityContext", {})
            seccomp = own.get("seccompProfile", context.get("seccompProfile", {}))
            checks = {
                "allowPrivilegeEscalation false": own.get("allowPrivilegeEscalation") is False,
                "readOnlyRootFilesystem": own.get("readOnlyRootFilesystem") is True,
                "capabilities drop ALL": own.get("capabilities") == {"drop": ["ALL"]},
                "not privileged": not own.get("privileged", False),
                "seccomp RuntimeDefault": seccomp.get("type") == "RuntimeDefault",
                "non-root": own.get("runAsNonRoot", context.get("runAsNonRoot")) is True,
            }
            problems += [f"{where}/{container['name']}: {c}" for c, ok in checks.items() if not ok]
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_path_a_process_writes_is_a_writable_volume(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    problems = []
    for found in workloads(rendered[overlay]):
        volumes = {v["name"]: v for v in found.pod.get("volumes", [])}
        for container in found.containers:
            mounts = [
                m["mountPath"]
                for m in container.get("volumeMounts", [])
                if not m.get("readOnly", False)
                and ({"emptyDir", "persistentVolumeClaim"} & set(volumes[m["name"]]))
            ]
            for path in sorted(writable_paths(container)):
                if not any(path == mount or path.startswith(mount + "/") for mount in mounts):
                    problems.append(f"{found.name}/{container['name']}: {path} not writable")
    assert problems == []


def test_the_worker_writes_its_heartbeat_to_memory_and_its_results_to_the_shared_volume(
    rendered: dict[str, list[Manifest]],
) -> None:
    worker = workload(rendered["production"], "classifier-worker")
    (container,) = worker.containers
    paths = writable_paths(container)
    assert paths == {"/tmp", "/tmp/matplotlib", "/run/classifier", "/var/lib/classifier"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in worker.pod["volumes"]}
    assert volumes[mounts["/run/classifier"]]["emptyDir"]["medium"] == "Memory"
    assert volumes[mounts["/var/lib/classifier"]]["persistentVolumeClaim"] == {
        "claimName": "classifier-data"
    }


# --- wiring: names, selectors, ports and references agree ---------------------------------------


@pytest.mark.parametrize("overlay", ["local", "production", "production-keda"])
def test_api_and_workers_run_their_own_commands_on_one_shared_data_volume(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    api, worker = workload(objects, "classifier-api"), workload(objects, "classifier-worker")
    (api_container,), (worker_container,) = api.containers, worker.containers
    assert api_container["command"] == ["python", "-m", "classifier", "serve"]
    assert classifier_settings(objects, api_container)["CLASSIFIER_RUN_JOBS"] == "false"
    assert api_container["image"] == worker_container["image"]
    for found, container in ((api, api_container), (worker, worker_container)):
        data_dir = environment(container)["CLASSIFIER_DATA_DIR"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == data_dir]
        (volume,) = [v for v in found.pod["volumes"] if v["name"] == mount["name"]]
        assert volume["persistentVolumeClaim"]["claimName"] == "classifier-data"
    claim = only(objects, "PersistentVolumeClaim", "classifier-data")
    # Every API and worker pod, on any node, mounts it; the local overlay's single node may use
    # the ReadWriteOnce volumes such clusters provision.
    expected = ["ReadWriteOnce"] if overlay == "local" else ["ReadWriteMany"]
    assert claim["spec"]["accessModes"] == expected


@pytest.mark.parametrize("overlay", ["local", "production", "production-keda"])
def test_the_database_url_comes_from_the_one_secret(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    references = set()
    for name in ("classifier-api", "classifier-worker"):
        (container,) = workload(objects, name).containers
        (variable,) = [e for e in container["env"] if e["name"] == "CLASSIFIER_DATABASE_URL"]
        reference = variable["valueFrom"]["secretKeyRef"]
        references.add((reference["name"], reference["key"]))
        assert "CLASSIFIER_DATABASE_URL" not in classifier_settings(objects, container)
    ((secret_name, key),) = references
    secrets = [item for item in objects if item["kind"] == "Secret"]
    if overlay == "local":
        secret = only(objects, "Secret", secret_name)
        url = urlsplit(base64.b64decode(secret["data"][key]).decode())
        service = only(objects, "Service", "classifier-postgres")
        assert url.scheme == "postgresql"
        assert (url.hostname, url.port) == (
            "classifier-postgres",
            service["spec"]["ports"][0]["port"],
        )
    else:
        # Production brings its own (docs/deployment.md): nothing here may overwrite it.
        assert secret_name == "classifier-database"
        assert secrets == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_pods_and_target_their_ports(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    for service in (item for item in objects if item["kind"] == "Service"):
        pods = [w for w in workloads(objects) if matches(service["spec"]["selector"], w.labels)]
        assert len(pods) == 1, service["metadata"]["name"]
        ports = {p.get("name") for c in pods[0].containers for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports


@pytest.mark.parametrize("overlay", ["local", "production", "production-keda"])
def test_the_api_port_setting_matches_its_container_port(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    (container,) = workload(objects, "classifier-api").containers
    (port,) = container["ports"]
    settings = classifier_settings(objects, container)
    assert (port["name"], int(settings["CLASSIFIER_PORT"])) == ("http", port["containerPort"])
    assert settings["CLASSIFIER_HOST"] == "0.0.0.0"
    # One uvicorn worker per core the container may use, never the node's core count.
    assert int(settings["CLASSIFIER_WORKERS"]) == int(
        float(container["resources"]["limits"]["cpu"])
    )


@pytest.mark.parametrize("overlay", ["local", "production", "production-keda"])
def test_records_are_shipped_to_the_aggregator_service(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    service = only(objects, "Service", "classifier-logs")
    (forward,) = service["spec"]["ports"]
    (fluentd,) = workload(objects, "classifier-logs").containers
    assert {"name": "forward", "containerPort": 24224, "protocol": "TCP"} in fluentd["ports"]
    for name in ("classifier-api", "classifier-worker"):
        (container,) = workload(objects, name).containers
        settings = classifier_settings(objects, container)
        assert settings["CLASSIFIER_FLUENTD_HOST"] == service["metadata"]["name"]
        assert int(settings["CLASSIFIER_FLUENTD_PORT"]) == forward["port"]


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_autoscalers_and_budgets_point_at_the_right_pods(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    (hpa,) = [item for item in objects if item["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "classifier-api",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # The HPA owns the API's replica count; a fixed one would be reset on every apply.
    assert "replicas" not in only(objects, "Deployment", "classifier-api")["spec"]
    budgets = {b["metadata"]["name"]: b for b in objects if b["kind"] == "PodDisruptionBudget"}
    assert set(budgets) == {"classifier-api", "classifier-worker"}
    for name, budget in budgets.items():
        assert budget["spec"]["maxUnavailable"] == 1
        assert matches(budget["spec"]["selector"]["matchLabels"], workload(objects, name).labels)
        assert not any(
            matches(budget["spec"]["selector"]["matchLabels"], other.labels)
            for other in workloads(objects)
            if other.name != name
        )


@pytest.mark.parametrize("overlay", ["local", "production", "production-keda"])
def test_api_and_workers_spread_over_nodes_and_zones(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    for name in ("classifier-api", "classifier-worker"):
        found = workload(rendered[overlay], name)
        constraints = found.pod["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in constraints} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }
        for constraint in constraints:
            assert constraint["labelSelector"]["matchLabels"] == found.labels
            assert constraint["matchLabelKeys"] == ["pod-template-hash"]


def allowed(policies: list[Manifest], labels: dict[str, str], direction: str) -> list[Manifest]:
    """The rules of every policy that selects pods with these labels, in one direction."""
    rules: list[Manifest] = []
    for policy in policies:
        spec = policy["spec"]
        if direction in spec["policyTypes"] and matches(
            spec["podSelector"].get("matchLabels", {}), labels
        ):
            rules += spec.get(direction.lower(), [])
    return rules


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_in_the_api_port_and_out_only_database_logs_and_dns(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    policies = [item for item in objects if item["kind"] == "NetworkPolicy"]
    deny = only(objects, "NetworkPolicy", "default-deny")["spec"]
    assert (deny["podSelector"], deny["policyTypes"]) == ({}, ["Ingress", "Egress"])
    assert [rule for rule in (deny.get("ingress"), deny.get("egress")) if rule] == []
    for found in workloads(objects):
        ingress_ports = {
            port["port"]
            for rule in allowed(policies, found.labels, "Ingress")
            for port in rule["ports"]
        }
        egress_ports = {
            port["port"]
            for rule in allowed(policies, found.labels, "Egress")
            for port in rule["ports"]
        }
        served = {
            port["containerPort"]
            for container in found.containers
            for port in container.get("ports", [])
            if port.get("name") in {"http", "http1", "forward", "postgres"}
        }
        # In: exactly the ports the pod serves on (no probe or monitor port is opened).
        assert ingress_ports == served, found.name
        if (
            found.labels.get("app.kubernetes.io/name") == "classifier"
            and found.kind == "Deployment"
        ):
            assert egress_ports == {5432, 24224, 53}, found.name
        else:
            assert egress_ports == set(), found.name


def test_local_database_egress_goes_only_to_its_own_database_pod(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["local"]
    egress = only(objects, "NetworkPolicy", "classifier-egress")["spec"]["egress"]
    (database,) = [rule for rule in egress if rule["ports"] == [{"port": 5432, "protocol": "TCP"}]]
    (target,) = database["to"]
    assert matches(
        target["podSelector"]["matchLabels"], workload(objects, "classifier-postgres").labels
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_in_the_overlays_restricted_namespace(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objects = rendered[overlay]
    namespace = only(objects, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for item in objects:
        if item["kind"] != "Namespace":
            assert item["metadata"]["namespace"] == namespace["metadata"]["name"]
        assert item["metadata"]["labels"]["app.kubernetes.io/instance"] == overlay.split("-")[0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_is_pinned_to_a_tag(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    tags = {}
    for found in workloads(rendered[overlay]):
        for container in found.containers:
            repository, _, tag = container["image"].rpartition(":")
            assert repository, container["image"]
            assert "/" not in tag, container["image"]
            assert tag not in {"", "latest"}, container["image"]
            tags[image_family(container["image"])] = tag
    expected = "dev" if overlay == "local" else "0.1.0"
    assert tags["classifier"] == expected


# --- KEDA: the fields the ScaledObject and TriggerAuthentication use -----------------------------

# KEDA's ScaledObjectSpec and ScaleTriggers (apis/keda/v1alpha1), and the metadata the
# postgresql scaler reads (pkg/scalers/postgresql_scaler.go).
SCALED_OBJECT_FIELDS = {
    "scaleTargetRef",
    "pollingInterval",
    "initialCooldownPeriod",
    "cooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "advanced",
    "triggers",
    "fallback",
}
TRIGGER_FIELDS = {"type", "name", "useCachedMetrics", "metadata", "authenticationRef", "metricType"}
POSTGRESQL_METADATA = {
    "targetQueryValue",
    "activationTargetQueryValue",
    "query",
    "connectionFromEnv",
    "host",
    "port",
    "userName",
    "dbName",
    "sslmode",
    "passwordFromEnv",
}


def test_keda_scales_the_workers_on_jobs_waiting_in_postgresql(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["production-keda"]
    scaled = only(objects, "ScaledObject")["spec"]
    assert set(scaled) <= SCALED_OBJECT_FIELDS
    assert scaled["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "classifier-worker",
    }
    assert (
        0
        <= scaled["minReplicaCount"]
        <= scaled["fallback"]["replicas"]
        <= scaled["maxReplicaCount"]
    )
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert set(behavior) <= {"scaleUp", "scaleDown"}
    (trigger,) = scaled["triggers"]
    assert set(trigger) <= TRIGGER_FIELDS
    assert trigger["type"] == "postgresql"
    metadata = trigger["metadata"]
    assert set(metadata) <= POSTGRESQL_METADATA
    # The CRD types metadata as map[string]string: a bare number in YAML would be refused.
    assert all(isinstance(value, str) for value in metadata.values())
    assert float(metadata["targetQueryValue"]) == 1.0
    query = metadata["query"]
    assert re.fullmatch(r"SELECT count\(\*\) FROM jobs WHERE status IN \((.+)\)", query)
    # Statuses of the job store's JobStatus (RECORDINGS-CONTRACT): the ones needing a worker.
    statuses = set(re.findall(r"'([a-z]+)'", query))
    assert statuses == {"queued", "running"}

    # KEDA owns the workers' HPA: none of ours on them, and no fixed replica count to fight it.
    assert not any(
        item["kind"] == "HorizontalPodAutoscaler"
        and item["spec"]["scaleTargetRef"]["name"] == "classifier-worker"
        for item in objects
    )
    assert "replicas" not in only(objects, "Deployment", "classifier-worker")["spec"]

    # The scaler connects with the URL the workers use, from the same Secret key.
    authentication = only(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert set(authentication["spec"]) == {"secretTargetRef"}
    (container,) = workload(objects, "classifier-worker").containers
    (url,) = [e for e in container["env"] if e["name"] == "CLASSIFIER_DATABASE_URL"]
    reference = url["valueFrom"]["secretKeyRef"]
    assert authentication["spec"]["secretTargetRef"] == [
        {"parameter": "connection", "name": reference["name"], "key": reference["key"]}
    ]


def test_keda_changes_nothing_else_in_production(rendered: dict[str, list[Manifest]]) -> None:
    def key(item: Manifest) -> tuple[str, str]:
        return item["kind"], item["metadata"]["name"]

    plain = {key(item): item for item in rendered["production"]}
    scaled = {key(item): item for item in rendered["production-keda"]}
    assert set(scaled) - set(plain) == {
        ("ScaledObject", "classifier-worker"),
        ("TriggerAuthentication", "classifier-database"),
    }
    worker = ("Deployment", "classifier-worker")
    assert {k for k in plain if plain[k] != scaled[k]} == {worker}
    assert {**scaled[worker]["spec"], "replicas": 2} == plain[worker]["spec"]


# --- KServe: the InferenceService's fields --------------------------------------------------------


def test_kserve_serves_the_clip_model_over_oip_from_our_image(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["kserve"]
    service = only(objects, "InferenceService")
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    predictor = service["spec"]["predictor"]
    assert set(service["spec"]) == {"predictor"}
    assert predictor["scaleMetric"] in {"cpu", "memory", "concurrency", "rps"}
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]

    # The rest of the predictor is a pod spec: validate it as one, strictly.
    found = workload(objects, "rodent-behaviour")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": found.pod}
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)

    (container,) = found.containers
    assert container["name"] == "kserve-container"
    settings = environment(container)
    # KServe reads a custom predictor's protocol from this variable (CustomSpecProtocolEnvVarKey).
    assert settings["PROTOCOL"] == "v2"
    assert settings["CLASSIFIER_RUN_JOBS"] == "false"
    (port,) = container["ports"]
    assert int(settings["CLASSIFIER_PORT"]) == port["containerPort"] == 8080
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    # The model it serves is the bundled one, named as the InferenceService is.
    assert "CLASSIFIER_MODEL_DIR" not in settings
    manifest = (ROOT / "services/classifier/models/rodent-behaviour/manifest.json").read_text()
    assert f'"name": "{service["metadata"]["name"]}"' in manifest


def test_every_env_value_is_a_string(
    rendered: dict[str, list[Manifest]],
) -> None:
    """Every env value is a string (a bare `8000` or `false` is an apply-time error)."""
    for overlay, objects in rendered.items():
        for found in workloads(objects):
            for container in found.containers:
                for variable in container.get("env", []):
                    if "value" in variable:
                        assert isinstance(variable["value"], str), (overlay, variable)


# --- settings: every CLASSIFIER_ variable the deployments set is one the service reads ------------


def classifier_variables(container: Manifest, objects: list[Manifest]) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        names |= set(only(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    return {name for name in names if name.startswith("CLASSIFIER_")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_classifier_variable_set_is_a_setting(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    known = {f"CLASSIFIER_{name.upper()}" for name in Settings.model_fields} | PENDING_SETTINGS
    seen = set()
    for found in workloads(rendered[overlay]):
        for container in found.containers:
            if image_family(container["image"]) == "classifier":
                seen |= classifier_variables(container, rendered[overlay])
    assert seen
    assert seen - known == set()
