"""The namespace controller (emptying a deleted namespace, with the conditions that say what
holds it), the serviceaccount controller and root-ca-cert-publisher, over a real apiserver in
process."""

from __future__ import annotations

from typing import Any

import pytest

from control.api.errors import NotFound
from control.client import resources as R
from control.controllers.base import Settings
from control.controllers.namespace_deletion import ContentReport, updated_conditions
from control.controllers.rootcacert import DESCRIPTION
from tests.controllers_env import Env, controller_env
from tests.inprocess import InProcessAPI

Obj = dict[str, Any]
HOLD = "example.com/hold"
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


async def namespace(env: Env, name: str) -> None:
    await env.admin.create(R.NAMESPACES, {"metadata": {"name": name}})


async def gone(env: Env, name: str) -> bool:
    try:
        await env.admin.get(R.NAMESPACES, name)
    except NotFound:
        return True
    return False


def conditions(ns: Obj) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"])
            for c in ns["status"].get("conditions") or ()}


async def test_a_deleted_namespace_is_emptied_and_goes(api: InProcessAPI) -> None:
    async with controller_env(api, "namespace") as env:
        env["namespace"].deletion_grace = 0  # type: ignore[attr-defined]
        await namespace(env, "doomed")
        await env.admin.create(R.CONFIGMAPS, {"metadata": {"name": "a"}}, "doomed")
        await env.admin.create(R.SECRETS, {"metadata": {"name": "s"}}, "doomed")
        await env.admin.create(R.SERVICEACCOUNTS, {"metadata": {"name": "default"}}, "doomed")
        await env.admin.create(R.PODS, {"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "nginx"}]}}, "doomed")
        await env.admin.create(R.NAMESPACES, {"metadata": {"name": "kept"}})
        await env.admin.create(R.CONFIGMAPS, {"metadata": {"name": "a"}}, "kept")
        deleted = await env.admin.delete(R.NAMESPACES, "doomed")
        assert deleted["status"]["phase"] == "Terminating"
        async with env.running():
            await env.until(lambda: gone(env, "doomed"))
        for res in (R.CONFIGMAPS, R.SECRETS, R.SERVICEACCOUNTS, R.PODS):
            items, _ = await env.admin.list_all(res, "doomed")
            assert items == []
        assert (await env.admin.get(R.CONFIGMAPS, "a", "kept"))["metadata"]["name"] == "a"


async def test_a_finalizer_on_content_is_named_in_the_conditions(api: InProcessAPI) -> None:
    async with controller_env(api, "namespace") as env:
        await namespace(env, "stuck")
        await env.admin.create(R.CONFIGMAPS, {"metadata": {"name": "held",
                                                           "finalizers": [HOLD]}}, "stuck")
        await env.admin.create(R.CONFIGMAPS, {"metadata": {"name": "free"}}, "stuck")
        await env.admin.delete(R.NAMESPACES, "stuck")
        again = await env.reconcile("namespace", "stuck")
        assert again == 8  # kube: half of the 15 s finalizer estimate, plus one
        ns = await env.admin.get(R.NAMESPACES, "stuck")
        assert ns["status"]["phase"] == "Terminating"
        got = conditions(ns)
        assert got["NamespaceContentRemaining"] == (
            "True", "SomeResourcesRemain",
            "Some resources are remaining: configmaps. has 1 resource instances")
        assert got["NamespaceFinalizersRemaining"] == (
            "True", "SomeFinalizerRemain",
            f"Some finalizers are remaining: {HOLD} in 1 resource instances")
        assert got["NamespaceDeletionDiscoveryFailure"] == (
            "False", "ResourcesDiscovered", "All resources successfully discovered")
        assert got["NamespaceDeletionContentFailure"][:2] == ("False", "ContentDeleted")
        assert got["NamespaceDeletionGroupVersionParsingFailure"][0] == "False"
        with pytest.raises(NotFound):
            await env.admin.get(R.CONFIGMAPS, "free", "stuck")
        await env.admin.patch(R.CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, "stuck")
        assert await env.reconcile("namespace", "stuck") is None
        assert await gone(env, "stuck")


async def test_running_pods_give_an_estimate_from_their_grace_period(
        api: InProcessAPI) -> None:
    async with controller_env(api, "namespace") as env:
        await namespace(env, "graceful")
        await env.admin.create(R.SERVICEACCOUNTS, {"metadata": {"name": "default"}}, "graceful")
        await env.admin.create(R.PODS, {"metadata": {"name": "p"}, "spec": {
            "terminationGracePeriodSeconds": 40,
            "containers": [{"name": "c", "image": "nginx"}]}}, "graceful")
        await env.admin.create(R.PODS, {"apiVersion": "v1", "kind": "Binding",
                                        "metadata": {"name": "p"},
                                        "target": {"kind": "Node", "name": "n1"}},
                               "graceful", subresource="binding", name="p")
        await env.admin.delete(R.NAMESPACES, "graceful")
        assert await env.reconcile("namespace", "graceful") == 21  # 40 // 2 + 1
        pod = await env.admin.get(R.PODS, "p", "graceful")
        assert pod["metadata"]["deletionTimestamp"]  # asked to stop; the node agent would
        assert conditions(await env.admin.get(R.NAMESPACES, "graceful"))[
            "NamespaceContentRemaining"][0] == "True"


async def test_namespaces_get_their_default_service_account(api: InProcessAPI) -> None:
    async with controller_env(api, "serviceaccount") as env, env.running():
        await namespace(env, "team")

        async def account() -> Obj | None:
            try:
                return await env.admin.get(R.SERVICEACCOUNTS, "default", "team")
            except NotFound:
                return None

        first = await env.until(account)
        await env.admin.delete(R.SERVICEACCOUNTS, "default", "team")
        second = await env.until(account)
        assert second["metadata"]["uid"] != first["metadata"]["uid"]
        # pods can now be admitted there
        await env.admin.create(R.PODS, {"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "nginx"}]}}, "team")


async def test_no_account_is_made_in_a_terminating_namespace(api: InProcessAPI) -> None:
    async with controller_env(api, "serviceaccount") as env:
        await namespace(env, "leaving")
        await env.admin.delete(R.NAMESPACES, "leaving")
        await env.reconcile("serviceaccount", "leaving")
        items, _ = await env.admin.list_all(R.SERVICEACCOUNTS, "leaving")
        assert items == []


async def test_root_ca_is_published_and_kept(api: InProcessAPI) -> None:
    async with controller_env(api, "root-ca-cert-publisher",
                              settings=Settings(ca_pem=CA)) as env, env.running():
        await namespace(env, "apps")

        async def published() -> Obj | None:
            try:
                cm = await env.admin.get(R.CONFIGMAPS, "kube-root-ca.crt", "apps")
            except NotFound:
                return None
            return cm if cm.get("data") == {"ca.crt": CA.decode()} else None

        cm = await env.until(published)
        assert cm["metadata"]["annotations"] == {"kubernetes.io/description": DESCRIPTION}
        await env.admin.patch(R.CONFIGMAPS, "kube-root-ca.crt", {"data": {"ca.crt": "junk"}},
                              "apps")
        await env.until(published)
        await env.admin.delete(R.CONFIGMAPS, "kube-root-ca.crt", "apps")
        again = await env.until(published)
        assert again["metadata"]["uid"] != cm["metadata"]["uid"]
        for ns in ("default", "kube-system"):  # namespaces that existed before it started
            await env.admin.get(R.CONFIGMAPS, "kube-root-ca.crt", ns)


async def test_without_a_ca_nothing_is_published(api: InProcessAPI) -> None:
    async with controller_env(api, "root-ca-cert-publisher") as env:
        await env.reconcile("root-ca-cert-publisher", "default")
        with pytest.raises(NotFound):
            await env.admin.get(R.CONFIGMAPS, "kube-root-ca.crt", "default")


def test_conditions_move_their_transition_time_only_when_their_status_changes() -> None:
    stuck = ContentReport(estimate=15, remaining={"configmaps.": 1}, finalizers={HOLD: 1})
    first, changed = updated_conditions({"phase": "Terminating"}, stuck, "T1")
    assert changed and [c["type"] for c in first["conditions"]] == [
        "NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
        "NamespaceDeletionContentFailure", "NamespaceContentRemaining",
        "NamespaceFinalizersRemaining"]
    same, changed = updated_conditions(first, stuck, "T2")
    assert not changed and same == first
    more = ContentReport(estimate=15, remaining={"configmaps.": 2}, finalizers={HOLD: 2})
    moved, changed = updated_conditions(first, more, "T3")
    remaining = next(c for c in moved["conditions"] if c["type"] == "NamespaceContentRemaining")
    assert changed and remaining["lastTransitionTime"] == "T1"  # still True: time kept
    done, _ = updated_conditions(moved, ContentReport(), "T4")
    remaining = next(c for c in done["conditions"] if c["type"] == "NamespaceContentRemaining")
    assert remaining == {"type": "NamespaceContentRemaining", "status": "False",
                         "lastTransitionTime": "T4", "reason": "ContentRemoved",
                         "message": "All content successfully removed"}
    failed, _ = updated_conditions({}, ContentReport(errors=["b", "a"]), "T5")
    content = next(c for c in failed["conditions"]
                   if c["type"] == "NamespaceDeletionContentFailure")
    assert content["reason"] == "ContentDeletionFailed"
    assert content["message"] == "Failed to delete all resource types, 2 remaining: a, b"
