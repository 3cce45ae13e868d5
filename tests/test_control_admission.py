"""Admission plugins: table-driven cases over an in-memory ClusterView and QuotaWriter.

The plugins are pure logic over decoded objects, so fakes stand in for the watch cache and the
quota status writer; messages and codes are checked exactly as kube-apiserver reports them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest

from control.api.errors import APIError, NotFound
from control.apiserver.admission import (
    AdmissionChain,
    AdmissionRequest,
    DefaultTolerationSeconds,
    LimitRanger,
    NamespaceLifecycle,
    NodeRestriction,
    Quantity,
    QuantityError,
    ResourceQuota,
    ServiceAccount,
    default_chain,
    format_quantity,
    parse_quantity,
)
from control.apiserver.rbac import UserInfo

ADMIN = UserInfo("admin", ("system:masters", "system:authenticated"))
NODE1 = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"

Obj = dict[str, Any]


# --- fakes and builders ---------------------------------------------------------------------

class FakeView:
    """The watch cache: objects by (group, resource, namespace, name)."""

    def __init__(self, *objects: tuple[str, str, Obj]) -> None:
        self.objects: dict[tuple[str, str, str, str], Obj] = {}
        for group, resource, obj in objects:
            self.put(group, resource, obj)

    def put(self, group: str, resource: str, obj: Obj) -> None:
        meta = obj["metadata"]
        self.objects[(group, resource, meta.get("namespace", ""), meta["name"])] = obj

    def get(self, group: str, resource: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get((group, resource, namespace, name))

    async def get_fresh(self, group: str, resource: str, namespace: str, name: str
                        ) -> Obj | None:
        return self.get(group, resource, namespace, name)

    def list(self, group: str, resource: str, namespace: str = "") -> list[Obj]:
        return [o for (g, r, ns, _), o in self.objects.items()
                if (g, r) == (group, resource) and (not namespace or ns == namespace)]


class FakeQuotaWriter:
    """Compare-and-swap on the view's ResourceQuota; ``race`` changes it just before the
    mutate call, as another apiserver's write would."""

    def __init__(self, view: FakeView, race: Callable[[Obj], None] | None = None) -> None:
        self.view = view
        self.race = race
        self.calls: list[tuple[str, str]] = []

    async def update_quota_status(self, namespace: str, name: str,
                                  mutate: Callable[[Obj], Obj]) -> Obj:
        current = self.view.get("", "resourcequotas", namespace, name)
        if current is None:
            raise NotFound("resourcequotas", name)
        fresh = copy.deepcopy(current)
        if self.race is not None:
            self.race(fresh)
        before = copy.deepcopy(fresh)
        new = mutate(fresh)
        assert fresh == before, "mutate must not change its argument"
        self.calls.append((namespace, name))
        self.view.put("", "resourcequotas", new)
        return new


def meta(name: str, namespace: str = "", **more: Any) -> Obj:
    return {"name": name, **({"namespace": namespace} if namespace else {}), **more}


def namespace(name: str, phase: str = "Active", **more: Any) -> tuple[str, str, Obj]:
    return "", "namespaces", {"metadata": meta(name, **more), "status": {"phase": phase}}


def service_account(name: str = "default", ns: str = "default", **fields: Any) -> tuple[
        str, str, Obj]:
    return "", "serviceaccounts", {"metadata": meta(name, ns), **fields}


def container(name: str = "c", requests: Obj | None = None, limits: Obj | None = None,
              **more: Any) -> Obj:
    out: Obj = {"name": name, "image": "nginx", **more}
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    if resources:
        out["resources"] = resources
    return out


def pod(name: str = "p", *containers: Obj, ns: str = "default", init: list[Obj] | None = None,
        annotations: Obj | None = None, **spec: Any) -> Obj:
    body: Obj = {"containers": list(containers) or [container()], **spec}
    if init:
        body["initContainers"] = init
    m = meta(name, ns)
    if annotations:
        m["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": body}


def limit_range(*items: Obj, name: str = "lr", ns: str = "default") -> tuple[str, str, Obj]:
    return "", "limitranges", {"metadata": meta(name, ns), "spec": {"limits": list(items)}}


def quota(name: str, hard: Obj, used: Obj | None = None, ns: str = "default",
          **spec: Any) -> tuple[str, str, Obj]:
    obj: Obj = {"metadata": meta(name, ns, resourceVersion="5"), "spec": {"hard": hard, **spec}}
    if used is not None:
        obj["status"] = {"hard": hard, "used": used}
    return "", "resourcequotas", obj


def request(op: str, resource: str, obj: Obj | None = None, *, ns: str = "default",
            name: str = "", group: str = "", sub: str = "", kind: str = "",
            old: Obj | None = None, user: UserInfo = ADMIN,
            dry_run: bool = False) -> AdmissionRequest:
    if not name and obj is not None:
        name = obj.get("metadata", {}).get("name", "")
    return AdmissionRequest(op, group, "v1", resource, sub, kind, ns, name, obj, old, user,
                            dry_run)


async def refused(call: Any) -> APIError:
    with pytest.raises(APIError) as info:
        await call
    return info.value


