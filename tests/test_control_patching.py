"""The PATCH engines against what kubectl sends: label/annotate/scale (merge patch), patch
--type=json, patch / set image / cordon / rollout restart / client-side apply (strategic)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.apiserver.patching import (
    MalformedPatchError,
    PatchApplyError,
    PatchError,
    PatchPathNotFoundError,
    PatchSchema,
    PatchTestFailedError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    create_merge_patch,
    errors,
    schema_for,
)
from control.apiserver.patching.schema import ATOMIC, PRIMITIVE_MERGE, merge_by, merged

J = dict[str, Any]


def _same(a: Any, b: Any) -> bool:
    """Exact JSON equality: tells true from 1 and 1 from 1.0, and key order does not matter."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _c(name: str, image: str = "nginx:1.25", **extra: Any) -> J:
    return {"name": name, "image": image, **extra}


def pod(**spec: Any) -> J:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [_c("web")], **spec},
    }


def deployment(**pod_spec: Any) -> J:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [_c("web")], **pod_spec},
            },
        },
    }


def tmpl(**pod_spec: Any) -> J:
    """A deployment patch touching only the pod template's spec."""
    return {"spec": {"template": {"spec": pod_spec}}}


def pod_spec_of(obj: J) -> J:
    spec: J = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj["spec"]
    return spec


# --- strategic merge patch: what the result's pod spec must be -----------------------------

