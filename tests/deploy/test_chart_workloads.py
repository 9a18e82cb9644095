"""The chart's workloads as rendered by Helm: probes, the worker switch, the migration hook, and
the security context of every pod, as the chart README and docs/deploy.md describe them.
"""

from __future__ import annotations

import pytest

from tests.deploy.rendering import (
    FULLNAME,
    VALUE_SETS,
    container_of,
    env_of,
    objects_of,
    one,
    pod_specs,
    rendered,
)

# The containers' one writable place, an emptyDir (a path inside the pods, not on this machine).
TMP = "/tmp"  # noqa: S108


# --- Probes, the worker, the hook -------------------------------------------------------------


@pytest.mark.parametrize("name", ["defaults", "everything, HPA on"])
def test_service_pods_probe_health_and_readiness_and_start_without_migrating(name: str) -> None:
    deployment = one(objects_of(name), "Deployment", FULLNAME)
    container = container_of(deployment)
    assert container["args"] == [
        "consentry",
        "serve",
        "--host=0.0.0.0",
        "--port=8000",
        "--workers=1",
        "--no-migrate",
    ]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    probes = {kind: container[f"{kind}Probe"] for kind in ("startup", "liveness", "readiness")}
    assert {kind: probe["httpGet"] for kind, probe in probes.items()} == {
        "startup": {"path": "/healthz", "port": "http"},
        "liveness": {"path": "/healthz", "port": "http"},
        "readiness": {"path": "/readyz", "port": "http"},
    }
    # The chart README's figures: 60 s to start, a restart after 30 s without an answer, out of
    # the Service after 10 s of failed readiness.
    startup, liveness, readiness = probes["startup"], probes["liveness"], probes["readiness"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 60
    assert liveness["periodSeconds"] * liveness["failureThreshold"] == 30
    assert readiness["periodSeconds"] * readiness["failureThreshold"] == 10
    assert container["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_worker_switch_moves_the_worker_out_of_the_service_pods() -> None:
    default_env = env_of(container_of(one(objects_of("defaults"), "Deployment", FULLNAME)))
    assert default_env["CONSENTRY_RUN_WORKER"] == "true"
    objects = objects_of("everything, HPA on")
    assert env_of(container_of(one(objects, "Deployment", FULLNAME)))["CONSENTRY_RUN_WORKER"] == (
        "false"
    )
    worker = one(objects, "Deployment", f"{FULLNAME}-worker")
    container = container_of(worker)
    assert container["args"] == ["consentry", "worker"]
    assert worker["spec"]["replicas"] == 1
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60
    # No HTTP server in that process: nothing to probe, nothing to scrape.
    assert not {"ports", "livenessProbe", "readinessProbe", "startupProbe"} & container.keys()
    # It reads the same settings as the service pods, the webhook allow-list among them.
    assert container["envFrom"][0] == {"configMapRef": {"name": FULLNAME}}
    config = one(objects, "ConfigMap", FULLNAME)
    assert config["data"]["CONSENTRY_WEBHOOK_ALLOW_HOSTS"] == "10.42.0.0/16"


@pytest.mark.parametrize("upgrade", [False, True], ids=["install", "upgrade"])
def test_migration_job_is_a_hook_that_needs_nothing_the_release_creates(upgrade: bool) -> None:
    objects = objects_of("everything, HPA on", upgrade=upgrade)
    job = one(objects, "Job", f"{FULLNAME}-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    # Replaced by the next attempt, not deleted on success: its log says what it migrated.
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    container = container_of(job)
    assert container["args"] == ["consentry", "migrate"]
    # Hooks run before the release creates anything: not its ConfigMap, nor (on the first
    # install) its ServiceAccount. The settings are written inline instead, all of them.
    assert container["envFrom"] == [
        {"secretRef": {"name": "consentry"}},
        {"secretRef": {"name": "consentry-extra"}},
    ]
    config = one(objects, "ConfigMap", FULLNAME)["data"]
    assert env_of(container) == config | {"PGSSLROOTCERT": "/etc/consentry/postgres-ca/ca.pem"}
    assert spec["serviceAccountName"] == (FULLNAME if upgrade else "default")


# --- Security ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_pod_runs_as_non_root_on_a_read_only_root(name: str) -> None:
    pods = 0
    for _, item in rendered(name):
        for spec in pod_specs(item):
            pods += 1
            where = f"{item['kind']} {item['metadata']['name']}"
            # The `restricted` Pod Security Standard, and the image's own user.
            assert spec["securityContext"] == {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            }, where
            assert spec["automountServiceAccountToken"] is False, where
            for container in spec["containers"]:
                assert container["securityContext"] == {
                    "runAsNonRoot": True,
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                }, where
            if item["kind"] == "Pod":
                continue  # `helm test`'s one request writes nothing
            # The one writable place: an emptyDir at /tmp, where the metrics of workers meet.
            assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"], where
            for container in spec["containers"]:
                assert {"name": "tmp", "mountPath": TMP} in container["volumeMounts"], where
    assert pods >= 2


def test_metrics_of_several_workers_meet_in_the_writable_tmp() -> None:
    container = container_of(one(objects_of("defaults"), "Deployment", FULLNAME))
    assert env_of(container)["PROMETHEUS_MULTIPROC_DIR"].startswith(f"{TMP}/")