# --- quantity -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value", "canonical"), [
    pytest.param("1", Fraction(1), "1", id="int"),
    pytest.param("1000", Fraction(1000), "1k", id="thousand"),
    pytest.param("100m", Fraction(1, 10), "100m", id="milli"),
    pytest.param("1000m", Fraction(1), "1", id="milli-whole"),
    pytest.param("0.5", Fraction(1, 2), "500m", id="fraction"),
    pytest.param(".5", Fraction(1, 2), "500m", id="leading-dot"),
    pytest.param("1.5", Fraction(3, 2), "1500m", id="one-and-half"),
    pytest.param("2k", Fraction(2000), "2k", id="kilo"),
    pytest.param("3M", Fraction(3 * 10**6), "3M", id="mega"),
    pytest.param("1G", Fraction(10**9), "1G", id="giga"),
    pytest.param("1T", Fraction(10**12), "1T", id="tera"),
    pytest.param("1P", Fraction(10**15), "1P", id="peta"),
    pytest.param("1E", Fraction(10**18), "1E", id="exa"),
    pytest.param("5n", Fraction(5, 10**9), "5n", id="nano"),
    pytest.param("5u", Fraction(5, 10**6), "5u", id="micro"),
    pytest.param("1Ki", Fraction(1024), "1Ki", id="kibi"),
    pytest.param("1024Mi", Fraction(2**30), "1Gi", id="mebi-to-gibi"),
    pytest.param("1.5Gi", Fraction(3 * 2**29), "1536Mi", id="gibi-fraction"),
    pytest.param("1.5Ki", Fraction(1536), "1536", id="kibi-not-whole"),
    pytest.param("0.5Ki", Fraction(512), "512", id="kibi-below-1024"),
    pytest.param("1Ti", Fraction(2**40), "1Ti", id="tebi"),
    pytest.param("1Pi", Fraction(2**50), "1Pi", id="pebi"),
    pytest.param("1Ei", Fraction(2**60), "1Ei", id="exbi"),
    pytest.param("1e3", Fraction(1000), "1e3", id="exponent"),
    pytest.param("1.5e3", Fraction(1500), "1500", id="exponent-fraction"),
    pytest.param("15e2", Fraction(1500), "1500", id="exponent-regrouped"),
    pytest.param("2E-3", Fraction(2, 1000), "2e-3", id="exponent-negative"),
    pytest.param("-1", Fraction(-1), "-1", id="negative"),
    pytest.param("+2", Fraction(2), "2", id="plus"),
    pytest.param("0", Fraction(0), "0", id="zero"),
    pytest.param("0.0000000001", Fraction(1, 10**9), "1n", id="rounds-up-to-nano"),
    pytest.param(3, Fraction(3), "3", id="json-int"),
    pytest.param(0.25, Fraction(1, 4), "250m", id="json-float"),
])
def test_parse_and_canonical_form(text: Any, value: Fraction, canonical: str) -> None:
    assert parse_quantity(text) == value
    assert str(Quantity.parse(text)) == canonical


@pytest.mark.parametrize("text", ["", ".", "+", "1K", "1 ", " 1", "abc", "1e", "1Ki5",
                                  "1.2.3", "1mi", "--1", True, None])
def test_malformed_quantities(text: Any) -> None:
    with pytest.raises(QuantityError, match="quantities must match the regular expression"):
        parse_quantity(text)


@pytest.mark.parametrize(("value", "fmt", "text"), [
    (Fraction(1500), "DecimalSI", "1500"),
    (Fraction(1500), "DecimalExponent", "1500"),
    (Fraction(2000), "DecimalExponent", "2e3"),
    (Fraction(3, 2), "BinarySI", "1500m"),
    (Fraction(10**21), "DecimalSI", "1000E"),
    (Fraction(-3 * 2**20), "BinarySI", "-3Mi"),
    (Fraction(1, 3), "DecimalSI", "333333334n"),
])
def test_format_quantity(value: Fraction, fmt: str, text: str) -> None:
    assert format_quantity(value, fmt) == text


def test_addition_keeps_notation_unless_zero() -> None:
    zero, gib, mib = Quantity.of(0), Quantity.parse("1Gi"), Quantity.parse("128Mi")
    assert str(zero + mib) == "128Mi"
    assert str(gib + mib) == "1152Mi"
    assert str(Quantity.parse("1") + Quantity.parse("500m")) == "1500m"
    assert Quantity.parse("1000m") == Quantity.parse("1")
    assert Quantity.parse("1Ki").milli() == 1024000
    assert Quantity.parse("1n").milli() == 1  # rounded up


# --- NamespaceLifecycle ---------------------------------------------------------------------

LIFECYCLE_VIEW = FakeView(
    namespace("default"), namespace("kube-system"), namespace("kube-public"),
    namespace("live"), namespace("dying", "Terminating"),
    namespace("deleted", deletionTimestamp="2024-01-01T00:00:00Z"),
)


@pytest.mark.parametrize(("req", "code", "message"), [
    pytest.param(request("CREATE", "pods", pod("p", ns="nope"), ns="nope"), 404,
                 'namespaces "nope" not found', id="create-missing-namespace"),
    pytest.param(request("UPDATE", "configmaps", {"metadata": meta("c", "nope")}, ns="nope"),
                 404, 'namespaces "nope" not found', id="update-missing-namespace"),
    pytest.param(request("CREATE", "pods", pod("p", ns="dying"), ns="dying"), 403,
                 'pods "p" is forbidden: unable to create new content in namespace dying '
                 "because it is being terminated", id="create-terminating"),
    pytest.param(request("CREATE", "deployments", {"metadata": meta("d", "deleted")},
                         ns="deleted", group="apps"), 403,
                 'deployments.apps "d" is forbidden: unable to create new content in '
                 "namespace deleted because it is being terminated", id="create-deleting"),
    pytest.param(request("CREATE", "pods", {"metadata": {"generateName": "web-"}},
                         ns="dying"), 403,
                 'pods "web-" is forbidden: unable to create new content in namespace dying '
                 "because it is being terminated", id="generate-name-in-message"),
    pytest.param(request("DELETE", "namespaces", ns="", name="default"), 403,
                 'namespaces "default" is forbidden: this namespace may not be deleted',
                 id="delete-default"),
    pytest.param(request("DELETE", "namespaces", ns="", name="kube-system"), 403,
                 'namespaces "kube-system" is forbidden: this namespace may not be deleted',
                 id="delete-kube-system"),
    pytest.param(request("DELETE", "namespaces", ns="", name="kube-public"), 403,
                 'namespaces "kube-public" is forbidden: this namespace may not be deleted',
                 id="delete-kube-public"),
])
async def test_namespace_lifecycle_refuses(req: AdmissionRequest, code: int,
                                           message: str) -> None:
    plugin = NamespaceLifecycle()
    for phase in (plugin.admit, plugin.validate):
        err = await refused(phase(req, LIFECYCLE_VIEW))
        assert (err.code, err.message) == (code, message)