SMP_POD_SPEC_CASES = [
    pytest.param(
        deployment(containers=[_c("web"), _c("log", "busybox")]),
        tmpl(containers=[{"name": "web", "image": "nginx:1.26"}]),
        {"containers": [_c("web", "nginx:1.26"), _c("log", "busybox")]},
        id="set-image-changes-one-container-by-name",
    ),
    pytest.param(
        deployment(),
        tmpl(containers=[_c("sidecar", "busybox")]),
        {"containers": [_c("sidecar", "busybox"), _c("web")]},
        id="add-container-goes-first-like-kubernetes",
    ),
    pytest.param(
        deployment(),
        tmpl(
            **{"$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}]},
            containers=[_c("sidecar", "busybox")],
        ),
        {"containers": [_c("web"), _c("sidecar", "busybox")]},
        id="apply-adds-container-in-setElementOrder-order",
    ),
    pytest.param(
        deployment(containers=[_c("web"), _c("log", "busybox")]),
        tmpl(containers=[{"name": "log", "$patch": "delete"}]),
        {"containers": [_c("web")]},
        id="remove-container-with-patch-delete",
    ),
    pytest.param(
        deployment(containers=[_c("a"), _c("b")]),
        tmpl(containers=[{"$patch": "replace"}, _c("z")]),
        {"containers": [_c("z")]},
        id="list-item-patch-replace-replaces-the-list",
    ),
    pytest.param(
        deployment(
            containers=[_c("web", env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])]
        ),
        tmpl(
            containers=[
                {"name": "web", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}
            ]
        ),
        {
            "containers": [
                _c(
                    "web",
                    env=[
                        {"name": "A", "value": "1"},
                        {"name": "B", "value": "3"},
                        {"name": "C", "value": "4"},
                    ],
                )
            ]
        },
        id="env-merges-by-name",
    ),
    pytest.param(
        deployment(
            containers=[_c("web", env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])]
        ),
        tmpl(containers=[{"name": "web", "env": [{"name": "A", "$patch": "delete"}]}]),
        {"containers": [_c("web", env=[{"name": "B", "value": "2"}])]},
        id="env-var-deleted-by-name",
    ),
    pytest.param(
        pod(containers=[_c("web", ports=[{"containerPort": 80, "protocol": "TCP"}])]),
        {
            "spec": {
                "containers": [{"name": "web", "ports": [{"containerPort": 80, "name": "http"}]}]
            }
        },
        {
            "containers": [
                _c("web", ports=[{"containerPort": 80, "protocol": "TCP", "name": "http"}])
            ]
        },
        id="port-merges-by-containerPort",
    ),
    pytest.param(
        pod(containers=[_c("web", ports=[{"containerPort": 80}])]),
        {"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 443}]}]}},
        {"containers": [_c("web", ports=[{"containerPort": 443}, {"containerPort": 80}])]},
        id="new-port-added-by-containerPort",
    ),
    pytest.param(
        pod(containers=[_c("web", volumeMounts=[{"mountPath": "/data", "name": "d"}])]),
        {
            "spec": {
                "containers": [
                    {"name": "web", "volumeMounts": [{"mountPath": "/data", "readOnly": True}]}
                ]
            }
        },
        {
            "containers": [
                _c("web", volumeMounts=[{"mountPath": "/data", "name": "d", "readOnly": True}])
            ]
        },
        id="volumeMounts-merge-by-mountPath",
    ),
    pytest.param(
        pod(tolerations=[{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]),
        {"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}},
        {"containers": [_c("web")], "tolerations": [{"key": "c", "operator": "Exists"}]},
        id="tolerations-replaced-atomically",
    ),
    pytest.param(
        pod(containers=[_c("web", args=["-a", "-b"], command=["run"])]),
        {"spec": {"containers": [{"name": "web", "args": ["-c"]}]}},
        {"containers": [_c("web", args=["-c"], command=["run"])]},
        id="args-replaced-atomically",
    ),
    pytest.param(
        pod(volumes=[{"name": "data", "emptyDir": {}}]),
        {
            "spec": {
                "volumes": [
                    {
                        "name": "data",
                        "$retainKeys": ["configMap", "name"],
                        "configMap": {"name": "cfg"},
                    }
                ]
            }
        },
        {"containers": [_c("web")], "volumes": [{"name": "data", "configMap": {"name": "cfg"}}]},
        id="volume-source-switch-with-retainKeys",
    ),
    pytest.param(
        pod(volumes=[{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}]),
        {"spec": {"volumes": [{"name": "b", "emptyDir": {"medium": "Memory"}}]}},
        {
            "containers": [_c("web")],
            "volumes": [
                {"name": "a", "emptyDir": {}},
                {"name": "b", "emptyDir": {"medium": "Memory"}},
            ],
        },
        id="volumes-merge-by-name",
    ),
    pytest.param(
        pod(hostAliases=[{"ip": "10.0.0.1", "hostnames": ["a"]}]),
        {
            "spec": {
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}],
                "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}],
            }
        },
        {
            "containers": [_c("web")],
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}],
            "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}],
        },
        id="hostAliases-by-ip-and-new-spread-constraints",
    ),
    pytest.param(
        deployment(nodeSelector={"disk": "ssd", "zone": "a"}),
        tmpl(nodeSelector={"$patch": "replace", "zone": "b"}),
        {"containers": [_c("web")], "nodeSelector": {"zone": "b"}},
        id="map-patch-replace",
    ),
    pytest.param(
        deployment(nodeSelector={"disk": "ssd"}),
        tmpl(nodeSelector={"$patch": "delete"}),
        {"containers": [_c("web")]},
        id="map-patch-delete-removes-the-key",
    ),
    pytest.param(
        deployment(nodeSelector={"disk": "ssd"}),
        tmpl(nodeSelector={"$patch": "merge", "zone": "a"}),
        {"containers": [_c("web")], "nodeSelector": {"disk": "ssd", "zone": "a"}},
        id="map-patch-merge-is-a-plain-merge",
    ),
    pytest.param(
        deployment(containers=[_c("a"), _c("b"), _c("c")]),
        tmpl(**{"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}),
        {"containers": [_c("c"), _c("a"), _c("b")]},
        id="setElementOrder-alone-reorders",
    ),
    pytest.param(
        deployment(containers=[_c("injected", "istio"), _c("api")]),
        tmpl(
            **{"$setElementOrder/containers": [{"name": "api"}]},
            containers=[{"image": "nginx:1.26", "name": "api"}],
        ),
        {"containers": [_c("injected", "istio"), _c("api", "nginx:1.26")]},
        id="apply-keeps-server-only-container-in-place",
    ),
    pytest.param(
        deployment(containers=[_c("a"), _c("b"), _c("c")]),
        tmpl(
            **{"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]},
            containers=[{"$patch": "delete", "name": "b"}],
        ),
        {"containers": [_c("c"), _c("a")]},
        id="apply-removes-container-and-reorders",
    ),
    pytest.param(
        deployment(),
        tmpl(
            containers=[
                _c("new", env=[{"name": "X", "value": None}], resources={"$patch": "merge"})
            ]
        ),
        {"containers": [_c("new", env=[{"name": "X"}], resources={}), _c("web")]},
        id="added-item-is-cleaned-of-directives-and-nulls",
    ),
    pytest.param(
        pod(containers=[_c("web")]),
        {"spec": {"containers": []}},
        {"containers": [_c("web")]},
        id="empty-list-on-merged-list-is-a-no-op",
    ),
]


@pytest.mark.parametrize(("live", "patch", "want_pod_spec"), SMP_POD_SPEC_CASES)
def test_strategic_merge_patch_pod_spec(live: J, patch: J, want_pod_spec: J) -> None:
    got = apply_strategic_merge_patch(live, patch, schema_for(live["kind"]))
    assert _same(pod_spec_of(got), want_pod_spec)


# --- strategic merge patch: other fields -----------------------------------------------------

OWNER_A = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "u1"}
OWNER_B = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "u2"}

