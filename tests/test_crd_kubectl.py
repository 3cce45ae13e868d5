"""Integration: extending ketch — CustomResourceDefinitions with the real kubectl 1.37 and the
official Python client, and a pod using its service account through in-cluster config, on a
real ``ketch up`` cluster (store ×3, apiserver, controller-manager, scheduler, one node agent).
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certs.kubeconfig import write_kubeconfig
from certs.layout import issue_user, user_paths
from ketch.cluster import Cluster
from tests.kube import Kubectl, poll

pytestmark = pytest.mark.integration

GROUP = "example.com"
CRD = textwrap.dedent("""\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: backups.example.com
    spec:
      group: example.com
      scope: Namespaced
      names: {plural: backups, singular: backup, kind: Backup, shortNames: [bk],
              categories: [all]}
      versions:
      - name: v1
        served: true
        storage: true
        subresources:
          status: {}
          scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
        additionalPrinterColumns:
        - {name: Source, type: string, jsonPath: .spec.source}
        - {name: Replicas, type: integer, jsonPath: .spec.replicas}
        - {name: Phase, type: string, jsonPath: .status.phase}
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                required: [source]
                x-kubernetes-validations:
                - {rule: "self.replicas <= 5", message: "at most 5 replicas"}
                properties:
                  source: {type: string, description: "Where the data comes from."}
                  schedule: {type: string, default: "@daily"}
                  replicas: {type: integer, minimum: 0, default: 1}
              status:
                type: object
                properties:
                  phase: {type: string}
                  replicas: {type: integer}
    """)


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("ketch-crd") / "cluster", port=0, nodes=1)
    c.up(progress=_quiet)
    try:
        yield c
    finally:
        c.down(progress=_quiet)


@pytest.fixture(scope="module")
def kubectl(ketch: Cluster) -> Kubectl:
    return Kubectl(ketch.kubeconfig)


def _write(tmp: Path, text: str) -> str:
    path = tmp / f"{uuid.uuid4().hex}.yaml"
    path.write_text(text)
    return str(path)


def _user(ketch: Cluster, name: str) -> Kubectl:
    issue_user(ketch.store.certs_dir, name)
    paths = user_paths(ketch.store.certs_dir, name)
    kc = ketch.dir / f"{name}.kubeconfig"
    write_kubeconfig(kc, server=ketch.url, ca=paths.ca, cert=paths.cert, key=paths.key,
                     user=name)
    return Kubectl(kc)


def test_custom_resources_with_kubectl(ketch: Cluster, kubectl: Kubectl,
                                       tmp_path: Path) -> None:
    kubectl.run("apply", "-f", _write(tmp_path, CRD))
    kubectl.run("wait", "--for", "condition=established", "crd/backups.example.com",
                "--timeout=20s")
    assert "backups" in kubectl.run("api-resources", "--api-group", GROUP).stdout
    cr = "apiVersion: example.com/v1\nkind: Backup\nmetadata: {name: nightly}\n" \
         "spec: {source: /data}\n"
    kubectl.run("apply", "-f", _write(tmp_path, cr))
    got = kubectl.json("get", "backup", "nightly")
    assert got["spec"] == {"source": "/data", "schedule": "@daily", "replicas": 1}
    table = kubectl.run("get", "bk").stdout.splitlines()
    assert table[0].split() == ["NAME", "SOURCE", "REPLICAS", "PHASE"]
    assert table[1].split() == ["nightly", "/data", "1"]  # no phase yet: an empty cell
    assert "nightly" in kubectl.run("get", "all").stdout
    explained = kubectl.run("explain", "backup.spec.source").stdout
    assert "Where the data comes from." in explained
    # client-side apply of a change (a merge patch), a merge patch, scale
    kubectl.run("apply", "-f", _write(tmp_path, cr.replace("/data", "/srv")))
    kubectl.run("patch", "backup", "nightly", "--type=merge", "-p",
                '{"spec":{"schedule":"@hourly"}}')
    kubectl.run("scale", "backup", "nightly", "--replicas=3")
    got = kubectl.json("get", "backup", "nightly")
    assert (got["spec"]["source"], got["spec"]["schedule"], got["spec"]["replicas"]) == (
        "/srv", "@hourly", 3)
    assert got["metadata"]["generation"] == 4
    watcher = kubectl.popen("get", "backup", "nightly", "-w", "-o", "name")
    try:
        kubectl.run("label", "backup", "nightly", "watched=yes")
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip() == "backup.example.com/nightly"
    finally:
        watcher.kill()
        watcher.wait()
    bad = kubectl.run("apply", "-f", _write(tmp_path, cr.replace(
        "{source: /data}", "{source: /x, replicas: 9}")), check=False)
    assert bad.returncode != 0 and "at most 5 replicas" in bad.stderr
    wrong = kubectl.run("apply", "-f", _write(tmp_path, cr.replace("nightly", "typed").replace(
        "{source: /data}", "{source: 42}")), check=False)
    assert wrong.returncode != 0
    assert "spec.source in body must be of type string" in wrong.stderr
    assert kubectl.run("get", "backup", "typed", check=False).returncode != 0
    kubectl.run("apply", "--server-side", "-f", _write(tmp_path, cr.replace(
        "nightly", "ssa")))
    assert kubectl.json("get", "backup", "ssa")["spec"]["replicas"] == 1
    # a Role scoped to the custom resource
    kubectl.run("create", "role", "backup-reader", "--verb=get,list",
                "--resource=backups.example.com")
    kubectl.run("create", "rolebinding", "backup-reader", "--role=backup-reader",
                "--user=alice")
    alice = _user(ketch, "alice")
    assert "nightly" in poll(lambda: alice.run("get", "backups").stdout)
    denied = alice.run("delete", "backup", "nightly", check=False)
    assert denied.returncode != 0 and 'cannot delete resource "backups" in API group ' \
                                      '"example.com"' in denied.stderr
    # deleting the CRD deletes its objects and stops serving them
    kubectl.run("delete", "crd", "backups.example.com", timeout=60)
    gone = kubectl.run("get", "backups", check=False)
    assert gone.returncode != 0 and "the server doesn't have a resource type" in gone.stderr


OPERATOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "webapps.ops.example.com"},
    "spec": {"group": "ops.example.com", "scope": "Namespaced",
             "names": {"plural": "webapps", "kind": "WebApp"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {
                                   "image": {"type": "string"},
                                   "replicas": {"type": "integer", "default": 1}}},
                               "status": {"type": "object", "properties": {
                                   "phase": {"type": "string"}}}}}}}]}}


def _operator(api: Any, stop: threading.Event, errors: list[BaseException]) -> None:
    """A typical operator: watch WebApps; for each, own a Deployment, post an Event and
    write the WebApp's status."""
    from kubernetes import client, watch

    co, apps, core = client.CustomObjectsApi(api), client.AppsV1Api(api), client.CoreV1Api(api)
    try:
        w = watch.Watch()
        for ev in w.stream(co.list_namespaced_custom_object, "ops.example.com", "v1",
                           "default", "webapps", timeout_seconds=60):
            if stop.is_set():
                w.stop()
                break
            obj = ev["object"]
            meta = obj["metadata"]
            if ev["type"] != "ADDED" or (obj.get("status") or {}).get("phase"):
                continue
            owner = {"apiVersion": "ops.example.com/v1", "kind": "WebApp",
                     "name": meta["name"], "uid": meta["uid"], "controller": True,
                     "blockOwnerDeletion": True}
            labels = {"webapp": meta["name"]}
            apps.create_namespaced_deployment("default", {
                "metadata": {"name": meta["name"], "ownerReferences": [owner]},
                "spec": {"replicas": obj["spec"]["replicas"],
                         "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                             {"name": "web", "image": obj["spec"]["image"]}]}}}})
            core.create_namespaced_event("default", {
                "metadata": {"generateName": meta["name"] + "."},
                "involvedObject": {"apiVersion": "ops.example.com/v1", "kind": "WebApp",
                                   "name": meta["name"], "namespace": "default",
                                   "uid": meta["uid"]},
                "reason": "Created", "message": "created its Deployment", "type": "Normal",
                "source": {"component": "webapp-operator"}})
            co.patch_namespaced_custom_object_status(
                "ops.example.com", "v1", "default", "webapps", meta["name"],
                {"status": {"phase": "Ready"}})
    except BaseException as e:  # noqa: BLE001 - reported by the test
        errors.append(e)


def test_operator_loop_with_the_python_client(ketch: Cluster, kubectl: Kubectl,
                                              tmp_path: Path) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(str(ketch.kubeconfig))
    client.ApiextensionsV1Api(api).create_custom_resource_definition(OPERATOR_CRD)
    kubectl.run("wait", "--for", "condition=established", "crd/webapps.ops.example.com",
                "--timeout=20s")
    stop, errors = threading.Event(), []
    loop = threading.Thread(target=_operator, args=(api, stop, errors), daemon=True)
    loop.start()
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object("ops.example.com", "v1", "default", "webapps", {
        "apiVersion": "ops.example.com/v1", "kind": "WebApp", "metadata": {"name": "shop"},
        "spec": {"image": "nginx:1.25"}})

    def ready() -> bool:
        got = co.get_namespaced_custom_object("ops.example.com", "v1", "default", "webapps",
                                              "shop")
        return (got.get("status") or {}).get("phase") == "Ready"
    poll(ready, timeout=30)
    stop.set()
    dep = client.AppsV1Api(api).read_namespaced_deployment("shop", "default")
    assert dep.metadata.owner_references[0].kind == "WebApp"
    assert dep.spec.replicas == 1  # the WebApp's default
    events = client.CoreV1Api(api).list_namespaced_event(
        "default", field_selector="involvedObject.name=shop,involvedObject.kind=WebApp")
    assert [e.reason for e in events.items] == ["Created"]
    assert not errors, errors


def test_garbage_collector_removes_what_a_custom_object_owns(ketch: Cluster,
                                                              kubectl: Kubectl) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(str(ketch.kubeconfig))
    co = client.CustomObjectsApi(api)
    poll(lambda: "webapps" in kubectl.run("api-resources").stdout)
    owner = co.create_namespaced_custom_object("ops.example.com", "v1", "default", "webapps", {
        "apiVersion": "ops.example.com/v1", "kind": "WebApp", "metadata": {"name": "gc-me"},
        "spec": {"image": "nginx:1.25"}})
    client.CoreV1Api(api).create_namespaced_config_map("default", {
        "metadata": {"name": "gc-me", "ownerReferences": [{
            "apiVersion": "ops.example.com/v1", "kind": "WebApp", "name": "gc-me",
            "uid": owner["metadata"]["uid"]}]}, "data": {"a": "b"}})
    co.delete_namespaced_custom_object("ops.example.com", "v1", "default", "webapps", "gc-me")
    poll(lambda: kubectl.run("get", "configmap", "gc-me", check=False).returncode != 0,
         timeout=30)


def test_pod_with_in_cluster_config_lists_pods(ketch: Cluster, kubectl: Kubectl,
                                               tmp_path: Path) -> None:
    """A pod running the official Python client with in-cluster config, as its service
    account: the token, ca.crt and namespace mounted by the node agent, the API reached at
    the kubernetes Service's ClusterIP through the service proxy."""
    kubectl.run("create", "serviceaccount", "lister")
    kubectl.run("create", "role", "pod-lister", "--verb=list", "--resource=pods")
    kubectl.run("create", "rolebinding", "pod-lister", "--role=pod-lister",
                "--serviceaccount=default:lister")
    mount = "/var/run/secrets/kubernetes.io/serviceaccount"
    code = textwrap.dedent(f"""\
        from kubernetes import client, config
        from kubernetes.config import incluster_config as ic
        ic.SERVICE_TOKEN_FILENAME = '{mount}/token'
        ic.SERVICE_CERT_FILENAME = '{mount}/ca.crt'
        config.load_incluster_config()
        ns = open('{mount}/namespace').read()
        pods = client.CoreV1Api().list_namespaced_pod(ns)
        print('PODS', sorted(p.metadata.name for p in pods.items), flush=True)
        try:
            client.CoreV1Api().list_namespaced_secret(ns)
        except client.ApiException as e:
            print('SECRETS', e.status, flush=True)
        """)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "in-cluster"},
           "spec": {"serviceAccountName": "lister", "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox",
                                    "command": [sys.executable, "-c", code]}]}}
    kubectl.run("apply", "-f", _write(tmp_path, json.dumps(pod)))

    def finished() -> str:
        phase = kubectl.json("get", "pod", "in-cluster")["status"].get("phase")
        return phase if phase in ("Succeeded", "Failed") else ""
    phase = poll(finished, timeout=90)
    logs = kubectl.run("logs", "in-cluster").stdout
    assert phase == "Succeeded", logs
    assert "'in-cluster'" in logs.split("PODS", 1)[1].splitlines()[0]
    assert "SECRETS 403" in logs