@pytest.mark.parametrize("req", [
    pytest.param(request("CREATE", "pods", pod("p", ns="live"), ns="live"), id="create-live"),
    pytest.param(request("UPDATE", "pods", pod("p", ns="dying"), ns="dying"),
                 id="update-terminating"),
    pytest.param(request("DELETE", "pods", ns="dying", name="p"), id="delete-terminating"),
    pytest.param(request("DELETE", "pods", ns="nope", name="p"), id="delete-missing-ns"),
    pytest.param(request("DELETE", "namespaces", ns="", name="live"), id="delete-namespace"),
    pytest.param(request("CREATE", "namespaces", {"metadata": meta("new")}, ns=""),
                 id="create-namespace"),
    pytest.param(request("CREATE", "nodes", {"metadata": meta("n1")}, ns=""),
                 id="cluster-scoped"),
    pytest.param(request("CREATE", "localsubjectaccessreviews", {"metadata": {}}, ns="nope",
                         group="authorization.k8s.io"), id="access-review"),
])
async def test_namespace_lifecycle_allows(req: AdmissionRequest) -> None:
    await NamespaceLifecycle().admit(req, LIFECYCLE_VIEW)
    await NamespaceLifecycle().validate(req, LIFECYCLE_VIEW)


async def test_terminating_namespace_cause() -> None:
    req = request("CREATE", "pods", pod("p", ns="dying"), ns="dying")
    status = (await refused(NamespaceLifecycle().validate(req, LIFECYCLE_VIEW))).to_status()
    assert status["reason"] == "Forbidden"
    assert status["details"] == {
        "name": "p", "kind": "pods",
        "causes": [{"reason": "NamespaceTerminating",
                    "message": "namespace dying is being terminated",
                    "field": "metadata.namespace"}],
    }


# --- LimitRanger ----------------------------------------------------------------------------