SMP_FIELD_CASES = [
    pytest.param(
        pod(),
        {"metadata": {"finalizers": ["b"]}},
        ("metadata", "finalizers"),
        ["b"],
        id="finalizers-added-to-none",
    ),
    pytest.param(
        {**pod(), "metadata": {"name": "p", "finalizers": ["a"]}},
        {"metadata": {"finalizers": ["b", "a"]}},
        ("metadata",),
        {"name": "p", "finalizers": ["b", "a"]},
        id="finalizers-primitive-merge-dedups",
    ),
    pytest.param(
        {**pod(), "metadata": {"name": "p", "finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zzz"]}},
        ("metadata",),
        {"name": "p", "finalizers": ["a", "c"]},
        id="finalizers-deleteFromPrimitiveList",
    ),
    pytest.param(
        {**pod(), "metadata": {"name": "p", "finalizers": ["a", "b"]}},
        {
            "metadata": {
                "$setElementOrder/finalizers": ["c", "a"],
                "finalizers": ["c"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
            }
        },
        ("metadata",),
        {"name": "p", "finalizers": ["c", "a"]},
        id="finalizers-apply-add-delete-and-order",
    ),
    pytest.param(
        {**pod(), "metadata": {"name": "p", "finalizers": ["a"]}},
        {"metadata": {"finalizers": None}},
        ("metadata",),
        {"name": "p"},
        id="finalizers-null-clears",
    ),
    pytest.param(
        {**pod(), "metadata": {"name": "p", "ownerReferences": [OWNER_A]}},
        {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}, OWNER_B]}},
        ("metadata",),
        {"name": "p", "ownerReferences": [{**OWNER_A, "controller": True}, OWNER_B]},
        id="ownerReferences-merge-by-uid",
    ),
    pytest.param(
        pod(),
        {"metadata": {"labels": {"app": None, "tier": "fe"}}},
        ("metadata", "labels"),
        {"tier": "fe"},
        id="label-null-deletes-key",
    ),
    pytest.param(
        deployment(),
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        ("spec", "strategy"),
        {"type": "Recreate"},
        id="deployment-strategy-to-Recreate-drops-rollingUpdate",
    ),
    pytest.param(
        deployment(),
        {
            "spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}
            }
        },
        ("spec", "strategy"),
        {"type": "Recreate"},
        id="retainKeys-allows-null-for-dropped-key",
    ),
    pytest.param(
        deployment(),
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t"}}
                }
            }
        },
        ("spec", "template", "metadata"),
        {"labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "t"}},
        id="rollout-restart-annotation",
    ),
    pytest.param(
        {
            **pod(),
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "False"},
                    {"type": "PodScheduled", "status": "True"},
                ]
            },
        },
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        ("status", "conditions"),
        [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
        id="pod-conditions-merge-by-type",
    ),
    pytest.param(
        {"kind": "Service", "spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}},
        ("spec", "ports"),
        [{"port": 80, "targetPort": 9090}, {"port": 443}],
        id="service-ports-merge-by-port",
    ),
    pytest.param(
        {"kind": "Node", "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}},
        {"spec": {"unschedulable": True, "taints": [{"key": "b", "effect": "NoExecute"}]}},
        ("spec",),
        {"unschedulable": True, "taints": [{"key": "b", "effect": "NoExecute"}]},
        id="node-cordon-and-taints-atomic",
    ),
    pytest.param(
        {
            "kind": "Node",
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "MemoryPressure", "status": "False"},
                ]
            },
        },
        {"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}},
        ("status", "conditions"),
        [{"type": "Ready", "status": "Unknown"}, {"type": "MemoryPressure", "status": "False"}],
        id="node-conditions-merge-by-type",
    ),
    pytest.param(
        {"kind": "ConfigMap", "data": {"a": "1"}, "metadata": {"name": "c", "finalizers": ["x"]}},
        {"data": {"b": "2"}, "metadata": {"finalizers": ["y"]}},
        (),
        {
            "kind": "ConfigMap",
            "data": {"a": "1", "b": "2"},
            "metadata": {"name": "c", "finalizers": ["y", "x"]},
        },
        id="other-kind-gets-metadata-schema",
    ),
    pytest.param(
        deployment(),
        {"$patch": "replace", "kind": "Deployment", "spec": {"replicas": 2}},
        (),
        {"kind": "Deployment", "spec": {"replicas": 2}},
        id="root-patch-replace",
    ),
]


