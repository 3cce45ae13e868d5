"""Server-side apply and managedFields: what `kubectl apply --server-side`, `kubectl scale`
and the controllers' ordinary writes do to field ownership."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.apiserver.patching import MalformedPatchError, PatchError, schema_for
from control.apiserver.patching.apply import ApplyConflict, server_side_apply
from control.apiserver.patching.managed import (
    FieldPath,
    decode_fields_v1,
    decode_managed_fields,
    encode_fields_v1,
    field_set,
    path_string,
    update_managed_fields,
)

J = dict[str, Any]
DEPLOY = schema_for("Deployment")
T0, T1, T2, T3 = (f"2024-05-01T10:00:0{i}Z" for i in range(4))


def _c(name: str, image: str = "nginx:1.25", **extra: Any) -> J:
    return {"name": name, "image": image, **extra}


def deployment(
    *, replicas: int | None = 3, containers: list[J] | None = None, labels: J | None = None
) -> J:
    """An apply configuration as kubectl sends it: only what the user wrote."""
    spec: J = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [_c("web")] if containers is None else containers},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    metadata: J = {"name": "web", "namespace": "default"}
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def apply(live: J | None, config: J, manager: str, *, now: str = T0, force: bool = False) -> J:
    return server_side_apply(
        live,
        config,
        manager=manager,
        force=force,
        now=now,
        schema=DEPLOY,
        api_version="apps/v1",
    )


def update(old: J | None, new: J, manager: str, *, now: str = T1, subresource: str = "") -> J:
    update_managed_fields(
        old,
        new,
        manager=manager,
        operation="Update",
        now=now,
        schema=DEPLOY,
        subresource=subresource,
    )
    return new


def owned(obj: J, manager: str, operation: str = "Apply") -> set[FieldPath]:
    """The fields `manager` owns in `obj`, as dotted strings are hard to read: decoded paths."""
    for entry in obj["metadata"].get("managedFields", []):
        if entry["manager"] == manager and entry["operation"] == operation:
            return decode_fields_v1(entry["fieldsV1"])
    return set()


def managers(obj: J) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])]


def f(*names: str) -> FieldPath:
    return tuple(("f", n) for n in names)


REPLICAS = f("spec", "replicas")
CONTAINERS = f("spec", "template", "spec", "containers")


def item(name: str) -> FieldPath:
    return CONTAINERS + (("k", (("name", name),)),)


def labelled(labels: J) -> J:
    """A configuration that only sets labels."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
    }


def container_names(obj: J) -> list[str]:
    return [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]]


def strip_managed(obj: J) -> J:
    out = copy.deepcopy(obj)
    out["metadata"].pop("managedFields", None)
    return out


# --- create and re-apply --------------------------------------------------------------------


def test_create_by_apply_gives_the_manager_every_field() -> None:
    config = deployment(labels={"app": "web"})
    obj = apply(None, config, "kubectl")
    assert strip_managed(obj) == config
    assert owned(obj, "kubectl") == field_set(config, DEPLOY)
    assert owned(obj, "kubectl") >= {
        REPLICAS,
        f("metadata", "labels", "app"),
        item("web"),
        item("web") + (("f", "image"),),
    }
    assert not any(p[:2] == f("metadata", "name") for p in owned(obj, "kubectl"))


def test_managed_fields_entry_format() -> None:
    obj = apply(None, deployment(), "kubectl", now=T0)
    (entry,) = obj["metadata"]["managedFields"]
    assert list(entry) == [
        "manager",
        "operation",
        "apiVersion",
        "time",
        "fieldsType",
        "fieldsV1",
    ]
    assert entry["manager"] == "kubectl"
    assert entry["operation"] == "Apply"
    assert entry["apiVersion"] == "apps/v1"
    assert entry["time"] == T0
    assert entry["fieldsType"] == "FieldsV1"
    assert entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"] == {
        'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}
    }
    assert "f:name" not in entry["fieldsV1"].get("f:metadata", {})