@pytest.mark.parametrize(("items", "containers", "init", "want", "annotation"), [
    pytest.param(
        [{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
          "defaultRequest": {"cpu": "100m"}}],
        [container("c")], [],
        [{"requests": {"cpu": "100m", "memory": "256Mi"},
          "limits": {"cpu": "500m", "memory": "256Mi"}}],
        "LimitRanger plugin set: cpu, memory request for container c; "
        "cpu, memory limit for container c",
        id="default-and-default-request"),
    pytest.param(
        [{"type": "Container", "default": {"cpu": "0.5"}}],
        [container("nginx")], [],
        [{"requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}}],
        "LimitRanger plugin set: cpu request for container nginx; "
        "cpu limit for container nginx",
        id="request-defaults-to-default-limit"),
    pytest.param(
        [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}],
        [container("c")], [],
        [{"requests": {"cpu": "2", "memory": "64Mi"}, "limits": {"cpu": "2"}}],
        "LimitRanger plugin set: cpu, memory request for container c; "
        "cpu limit for container c",
        id="max-and-min-as-defaults"),
    pytest.param(
        [{"type": "Container", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "200m"}}],
        [container("c", limits={"cpu": "300m"})], [],
        [{"requests": {"cpu": "300m"}, "limits": {"cpu": "300m"}}],
        None,
        id="limit-only-container-requests-its-limit"),
    pytest.param(
        [{"type": "Container", "default": {"memory": "1Gi"}}],
        [container("app", requests={"memory": "512Mi"})], [container("setup")],
        [{"requests": {"memory": "512Mi"}, "limits": {"memory": "1Gi"}},
         {"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}],
        "LimitRanger plugin set: memory limit for container app; "
        "memory request for init container setup; memory limit for init container setup",
        id="init-containers"),
    pytest.param(
        [{"type": "Pod", "max": {"cpu": "2"}}],
        [container("c")], [], [{}], None, id="pod-type-sets-no-defaults"),
])
async def test_limit_ranger_defaults(items: list[Obj], containers: list[Obj], init: list[Obj],
                                     want: list[Obj], annotation: str | None) -> None:
    view = FakeView(limit_range(*items))
    obj = pod("p", *containers, init=init)
    await LimitRanger().admit(request("CREATE", "pods", obj), view)
    got = [c.get("resources", {}) for c in [*obj["spec"]["containers"],
                                             *obj["spec"].get("initContainers", [])]]
    assert got == want
    assert obj["metadata"].get("annotations", {}).get("kubernetes.io/limit-ranger") == annotation


async def test_limit_ranger_leaves_updates_and_other_namespaces_alone() -> None:
    view = FakeView(limit_range({"type": "Container", "default": {"cpu": "1"}}, ns="other"))
    obj = pod("p")
    await LimitRanger().admit(request("CREATE", "pods", obj), view)
    assert "resources" not in obj["spec"]["containers"][0]
    view = FakeView(limit_range({"type": "Container", "default": {"cpu": "1"},
                                 "max": {"cpu": "1"}}))
    upd = pod("p", container("c", limits={"cpu": "4"}))
    await LimitRanger().admit(request("UPDATE", "pods", upd), view)
    await LimitRanger().validate(request("UPDATE", "pods", upd), view)
    assert upd["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "4"}}


@pytest.mark.parametrize(("item", "obj", "message"), [
    pytest.param({"type": "Container", "max": {"cpu": "500m"}},
                 pod("x", container("c", {"cpu": "1"}, {"cpu": "1"})),
                 "maximum cpu usage per Container is 500m, but limit is 1", id="max-limit"),
    pytest.param({"type": "Container", "max": {"cpu": "500m"}},
                 pod("x", container("c", {"cpu": "600m"}, {"cpu": "400m"})),
                 "maximum cpu usage per Container is 500m, but request is 600m",
                 id="max-request"),
    pytest.param({"type": "Container", "max": {"cpu": "500m"}},
                 pod("x", container("c", {"cpu": "100m"})),
                 "maximum cpu usage per Container is 500m.  No limit is specified",
                 id="max-no-limit"),
    pytest.param({"type": "Container", "min": {"memory": "100Mi"}},
                 pod("x", container("c", {"memory": "50Mi"})),
                 "minimum memory usage per Container is 100Mi, but request is 50Mi",
                 id="min-request"),
    pytest.param({"type": "Container", "min": {"memory": "100Mi"}},
                 pod("x", container("c", {"memory": "200Mi"}, {"memory": "0.5Gi"}),
                     container("d", {"memory": "100Mi"})),
                 None, id="min-ok"),
    pytest.param({"type": "Container", "min": {"memory": "100Mi"}},
                 pod("x", container("c")),
                 "minimum memory usage per Container is 100Mi.  No request is specified",
                 id="min-no-request"),
    pytest.param({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
                 pod("x", container("c", {"cpu": "100m"}, {"cpu": "300m"})),
                 "cpu max limit to request ratio per Container is 2, but provided ratio is "
                 "3.000000", id="ratio"),
    pytest.param({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
                 pod("x", container("c", {"cpu": "100m"})),
                 "cpu max limit to request ratio per Container is 2, but no limit is "
                 "specified or limit is 0", id="ratio-no-limit"),
    pytest.param({"type": "Container", "max": {"cpu": "1"}},
                 pod("x", container("c", {"cpu": "1"}, {"cpu": "1"}),
                     init=[container("i", {"cpu": "1"}, {"cpu": "2"})]),
                 "maximum cpu usage per Container is 1, but limit is 2", id="init-container"),
    pytest.param({"type": "Pod", "max": {"cpu": "1"}},
                 pod("x", container("a", {"cpu": "600m"}, {"cpu": "600m"}),
                     container("b", {"cpu": "600m"}, {"cpu": "600m"})),
                 "maximum cpu usage per Pod is 1, but limit is 1200m", id="pod-sum"),
    pytest.param({"type": "Pod", "max": {"cpu": "1"}},
                 pod("x", container("a", {"cpu": "500m"}, {"cpu": "500m"}),
                     init=[container("i", {"cpu": "1"}, {"cpu": "1"})]),
                 None, id="pod-init-runs-alone"),
    pytest.param({"type": "Pod", "min": {"cpu": "1"}},
                 pod("x", container("a", {"cpu": "500m"})),
                 "minimum cpu usage per Pod is 1, but request is 500m", id="pod-min"),
    pytest.param({"type": "Container", "max": {"cpu": "500m", "memory": "1Gi"}},
                 pod("x", container("c", {"cpu": "1"}, {"cpu": "1", "memory": "2Gi"})),
                 "[maximum cpu usage per Container is 500m, but limit is 1, "
                 "maximum memory usage per Container is 1Gi, but limit is 2Gi]",
                 id="several"),
])
async def test_limit_ranger_bounds(item: Obj, obj: Obj, message: str | None) -> None:
    view = FakeView(limit_range(item))
    call = LimitRanger().validate(request("CREATE", "pods", obj), view)
    if message is None:
        await call
        return
    err = await refused(call)
    assert (err.code, err.message) == (403, f'pods "x" is forbidden: {message}')


async def test_limit_ranger_claims() -> None:
    view = FakeView(limit_range({"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"},
                                 "min": {"storage": "1Gi"}}))
    claim = {"metadata": meta("data", "default"),
             "spec": {"resources": {"requests": {"storage": "5Gi"}}}}
    err = await refused(LimitRanger().validate(
        request("CREATE", "persistentvolumeclaims", claim), view))
    assert err.message == ('persistentvolumeclaims "data" is forbidden: maximum storage usage '
                           "per PersistentVolumeClaim is 2Gi, but request is 5Gi")
    claim["spec"]["resources"]["requests"]["storage"] = "1536Mi"
    await LimitRanger().validate(request("UPDATE", "persistentvolumeclaims", claim), view)


# --- ServiceAccount -------------------------------------------------------------------------

def expected_volume(name: str) -> Obj:
    return {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt",
                               "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
            "defaultMode": 420,
        },
    }


MOUNT = {"name": "kube-api-access-abcde", "readOnly": True, "mountPath": TOKEN_PATH}


def sa_plugin() -> ServiceAccount:
    return ServiceAccount(random_suffix=lambda: "abcde")


async def test_service_account_defaults_and_mounts_token() -> None:
    view = FakeView(service_account())
    obj = pod("p", container("a"), container("b"), init=[container("i")])
    await sa_plugin().admit(request("CREATE", "pods", obj), view)
    spec = obj["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    assert spec["volumes"] == [expected_volume("kube-api-access-abcde")]
    for c in [*spec["containers"], *spec["initContainers"]]:
        assert c["volumeMounts"] == [MOUNT]
    assert "imagePullSecrets" not in spec
    await sa_plugin().validate(request("CREATE", "pods", obj), view)


@pytest.mark.parametrize(("sa_fields", "pod_spec", "mounted"), [
    pytest.param({"automountServiceAccountToken": False}, {}, False, id="sa-opts-out"),
    pytest.param({}, {"automountServiceAccountToken": False}, False, id="pod-opts-out"),
    pytest.param({"automountServiceAccountToken": False},
                 {"automountServiceAccountToken": True}, True, id="pod-choice-wins"),
    pytest.param({"automountServiceAccountToken": True}, {}, True, id="sa-opts-in"),
])
async def test_service_account_automount(sa_fields: Obj, pod_spec: Obj, mounted: bool) -> None:
    view = FakeView(service_account(**sa_fields))
    obj = pod("p", **pod_spec)
    await sa_plugin().admit(request("CREATE", "pods", obj), view)
    assert ("volumes" in obj["spec"]) is mounted
    assert ("volumeMounts" in obj["spec"]["containers"][0]) is mounted


async def test_service_account_respects_existing_mounts() -> None:
    view = FakeView(service_account())
    own = {"name": "mine", "mountPath": TOKEN_PATH}
    obj = pod("p", container("a", volumeMounts=[own]), container("b"))
    await sa_plugin().admit(request("CREATE", "pods", obj), view)
    assert obj["spec"]["containers"][0]["volumeMounts"] == [own]
    assert obj["spec"]["containers"][1]["volumeMounts"] == [MOUNT]
    only_own = pod("q", container("a", volumeMounts=[own]))
    await sa_plugin().admit(request("CREATE", "pods", only_own), view)
    assert "volumes" not in only_own["spec"]
    existing = pod("r", volumes=[expected_volume("kube-api-access-zzzzz")])
    await sa_plugin().admit(request("CREATE", "pods", existing), view)
    assert len(existing["spec"]["volumes"]) == 1
    assert existing["spec"]["containers"][0]["volumeMounts"][0]["name"] == (
        "kube-api-access-zzzzz")


async def test_service_account_named_and_pull_secrets() -> None:
    view = FakeView(service_account("builder", imagePullSecrets=[{"name": "regcred"}]))
    obj = pod("p", serviceAccount="builder")
    await sa_plugin().admit(request("CREATE", "pods", obj), view)
    assert obj["spec"]["serviceAccountName"] == "builder"
    assert obj["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    account = view.get("", "serviceaccounts", "default", "builder")
    assert account is not None and account["imagePullSecrets"] == [{"name": "regcred"}]
    own = pod("q", serviceAccountName="builder", imagePullSecrets=[{"name": "mine"}])
    await sa_plugin().admit(request("CREATE", "pods", own), view)
    assert own["spec"]["imagePullSecrets"] == [{"name": "mine"}]


@pytest.mark.parametrize(("view", "obj", "phase", "message"), [
    pytest.param(FakeView(), pod("x"), "admit",
                 'pods "x" is forbidden: error looking up service account default/default: '
                 'serviceaccount "default" not found', id="default-missing"),
    pytest.param(FakeView(service_account()), pod("x", serviceAccountName="robot"), "validate",
                 'pods "x" is forbidden: error looking up service account default/robot: '
                 'serviceaccount "robot" not found', id="named-missing"),
    pytest.param(FakeView(service_account()), pod("x"), "validate",
                 'pods "x" is forbidden: no service account specified for pod default/x',
                 id="validate-without-admit"),
    pytest.param(FakeView(), pod("x", serviceAccountName="default",
                                 annotations={"kubernetes.io/config.mirror": "h"}),
                 "admit", 'pods "x" is forbidden: a mirror pod may not reference service '
                 "accounts", id="mirror-with-account"),
    pytest.param(FakeView(), pod("x", annotations={"kubernetes.io/config.mirror": "h"},
                                 volumes=[{"name": "s", "secret": {"secretName": "k"}}]),
                 "validate", 'pods "x" is forbidden: a mirror pod may not reference secrets',
                 id="mirror-with-secret"),
    pytest.param(FakeView(service_account(metadata=meta("default", "default", annotations={
                     "kubernetes.io/enforce-mountable-secrets": "true"}),
                     secrets=[{"name": "ok"}])),
                 pod("x", serviceAccountName="default",
                     volumes=[{"name": "v", "secret": {"secretName": "other"}}]),
                 "validate", 'pods "x" is forbidden: volume with secret.secretName="other" is '
                 "not allowed because service account default does not reference that secret",
                 id="mountable-secrets-volume"),
    pytest.param(FakeView(service_account(metadata=meta("default", "default", annotations={
                     "kubernetes.io/enforce-mountable-secrets": "true"}),
                     secrets=[{"name": "ok"}])),
                 pod("x", container("c", envFrom=[{"secretRef": {"name": "other"}}]),
                     serviceAccountName="default"),
                 "validate", 'pods "x" is forbidden: container c with envFrom referencing '
                 'secret.secretName="other" is not allowed because service account default '
                 "does not reference that secret", id="mountable-secrets-env"),
])
async def test_service_account_refusals(view: FakeView, obj: Obj, phase: str,
                                        message: str) -> None:
    plugin = sa_plugin()
    err = await refused(getattr(plugin, phase)(request("CREATE", "pods", obj), view))
    assert (err.code, err.message) == (403, message)


async def test_mirror_pod_is_not_changed() -> None:
    obj = pod("static-web", annotations={"kubernetes.io/config.mirror": "hash"})
    before = copy.deepcopy(obj)
    await sa_plugin().admit(request("CREATE", "pods", obj), FakeView())
    assert obj == before


# --- DefaultTolerationSeconds ---------------------------------------------------------------

NOT_READY = {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
             "effect": "NoExecute", "tolerationSeconds": 300}
UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
               "effect": "NoExecute", "tolerationSeconds": 300}


@pytest.mark.parametrize(("existing", "want"), [
    pytest.param([], [NOT_READY, UNREACHABLE], id="none"),
    pytest.param([{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                   "effect": "NoExecute", "tolerationSeconds": 10}],
                 [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                   "effect": "NoExecute", "tolerationSeconds": 10}, UNREACHABLE],
                 id="has-not-ready"),
    pytest.param([{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}],
                 [{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}, NOT_READY],
                 id="any-effect"),
    pytest.param([{"operator": "Exists"}], [{"operator": "Exists"}], id="tolerates-all"),
    pytest.param([{"operator": "Exists", "effect": "NoExecute"}],
                 [{"operator": "Exists", "effect": "NoExecute"}], id="tolerates-all-noexecute"),
    pytest.param([{"operator": "Exists", "effect": "NoSchedule"}],
                 [{"operator": "Exists", "effect": "NoSchedule"}, NOT_READY, UNREACHABLE],
                 id="noschedule-does-not-count"),
    pytest.param([{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                   "effect": "NoSchedule"}],
                 [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                   "effect": "NoSchedule"}, NOT_READY, UNREACHABLE],
                 id="wrong-effect"),
])
async def test_default_toleration_seconds(existing: list[Obj], want: list[Obj]) -> None:
    obj = pod("p", tolerations=copy.deepcopy(existing))
    await DefaultTolerationSeconds().admit(request("CREATE", "pods", obj), FakeView())
    assert obj["spec"]["tolerations"] == want


async def test_default_toleration_seconds_skips_subresources_and_others() -> None:
    obj = pod("p")
    await DefaultTolerationSeconds().admit(
        request("UPDATE", "pods", obj, sub="status"), FakeView())
    assert "tolerations" not in obj["spec"]
    dep = {"metadata": meta("d", "default"), "spec": {}}
    await DefaultTolerationSeconds().admit(
        request("CREATE", "deployments", dep, group="apps"), FakeView())
    assert dep["spec"] == {}


async def test_default_toleration_seconds_are_configurable() -> None:
    """kube-apiserver's --default-not-ready/unreachable-toleration-seconds (the chaos cluster
    evicts from a lost node after seconds, not five minutes)."""
    obj = pod("p")
    await DefaultTolerationSeconds(seconds=7, unreachable_seconds=9).admit(
        request("CREATE", "pods", obj), FakeView())
    assert [(t["key"], t["tolerationSeconds"]) for t in obj["spec"]["tolerations"]] == [
        ("node.kubernetes.io/not-ready", 7), ("node.kubernetes.io/unreachable", 9)]


# --- NodeRestriction ------------------------------------------------------------------------

def node_obj(name: str, **more: Any) -> Obj:
    return {"metadata": meta(name, uid=f"uid-{name}", **more), "spec": {}}


def mirror_pod(node: str = "n1", **more: Any) -> Obj:
    obj = pod("static", annotations={"kubernetes.io/config.mirror": "h"}, nodeName=node)
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Node", "name": node, "uid": f"uid-{node}",
         "controller": True, **more}]
    return obj