@pytest.mark.parametrize(("live", "patch", "at", "want"), SMP_FIELD_CASES)
def test_strategic_merge_patch_fields(live: J, patch: J, at: tuple[str, ...], want: Any) -> None:
    got: Any = apply_strategic_merge_patch(live, patch, schema_for(live["kind"]))
    for key in at:
        got = got[key]
    assert _same(got, want)


def test_client_side_apply_patch_from_kubectl() -> None:
    """The exact body kubectl 1.37 sent for `apply -f` of a changed deployment (§6)."""
    live = deployment()
    live["spec"]["template"]["spec"]["containers"] = [_c("api", "nginx:1.25")]
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "api"}],
                    "containers": [{"image": "nginx:1.26", "name": "api"}],
                }
            },
        },
    }
    got = apply_strategic_merge_patch(live, patch, schema_for("Deployment"))
    want = copy.deepcopy(live)
    want["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    want["spec"]["replicas"] = 3
    want["spec"]["template"]["spec"]["containers"] = [_c("api", "nginx:1.26")]
    assert _same(got, want)


SMP_ERROR_CASES = [
    pytest.param(
        pod(), ["not", "a", "map"], MalformedPatchError, errors.NOT_AN_OBJECT, id="patch-is-a-list"
    ),
    pytest.param(pod(), "spec", MalformedPatchError, errors.NOT_AN_OBJECT, id="patch-is-a-string"),
    pytest.param(
        pod(),
        {"spec": {"containers": [{"image": "x"}]}},
        MalformedPatchError,
        errors.MISSING_MERGE_KEY,
        id="merge-key-missing-in-patch-item",
    ),
    pytest.param(
        pod(),
        {"spec": {"containers": [{"$patch": "delete"}]}},
        MalformedPatchError,
        errors.MISSING_MERGE_KEY,
        id="merge-key-missing-in-delete-item",
    ),
    pytest.param(
        pod(containers=[{"image": "x"}]),
        {"spec": {"containers": [_c("web")]}},
        PatchApplyError,
        errors.MISSING_MERGE_KEY,
        id="merge-key-missing-in-live-item",
    ),
    pytest.param(
        pod(),
        {"spec": {"containers": ["web"]}},
        MalformedPatchError,
        errors.TYPE_MISMATCH,
        id="scalar-item-in-keyed-list",
    ),
    pytest.param(
        pod(),
        {"spec": {"$patch": "nuke"}},
        MalformedPatchError,
        errors.INVALID_DIRECTIVE,
        id="unknown-patch-directive",
    ),
    pytest.param(
        deployment(),
        {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}},
        MalformedPatchError,
        errors.RETAIN_KEYS_MISMATCH,
        id="key-outside-retainKeys",
    ),
    pytest.param(
        deployment(),
        {"spec": {"strategy": {"$retainKeys": "type"}}},
        MalformedPatchError,
        errors.INVALID_DIRECTIVE,
        id="retainKeys-not-a-list",
    ),
    pytest.param(
        deployment(),
        tmpl(
            **{"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]},
            containers=[_c("b"), _c("a")],
        ),
        MalformedPatchError,
        errors.ELEMENT_ORDER_MISMATCH,
        id="list-out-of-setElementOrder",
    ),
    pytest.param(
        pod(),
        {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
        MalformedPatchError,
        errors.INVALID_DIRECTIVE,
        id="deleteFromPrimitiveList-not-a-list",
    ),
    pytest.param(
        pod(),
        {"metadata": {"$setElementOrder": []}},
        MalformedPatchError,
        errors.INVALID_DIRECTIVE,
        id="directive-without-list-name",
    ),
    pytest.param(
        pod(),
        {"metadata": {"finalizers": [["a"]]}},
        PatchApplyError,
        errors.LIST_OF_LISTS,
        id="list-of-lists",
    ),
]


@pytest.mark.parametrize(("live", "patch", "error", "reason"), SMP_ERROR_CASES)
def test_strategic_merge_patch_errors(
    live: J, patch: Any, error: type[PatchError], reason: str
) -> None:
    with pytest.raises(error) as caught:
        apply_strategic_merge_patch(live, patch, schema_for(live["kind"]))
    assert caught.value.reason == reason
    assert caught.value.code == (400 if error is MalformedPatchError else 422)


# --- JSON patch ------------------------------------------------------------------------------

JSON_PATCH_CASES = [
    pytest.param(
        [{"op": "add", "path": "/metadata/labels/tier", "value": "fe"}],
        ("metadata", "labels"),
        {"app": "web", "tier": "fe"},
        id="add-label",
    ),
    pytest.param(
        [
            {
                "op": "replace",
                "path": "/spec/template/spec/containers/0/image",
                "value": "nginx:1.26",
            }
        ],
        ("spec", "template", "spec", "containers"),
        [_c("web", "nginx:1.26")],
        id="replace-image",
    ),
    pytest.param(
        [{"op": "add", "path": "/spec/template/spec/containers/-", "value": _c("log")}],
        ("spec", "template", "spec", "containers"),
        [_c("web"), _c("log")],
        id="append-container",
    ),
    pytest.param(
        [{"op": "remove", "path": "/spec/strategy/rollingUpdate"}],
        ("spec", "strategy"),
        {"type": "RollingUpdate"},
        id="remove",
    ),
    pytest.param(
        [
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 5},
        ],
        ("spec", "replicas"),
        5,
        id="test-then-replace",
    ),
    pytest.param(
        [{"op": "move", "from": "/spec/selector", "path": "/spec/sel2"}],
        ("spec", "sel2"),
        {"matchLabels": {"app": "web"}},
        id="move",
    ),
    pytest.param(
        [{"op": "copy", "from": "/spec/template/metadata/labels", "path": "/metadata/labels"}],
        ("metadata", "labels"),
        {"app": "web"},
        id="copy",
    ),
]


@pytest.mark.parametrize(("ops", "at", "want"), JSON_PATCH_CASES)
def test_json_patch(ops: list[J], at: tuple[str, ...], want: Any) -> None:
    got: Any = apply_json_patch(deployment(), ops)
    for key in at:
        got = got[key]
    assert _same(got, want)


JSON_PATCH_ERROR_CASES = [
    pytest.param(
        [{"op": "test", "path": "/spec/replicas", "value": 2}],
        PatchTestFailedError,
        errors.TEST_FAILED,
        id="test-failure",
    ),
    pytest.param(
        [{"op": "test", "path": "/spec/replicas", "value": True}],
        PatchTestFailedError,
        errors.TEST_FAILED,
        id="test-true-is-not-1",
    ),
    pytest.param(
        [{"op": "test", "path": "/spec/nope", "value": 1}],
        PatchTestFailedError,
        errors.TEST_FAILED,
        id="test-missing-path",
    ),
    pytest.param(
        [{"op": "replace", "path": "/spec/nope", "value": 1}],
        PatchPathNotFoundError,
        errors.PATH_NOT_FOUND,
        id="replace-path-not-found",
    ),
    pytest.param(
        [{"op": "remove", "path": "/metadata/annotations"}],
        PatchPathNotFoundError,
        errors.PATH_NOT_FOUND,
        id="remove-path-not-found",
    ),
    pytest.param(
        [{"op": "add", "path": "/nope/deeper", "value": 1}],
        PatchPathNotFoundError,
        errors.PATH_NOT_FOUND,
        id="add-under-missing-parent",
    ),
    pytest.param(
        [{"op": "add", "path": "/spec/template/spec/containers/5", "value": 1}],
        PatchApplyError,
        errors.INVALID_OPERATION,
        id="add-beyond-list-end",
    ),
    pytest.param(
        [{"op": "replace", "path": "", "value": 5}],
        PatchApplyError,
        errors.NOT_AN_OBJECT,
        id="result-not-an-object",
    ),
    pytest.param({"op": "add"}, MalformedPatchError, errors.NOT_AN_OBJECT, id="not-a-list"),
    pytest.param(["add"], MalformedPatchError, errors.INVALID_OPERATION, id="operation-not-a-map"),
    pytest.param(
        [{"op": "frob", "path": "/a"}],
        MalformedPatchError,
        errors.INVALID_OPERATION,
        id="unknown-op",
    ),
    pytest.param(
        [{"op": "add", "path": "/a"}], MalformedPatchError, errors.INVALID_OPERATION, id="no-value"
    ),
    pytest.param(
        [{"op": "move", "path": "/a"}], MalformedPatchError, errors.INVALID_OPERATION, id="no-from"
    ),
    pytest.param(
        [{"op": "remove", "path": 3}],
        MalformedPatchError,
        errors.INVALID_OPERATION,
        id="path-not-str",
    ),
]


@pytest.mark.parametrize(("ops", "error", "reason"), JSON_PATCH_ERROR_CASES)
def test_json_patch_errors(ops: Any, error: type[PatchError], reason: str) -> None:
    with pytest.raises(error) as caught:
        apply_json_patch(deployment(), ops)
    assert type(caught.value) is error
    assert caught.value.reason == reason


# --- merge patch -----------------------------------------------------------------------------

MERGE_PATCH_CASES = [
    pytest.param(
        {"metadata": {"labels": {"tier": "fe"}}},
        ("metadata", "labels"),
        {"app": "web", "tier": "fe"},
        id="kubectl-label",
    ),
    pytest.param(
        {"metadata": {"labels": {"app": None}}},
        ("metadata", "labels"),
        {},
        id="kubectl-label-remove",
    ),
    pytest.param(
        {"metadata": {"annotations": {"note": "x", "gone": None}}},
        ("metadata", "annotations"),
        {"note": "x"},
        id="kubectl-annotate-onto-absent-map",
    ),
    pytest.param({"spec": {"replicas": 3}}, ("spec", "replicas"), 3, id="kubectl-scale"),
    pytest.param(
        {"spec": {"template": {"spec": {"containers": [_c("only")]}}}},
        ("spec", "template", "spec", "containers"),
        [_c("only")],
        id="lists-replace-whole",
    ),
    pytest.param(
        {"spec": {"replicas": {"a": 1, "b": None}}},
        ("spec", "replicas"),
        {"a": 1},
        id="map-over-scalar-merges-into-empty",
    ),
    pytest.param({"spec": None}, (), None, id="null-deletes-subtree"),
]


@pytest.mark.parametrize(("patch", "at", "want"), MERGE_PATCH_CASES)
def test_merge_patch(patch: J, at: tuple[str, ...], want: Any) -> None:
    got: Any = apply_merge_patch(deployment(), patch)
    if want is None:
        assert "spec" not in got
        return
    for key in at:
        got = got[key]
    assert _same(got, want)


@pytest.mark.parametrize("patch", [pytest.param([1], id="list"), pytest.param(None, id="null")])
def test_merge_patch_must_be_an_object(patch: Any) -> None:
    with pytest.raises(MalformedPatchError) as caught:
        apply_merge_patch(deployment(), patch)
    assert caught.value.code == 400


# --- shared contracts ------------------------------------------------------------------------


def _engines() -> list[Any]:
    smp = schema_for("Deployment")
    return [
        pytest.param(lambda o: apply_merge_patch(o, {"spec": {"strategy": {"x": 1}}}), id="merge"),
        pytest.param(
            lambda o: apply_json_patch(o, [{"op": "add", "path": "/spec/strategy/x", "value": 1}]),
            id="json",
        ),
        pytest.param(
            lambda o: apply_strategic_merge_patch(
                o,
                {"spec": {"strategy": {"x": 1}, "template": {"spec": {"containers": [_c("b")]}}}},
                smp,
            ),
            id="strategic",
        ),
    ]


@pytest.mark.parametrize("engine", _engines())
def test_inputs_untouched_and_result_independent(engine: Any) -> None:
    live = deployment()
    before = copy.deepcopy(live)
    got = engine(live)
    assert live == before
    got["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = "mutated"
    got["spec"]["template"]["spec"]["containers"][-1]["image"] = "mutated"
    assert live == before


def test_schema_tables_are_data() -> None:
    dep = schema_for("Deployment")
    assert dep.strategy_for(("spec", "template", "spec", "containers")) == merge_by("name")
    assert (
        dep.strategy_for(("spec", "template", "spec", "containers", "ports")).merge_key
        == "containerPort"
    )
    assert dep.strategy_for(("metadata", "finalizers")) == PRIMITIVE_MERGE
    assert dep.strategy_for(("spec", "template", "spec", "tolerations")) == ATOMIC
    assert schema_for("Service").strategy_for(("spec", "ports")).merge_key == "port"
    assert schema_for("NoSuchKind").strategy_for(("metadata", "ownerReferences")).merge_key == "uid"
    with pytest.raises(ValueError):
        merged({"a": ATOMIC}, {"a": PRIMITIVE_MERGE})


# --- properties ------------------------------------------------------------------------------

# Few keys and look-alike scalars, so that two documents often hold "equal" values at the
# same place: 1 and True, 0 and 0.0, "" and None.
_KEYS = st.sampled_from(["a", "b", "c", "$patch", "x/y"]) | st.text(alphabet="ab$/", max_size=3)
_SCALARS = (
    st.sampled_from([None, True, False, 0, 1, 0.0, 1.0, "", "1"])
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=3)
)


def _json(allow_dollar: bool) -> st.SearchStrategy[Any]:
    keys = _KEYS if allow_dollar else _KEYS.filter(lambda k: not k.startswith("$"))
    return st.recursive(
        _SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(keys, inner.filter(lambda v: v is not None), max_size=4)
        ),
        max_leaves=12,
    )


