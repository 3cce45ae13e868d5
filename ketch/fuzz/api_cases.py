"""Requests for the apiserver: generated from its own OpenAPI by schemathesis, and by
Hypothesis strategies for what an OpenAPI document cannot describe — watch parameters,
patches of every type (with strategic-merge directives), protobuf bodies, label and field
selectors, huge and deeply nested bodies, invalid UTF-8 (body, path, headers), bodies that
trickle in or stop short.

Everything is drawn from seeded generators, so a seed names a run.  Names a request creates
carry a unique marker (``fz<hex>z``) so the store can be searched afterwards for anything a
refused request left; requests that change an existing object target a *pooled* object of
their resource (see :data:`POOL`), which the runner checks after a refusal.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from .wire import Req

__all__ = ["FUZZ_NS", "POOL", "api_requests", "draw", "pool_objects"]

FUZZ_NS = "fuzz"
JSON_CT = {"Content-Type": "application/json"}
PROTOBUF = "application/vnd.kubernetes.protobuf"
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")

_TEMPLATE: dict[str, Any] = {"metadata": {"labels": {"app": "fz"}},
             "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["sleep", "1"]}]}}
#: collection path -> (apiVersion, kind, the rest of a valid object): one pooled object each
POOL: dict[str, tuple[str, str, dict[str, Any]]] = {
    f"/api/v1/namespaces/{FUZZ_NS}/configmaps": ("v1", "ConfigMap", {"data": {"a": "b"}}),
    f"/api/v1/namespaces/{FUZZ_NS}/secrets": ("v1", "Secret", {"data": {"a": "Yg=="}}),
    f"/api/v1/namespaces/{FUZZ_NS}/serviceaccounts": ("v1", "ServiceAccount", {}),
    f"/api/v1/namespaces/{FUZZ_NS}/services": (
        "v1", "Service", {"spec": {"ports": [{"port": 80}], "selector": {"app": "fz"}}}),
    f"/api/v1/namespaces/{FUZZ_NS}/pods": ("v1", "Pod", {"spec": _TEMPLATE["spec"]}),
    f"/api/v1/namespaces/{FUZZ_NS}/events": (
        "v1", "Event", {"involvedObject": {"kind": "Pod", "name": "x", "namespace": FUZZ_NS},
                        "reason": "Fuzz", "message": "m", "type": "Normal"}),
    f"/api/v1/namespaces/{FUZZ_NS}/limitranges": (
        "v1", "LimitRange", {"spec": {"limits": [{"type": "Container"}]}}),
    f"/apis/apps/v1/namespaces/{FUZZ_NS}/deployments": (
        "apps/v1", "Deployment", {"spec": {"selector": {"matchLabels": {"app": "fz"}},
                                           "template": _TEMPLATE}}),
    f"/apis/apps/v1/namespaces/{FUZZ_NS}/statefulsets": (
        "apps/v1", "StatefulSet", {"spec": {"selector": {"matchLabels": {"app": "fz"}},
                                            "serviceName": "s", "template": _TEMPLATE}}),
    f"/apis/batch/v1/namespaces/{FUZZ_NS}/jobs": (
        "batch/v1", "Job", {"spec": {"template": {
            **_TEMPLATE, "spec": {**_TEMPLATE["spec"], "restartPolicy": "Never"}}}}),
    f"/apis/coordination.k8s.io/v1/namespaces/{FUZZ_NS}/leases": (
        "coordination.k8s.io/v1", "Lease", {"spec": {"holderIdentity": "fz"}}),
    f"/apis/rbac.authorization.k8s.io/v1/namespaces/{FUZZ_NS}/roles": (
        "rbac.authorization.k8s.io/v1", "Role",
        {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
}


def pool_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    """(collection path, object) for every pooled object."""
    for path, (api_version, kind, rest) in POOL.items():
        name = "pool-" + path.rsplit("/", 1)[-1]
        yield path, {"apiVersion": api_version, "kind": kind,
                     "metadata": {"name": name, **rest.get("metadata", {})},
                     **{k: v for k, v in rest.items() if k != "metadata"}}


def pool_item(collection: str) -> str:
    return f"{collection}/pool-{collection.rsplit('/', 1)[-1]}"


def draw(strategy: st.SearchStrategy[Any], n: int, seed: int) -> list[Any]:
    """``n`` examples of ``strategy`` (fewer if it has fewer), reproducibly from ``seed``."""
    out: list[Any] = []

    @hypothesis_seed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x: Any) -> None:
        out.append(x)

    collect()
    return out


class _Names:
    def __init__(self) -> None:
        self.n = 0

    def marker(self) -> str:
        self.n += 1
        return f"fz{self.n:x}z"


# --- schemathesis ---------------------------------------------------------------------------

def _str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else json.dumps(v)


def _from_case(case: Any, rng: random.Random, names: _Names) -> Req:
    from schemathesis.core import NotSet

    template: str = case.operation.path
    params = {k: _str(v) for k, v in (case.path_parameters or {}).items()}
    if "namespace" in params and rng.random() < 0.85:
        params["namespace"] = FUZZ_NS
    marker, pooled = names.marker(), ""
    collection = template.replace("{namespace}", params.get("namespace", ""))
    collection = collection.split("/{name}")[0]
    if "name" in params:
        if rng.random() < 0.5 and collection in POOL:
            params["name"] = pool_item(collection).rsplit("/", 1)[-1]
            pooled = pool_item(collection)
        else:
            params["name"] = marker
    path = template
    for k, v in params.items():
        path = path.replace("{" + k + "}", quote(v, safe=""))
    query: list[tuple[str, str]] = []
    for k, v in (case.query or {}).items():
        for item in v if isinstance(v, list) else [v]:
            query.append((k, _str(item)))
    if any(k == "watch" for k, _ in query) or any(k == "follow" for k, _ in query):
        query = [(k, v) for k, v in query if k != "timeoutSeconds"] + [("timeoutSeconds", "1")]
    headers = {k: _str(v) for k, v in (case.headers or {}).items()}
    body = None
    if not isinstance(case.body, NotSet):
        obj = case.body
        if case.method.upper() == "POST" and isinstance(obj, dict) and rng.random() < 0.9:
            meta = obj.get("metadata")
            obj["metadata"] = {**(meta if isinstance(meta, dict) else {}), "name": marker}
        body = json.dumps(obj).encode()
        headers["Content-Type"] = case.media_type or "application/json"
    return Req("openapi", case.method.upper(), path, query, headers, body, marker=marker,
               pooled=pooled if case.method.upper() in ("PUT", "PATCH", "DELETE") else "")


def openapi_requests(doc: dict[str, Any], per_operation: int, seed: int,
                     names: _Names, progress: Callable[[str], None]) -> Iterator[Req]:
    """``per_operation`` schemathesis cases for every operation of ``doc``."""
    import schemathesis

    schema = schemathesis.openapi.from_dict(doc)
    rng = random.Random(seed)
    ops = [op for r in schema.get_all_operations() if (op := getattr(r, "ok", lambda: None)())
           is not None]
    for i, op in enumerate(ops):
        try:
            cases = draw(op.as_strategy(), per_operation, seed + i)
        except Exception as e:  # noqa: BLE001 - a schema schemathesis cannot satisfy: skip it
            progress(f"  schemathesis: skipped {op.label}: {type(e).__name__}")
            continue
        for case in cases:
            yield _from_case(case, rng, names)


# --- Hypothesis strategies for what OpenAPI does not reach ---------------------------------

_TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
_SEL_CHARS = "abcxyz019-_./=!,() " + "in notin exists" + "\u00e9\u2603\x00"
json_scalars = st.none() | st.booleans() | st.integers(-2**63, 2**64) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
    st.sampled_from(["metadata", "spec", "status", "name", "labels", "replicas", "containers",
                     "image", "data", "$patch", "$retainKeys", "x", "rules", "selector",
                     "$setElementOrder/containers", "$deleteFromPrimitiveList/finalizers",
                     "finalizers", "resourceVersion", "uid", "ports", "template"]) |
    st.text(max_size=10), kids, max_size=4), max_leaves=12)
_PATHS = ["/metadata/labels/a", "/metadata/annotations", "/spec", "/spec/replicas",
          "/spec/containers/0/image", "/data/a", "/metadata/name", "/metadata/resourceVersion",
          "/spec/template/spec/containers/-", "/status", "/x", "", "/metadata/finalizers/0"]
json_patch_ops = st.lists(st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
     "path": st.sampled_from(_PATHS) | st.text(max_size=12)},
    optional={"value": json_values, "from": st.sampled_from(_PATHS)}), max_size=5)
label_selectors = st.text(alphabet=_SEL_CHARS, max_size=40) | st.builds(
    lambda k, op, v: f"{k}{op}{v}", st.sampled_from(["app", "a.b/c", "x", "", "-bad"]),
    st.sampled_from(["=", "==", "!=", " in ", " notin ", ""]),
    st.sampled_from(["web", "(a,b)", "(", "", "v" * 70, "x,y"]))
field_selectors = st.text(alphabet=_SEL_CHARS, max_size=40) | st.builds(
    lambda k, op, v: f"{k}{op}{v}",
    st.sampled_from(["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase",
                     "involvedObject.name", "spec.unknown", ""]),
    st.sampled_from(["=", "==", "!=", ""]), st.sampled_from(["x", "", "a,b", "\\,"]))
watch_params = st.fixed_dictionaries({}, optional={
    "resourceVersion": st.sampled_from(["0", "", "1", "-1", "abc", "99999999999", "1e3"])
    | st.integers(0, 10**6).map(str),
    "resourceVersionMatch": st.sampled_from(["NotOlderThan", "Exact", "", "bogus"]),
    "allowWatchBookmarks": st.sampled_from(["true", "false", "1", "maybe"]),
    "sendInitialEvents": st.sampled_from(["true", "false", "x"]),
    "labelSelector": label_selectors, "fieldSelector": field_selectors,
    "limit": st.sampled_from(["0", "1", "-5", "x", "500"]),
    "continue": st.text(max_size=20)})
invalid_utf8 = st.binary(min_size=1, max_size=12).filter(lambda b: _not_utf8(b))


def _not_utf8(b: bytes) -> bool:
    try:
        b.decode()
    except UnicodeDecodeError:
        return True
    return False


def _collections(doc: dict[str, Any]) -> list[str]:
    out = []
    for path, item in doc["paths"].items():
        if "{name}" not in path and "get" in item and "watch" not in path:
            out.append(path.replace("{namespace}", FUZZ_NS))
    return sorted(out)


def _watches(doc: dict[str, Any], n: int, seed: int) -> Iterator[Req]:
    cols, rng = _collections(doc), random.Random(seed)
    for params in draw(watch_params, n, seed):
        q = [(k, v) for k, v in params.items()] + [("watch", rng.choice(["true", "1", "false"])),
                                                    ("timeoutSeconds", "1")]
        yield Req("watch", "GET", rng.choice(cols), q)


def _selectors(doc: dict[str, Any], n: int, seed: int) -> Iterator[Req]:
    cols, rng = _collections(doc), random.Random(seed)
    sels = draw(st.tuples(label_selectors, field_selectors), n, seed)
    for label, fieldsel in sels:
        q = [("labelSelector", label)] if rng.random() < 0.6 else []
        q += [("fieldSelector", fieldsel)] if rng.random() < 0.6 or not q else []
        yield Req("selector", "GET", rng.choice(cols), q,
                  {"Accept": rng.choice(["application/json", _TABLE])})


def _patches(n: int, seed: int, names: _Names) -> Iterator[Req]:
    rng = random.Random(seed)
    merge = draw(json_values, n // 2, seed)
    ops = draw(json_patch_ops, n - n // 2, seed + 1)
    for i, doc in enumerate([*merge, *ops]):
        collection = rng.choice(list(POOL))
        is_ops = i >= len(merge)
        ct = "application/json-patch+json" if is_ops else rng.choice(PATCH_TYPES[1:])
        q = [("fieldManager", rng.choice(["fz", "", "x" * 200]))] if ct.endswith("yaml") or \
            rng.random() < 0.3 else []
        if rng.random() < 0.3:
            q.append(("force", rng.choice(["true", "false", "yes"])))
        if rng.random() < 0.2:
            q.append(("fieldValidation", rng.choice(["Strict", "Warn", "Ignore", "Bogus"])))
        target = pool_item(collection)
        sub = rng.choice(["", "", "", "/status", "/scale"])
        yield Req("patch", "PATCH", target + sub, q, {"Content-Type": ct},
                  json.dumps(doc).encode(), marker=names.marker(),
                  pooled=target)


def _protobuf(n: int, seed: int, names: _Names) -> Iterator[Req]:
    rng = random.Random(seed)
    for blob in draw(st.binary(max_size=300), n, seed):
        collection = rng.choice(list(POOL))
        prefix = rng.choice([b"k8s\x00", b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret\x12",
                             b"k8s\x00\x0a\x0f\x0a\x07apps/v1\x12\x04Dead\x12", b""])
        yield Req("protobuf", rng.choice(["POST", "POST", "PUT"]),
                  collection if rng.random() < 0.8 else pool_item(collection), [],
                  {"Content-Type": PROTOBUF}, prefix + blob, marker=names.marker())


def _utf8(n: int, seed: int, names: _Names) -> Iterator[Req]:
    rng = random.Random(seed)
    for bad in draw(invalid_utf8, n, seed):
        collection = rng.choice(list(POOL))
        where = rng.choice(["body", "body", "path", "query", "header"])
        m = names.marker()
        if where == "body":
            body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"' + \
                m.encode() + b'"},"data":{"k":"' + bad + b'"}}'
            yield Req("utf8", "POST", collection, [], dict(JSON_CT), body, marker=m)
        elif where == "path":
            yield Req("utf8", "GET", collection + "/" + bad.decode("utf-8", "surrogateescape"),
                      mode="raw")
        elif where == "query":
            yield Req("utf8", "GET", collection, [("labelSelector", "".join(
                f"%{c:02X}" for c in bad))], mode="raw")
        else:
            yield Req("utf8", "GET", collection, [], {"Impersonate-User": bad.decode(
                "utf-8", "surrogateescape")}, mode="raw")


def _shapes(names: _Names, rng: random.Random) -> Iterator[Req]:
    """Huge and deeply nested bodies, and bodies sent slowly or cut short."""
    collection = f"/api/v1/namespaces/{FUZZ_NS}/configmaps"
    for depth in (64, 1000, 10_000, 100_000, 1_000_000):
        m = names.marker()
        nested = "[" * depth + "]" * depth
        yield Req("deep", "POST", collection, [], dict(JSON_CT),
                  f'{{"metadata":{{"name":"{m}"}},"data":{{"a":"b"}},"x":{nested}}}'.encode(),
                  marker=m)
        yield Req("deep", "PATCH", pool_item(collection), [],
                  {"Content-Type": rng.choice(PATCH_TYPES[1:3])},
                  f'{{"metadata":{{"labels":{nested}}}}}'.encode(), pooled=pool_item(collection))
        yield Req("deep", "POST", collection, [], {"Content-Type": "application/yaml"},
                  ("a:\n" + "".join(" " * (i + 1) + "- \n" for i in range(min(depth, 3000))))
                  .encode(), marker=names.marker())
    for size in (1 << 20, 3 * (1 << 20) - 200, 3 * (1 << 20) + 1, 8 << 20):
        m = names.marker()
        yield Req("huge", "POST", collection, [], dict(JSON_CT), json.dumps(
            {"metadata": {"name": m}, "data": {"a": "x" * size}}).encode(), marker=m)
        m = names.marker()  # its own name: a shared one made the first's 201 look refused
        yield Req("huge", "POST", collection, [], dict(JSON_CT), json.dumps(
            {"metadata": {"name": m, "labels": {f"k{i}": "v" for i in range(size // 16)}}}
        ).encode(), marker=m)
    for mode in ("slow", "truncated"):
        for _ in range(4):
            m = names.marker()
            yield Req(mode, "POST", collection, [], dict(JSON_CT), json.dumps(
                {"metadata": {"name": m}, "data": {"a": "b" * rng.randint(10, 5000)}}).encode(),
                mode=mode, marker=m)


def api_requests(doc: dict[str, Any], total: int, seed: int,
                 progress: Callable[[str], None]) -> Iterator[Req]:
    """About ``total`` requests: a quarter from schemathesis (spread over every operation),
    the rest from the strategies above, interleaved batch by batch."""
    names, rng = _Names(), random.Random(seed)
    ops = sum(1 for item in doc["paths"].values() for m in item if m in
              ("get", "put", "post", "patch", "delete"))
    per_op = max(1, total // 4 // max(1, ops))
    yield from _shapes(names, rng)
    rest = total - per_op * ops
    batch = max(50, rest // 40)
    by_doc: list[tuple[Callable[[dict[str, Any], int, int], Iterator[Req]], float]] = [
        (_watches, 0.2), (_selectors, 0.2)]
    by_names: list[tuple[Callable[[int, int, _Names], Iterator[Req]], float]] = [
        (_patches, 0.35), (_protobuf, 0.15), (_utf8, 0.1)]
    openapi = openapi_requests(doc, per_op, seed, names, progress)
    for round_ in range(max(1, rest // batch)):
        s = seed * 1000 + round_ * 10
        for i, (fd, share) in enumerate(by_doc):
            yield from fd(doc, max(1, int(batch * share)), s + i)
        for i, (fn, share) in enumerate(by_names):
            yield from fn(max(1, int(batch * share)), s + 5 + i, names)
        for _ in range(per_op * ops // max(1, rest // batch)):
            nxt = next(openapi, None)
            if nxt is None:
                break
            yield nxt
    yield from openapi
