"""Integration: the real kubectl 1.37 against a real ``ketch up`` cluster (store ×3 +
apiserver, mutual TLS).  One cluster for the module; each kubectl call has a fresh cache dir.
"""

from __future__ import annotations

import ipaddress
import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs.layout import issue_user
from ketch.cluster import Cluster
from tests.kube import Kubectl, poll

pytestmark = pytest.mark.integration


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def ketch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # kubectl against the apiserver's own semantics: no workload controllers rewriting the
    # objects these tests inspect, no scheduler or nodes (tests/test_controllers_kubectl.py and
    # tests/test_node_kubectl.py drive those).
    c = Cluster(tmp_path_factory.mktemp("ketch") / "cluster", port=0, schedulers=0, nodes=0,
                controllers="*,-deployment,-replicaset")
    c.up(progress=_quiet)
    try:
        yield c
    finally:
        c.down(progress=_quiet)


@pytest.fixture
def kubectl(ketch: Cluster) -> Kubectl:
    return Kubectl(ketch.kubeconfig)


def _user(ketch: Cluster, name: str, *groups: str) -> Kubectl:
    from certs.kubeconfig import write_kubeconfig
    from certs.layout import user_paths

    issue_user(ketch.store.certs_dir, name, groups)
    paths = user_paths(ketch.store.certs_dir, name)
    kc = ketch.dir / f"{name}.kubeconfig"
    write_kubeconfig(kc, server=ketch.url, ca=paths.ca, cert=paths.cert, key=paths.key,
                     user=name)
    return Kubectl(kc)


def test_system_namespaces_are_listed_as_a_table(kubectl: Kubectl) -> None:
    out = kubectl.run("get", "namespaces").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "AGE"]
    names = {line.split()[0]: line.split()[1] for line in lines[1:]}
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert names[ns] == "Active"
    one = kubectl.json("get", "namespace", "default")
    assert one["metadata"]["name"] == "default" and one["status"]["phase"] == "Active"


def test_version_and_api_resources(kubectl: Kubectl) -> None:
    out = kubectl.run("version").stdout
    assert "Server Version: v1.37" in out
    res = kubectl.run("api-resources").stdout
    for needle in ("deployments", "deploy", "apps/v1", "pods", "po", "selfsubjectreviews"):
        assert needle in res


def test_create_deployment_from_generator_is_decoded_from_protobuf(kubectl: Kubectl) -> None:
    kubectl.run("create", "deployment", "gen", "--image=nginx:1.25", "--replicas=2")
    d = kubectl.json("get", "deployment", "gen")
    assert d["spec"]["replicas"] == 2
    assert d["metadata"]["generation"] == 1
    assert d["spec"]["strategy"]["type"] == "RollingUpdate"
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert re.fullmatch(r"[0-9a-f-]{36}", d["metadata"]["uid"])
    assert "status" not in d or not d["status"].get("replicas")
    table = kubectl.run("get", "deploy", "gen").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:2] == ["gen", "0/2"]
    kubectl.run("delete", "deployment", "gen")
    p = kubectl.run("get", "deployment", "gen", check=False)
    assert p.returncode != 0
    assert 'Error from server (NotFound): deployments.apps "gen" not found' in p.stderr