def test_reapply_without_a_field_removes_it() -> None:
    first = apply(None, deployment(labels={"app": "web", "tier": "fe"}), "kubectl")
    second = apply(first, deployment(replicas=None, labels={"app": "web"}), "kubectl", now=T1)
    assert "replicas" not in second["spec"]
    assert second["metadata"]["labels"] == {"app": "web"}
    assert REPLICAS not in owned(second, "kubectl")
    assert second["metadata"]["managedFields"][0]["time"] == T1


def test_reapply_without_any_label_removes_the_emptied_map() -> None:
    first = apply(None, deployment(labels={"tier": "fe"}), "kubectl")
    second = apply(first, deployment(), "kubectl")
    assert "labels" not in second["metadata"]


def test_noop_reapply_keeps_the_entry_time() -> None:
    first = apply(None, deployment(), "kubectl", now=T0)
    again = apply(first, deployment(), "kubectl", now=T2)
    assert again == first


def test_apply_changes_neither_argument() -> None:
    live = apply(None, deployment(), "a")
    config = deployment(replicas=9, containers=[_c("web", "nginx:2")])
    live_before, config_before = copy.deepcopy(live), copy.deepcopy(config)
    apply(live, config, "a")
    assert (live, config) == (live_before, config_before)


def test_null_in_the_configuration_deletes_the_field() -> None:
    live = apply(None, deployment(), "a")
    config = deployment()
    config["spec"]["replicas"] = None
    assert "replicas" not in apply(live, config, "a")["spec"]


# --- several managers -----------------------------------------------------------------------


def test_two_managers_applying_different_fields_both_keep_theirs() -> None:
    obj = apply(None, deployment(labels={"app": "web"}), "a")
    annotator = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"owner": "b"}},
    }
    obj = apply(obj, annotator, "b", now=T1)
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert obj["metadata"]["annotations"] == {"owner": "b"}
    assert obj["spec"]["replicas"] == 3
    assert owned(obj, "b") == {f("metadata", "annotations", "owner")}
    assert REPLICAS in owned(obj, "a")
    assert managers(obj) == [("a", "Apply"), ("b", "Apply")]


def test_conflict_on_a_field_another_applier_set_differently() -> None:
    live = apply(None, deployment(replicas=3), "a")
    with pytest.raises(ApplyConflict) as caught:
        apply(live, deployment(replicas=5), "b")
    error = caught.value
    assert error.message == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'
    assert str(error) == error.message
    assert (error.code, error.status_reason) == (409, "Conflict")
    assert isinstance(error, PatchError)
    assert error.conflicts == [("a", ".spec.replicas")]
    assert error.causes == [
        {"type": "FieldManagerConflict", "message": 'conflict with "a"', "field": ".spec.replicas"}
    ]


def test_several_conflicts_are_listed_per_manager() -> None:
    live = apply(None, deployment(replicas=3, containers=[_c("web", "nginx:1")]), "a")
    live = apply(live, labelled({"x": "1"}), "c")
    config = deployment(replicas=5, containers=[_c("web", "nginx:2")], labels={"x": "2"})
    with pytest.raises(ApplyConflict) as caught:
        apply(live, config, "b")
    assert caught.value.message == (
        'Apply failed with 3 conflicts: conflicts with "a":\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="web"].image\n'
        'conflicts with "c":\n'
        "- .metadata.labels.x"
    )


def test_same_value_is_no_conflict_and_ownership_is_shared() -> None:
    obj = apply(None, deployment(replicas=3), "a")
    obj = apply(obj, deployment(replicas=3), "b")
    assert REPLICAS in owned(obj, "a") and REPLICAS in owned(obj, "b")
    obj = apply(obj, deployment(replicas=None), "a")
    assert obj["spec"]["replicas"] == 3, "still applied by b"
    obj = apply(obj, deployment(replicas=None), "b")
    assert "replicas" not in obj["spec"], "nobody applies it any more"


def test_force_moves_the_field_and_drops_an_emptied_entry() -> None:
    live = apply(None, deployment(replicas=3), "a")
    only_replicas = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 3},
    }
    live = apply(live, only_replicas, "b")
    live = apply(live, deployment(replicas=None), "a", now=T1)
    assert owned(live, "b") == {REPLICAS}
    obj = apply(live, deployment(replicas=7), "a", force=True, now=T2)
    assert obj["spec"]["replicas"] == 7
    assert REPLICAS in owned(obj, "a")
    assert managers(obj) == [("a", "Apply")], "b owned nothing else"