def _docs(allow_dollar: bool = True) -> st.SearchStrategy[J]:
    keys = _KEYS if allow_dollar else _KEYS.filter(lambda k: not k.startswith("$"))
    return st.dictionaries(keys, _json(allow_dollar).filter(lambda v: v is not None), max_size=4)


CREATE_MERGE_PATCH_CASES = [
    pytest.param({"a": 1, "b": 2}, {"a": 1, "c": 3}, {"b": None, "c": 3}, id="add-and-remove"),
    pytest.param({"m": {"x": 1, "y": 2}}, {"m": {"x": 1}}, {"m": {"y": None}}, id="nested-delete"),
    pytest.param({"m": {"x": 1}}, {"m": {"x": 1}}, {}, id="equal-means-empty"),
    pytest.param({"l": [1, 2]}, {"l": [2]}, {"l": [2]}, id="lists-sent-whole"),
    pytest.param({"n": 1}, {"n": True}, {"n": True}, id="true-is-not-1"),
    pytest.param({"l": [1]}, {"l": [True]}, {"l": [True]}, id="true-is-not-1-inside-lists"),
    pytest.param({"n": 1}, {"n": 1.0}, {"n": 1.0}, id="1.0-re-sent-as-it-encodes-differently"),
    pytest.param({"m": "s"}, {"m": {"x": 1}}, {"m": {"x": 1}}, id="scalar-to-map"),
]


