"""The chart rendered by Helm's own engine for the deploy tests, and the schemas it is held to.

`helm_python` binds Helm v4's Go SDK (a library inside its wheel): rendering here is Helm's, with
no helm binary. Each value set renders once per test session. `validate` holds an object to the
Kubernetes API schema of its kind (kubernetes-validate's, strict: a field the API does not know
fails, as the API server's strict field validation refuses it), and a custom resource to the CRD
vendored in `schemas/`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import all_versions

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "consentry"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
RELEASE, NAMESPACE = "edu", "platform"
FULLNAME = f"{RELEASE}-consentry"

# Every optional part on: the worker, an Ingress with TLS, a ServiceMonitor, and the extras an
# operator sets (a CA bundle mounted, zone spread, workload identity, a memory target).
EVERYTHING: dict[str, Any] = {
    "imagePullSecrets": [{"name": "registry"}],
    "config": {"CONSENTRY_WEBHOOK_ALLOW_HOSTS": "10.42.0.0/16"},
    "worker": {"enabled": True},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
        "tls": [{"secretName": "consentry-tls", "hosts": ["consent.example.org"]}],
    },
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "autoscaling": {
        "targetMemoryUtilizationPercentage": 80,
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
    },
    "podDisruptionBudget": {"maxUnavailable": 1},
    "retention": {"timeZone": "Europe/Berlin", "dryRun": True},
    "serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": "c@p.iam.example"}},
    "service": {"annotations": {"example.org/team": "privacy"}},
    "podAnnotations": {"example.org/owner": "privacy"},
    "podLabels": {"example.org/tier": "backend"},
    "priorityClassName": "platform-high",
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "platform"}],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {
                        "matchExpressions": [
                            {"key": "pool", "operator": "In", "values": ["platform"]}
                        ]
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "consentry"}},
        }
    ],
    "extraEnv": [{"name": "PGSSLROOTCERT", "value": "/etc/consentry/postgres-ca/ca.pem"}],
    "extraEnvFrom": [{"secretRef": {"name": "consentry-extra"}}],
    "extraVolumes": [{"name": "postgres-ca", "configMap": {"name": "postgres-ca"}}],
    "extraVolumeMounts": [
        {"name": "postgres-ca", "mountPath": "/etc/consentry/postgres-ca", "readOnly": True}
    ],
}
# Every part that can be turned off, off.
LEAST: dict[str, Any] = {
    "autoscaling": {"enabled": False},
    "podDisruptionBudget": {"enabled": False},
    "migration": {"enabled": False},
    "retention": {"enabled": False},
    "serviceAccount": {"create": False},
    "metrics": {"podAnnotations": False},
    "spreadAcrossNodes": False,
    "preStopSleepSeconds": 0,
}


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _documented_values(document: Path, heading: str) -> dict[str, Any]:
    """The first YAML block after `heading` in one of the docs: the values it tells users to set."""
    text = document.read_text(encoding="utf-8")
    after = text[text.index(heading) :]
    block = re.search(r"```yaml\n(.*?)```", after, re.S)
    assert block, f"no values under {heading!r} in {document.name}"
    values: dict[str, Any] = yaml.safe_load(block.group(1))
    return values


VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything, HPA on": EVERYTHING,
    "everything, HPA off": _merged(EVERYTHING, {"autoscaling": {"enabled": False}}),
    "least": LEAST,
    "docs/deploy.md": _documented_values(ROOT / "docs" / "deploy.md", "## 4. Values"),
    "chart README policy file": _documented_values(CHART / "README.md", "## A policy file"),
}


@cache
def rendered(name: str, *, upgrade: bool = False) -> tuple[tuple[str, dict[str, Any]], ...]:
    """Helm's rendering of a value set: (template, object) for each object, NOTES left out."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(
            VALUE_SETS[name],
            name=RELEASE,
            namespace=NAMESPACE,
            is_install=not upgrade,
            is_upgrade=upgrade,
        )
    found = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        found.extend((template, item) for item in yaml.safe_load_all(text) if item)
    return tuple(found)


def objects_of(name: str, *, upgrade: bool = False) -> list[dict[str, Any]]:
    return [copy.deepcopy(item) for _, item in rendered(name, upgrade=upgrade)]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} rendered"
    return matches[0]


def pod_specs(item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod spec of a workload or a Pod: what runs, whichever kind carries it."""
    if item["kind"] == "Pod":
        yield item["spec"]
    elif item["kind"] in {"Deployment", "Job"}:
        yield item["spec"]["template"]["spec"]
    elif item["kind"] == "CronJob":
        yield item["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {entry["name"]: entry.get("value", "") for entry in container.get("env", [])}


# --- Schemas ----------------------------------------------------------------------------------


def _kubernetes_versions() -> list[str]:
    """The oldest and the newest Kubernetes whose schemas the validator ships.

    The chart asks for 1.23 or later; the validator's oldest is newer than that, so the oldest
    it has stands for the old end.
    """
    versions = all_versions()
    return sorted({versions[0], versions[-1]})


def _strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields, as the API server's strict validation does."""
    if isinstance(schema, dict):
        strict = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def _custom_resource_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the strict schema of each vendored CRD's served versions."""
    found = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                found[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return found


def validate(item: dict[str, Any]) -> None:
    """Raise when the object does not match its kind's schema; every kind must have one."""
    custom = _custom_resource_schemas().get((item["apiVersion"], item["kind"]))
    if custom is not None:
        jsonschema.Draft202012Validator(custom).validate(item)
        return
    for version in _kubernetes_versions():
        kubernetes_validate.validate(item, version, strict=True)


def container_of(item: dict[str, Any]) -> dict[str, Any]:
    """The one container of a workload."""
    [spec] = pod_specs(item)
    [container] = spec["containers"]
    return container