NODE_VIEW = FakeView(
    ("", "nodes", node_obj("n1")), ("", "nodes", node_obj("n2")),
    ("", "pods", pod("mine", nodeName="n1")), ("", "pods", pod("theirs", nodeName="n2")),
)


@pytest.mark.parametrize(("req", "message"), [
    pytest.param(request("UPDATE", "nodes", node_obj("n2"), ns="", old=node_obj("n2"),
                         user=NODE1),
                 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"',
                 id="other-node"),
    pytest.param(request("CREATE", "nodes", node_obj("n2"), ns="", user=NODE1),
                 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"',
                 id="create-other-node"),
    pytest.param(request("UPDATE", "nodes", node_obj("n2"), ns="", sub="status",
                         old=node_obj("n2"), user=NODE1),
                 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"',
                 id="other-node-status"),
    pytest.param(request("DELETE", "nodes", ns="", name="n2", user=NODE1),
                 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"',
                 id="delete-other-node"),
    pytest.param(request("UPDATE", "nodes",
                         {"metadata": meta("n1"), "spec": {"taints": [{"key": "k"}]}}, ns="",
                         old=node_obj("n1"), user=NODE1),
                 'nodes "n1" is forbidden: node "n1" is not allowed to modify taints',
                 id="own-taints"),
    pytest.param(request("CREATE", "nodes", node_obj("n1", labels={
                             "node-role.kubernetes.io/control-plane": "",
                             "kubernetes.io/hostname": "n1"}), ns="", user=NODE1),
                 'nodes "n1" is forbidden: node "n1" is not allowed to set the following '
                 "labels: node-role.kubernetes.io/control-plane", id="forbidden-label"),
    pytest.param(request("UPDATE", "pods", pod("theirs", nodeName="n2"), sub="status",
                         old=pod("theirs", nodeName="n2"), user=NODE1),
                 'pods "theirs" is forbidden: node "n1" can only update pod status for pods '
                 "with spec.nodeName set to itself", id="other-pod-status"),
    pytest.param(request("CREATE", "pods", pod("p", nodeName="n1"), user=NODE1),
                 'pods "p" is forbidden: pod does not have "kubernetes.io/config.mirror" '
                 'annotation, node "n1" can only create mirror pods', id="non-mirror"),
    pytest.param(request("CREATE", "pods", mirror_pod("n2"), user=NODE1),
                 'pods "static" is forbidden: node "n1" can only create pods with '
                 "spec.nodeName set to itself", id="mirror-other-node"),
    pytest.param(request("CREATE", "pods", mirror_pod(uid="wrong"), user=NODE1),
                 'pods "static" is forbidden: node n1 UID mismatch: expected uid-n1 got wrong',
                 id="mirror-uid"),
    pytest.param(request("UPDATE", "pods", pod("mine", nodeName="n1"),
                         old=pod("mine", nodeName="n1"), user=NODE1),
                 'pods "mine" is forbidden: unexpected operation "UPDATE", node "n1" can only '
                 "create and delete mirror pods", id="pod-update"),
    pytest.param(request("DELETE", "pods", name="theirs", user=NODE1),
                 'pods "theirs" is forbidden: node "n1" can only delete pods with '
                 "spec.nodeName set to itself", id="delete-other-pod"),
    pytest.param(request("CREATE", "leases", {"metadata": meta("n2", "kube-node-lease")},
                         ns="kube-node-lease", group="coordination.k8s.io", user=NODE1),
                 'leases.coordination.k8s.io "n2" is forbidden: can only access node lease '
                 "with the same name as the requesting node", id="other-lease"),
    pytest.param(request("UPDATE", "leases", {"metadata": meta("n1", "default")},
                         group="coordination.k8s.io", user=NODE1),
                 'leases.coordination.k8s.io "n1" is forbidden: can only access leases in the '
                 '"kube-node-lease" system namespace', id="lease-elsewhere"),
    pytest.param(request("UPDATE", "nodes", node_obj("x"), ns="", old=node_obj("x"),
                         user=UserInfo("system:node:", ("system:nodes",))),
                 'nodes "x" is forbidden: could not determine node from user "system:node:"',
                 id="nameless-node"),
])
async def test_node_restriction_refuses(req: AdmissionRequest, message: str) -> None:
    err = await refused(NodeRestriction().validate(req, NODE_VIEW))
    assert (err.code, err.message) == (403, message)