def test_scale_update_then_reapply_of_replicas_conflicts() -> None:
    live = apply(None, deployment(replicas=3), "kubectl")
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    scaled = update(live, scaled, "kubectl-scale", now=T1)
    assert REPLICAS not in owned(scaled, "kubectl")
    assert owned(scaled, "kubectl-scale", "Update") == {REPLICAS}
    with pytest.raises(ApplyConflict) as caught:
        apply(scaled, deployment(replicas=3), "kubectl", now=T2)
    assert caught.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas'
    )
    # Dropping replicas from the configuration is the documented way out: no conflict, the
    # scaled value stays.
    obj = apply(scaled, deployment(replicas=None), "kubectl", now=T2)
    assert obj["spec"]["replicas"] == 5


def test_conflict_names_the_subresource() -> None:
    live = apply(None, deployment(replicas=3), "kubectl")
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    scaled = update(live, scaled, "kubectl", subresource="scale")
    with pytest.raises(ApplyConflict) as caught:
        apply(scaled, deployment(replicas=3), "kubectl")
    assert caught.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" '
        "using apps/v1: .spec.replicas"
    )


def test_object_without_managed_fields_is_owned_before_first_apply() -> None:
    legacy = strip_managed(apply(None, deployment(replicas=2), "x"))
    with pytest.raises(ApplyConflict) as caught:
        apply(legacy, deployment(replicas=3), "kubectl")
    assert caught.value.conflicts == [("before-first-apply", ".spec.replicas")]


def test_apply_over_a_created_object_shares_equal_fields_and_conflicts_on_others() -> None:
    created = update(None, deployment(replicas=2), "kubectl-create", now=T0)
    shared = apply(created, deployment(replicas=2), "kubectl", now=T1)
    assert REPLICAS in owned(shared, "kubectl")
    assert REPLICAS in owned(shared, "kubectl-create", "Update")
    with pytest.raises(ApplyConflict) as caught:
        apply(created, deployment(replicas=4), "kubectl")
    assert caught.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-create" using apps/v1: .spec.replicas'
    )


def test_status_is_neither_applied_nor_owned_when_it_is_a_subresource() -> None:
    live = apply(None, deployment(), "a")
    live["status"] = {"replicas": 1}
    config = {**deployment(), "status": {"replicas": 9}}
    obj = server_side_apply(
        live,
        config,
        manager="a",
        force=False,
        now=T1,
        schema=DEPLOY,
        api_version="apps/v1",
        ignore_status=True,
    )
    assert obj["status"] == {"replicas": 1}
    assert not any(p[0] == ("f", "status") for p in owned(obj, "a"))


# --- associative lists ----------------------------------------------------------------------


def test_associative_list_items_are_owned_per_key() -> None:
    obj = apply(None, deployment(containers=[_c("a")]), "A")
    obj = apply(obj, deployment(replicas=None, containers=[_c("b", "busybox")]), "B")
    assert container_names(obj) == ["a", "b"]
    assert item("a") in owned(obj, "A") and item("b") in owned(obj, "B")
    assert item("b") not in owned(obj, "A")
    obj = apply(obj, deployment(containers=[]), "A")
    assert container_names(obj) == ["b"]
    assert not any(p[: len(item("a"))] == item("a") for p in owned(obj, "A"))


def test_an_item_another_manager_also_applies_survives() -> None:
    obj = apply(None, deployment(containers=[_c("a", "nginx:1")]), "A")
    obj = apply(obj, deployment(replicas=None, containers=[_c("a", "nginx:2")]), "B", force=True)
    assert obj["spec"]["template"]["spec"]["containers"] == [_c("a", "nginx:2")]
    assert item("a") + (("f", "image"),) not in owned(obj, "A")
    obj = apply(obj, deployment(containers=[]), "A")
    assert obj["spec"]["template"]["spec"]["containers"] == [_c("a", "nginx:2")]


