"""The chart linted and rendered by Helm: every object valid for its kind, and the ones promised.

Every value set of `rendering.VALUE_SETS` lints clean and renders objects that match the
Kubernetes API schemas of their kinds; with every optional part on, the objects are exactly the
resources the chart README lists, and they select one another as the README says.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.rendering import (
    CHART,
    FULLNAME,
    NAMESPACE,
    RELEASE,
    ROOT,
    VALUE_SETS,
    objects_of,
    one,
    rendered,
    validate,
)

# Severities of `helm lint` messages.
INFO, ERROR = 1, 3


# --- Helm's lint ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_is_clean_in_strict_mode(name: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[name], strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert report["messages"] == []


def test_helm_lint_reports_a_template_that_fails_and_a_missing_icon(tmp_path: Path) -> None:
    copy_ = tmp_path / "consentry"
    shutil.copytree(CHART, copy_)
    metadata = (copy_ / "Chart.yaml").read_text(encoding="utf-8")
    (copy_ / "Chart.yaml").write_text(re.sub(r"(?m)^icon: .*\n", "", metadata), encoding="utf-8")
    (copy_ / "templates" / "broken.yaml").write_text("{{ .Values.no.such.value }}\n")
    report = helm.lint(copy_, strict=True)
    found = {(m["severity"], m["path"]) for m in report["messages"]}
    assert (INFO, "Chart.yaml") in found
    assert (ERROR, "templates/") in found


def test_the_chart_icon_is_the_service_icon() -> None:
    with helm.Chart.load(CHART) as chart:
        icon = chart.metadata["icon"]
    svg = (ROOT / "src" / "consentry" / "web" / "static" / "icon.svg").read_bytes()
    prefix = "data:image/svg+xml;base64,"
    assert icon.startswith(prefix)
    assert base64.b64decode(icon.removeprefix(prefix)) == svg


# --- Every object valid -----------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_rendered_object_is_valid_for_its_kind(name: str) -> None:
    for template, item in rendered(name):
        try:
            validate(item)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            where = "/".join(str(part) for part in error.absolute_path)
            pytest.fail(f"{template}: {item['kind']} at {where}: {error.message}", pytrace=False)


def test_validation_refuses_an_unknown_field_and_a_wrong_type() -> None:
    objects = objects_of("everything, HPA on")
    deployment = one(objects, "Deployment", FULLNAME)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    job = one(objects, "Job", f"{FULLNAME}-migrate")
    job["spec"]["backoffLimit"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)
    monitor = one(objects, "ServiceMonitor", FULLNAME)
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)
    monitor["spec"]["endpoints"][0] = {"port": "http", "intervall": "30s"}
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


# --- The objects the README promises ----------------------------------------------------------


def _promised() -> set[tuple[str, str | None]]:
    """The chart README's table of resources: (kind, name or None when it names none)."""
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| Resource |") : readme.index("## Secrets")]
    promised = set()
    for first in re.findall(r"^\| ([^|]+?) \|", table, re.M)[1:]:
        if set(first) <= {"-"}:
            continue
        kind, _, rest = first.partition(" ")
        name = re.search(r"`([^`]+)`", rest)
        promised.add((kind, name.group(1).replace("<release>", RELEASE) if name else None))
    return promised


def _kinds(name: str) -> set[tuple[str, str]]:
    return {(item["kind"], item["metadata"]["name"]) for _, item in rendered(name)}


def test_everything_on_renders_each_resource_of_the_readme_table_once() -> None:
    found = [(i["kind"], i["metadata"]["name"]) for _, i in rendered("everything, HPA on")]
    assert len(found) == len(set(found))
    promised = _promised()
    assert {kind for kind, _ in promised} == {kind for kind, _ in found}
    for kind, name in promised:
        if name is not None:
            assert (kind, name) in found, f"the README promises {kind} {name}"


def test_each_value_set_renders_the_objects_its_switches_select() -> None:
    always = {
        ("ConfigMap", FULLNAME),
        ("Deployment", FULLNAME),
        ("Service", FULLNAME),
        ("Pod", f"{FULLNAME}-test-readiness"),
    }
    defaults = always | {
        ("ServiceAccount", FULLNAME),
        ("HorizontalPodAutoscaler", FULLNAME),
        ("PodDisruptionBudget", FULLNAME),
        ("Job", f"{FULLNAME}-migrate"),
        ("CronJob", f"{FULLNAME}-retention"),
    }
    optional = {
        ("Deployment", f"{FULLNAME}-worker"),
        ("Ingress", FULLNAME),
        ("ServiceMonitor", FULLNAME),
    }
    assert _kinds("defaults") == defaults
    assert _kinds("everything, HPA on") == defaults | optional
    assert (
        _kinds("everything, HPA off")
        == defaults - {("HorizontalPodAutoscaler", FULLNAME)} | optional
    )
    assert _kinds("least") == always
    assert _kinds("docs/deploy.md") == defaults | {("Ingress", FULLNAME)}


def test_the_hpa_owns_the_replica_count_only_when_it_is_on() -> None:
    with_hpa = objects_of("everything, HPA on")
    deployment = one(with_hpa, "Deployment", FULLNAME)
    assert "replicas" not in deployment["spec"]
    hpa = one(with_hpa, "HorizontalPodAutoscaler", FULLNAME)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    without = one(objects_of("everything, HPA off"), "Deployment", FULLNAME)
    assert without["spec"]["replicas"] == 2


def test_service_ingress_monitor_and_budget_select_the_service_pods_only() -> None:
    objects = objects_of("everything, HPA on")
    server = one(objects, "Deployment", FULLNAME)
    worker = one(objects, "Deployment", f"{FULLNAME}-worker")
    server_labels = server["spec"]["template"]["metadata"]["labels"]
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return selector.items() <= labels.items()

    service = one(objects, "Service", FULLNAME)
    budget = one(objects, "PodDisruptionBudget", FULLNAME)
    for selector in (service["spec"]["selector"], budget["spec"]["selector"]["matchLabels"]):
        assert selects(selector, server_labels)
        assert not selects(selector, worker_labels)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    monitor = one(objects, "ServiceMonitor", FULLNAME)
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    ingress = one(objects, "Ingress", FULLNAME)
    assert ingress["spec"]["tls"] == [
        {"hosts": ["consent.example.org"], "secretName": "consentry-tls"}
    ]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "consent.example.org"
    assert rule["http"]["paths"][0]["backend"] == {
        "service": {"name": FULLNAME, "port": {"number": 80}}
    }