@pytest.mark.parametrize("req", [
    pytest.param(request("CREATE", "nodes", node_obj("n1", labels={
        "kubernetes.io/hostname": "n1", "node.kubernetes.io/instance-type": "small",
        "example.com/rack": "r1"}), ns="", user=NODE1), id="create-self"),
    pytest.param(request("UPDATE", "nodes", node_obj("n1"), ns="", old=node_obj("n1"),
                         user=NODE1), id="update-self"),
    pytest.param(request("UPDATE", "nodes", node_obj("n1"), ns="", sub="status",
                         old=node_obj("n1"), user=NODE1), id="own-status"),
    pytest.param(request("UPDATE", "pods", pod("mine", nodeName="n1"), sub="status",
                         old=pod("mine", nodeName="n1"), user=NODE1), id="own-pod-status"),
    pytest.param(request("DELETE", "pods", name="mine", user=NODE1), id="delete-own-pod"),
    pytest.param(request("CREATE", "pods", mirror_pod(), user=NODE1), id="own-mirror-pod"),
    pytest.param(request("CREATE", "leases", {"metadata": meta("n1", "kube-node-lease")},
                         ns="kube-node-lease", group="coordination.k8s.io", user=NODE1),
                 id="own-lease"),
    pytest.param(request("UPDATE", "leases", {"metadata": meta("n1", "kube-node-lease")},
                         ns="kube-node-lease", name="n1", group="coordination.k8s.io",
                         user=NODE1), id="renew-own-lease"),
    pytest.param(request("CREATE", "events", {"metadata": meta("e")}, user=NODE1),
                 id="unrestricted-resource"),
    pytest.param(request("UPDATE", "nodes", node_obj("n2"), ns="", old=node_obj("n2")),
                 id="not-a-node"),
    pytest.param(request("UPDATE", "nodes", node_obj("n2"), ns="", old=node_obj("n2"),
                         user=UserInfo("system:node:n1", ("system:authenticated",))),
                 id="node-name-without-group"),
])
async def test_node_restriction_allows(req: AdmissionRequest) -> None:
    await NodeRestriction().validate(req, NODE_VIEW)