def test_dropping_a_field_of_an_item_removes_only_that_field() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    obj = apply(None, deployment(containers=[_c("web", env=env, args=["-v"])]), "A")
    obj = apply(obj, deployment(containers=[_c("web", env=env[1:])]), "A")
    assert obj["spec"]["template"]["spec"]["containers"] == [_c("web", env=env[1:])]


def test_set_like_lists_merge_values() -> None:
    base = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    obj = apply(None, {**base, "metadata": {"name": "web", "finalizers": ["a/x"]}}, "A")
    obj = apply(obj, {**base, "metadata": {"name": "web", "finalizers": ["b/y"]}}, "B")
    assert obj["metadata"]["finalizers"] == ["a/x", "b/y"]
    assert owned(obj, "B") == {f("metadata", "finalizers") + (("v", "b/y"),)}
    assert obj["metadata"]["managedFields"][1]["fieldsV1"] == {
        "f:metadata": {"f:finalizers": {'v:"b/y"': {}}}
    }
    obj = apply(obj, base, "A")
    assert obj["metadata"]["finalizers"] == ["b/y"]


def test_atomic_lists_are_replaced_and_owned_whole() -> None:
    obj = apply(None, deployment(containers=[_c("web", args=["a", "b"])]), "A")
    args = item("web") + (("f", "args"),)
    assert args in owned(obj, "A")
    with pytest.raises(ApplyConflict) as caught:
        apply(obj, deployment(replicas=None, containers=[_c("web", args=["c"])]), "B")
    assert caught.value.conflicts == [("A", '.spec.template.spec.containers[name="web"].args')]


@pytest.mark.parametrize(
    ("containers", "message"),
    [
        pytest.param(
            [{"image": "x"}],
            ".spec.template.spec.containers[0]: associative list with keys has an element "
            'that omits key field "name" (and doesn\'t have default value)',
            id="missing-merge-key",
        ),
        pytest.param(
            [_c("a"), _c("a")],
            '.spec.template.spec.containers: duplicate entries for key [name="a"]',
            id="duplicate-merge-key",
        ),
    ],
)
def test_bad_associative_lists_in_the_configuration(containers: list[J], message: str) -> None:
    with pytest.raises(MalformedPatchError) as caught:
        apply(None, deployment(containers=containers), "A")
    assert caught.value.message == message
    assert caught.value.code == 400


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            {**deployment(), "metadata": {"name": "web", "managedFields": [{}]}},
            "metadata.managedFields must be nil",
            id="managed-fields-in-config",
        ),
        pytest.param(
            {**deployment(), "apiVersion": "apps/v1beta1"},
            "the API version in the data (apps/v1beta1) does not match the expected API "
            "version (apps/v1)",
            id="other-api-version",
        ),
        pytest.param(
            {k: v for k, v in deployment().items() if k != "kind"},
            "invalid object: Object 'Kind' is missing",
            id="no-kind",
        ),
    ],
)
def test_configuration_that_cannot_be_applied(config: J, message: str) -> None:
    with pytest.raises(MalformedPatchError) as caught:
        apply(None, config, "A")
    assert caught.value.message == message


# --- Update operations ----------------------------------------------------------------------