@pytest.mark.parametrize(("a", "b", "want"), CREATE_MERGE_PATCH_CASES)
def test_create_merge_patch(a: J, b: J, want: J) -> None:
    patch = create_merge_patch(a, b)
    assert _same(patch, want)
    assert _same(apply_merge_patch(a, patch), b)


@st.composite
def _doc_pairs(draw: st.DrawFn, depth: int = 0) -> tuple[J, J]:
    """Two documents that share keys, values and sub-maps often: what a diff must handle."""
    a: J = {}
    b: J = {}
    shapes = ["same", "both", "only-a", "only-b"] + (["nested"] if depth < 3 else [])
    for key in draw(st.lists(_KEYS, max_size=4, unique=True)):
        shape = draw(st.sampled_from(shapes))
        if shape == "nested":
            a[key], b[key] = draw(_doc_pairs(depth + 1))
            continue
        value = _json(True).filter(lambda v: v is not None)
        va, vb = draw(value), draw(value)
        if shape in ("same", "both", "only-a"):
            a[key] = va
        if shape in ("same", "both", "only-b"):
            b[key] = copy.deepcopy(va) if shape == "same" else vb
    return a, b


@settings(max_examples=500, deadline=None)
@given(_doc_pairs() | st.tuples(_docs(), _docs()))
def test_create_merge_patch_round_trips(pair: tuple[J, J]) -> None:
    a, b = pair
    patch = create_merge_patch(a, b)
    assert _same(apply_merge_patch(a, patch), b)
    assert create_merge_patch(b, b) == {}


_PATCHES = st.dictionaries(
    _KEYS.filter(lambda k: not k.startswith("$")),
    st.recursive(
        _SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(_KEYS.filter(lambda k: not k.startswith("$")), inner, max_size=4)
        ),
        max_leaves=12,
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(_docs(allow_dollar=False), _PATCHES)
def test_strategic_patch_without_schema_is_a_merge_patch(a: J, patch: J) -> None:
    """With no list to merge and no directive, a strategic merge patch is RFC 7386."""
    assert _same(apply_strategic_merge_patch(a, patch, PatchSchema()), apply_merge_patch(a, patch))