async def test_node_restriction_missing_pod_is_not_found() -> None:
    err = await refused(NodeRestriction().validate(
        request("DELETE", "pods", name="ghost", user=NODE1), NODE_VIEW))
    assert (err.code, err.message) == (404, 'pods "ghost" not found')


# --- ResourceQuota --------------------------------------------------------------------------

def rq(view: FakeView, **kw: Any) -> tuple[ResourceQuota, FakeQuotaWriter]:
    writer = FakeQuotaWriter(view, **kw)
    return ResourceQuota(quota_writer=writer), writer


def used(view: FakeView, name: str = "q") -> Obj:
    obj = view.get("", "resourcequotas", "default", name)
    assert obj is not None
    return dict(obj["status"]["used"])


async def test_quota_exceeded_pods() -> None:
    view = FakeView(quota("q", {"pods": "10"}, {"pods": "10"}))
    plugin, writer = rq(view)
    err = await refused(plugin.validate(request("CREATE", "pods", pod("p")), view))
    assert (err.code, err.reason) == (403, "Forbidden")
    assert err.message == ('pods "p" is forbidden: exceeded quota: q, requested: pods=1, '
                           "used: pods=10, limited: pods=10")
    assert writer.calls == []


async def test_quota_charges_usage() -> None:
    view = FakeView(quota("q", {"pods": "10", "requests.memory": "2Gi", "limits.cpu": "4"},
                          {"pods": "2", "requests.memory": "1Gi"}))
    plugin, writer = rq(view)
    obj = pod("p", container("a", {"memory": "128Mi", "cpu": "250m"}, {"cpu": "500m"}))
    await plugin.validate(request("CREATE", "pods", obj), view)
    assert writer.calls == [("default", "q")]
    assert used(view) == {"pods": "3", "requests.memory": "1152Mi", "limits.cpu": "500m"}


async def test_quota_dry_run_checks_but_does_not_charge() -> None:
    view = FakeView(quota("q", {"pods": "1"}, {"pods": "0"}))
    plugin, writer = rq(view)
    await plugin.validate(request("CREATE", "pods", pod("p"), dry_run=True), view)
    assert writer.calls == [] and used(view) == {"pods": "0"}
    view.put(*quota("q", {"pods": "1"}, {"pods": "1"}))
    err = await refused(plugin.validate(request("CREATE", "pods", pod("p"), dry_run=True),
                                        view))
    assert "exceeded quota: q" in err.message


@pytest.mark.parametrize(("hard", "obj", "message"), [
    pytest.param({"requests.cpu": "1"}, pod("p", container("a"), container("b")),
                 "failed quota: q: must specify requests.cpu for: a,b", id="requests-cpu"),
    pytest.param({"limits.cpu": "2", "memory": "1Gi"},
                 pod("p", container("a", {"cpu": "1"}), container("b", {"memory": "1Mi"},
                                                              {"cpu": "1"})),
                 "failed quota: q: must specify limits.cpu for: a; memory for: a",
                 id="several"),
    pytest.param({"requests.cpu": "1"}, pod("p", container("a", limits={"cpu": "1"})), None,
                 id="limit-implies-request"),
    pytest.param({"pods": "5"}, pod("p"), None, id="count-only"),
])
async def test_quota_requires_compute_resources(hard: Obj, obj: Obj,
                                                message: str | None) -> None:
    view = FakeView(quota("q", hard, {}))
    plugin, _ = rq(view)
    call = plugin.validate(request("CREATE", "pods", obj), view)
    if message is None:
        await call
        return
    err = await refused(call)
    assert err.message == f'pods "p" is forbidden: {message}'


@pytest.mark.parametrize(("group", "resource", "hard", "used_after"), [
    pytest.param("apps", "deployments", {"count/deployments.apps": "2"},
                 {"count/deployments.apps": "1"}, id="count-group"),
    pytest.param("", "configmaps", {"configmaps": "3", "count/configmaps": "3"},
                 {"configmaps": "1", "count/configmaps": "1"}, id="count-core"),
    pytest.param("", "secrets", {"secrets": "3", "pods": "1"}, {"secrets": "1"},
                 id="only-tracked-names"),
])
async def test_quota_object_counts(group: str, resource: str, hard: Obj,
                                   used_after: Obj) -> None:
    view = FakeView(quota("q", hard))  # no status yet: counted from zero
    plugin, _ = rq(view)
    await plugin.validate(request("CREATE", resource, {"metadata": meta("x", "default")},
                                  group=group), view)
    assert used(view) == used_after