def test_create_by_update_gives_the_writer_every_field() -> None:
    new = update(None, deployment(), "kubectl-create", now=T0)
    (entry,) = new["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["time"]) == ("kubectl-create", "Update", T0)
    assert "subresource" not in entry
    assert decode_fields_v1(entry["fieldsV1"]) == field_set(deployment(), DEPLOY)


def test_update_moves_changed_fields_and_drops_removed_ones() -> None:
    obj = apply(None, deployment(labels={"app": "web"}), "kubectl")
    new = copy.deepcopy(obj)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:9"
    del new["metadata"]["labels"]
    new = update(obj, new, "kubectl-edit")
    image = item("web") + (("f", "image"),)
    assert owned(new, "kubectl-edit", "Update") == {image}
    assert image not in owned(new, "kubectl")
    assert f("metadata", "labels", "app") not in owned(new, "kubectl")
    assert managers(new) == [("kubectl", "Apply"), ("kubectl-edit", "Update")]


def test_update_that_changes_nothing_leaves_managed_fields_alone() -> None:
    obj = update(None, deployment(), "kubectl-create", now=T0)
    again = update(obj, copy.deepcopy(obj), "kubectl-create", now=T3)
    assert again["metadata"]["managedFields"] == obj["metadata"]["managedFields"]
    other = update(obj, copy.deepcopy(obj), "someone-else", now=T3)
    assert managers(other) == [("kubectl-create", "Update")]


def test_repeated_updates_accumulate_in_one_entry() -> None:
    obj = update(None, deployment(replicas=1), "ctl", now=T0)
    other = update(obj, {**copy.deepcopy(obj), "spec": {**obj["spec"], "replicas": 2}}, "x")
    back = update(other, {**copy.deepcopy(other), "spec": {**other["spec"], "replicas": 3}}, "ctl")
    assert owned(back, "ctl", "Update") == field_set(deployment(), DEPLOY)
    assert managers(back) == [("ctl", "Update")]
    assert back["metadata"]["managedFields"][0]["time"] == T1


def test_writer_may_reset_managed_fields_with_an_empty_list() -> None:
    obj = apply(None, deployment(), "kubectl")
    new = copy.deepcopy(obj)
    new["metadata"]["managedFields"] = []
    new = update(obj, new, "ctl")
    assert "managedFields" not in new["metadata"]


def test_writer_may_replace_managed_fields() -> None:
    obj = apply(None, deployment(), "kubectl")
    new = copy.deepcopy(obj)
    new["metadata"]["managedFields"][0]["manager"] = "renamed"
    new = update(obj, new, "ctl")
    assert managers(new) == [("renamed", "Apply")]


def test_garbage_managed_fields_from_the_writer_are_ignored() -> None:
    obj = apply(None, deployment(), "kubectl")
    new = copy.deepcopy(obj)
    new["metadata"]["managedFields"] = [{"manager": "x", "operation": "Sideways"}]
    new = update(obj, new, "ctl")
    assert new["metadata"]["managedFields"] == obj["metadata"]["managedFields"]


def test_entries_are_sorted_appliers_first_then_by_time() -> None:
    obj = update(None, deployment(replicas=1), "z-create", now=T0)
    obj = apply(obj, deployment(replicas=1, labels={"a": "1"}), "kubectl", now=T2)
    changed = copy.deepcopy(obj)
    changed["metadata"]["labels"]["b"] = "2"
    obj = update(obj, changed, "a-label", now=T1)
    assert managers(obj) == [("kubectl", "Apply"), ("z-create", "Update"), ("a-label", "Update")]


# --- FieldsV1 -------------------------------------------------------------------------------

REALISTIC = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "uid": "0b6c...",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2024-05-01T10:00:00Z",
        "labels": {"app": "web", "app.kubernetes.io/part-of": "shop"},
        "annotations": {"deployment.kubernetes.io/revision": "2"},
        "finalizers": ["example.com/keep"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u-1"}],
    },
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.25",
                        "args": ["--port", "80"],
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "MODE", "value": "prod"}],
                        "resources": {},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
            },
        },
    },
    "status": {"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]},
}


def test_fields_v1_round_trip_on_a_realistic_deployment() -> None:
    paths = field_set(REALISTIC, DEPLOY)
    encoded = encode_fields_v1(paths)
    assert decode_fields_v1(json.loads(json.dumps(encoded))) == paths
    web = encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert web == {
        ".": {},
        "f:args": {},
        "f:env": {'k:{"name":"MODE"}': {".": {}, "f:name": {}, "f:value": {}}},
        "f:image": {},
        "f:name": {},
        "f:ports": {'k:{"containerPort":80}': {".": {}, "f:containerPort": {}, "f:protocol": {}}},
        "f:resources": {},
        "f:volumeMounts": {'k:{"mountPath":"/data"}': {".": {}, "f:mountPath": {}, "f:name": {}}},
    }
    assert encoded["f:metadata"] == {
        "f:annotations": {"f:deployment.kubernetes.io/revision": {}},
        "f:finalizers": {'v:"example.com/keep"': {}},
        "f:labels": {"f:app": {}, "f:app.kubernetes.io/part-of": {}},
        "f:ownerReferences": {
            'k:{"uid":"u-1"}': {
                ".": {},
                "f:apiVersion": {},
                "f:kind": {},
                "f:name": {},
                "f:uid": {},
            }
        },
    }
    assert encoded["f:spec"]["f:template"]["f:spec"]["f:tolerations"] == {}
    assert encoded["f:status"]["f:conditions"]['k:{"type":"Available"}']["."] == {}
    assert "f:status" not in encode_fields_v1(field_set(REALISTIC, DEPLOY, ignore_status=True))
    assert list(encoded) == ["f:metadata", "f:spec", "f:status"]