def test_scale_label_annotate_and_patch(kubectl: Kubectl) -> None:
    kubectl.run("create", "deployment", "sc", "--image=nginx:1.25")
    kubectl.run("scale", "deployment", "sc", "--replicas=3")
    d = kubectl.json("get", "deploy", "sc")
    assert d["spec"]["replicas"] == 3 and d["metadata"]["generation"] == 2
    kubectl.run("label", "deployment", "sc", "tier=web")
    d = kubectl.json("get", "deploy", "sc")
    assert d["metadata"]["labels"]["tier"] == "web"
    assert d["metadata"]["generation"] == 2  # labels do not bump generation
    kubectl.run("annotate", "deployment", "sc", "note=hello")
    d = kubectl.json("get", "deploy", "sc")
    assert d["metadata"]["annotations"]["note"] == "hello"
    assert d["metadata"]["generation"] == 3  # annotations do: they are copied to ReplicaSets
    kubectl.run("patch", "deployment", "sc", "-p",
                '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26"}]}}}}')
    kubectl.run("patch", "deployment", "sc", "--type=merge", "-p", '{"spec":{"paused":true}}')
    kubectl.run("patch", "deployment", "sc", "--type=json", "-p",
                '[{"op":"replace","path":"/spec/replicas","value":4}]')
    d = kubectl.json("get", "deploy", "sc")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert d["spec"]["paused"] is True and d["spec"]["replicas"] == 4
    assert d["metadata"]["generation"] == 6
    described = kubectl.run("describe", "deployment", "sc").stdout
    assert "Replicas:" in described and "nginx:1.26" in described and "tier=web" in described
    shown = kubectl.run("get", "deploy", "-l", "tier=web", "--show-labels").stdout
    assert "sc" in shown and "tier=web" in shown
    bad = kubectl.run("patch", "deployment", "sc", "--type=json", "-p",
                      '[{"op":"remove","path":"/spec/nope"}]', check=False)
    assert bad.returncode != 0 and "json patch path not found" in bad.stderr
    kubectl.run("delete", "deploy", "sc")


