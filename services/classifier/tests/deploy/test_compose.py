"""compose.yml's "scale" profile and its nginx configuration agree with each other and the service.

The compose-spec schema (make lint-static) checks the file's shape; these check what it cannot:
which services start, which port is published, and that names, ports, credentials and volumes
line up between the proxy, the API replicas, the workers and PostgreSQL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from classifier.core.config import Settings
from tests.deploy.conftest import KUBERNETES, PENDING_SETTINGS, ROOT

SCALE = ["postgres", "api", "worker", "proxy"]
# What `make up-scale` names; compose adds their dependencies.
ENTRY_POINTS = ["proxy", "worker"]

Service = dict[str, Any]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yml").read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Service]:
    found: dict[str, Service] = compose["services"]
    return found


@pytest.fixture(scope="module")
def nginx() -> str:
    text = (ROOT / "deploy" / "compose" / "nginx.conf").read_text(encoding="utf-8")
    return re.sub(r"#.*", "", text)


def started_with(services: dict[str, Service], names: list[str]) -> set[str]:
    """The services `docker compose up NAMES` starts: the names and all they depend on."""
    started: set[str] = set()
    waiting = list(names)
    while waiting:
        name = waiting.pop()
        if name not in started:
            started.add(name)
            waiting += list(services[name].get("depends_on", {}))
    return started


def directive(nginx: str, name: str) -> list[str]:
    """Every value of an nginx directive, e.g. directive(conf, "listen") -> ["8080"]."""
    return [m.group(1).strip() for m in re.finditer(rf"(?m)^\s*{name}\s+([^;{{}}]+);", nginx)]


def test_the_profile_adds_four_services_and_leaves_the_default_stack_alone(
    services: dict[str, Service],
) -> None:
    profiled = {name: s.get("profiles") for name, s in services.items() if s.get("profiles")}
    assert profiled == {"e2e": ["e2e"], **{name: ["scale"] for name in SCALE}}
    # `docker compose up` (make up) still starts exactly logs and classifier.
    assert {name for name in services if name not in profiled} == {"logs", "classifier"}


def test_the_scaled_stack_publishes_one_port_where_classifier_would(
    services: dict[str, Service],
) -> None:
    started = started_with(services, ENTRY_POINTS)
    assert started == {"proxy", "api", "worker", "postgres", "logs"}
    published = {name: services[name]["ports"] for name in started if "ports" in services[name]}
    (proxy_port,) = published.pop("proxy")
    assert published == {}
    (classifier_port,) = services["classifier"]["ports"]
    host, _, container = proxy_port.rpartition(":")
    assert host == classifier_port.rpartition(":")[0]
    assert container == "8080"


def test_two_api_replicas_and_two_workers_share_the_database_and_the_data_volume(
    services: dict[str, Service],
) -> None:
    api, worker, postgres = services["api"], services["worker"], services["postgres"]
    assert api["command"] == ["python", "-m", "classifier", "serve"]
    assert worker["command"] == ["python", "-m", "classifier", "worker"]
    assert api["deploy"]["replicas"] == worker["deploy"]["replicas"] == 2
    assert api["image"] == worker["image"] == services["classifier"]["image"]
    assert api["environment"]["CLASSIFIER_RUN_JOBS"] == "false"
    assert "CLASSIFIER_RUN_JOBS" not in worker["environment"]
    database = postgres["environment"]
    for service in (api, worker):
        env = service["environment"]
        url = urlsplit(env["CLASSIFIER_DATABASE_URL"])
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432)
        assert (url.username, url.password) == (
            database["POSTGRES_USER"],
            database["POSTGRES_PASSWORD"],
        )
        assert url.path == "/" + database["POSTGRES_DB"]
        assert env["CLASSIFIER_FLUENTD_HOST"] == "logs"
        assert service["volumes"] == [f"classifier-data:{env['CLASSIFIER_DATA_DIR']}"]
        assert {"postgres", "logs"} <= set(service["depends_on"])


def test_every_scaled_service_is_hardened_and_health_checked(
    services: dict[str, Service],
) -> None:
    for name in SCALE:
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert "/tmp" in service["tmpfs"], name
        # api inherits the image's HEALTHCHECK (services/classifier/Dockerfile), as classifier does.
        assert ("healthcheck" in service) == (name != "api"), name
    for name in ("postgres", "proxy"):
        image = services[name]["image"]
        # A release pinned to its patch version and base distribution, never a moving tag.
        assert re.fullmatch(r"[a-z]+:\d+\.\d+(\.\d+)?-[a-z]+", image), image
    assert services["postgres"]["user"] == "999:999"
    assert services["proxy"]["user"] == "101:101"


def test_the_worker_healthcheck_is_the_kubernetes_probe(services: dict[str, Service]) -> None:
    worker = services["worker"]
    heartbeat = worker["environment"]["CLASSIFIER_WORKER_HEALTH_FILE"]
    assert str(Path(heartbeat).parent) in worker["tmpfs"]
    manifests = yaml.safe_load_all(
        (KUBERNETES / "base" / "worker.yaml").read_text(encoding="utf-8")
    )
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert worker["healthcheck"]["test"] == ["CMD", *container["readinessProbe"]["exec"]["command"]]


def test_nginx_proxies_to_the_api_replicas_on_their_port(
    services: dict[str, Service], nginx: str
) -> None:
    api_port = services["api"]["environment"]["CLASSIFIER_PORT"]
    (server,) = directive(nginx, "server")
    address, *parameters = server.split()
    assert address == f"api:{api_port}"
    # Re-resolved as replicas come and go (needs the resolver and a shared-memory zone).
    assert "resolve" in parameters
    assert directive(nginx, "resolver")[0].split()[0] == "127.0.0.11"
    assert directive(nginx, "zone")
    assert directive(nginx, "proxy_pass") == ["http://classifier_api"]
    assert nginx.count("upstream classifier_api") == 1
    (listen,) = directive(nginx, "listen")
    assert listen == services["proxy"]["ports"][0].rpartition(":")[2]
    check = services["proxy"]["healthcheck"]["test"]
    assert check[-1] == f"http://127.0.0.1:{listen}/health/ready"


def test_nginx_streams_recording_uploads_up_to_the_services_limit(nginx: str) -> None:
    settings = (KUBERNETES / "base" / "settings.env").read_text(encoding="utf-8")
    limit = re.search(r"^CLASSIFIER_MAX_RECORDING_BYTES=(\d+)$", settings, re.MULTILINE)
    assert limit is not None
    (body,) = directive(nginx, "client_max_body_size")
    size = re.fullmatch(r"(\d+)([kmg]?)", body)
    assert size is not None
    factor = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[size.group(2)]
    assert int(size.group(1)) * factor >= int(limit.group(1))
    assert directive(nginx, "proxy_request_buffering") == ["off"]


def test_nginx_writes_only_to_its_tmpfs(services: dict[str, Service], nginx: str) -> None:
    written = [
        *directive(nginx, "pid"),
        *[value.split()[0] for value in directive(nginx, r"[a-z_]+_temp_path")],
    ]
    assert len(written) == 6
    assert services["proxy"]["tmpfs"] == ["/tmp"]
    assert all(path.startswith("/tmp/") for path in written), written
    assert directive(nginx, "error_log")[0].startswith("/dev/stderr")
    assert directive(nginx, "access_log") == ["off"]
    assert "user" not in {m.group(1) for m in re.finditer(r"(?m)^\s*(\w+)\s", nginx)}


def test_no_pending_setting_is_a_setting_already() -> None:
    # Once a pending name becomes a field, it must leave the list, or a typo in it would pass.
    fields = {f"CLASSIFIER_{name.upper()}" for name in Settings.model_fields}
    assert PENDING_SETTINGS & fields == set()


def test_every_classifier_variable_set_is_a_setting(services: dict[str, Service]) -> None:
    known = {f"CLASSIFIER_{name.upper()}" for name in Settings.model_fields} | PENDING_SETTINGS
    for name in ("classifier", "api", "worker"):
        variables = {v for v in services[name]["environment"] if v.startswith("CLASSIFIER_")}
        assert variables - known == set(), name