def test_decode_accepts_what_kubernetes_writes() -> None:
    from_kube = {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:template": {
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"nginx"}': {".": {}, "f:image": {}},
                    }
                }
            }
        },
    }
    assert decode_fields_v1(from_kube) == {
        f("metadata", "labels"),
        f("metadata", "labels", "app"),
        CONTAINERS + (("k", (("name", "nginx"),)),),
        CONTAINERS + (("k", (("name", "nginx"),)), ("f", "image")),
    }


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"x:y": {}}, id="unknown-prefix"),
        pytest.param({"k:{not json": {}}, id="bad-key-json"),
        pytest.param({"f:a": []}, id="child-not-a-map"),
        pytest.param({"i:one": {}}, id="bad-index"),
    ],
)
def test_decode_rejects_garbage(bad: J) -> None:
    with pytest.raises(ValueError):
        decode_fields_v1(bad)


def test_duplicate_managers_do_not_decode() -> None:
    entry = {"manager": "m", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {}}
    with pytest.raises(ValueError):
        decode_managed_fields([entry, dict(entry)])


@pytest.mark.parametrize(
    ("path", "text"),
    [
        pytest.param(REPLICAS, ".spec.replicas", id="fields"),
        pytest.param(
            item("web") + (("f", "image"),),
            '.spec.template.spec.containers[name="web"].image',
            id="key",
        ),
        pytest.param(
            item("web") + (("f", "ports"), ("k", (("containerPort", 80),))),
            '.spec.template.spec.containers[name="web"].ports[containerPort=80]',
            id="numeric-key",
        ),
        pytest.param(
            f("metadata", "finalizers") + (("v", "a/b"),),
            '.metadata.finalizers[="a/b"]',
            id="value",
        ),
    ],
)
def test_path_strings_match_kubernetes(path: FieldPath, text: str) -> None:
    assert path_string(path) == text


# --- properties -----------------------------------------------------------------------------

_names = st.sampled_from(["a", "b", "c", "replicas", "image"])
_scalars = st.one_of(st.integers(-3, 3), st.booleans(), st.none(), st.sampled_from(["x", "y"]))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_names, inner, max_size=3)
    ),
    max_leaves=12,
)
_containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["web", "log", "db"])},
        optional={"image": st.sampled_from(["nginx:1", "nginx:2"]), "args": st.lists(_scalars)},
    ),
    max_size=3,
    unique_by=lambda c: c["name"],
)


@settings(max_examples=200, deadline=None)
@given(spec=st.dictionaries(_names, _values, max_size=4), containers=_containers)
def test_fields_v1_round_trips_any_field_set(spec: J, containers: list[J]) -> None:
    obj = {"spec": {**spec, "template": {"spec": {"containers": containers}}}}
    paths = field_set(obj, DEPLOY)
    assert decode_fields_v1(json.loads(json.dumps(encode_fields_v1(paths)))) == paths


@settings(max_examples=100, deadline=None)
@given(first=_containers, second=_containers, replicas=st.one_of(st.none(), st.integers(0, 5)))
def test_reapplying_converges_to_the_configuration(
    first: list[J], second: list[J], replicas: int | None
) -> None:
    """A sole applier's object is exactly its latest configuration, whatever came before."""
    obj = apply(None, deployment(containers=first), "a")
    config = deployment(replicas=replicas, containers=second)
    obj = apply(obj, config, "a")
    assert strip_managed(obj) == config
    assert apply(obj, config, "a", now=T3) == obj
