"""Integration: the official ``kubernetes`` Python client against a real ``ketch up`` cluster,
and the apiserver through a store leader kill (requests pause briefly, watches have no gap).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

from ketch.cluster import Cluster
from tests.conftest import wait_for_leader
from tests.kube import poll

pytestmark = pytest.mark.integration


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("ketch-py") / "cluster", port=0, nodes=0)
    c.up(progress=_quiet)
    try:
        yield c
    finally:
        c.down(progress=_quiet)


@pytest.fixture
def api(ketch: Cluster) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(ketch.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as c:
        yield c


def _deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def test_typed_client_crud_scale_patch_and_errors(api: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    assert client.VersionApi(api).get_code().major == "1"
    core.list_namespaced_pod("default")
    created = apps.create_namespaced_deployment("default", _deployment("pyweb"))
    assert created.metadata.generation == 1
    scale = apps.patch_namespaced_deployment_scale("pyweb", "default",
                                                   {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    patched = apps.patch_namespaced_deployment("pyweb", "default",
                                               {"metadata": {"labels": {"x": "y"}}})
    assert patched.metadata.labels["x"] == "y" and patched.spec.replicas == 3
    with pytest.raises(ApiException) as e404:
        core.read_namespaced_pod("nope", "default")
    assert e404.value.status == 404
    with pytest.raises(ApiException) as e409:
        apps.create_namespaced_deployment("default", _deployment("pyweb"))
    assert e409.value.status == 409 and "AlreadyExists" in e409.value.body
    stale = apps.read_namespaced_deployment("pyweb", "default")
    apps.patch_namespaced_deployment("pyweb", "default", {"spec": {"replicas": 4}})
    stale.spec.replicas = 7
    with pytest.raises(ApiException) as conflict:
        apps.replace_namespaced_deployment("pyweb", "default", stale)
    assert conflict.value.status == 409 and "the object has been modified" in conflict.value.body
    apps.delete_namespaced_deployment("pyweb", "default")
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("pyweb", "default")


def test_watch_stream_sees_added_modified_deleted(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    done = threading.Event()

    def consume() -> None:
        for ev in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=30):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED" and ev["object"].metadata.name == "wcm":
                break
        done.set()

    core.create_namespaced_config_map("default", {"metadata": {"name": "sentinel"}})
    t = threading.Thread(target=consume, daemon=True)
    t.start()
    poll(lambda: ("ADDED", "sentinel") in seen)  # the watch is established
    core.create_namespaced_config_map("default", {"metadata": {"name": "wcm"},
                                                  "data": {"a": "1"}})
    core.patch_namespaced_config_map("wcm", "default", {"data": {"a": "2"}})
    core.delete_namespaced_config_map("wcm", "default")
    assert done.wait(30)
    w.stop()
    mine = [t for t, n in seen if n == "wcm"]
    assert mine == ["ADDED", "MODIFIED", "DELETED"]
    core.delete_namespaced_config_map("sentinel", "default")


def test_dynamic_client_discovers_and_server_side_applies(api: client.ApiClient) -> None:
    dyn = dynamic.DynamicClient(api)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ssa", "namespace": "default"}, "data": {"k": "v"}}
    out = cms.server_side_apply(body=body, field_manager="py", name="ssa",
                                namespace="default")
    assert out.data.k == "v"
    managers = [m.manager for m in out.metadata.managedFields]
    assert "py" in managers
    cms.delete(name="ssa", namespace="default")


def test_store_leader_kill_pauses_requests_and_watches_have_no_gap(
    ketch: Cluster, api: client.ApiClient,
) -> None:
    core = client.CoreV1Api(api)
    events: list[tuple[str, str, int]] = []
    stop = threading.Event()
    w = watch.Watch()

    def consume() -> None:
        for ev in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=120):
            md = ev["object"].metadata
            if md.name.startswith("f-"):
                events.append((ev["type"], md.name, int(md.resource_version)))
            if stop.is_set():
                break

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    written: list[str] = []
    leader = wait_for_leader(ketch.store)
    killed = False
    deadline = time.monotonic() + 60
    i = 0
    while len(written) < 40 and time.monotonic() < deadline:
        name = f"f-{i}"
        try:
            core.create_namespaced_config_map("default", {"metadata": {"name": name}})
            written.append(name)
        except ApiException as e:
            if e.status != 409:  # a retried create that had landed is fine
                assert e.status in (500, 503, 504), e.body
        i += 1
        if len(written) == 10 and not killed:
            ketch.store.kill(leader)
            killed = True
    assert killed and len(written) == 40
    poll(lambda: {n for _, n, _ in events} >= set(written), timeout=30)
    stop.set()
    core.create_namespaced_config_map("default", {"metadata": {"name": "f-end"}})
    t.join(10)
    w.stop()
    added = [n for typ, n, _ in events if typ == "ADDED"]
    assert len(added) == len(set(added)), "an event was delivered twice"
    revs = [rv for _, _, rv in events]
    assert revs == sorted(revs), "events out of order"
    ketch.store.start(leader)
    for n in written:
        core.delete_namespaced_config_map(n, "default")