DEPLOY = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: api
      labels: {app: api}
    spec:
      replicas: {replicas}
      selector:
        matchLabels: {app: api}
      template:
        metadata:
          labels: {app: api}
        spec:
          containers:
          - name: api
            image: {image}
            ports:
            - containerPort: 8080
    """)


def _manifest(tmp_path: Path, replicas: int, image: str) -> Path:
    f = tmp_path / "deploy.yaml"
    f.write_text(DEPLOY.replace("{replicas}", str(replicas)).replace("{image}", image))
    return f


def test_client_side_apply_creates_then_patches(kubectl: Kubectl, tmp_path: Path) -> None:
    out = kubectl.run("apply", "-f", str(_manifest(tmp_path, 2, "nginx:1.25"))).stdout
    assert "deployment.apps/api created" in out
    out = kubectl.run("apply", "-f", str(_manifest(tmp_path, 3, "nginx:1.26"))).stdout
    assert "deployment.apps/api configured" in out
    d = kubectl.json("get", "deploy", "api")
    assert d["spec"]["replicas"] == 3
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert "kubectl.kubernetes.io/last-applied-configuration" in d["metadata"]["annotations"]
    out = kubectl.run("apply", "-f", str(_manifest(tmp_path, 3, "nginx:1.26"))).stdout
    assert "deployment.apps/api unchanged" in out
    kubectl.run("delete", "-f", str(tmp_path / "deploy.yaml"))


def test_server_side_apply_and_conflicts(kubectl: Kubectl, tmp_path: Path) -> None:
    f = _manifest(tmp_path, 2, "nginx:1.25")
    out = kubectl.run("apply", "--server-side", "-f", str(f)).stdout
    assert "serverside-applied" in out
    d = kubectl.json("get", "deploy", "api", "--show-managed-fields")
    managers = {m["manager"]: m["operation"] for m in d["metadata"]["managedFields"]}
    assert managers.get("kubectl") == "Apply"
    kubectl.run("scale", "deploy", "api", "--replicas=5")
    p = kubectl.run("apply", "--server-side", "-f", str(f), check=False)
    assert p.returncode != 0
    assert "conflict" in p.stderr.lower() and ".spec.replicas" in p.stderr
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(f))
    assert kubectl.json("get", "deploy", "api")["spec"]["replicas"] == 2
    kubectl.run("delete", "deploy", "api")


def test_create_from_file_twice_is_already_exists(kubectl: Kubectl, tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n")
    kubectl.run("create", "-f", str(f))
    p = kubectl.run("create", "-f", str(f), check=False)
    assert p.returncode != 0
    assert 'Error from server (AlreadyExists): error when creating' in p.stderr
    assert 'configmaps "cfg" already exists' in p.stderr
    kubectl.run("create", "configmap", "lit", "--from-literal=k=v")
    assert kubectl.json("get", "cm", "lit")["data"] == {"k": "v"}
    table = kubectl.run("get", "cm").stdout.splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    kubectl.run("delete", "cm", "cfg", "lit")


def test_strict_field_validation_refuses_unknown_fields(kubectl: Kubectl, tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\nbogus: 1\n")
    p = kubectl.run("create", "-f", str(f), check=False)
    assert p.returncode != 0
    assert 'unknown field "bogus"' in p.stderr
    assert kubectl.run("get", "cm", "bad", check=False).returncode != 0


def test_run_pod_gets_admission_defaults_and_describe(kubectl: Kubectl) -> None:
    kubectl.run("run", "p1", "--image=busybox", "--restart=Never", "--", "sleep", "1")
    pod = kubectl.json("get", "pod", "p1")
    assert pod["spec"]["serviceAccountName"] == "default"
    keys = {t.get("key") for t in pod["spec"]["tolerations"]}
    assert {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"} <= keys
    assert pod["status"]["phase"] == "Pending"
    table = kubectl.run("get", "pods", "-o", "wide").stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "NODE" in table[0]
    out = kubectl.run("describe", "pod", "p1").stdout
    assert "Name:" in out and "p1" in out and "busybox" in out
    kubectl.run("delete", "pod", "p1", "--wait=true")
    assert kubectl.run("get", "pod", "p1", check=False).returncode != 0


def test_get_watch_streams_changes(kubectl: Kubectl) -> None:
    w = kubectl.popen("get", "configmaps", "-w", "--output-watch-events")
    try:
        kubectl.run("create", "configmap", "watched", "--from-literal=a=1")
        kubectl.run("label", "configmap", "watched", "x=y")
        seen: list[str] = []
        assert w.stdout is not None

        def saw_modified() -> bool:
            line = w.stdout.readline()  # type: ignore[union-attr]
            seen.append(line)
            return "MODIFIED" in line and "watched" in line

        poll(saw_modified, timeout=20)
        assert any("ADDED" in s and "watched" in s for s in seen)
    finally:
        w.kill()
        w.wait()
    kubectl.run("delete", "cm", "watched")


def test_auth_whoami_and_can_i_for_admin(kubectl: Kubectl) -> None:
    out = kubectl.run("auth", "whoami").stdout
    assert "admin" in out and "system:masters" in out
    assert kubectl.run("auth", "can-i", "create", "pods").stdout.strip() == "yes"


def test_explain_uses_openapi_v3(kubectl: Kubectl) -> None:
    out = kubectl.run("explain", "deployment.spec.replicas").stdout
    assert "replicas" in out and "integer" in out


def test_user_without_bindings_is_forbidden_until_a_role_is_bound(
    ketch: Cluster, kubectl: Kubectl,
) -> None:
    jane = _user(ketch, "jane", "dev")
    p = jane.run("get", "pods", check=False)
    assert p.returncode != 0
    assert ('Error from server (Forbidden): pods is forbidden: User "jane" cannot list '
            'resource "pods" in API group "" in the namespace "default"') in p.stderr
    assert jane.run("auth", "can-i", "list", "pods", check=False).stdout.strip() == "no"
    kubectl.run("create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods")
    kubectl.run("create", "rolebinding", "jane-reads", "--role=pod-reader", "--user=jane")
    poll(lambda: jane.run("get", "pods", check=False).returncode == 0)
    assert jane.run("auth", "can-i", "list", "pods").stdout.strip() == "yes"
    assert jane.run("auth", "can-i", "create", "pods", check=False).stdout.strip() == "no"
    assert jane.run("auth", "can-i", "list", "pods", "-n", "kube-system",
                    check=False).stdout.strip() == "no"
    p = jane.run("create", "configmap", "x", "--from-literal=a=b", check=False)
    assert 'cannot create resource "configmaps"' in p.stderr
    who = jane.run("auth", "whoami", "-o", "json").stdout
    info = json.loads(who)["status"]["userInfo"]
    assert info["username"] == "jane" and "dev" in info["groups"]
    kubectl.run("delete", "rolebinding", "jane-reads")
    kubectl.run("delete", "role", "pod-reader")


def test_namespace_delete_empties_and_removes_it(kubectl: Kubectl) -> None:
    kubectl.run("create", "namespace", "scratch")
    poll(lambda: kubectl.run("get", "sa", "default", "-n", "scratch", check=False)
         .returncode == 0)
    kubectl.run("create", "configmap", "c", "-n", "scratch", "--from-literal=a=b")
    kubectl.run("delete", "namespace", "scratch", "--wait=true", timeout=90)
    p = kubectl.run("get", "namespace", "scratch", check=False)
    assert p.returncode != 0 and "NotFound" in p.stderr
    p = kubectl.run("delete", "namespace", "default", check=False)
    assert "Forbidden" in p.stderr and "may not be deleted" in p.stderr


def test_no_client_certificate_is_unauthorized(ketch: Cluster) -> None:
    import ssl
    import urllib.error
    import urllib.request

    from certs.layout import admin_paths

    ctx = ssl.create_default_context(cafile=str(admin_paths(ketch.store.certs_dir).ca))
    try:
        urllib.request.urlopen(f"{ketch.url}/api/v1/pods", context=ctx, timeout=5)
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
        assert e.code == 401 and body["reason"] == "Unauthorized" and body["kind"] == "Status"
    else:
        raise AssertionError("a request without a client certificate was served")


def test_services_get_unique_cluster_ips_and_node_ports(ketch: Cluster, kubectl: Kubectl) -> None:
    kubectl.run("create", "service", "clusterip", "s1", "--tcp=80:8080")
    kubectl.run("create", "service", "nodeport", "s2", "--tcp=80:8080")
    s1, s2 = kubectl.json("get", "svc", "s1"), kubectl.json("get", "svc", "s2")
    k = kubectl.json("get", "svc", "kubernetes")
    ips = {s1["spec"]["clusterIP"], s2["spec"]["clusterIP"], k["spec"]["clusterIP"]}
    service_range = json.loads((ketch.dir / "control.json").read_text())["service_cidr"]
    first = str(ipaddress.ip_network(service_range).network_address + 1)
    assert len(ips) == 3 and k["spec"]["clusterIP"] == first  # the range's first address
    assert all(ip.startswith("127.") for ip in ips)  # local addresses: no root needed
    assert 30000 <= s2["spec"]["ports"][0]["nodePort"] <= 32767
    table = kubectl.run("get", "svc", "s2").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "NodePort" in table[1] and "80:" in table[1]
    taken = s1["spec"]["clusterIP"]
    p = kubectl.run("create", "service", "clusterip", "s3", "--tcp=80:80",
                    f"--clusterip={taken}", check=False)
    assert p.returncode != 0 and "already allocated" in p.stderr
    kubectl.run("delete", "svc", "s1", "s2")


def test_ketch_status_reports_apiserver_and_store(ketch: Cluster) -> None:
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "ketch", "status", "--dir", str(ketch.dir)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "apiserver-1" in p.stdout and "ready" in p.stdout
    assert p.stdout.count("store ") == 3 and "leader" in p.stdout


def test_store_leader_kill_while_kubectl_watches(ketch: Cluster, kubectl: Kubectl) -> None:
    from tests.conftest import wait_for_leader

    w = kubectl.popen("get", "configmaps", "-w", "--output-watch-events", "-l", "kill=test")
    assert w.stdout is not None
    try:
        kubectl.run("create", "configmap", "before-kill")
        kubectl.run("label", "configmap", "before-kill", "kill=test")
        poll(lambda: "before-kill" in w.stdout.readline(), timeout=20)  # type: ignore[union-attr]
        leader = wait_for_leader(ketch.store)
        ketch.store.kill(leader)
        kubectl.run("create", "configmap", "after-kill")  # succeeds after a short pause
        kubectl.run("label", "configmap", "after-kill", "kill=test")
        poll(lambda: "after-kill" in w.stdout.readline(), timeout=30)  # type: ignore[union-attr]
        assert w.poll() is None, "kubectl get -w ended"
    finally:
        w.kill()
        w.wait()
        ketch.store.start(leader)
    kubectl.run("delete", "cm", "before-kill", "after-kill")