async def test_quota_rechecks_inside_the_write() -> None:
    view = FakeView(quota("q", {"pods": "2"}, {"pods": "1"}))

    def other_apiserver_took_the_last_pod(fresh: Obj) -> None:
        fresh["status"]["used"]["pods"] = "2"

    plugin, writer = rq(view, race=other_apiserver_took_the_last_pod)
    err = await refused(plugin.validate(request("CREATE", "pods", pod("p")), view))
    assert err.message == ('pods "p" is forbidden: exceeded quota: q, requested: pods=1, '
                           "used: pods=2, limited: pods=2")
    assert writer.calls == [] and used(view) == {"pods": "1"}


async def test_quota_scopes_and_other_namespaces() -> None:
    view = FakeView(
        quota("best-effort", {"pods": "0"}, {"pods": "0"}, scopes=["BestEffort"]),
        quota("elsewhere", {"pods": "0"}, {"pods": "0"}, ns="other"),
        quota("terminating", {"pods": "0"}, {"pods": "0"}, scopes=["Terminating"]),
        quota("gold", {"pods": "0"}, {"pods": "0"}, scopeSelector={"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["gold"]}]}),
    )
    plugin, writer = rq(view)
    burstable = pod("p", container("a", {"cpu": "1"}))
    await plugin.validate(request("CREATE", "pods", burstable), view)
    await plugin.validate(request("CREATE", "configmaps", {"metadata": meta("c")}), view)
    err = await refused(plugin.validate(request("CREATE", "pods", pod("p")), view))
    assert "exceeded quota: best-effort" in err.message
    err = await refused(plugin.validate(
        request("CREATE", "pods", pod("g", container("a", {"cpu": "1"}),
                                      priorityClassName="gold")), view))
    assert "exceeded quota: gold" in err.message
    assert writer.calls == []


async def test_quota_updates() -> None:
    view = FakeView(quota("q", {"services.nodeports": "1", "pods": "1", "services": "1"},
                          {"services.nodeports": "0", "pods": "1", "services": "1"}))
    plugin, writer = rq(view)
    old = {"metadata": meta("s", "default", resourceVersion="3"),
           "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}
    new = copy.deepcopy(old)
    new["spec"]["type"] = "NodePort"
    await plugin.validate(request("UPDATE", "services", new, old=old), view)
    assert used(view)["services.nodeports"] == "1" and used(view)["services"] == "1"
    await plugin.validate(request("UPDATE", "pods", pod("p"), old=pod("p")), view)
    await plugin.validate(request("DELETE", "pods", name="p", old=pod("p")), view)
    assert writer.calls == [("default", "q")]


# --- the chain ------------------------------------------------------------------------------

def test_default_chain_order() -> None:
    chain = default_chain(quota_writer=FakeQuotaWriter(FakeView()), random_suffix=lambda: "x")
    assert [p.name for p in chain.mutating] == [
        "NamespaceLifecycle", "LimitRanger", "ServiceAccount", "Priority",
        "DefaultTolerationSeconds"]
    assert [p.name for p in chain.validating] == [
        "NamespaceLifecycle", "LimitRanger", "ServiceAccount", "NodeRestriction", "Priority",
        "ResourceQuota"]


async def test_chain_end_to_end_pod_create() -> None:
    view = FakeView(
        namespace("default"), service_account(),
        limit_range({"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                     "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}),
        quota("compute", {"requests.cpu": "1", "limits.memory": "1Gi", "pods": "5"},
              {"requests.cpu": "0", "limits.memory": "0", "pods": "0"}),
    )
    writer = FakeQuotaWriter(view)
    chain = default_chain(quota_writer=writer, random_suffix=lambda: "q7x2k")
    obj = pod("web", container("nginx"))
    req = request("CREATE", "pods", obj)
    await chain.admit(req, view)
    await chain.validate(req, view)
    spec = obj["spec"]
    assert spec["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"}}
    assert spec["volumes"][0]["name"] == "kube-api-access-q7x2k"
    assert spec["tolerations"] == [NOT_READY, UNREACHABLE]
    assert used(view, "compute") == {"requests.cpu": "100m", "limits.memory": "256Mi",
                                     "pods": "1"}


async def test_chain_reports_missing_namespace_before_service_account() -> None:
    chain = default_chain(quota_writer=FakeQuotaWriter(FakeView()), random_suffix=lambda: "x")
    err = await refused(chain.admit(request("CREATE", "pods", pod("p", ns="nope"), ns="nope"),
                                    FakeView()))
    assert (err.code, err.message) == (404, 'namespaces "nope" not found')


async def test_chain_malformed_quantity_is_bad_request() -> None:
    view = FakeView(namespace("default"), service_account(),
                    limit_range({"type": "Container", "max": {"cpu": "1"}}))
    chain = default_chain(quota_writer=FakeQuotaWriter(view), random_suffix=lambda: "x")
    req = request("CREATE", "pods", pod("p", container("c", limits={"cpu": "lots"})))
    err = await refused(chain.validate(req, view))
    assert err.code == 400 and "quantities must match" in err.message


async def test_chain_runs_plugins_in_order_and_stops_at_first_error() -> None:
    seen: list[str] = []

    class Recorder:
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name, self.fail = name, fail

        async def admit(self, req: AdmissionRequest, view: Any) -> None:
            seen.append(f"admit:{self.name}")

        async def validate(self, req: AdmissionRequest, view: Any) -> None:
            seen.append(f"validate:{self.name}")
            if self.fail:
                raise NotFound("pods", "x")

    chain = AdmissionChain([Recorder("a"), Recorder("b")],
                           [Recorder("c"), Recorder("d", fail=True), Recorder("e")])
    req = request("CREATE", "pods", pod("p"))
    await chain.admit(req, FakeView())
    with pytest.raises(NotFound):
        await chain.validate(req, FakeView())
    assert seen == ["admit:a", "admit:b", "validate:c", "validate:d"]
