"""control.api.errors (Status formats, store-error mapping) and control.apiserver.storage against a real
three-replica store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from control.api import errors as E
from control.apiserver.storage import (
    GroupResource,
    Storage,
    collection_prefix,
    decode_continue,
    encode_continue,
    object_key,
)
from control.apiserver.store_errors import from_store_error
from store import errors as S
from store.launch import LocalCluster

PODS = GroupResource("", "pods")
CM = GroupResource("", "configmaps")
DEPLOY = GroupResource("apps", "deployments")
NS_GR = GroupResource("", "namespaces")


def _st(code: int, reason: str, message: str, details: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": metadata or {},
                         "status": "Failure", "message": message, "reason": reason}
    if details:
        s["details"] = details
    s["code"] = code
    return s


# --- Status formats ----------------------------------------------------------------------------

STATUS_CASES = [
    pytest.param(E.NotFound("pods", "x"),
                 _st(404, "NotFound", 'pods "x" not found', {"name": "x", "kind": "pods"}),
                 id="not-found-core"),
    pytest.param(E.NotFound("deployments", "web", group="apps"),
                 _st(404, "NotFound", 'deployments.apps "web" not found',
                     {"name": "web", "group": "apps", "kind": "deployments"}),
                 id="not-found-group"),
    pytest.param(E.AlreadyExists("deployments", "web", group="apps"),
                 _st(409, "AlreadyExists", 'deployments.apps "web" already exists',
                     {"name": "web", "group": "apps", "kind": "deployments"}),
                 id="already-exists"),
    pytest.param(E.Conflict("configmaps", "x"),
                 _st(409, "Conflict", 'Operation cannot be fulfilled on configmaps "x": the '
                     'object has been modified; please apply your changes to the latest '
                     'version and try again', {"name": "x", "kind": "configmaps"}),
                 id="conflict"),
    pytest.param(E.Invalid("Deployment", "web", [E.Cause("FieldValueRequired", "Required value",
                                                         "spec.selector")], group="apps"),
                 _st(422, "Invalid", 'Deployment.apps "web" is invalid: spec.selector: '
                     'Required value', {"name": "web", "group": "apps", "kind": "Deployment",
                                        "causes": [{"reason": "FieldValueRequired",
                                                    "message": "Required value",
                                                    "field": "spec.selector"}]}),
                 id="invalid-one"),
    pytest.param(E.Invalid("Pod", "p", [E.Cause("FieldValueRequired", "Required value", "a"),
                                         E.Cause("FieldValueInvalid", "Invalid value: -1", "b")]),
                 _st(422, "Invalid", 'Pod "p" is invalid: [a: Required value, '
                     'b: Invalid value: -1]',
                     {"name": "p", "kind": "Pod", "causes": [
                         {"reason": "FieldValueRequired", "message": "Required value",
                          "field": "a"},
                         {"reason": "FieldValueInvalid", "message": "Invalid value: -1",
                          "field": "b"}]}),
                 id="invalid-many"),
    pytest.param(E.BadRequest("bad"), _st(400, "BadRequest", "bad"), id="bad-request"),
    pytest.param(E.Unauthorized(), _st(401, "Unauthorized", "Unauthorized"), id="unauthorized"),
    pytest.param(E.Forbidden("pods", "", 'User "jane" cannot list resource "pods" in API '
                             'group "" in the namespace "default"'),
                 _st(403, "Forbidden", 'pods is forbidden: User "jane" cannot list resource '
                     '"pods" in API group "" in the namespace "default"', {"kind": "pods"}),
                 id="forbidden-list"),
    pytest.param(E.Forbidden("pods", "x", "no"),
                 _st(403, "Forbidden", 'pods "x" is forbidden: no',
                     {"name": "x", "kind": "pods"}), id="forbidden-named"),
    pytest.param(E.Expired("too old resource version: 3 (7)"),
                 _st(410, "Expired", "too old resource version: 3 (7)"), id="expired"),
    pytest.param(E.Expired("m", continue_token="tok"),
                 _st(410, "Expired", "m", metadata={"continue": "tok"}), id="expired-token"),
    pytest.param(E.Gone("g"), _st(410, "Gone", "g"), id="gone"),
    pytest.param(E.TooLarge("limit is 3145728"),
                 _st(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728"),
                 id="too-large"),
    pytest.param(E.UnsupportedMediaType(["application/json", "application/yaml"]),
                 _st(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                     "format - accepted media types include: application/json, "
                     "application/yaml"), id="media-type"),
    pytest.param(E.MethodNotAllowed("pods", "POST"),
                 _st(405, "MethodNotAllowed", 'POST is not supported on resources of kind "pods"',
                     {"kind": "pods"}), id="method"),
    pytest.param(E.InternalError("boom"),
                 _st(500, "InternalError", "Internal error occurred: boom",
                     {"causes": [{"message": "boom"}]}), id="internal"),
    pytest.param(E.ServiceUnavailable("down"), _st(503, "ServiceUnavailable", "down"),
                 id="unavailable"),
    pytest.param(E.Timeout("slow", 2), _st(504, "Timeout", "Timeout: slow",
                                           {"retryAfterSeconds": 2}), id="timeout"),
]


@pytest.mark.parametrize(("err", "status"), STATUS_CASES)
def test_status_format(err: E.APIError, status: dict[str, Any]) -> None:
    assert err.to_status() == status
    assert isinstance(err, E.APIError)
    assert str(err) == status["message"]


MAPPING_CASES = [
    pytest.param(S.Compacted("x", compact_revision=7), {"resource_version": 3},
                 410, "Expired", "too old resource version: 3 (7)", id="compacted-watch"),
    pytest.param(S.Compacted("x", compact_revision=7), {"listing": True},
                 410, "Expired", E.LIST_EXPIRED, id="compacted-list"),
    pytest.param(S.Compacted("x", compact_revision=7),
                 {"listing": True, "paging": True, "continue_token": "t"},
                 410, "Expired", E.CONTINUE_INCONSISTENT, id="compacted-continue"),
    pytest.param(S.FutureRevision("x", revision=9, current_revision=5), {},
                 504, "Timeout", "Timeout: Too large resource version: 9, current: 5",
                 id="future"),
    pytest.param(S.OutcomeUnknown("lost leader"), {}, 504, "Timeout",
                 "Timeout: request did not complete within requested timeout - lost leader",
                 id="outcome-unknown"),
    pytest.param(S.Unavailable("no quorum"), {}, 503, "ServiceUnavailable",
                 "storage is unavailable: no quorum", id="unavailable"),
    pytest.param(S.NotLeader("elsewhere"), {}, 503, "ServiceUnavailable",
                 "storage is unavailable: elsewhere", id="not-leader"),
    pytest.param(S.TooLarge("value over 1572864 bytes"), {}, 413, "RequestEntityTooLarge",
                 "Request entity too large: value over 1572864 bytes", id="too-large"),
    pytest.param(S.KeyNotFound("k"), {"resource": "pods", "name": "x"}, 404, "NotFound",
                 'pods "x" not found', id="key-not-found"),
    pytest.param(S.InvalidRequest("bad op"), {}, 500, "InternalError",
                 "Internal error occurred: storage: invalid_request: bad op", id="invalid"),
    pytest.param(S.LeaseNotFound("lease 5"), {}, 500, "InternalError",
                 "Internal error occurred: storage: lease_not_found: lease 5", id="lease"),
]


@pytest.mark.parametrize(("exc", "ctx", "code", "reason", "message"), MAPPING_CASES)
def test_from_store_error(exc: S.StoreError, ctx: dict[str, Any], code: int, reason: str,
                          message: str) -> None:
    err = from_store_error(exc, **ctx)
    assert (err.code, err.reason, err.message) == (code, reason, message)


def test_future_revision_has_cause() -> None:
    err = from_store_error(S.FutureRevision("x", revision=9, current_revision=5))
    assert err.to_status()["details"] == {
        "retryAfterSeconds": 1,
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]}


def test_keys() -> None:
    assert object_key(PODS, "default", "x") == b"/registry/core/pods/default/x"
    assert object_key(DEPLOY, "ns", "web") == b"/registry/apps/deployments/ns/web"
    assert object_key(NS_GR, "", "kube-system") == b"/registry/core/namespaces/kube-system"
    assert collection_prefix(PODS) == b"/registry/core/pods/"
    for bad in ("", "a/b", "..", "."):
        with pytest.raises(E.BadRequest):
            object_key(PODS, "default", bad)


def test_continue_token_roundtrip_and_rejects() -> None:
    assert decode_continue(encode_continue(42, "b\0")) == (42, "b\0")
    assert decode_continue(encode_continue(-1, "")) == (-1, "")
    for bad in ("!!!", "e30", encode_continue(0, "a"), encode_continue(-2, "a")):
        with pytest.raises(E.BadRequest):
            decode_continue(bad)


# --- integration ---------------------------------------------------------------------------------


def _cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "data": dict(data)}


async def test_create_get_update_delete(cluster: LocalCluster) -> None:
    async with cluster.client() as c:
        st = Storage(c)
        made = await st.create(CM, "default", "x", {**_cm("x", a="1"),
                                                    "metadata": {"name": "x",
                                                                 "resourceVersion": "999"}})
        rv = made["metadata"]["resourceVersion"]
        assert int(rv) > 0 and rv != "999"
        raw = (await c.get(object_key(CM, "default", "x")))["kvs"][0]
        assert b"resourceVersion" not in raw["value"] and str(raw["mod_revision"]) == rv
        assert await st.get(CM, "default", "x") == made
        with pytest.raises(E.AlreadyExists) as ae:
            await st.create(CM, "default", "x", _cm("x"))
        assert ae.value.message == 'configmaps "x" already exists'
        with pytest.raises(E.NotFound) as nf:
            await st.get(DEPLOY, "default", "nope")
        assert nf.value.message == 'deployments.apps "nope" not found'

        new = await st.update(CM, "default", "x", _cm("x", a="2"), expected_resource_version=rv)
        assert int(new["metadata"]["resourceVersion"]) > int(rv)
        with pytest.raises(E.Conflict) as cf:
            await st.update(CM, "default", "x", _cm("x", a="3"), expected_resource_version=rv)
        assert cf.value.message == (
            'Operation cannot be fulfilled on configmaps "x": the object has been modified; '
            "please apply your changes to the latest version and try again")
        assert cf.value.code == 409
        with pytest.raises(E.NotFound):
            await st.update(CM, "default", "gone", _cm("gone"), expected_resource_version=rv)
        with pytest.raises(E.NotFound):
            await st.update(CM, "default", "gone", _cm("gone"))
        assert (await st.get(CM, "default", "x"))["data"] == {"a": "2"}
        # "0" (like no resourceVersion) is an unconditional update, never a create.
        with pytest.raises(E.NotFound):
            await st.update(CM, "default", "gone", _cm("gone"), expected_resource_version="0")
        new = await st.update(CM, "default", "x", _cm("x", a="2"), expected_resource_version="0")

        with pytest.raises(E.Conflict) as pre:
            await st.delete(CM, "default", "x", expected_resource_version=rv)
        assert pre.value.message == (
            'Operation cannot be fulfilled on configmaps "x": Precondition failed: '
            f"ResourceVersion in precondition: {rv}, ResourceVersion in object meta: "
            f"{new['metadata']['resourceVersion']}")
        with pytest.raises(E.Conflict):
            await st.delete(CM, "default", "x", expected_uid="other")
        cur = new["metadata"]["resourceVersion"]
        gone = await st.delete(CM, "default", "x", expected_resource_version=cur,
                               expected_uid="uid-x")
        assert gone["data"] == {"a": "2"}
        assert int(gone["metadata"]["resourceVersion"]) > int(cur)
        with pytest.raises(E.NotFound):
            await st.delete(CM, "default", "x")


async def test_guaranteed_update_two_writers_lose_nothing(cluster: LocalCluster) -> None:
    async with cluster.client() as c1, cluster.client() as c2:
        await Storage(c1).create(CM, "default", "n", _cm("n", count="0"))
        calls = 0

        def bump(obj: dict[str, Any]) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            obj["data"]["count"] = str(int(obj["data"]["count"]) + 1)
            return obj

        async def writer(st: Storage) -> None:
            for _ in range(15):
                await st.guaranteed_update(CM, "default", "n", bump)

        await asyncio.gather(writer(Storage(c1, max_update_attempts=100)),
                             writer(Storage(c2, max_update_attempts=100)))
        final = await Storage(c1).get(CM, "default", "n")
        assert final["data"]["count"] == "30"
        assert calls >= 30
        # A mutation that changes nothing writes nothing.
        same = await Storage(c1).guaranteed_update(CM, "default", "n", lambda o: o)
        assert same["metadata"]["resourceVersion"] == final["metadata"]["resourceVersion"]
        with pytest.raises(E.Conflict):
            await Storage(c1).guaranteed_update(CM, "default", "n", bump,
                                                expected_resource_version="1")


async def test_concurrent_updates_from_one_resource_version_let_exactly_one_win(
    cluster: LocalCluster,
) -> None:
    """Eight writers read the same version and all write with it as a precondition: one
    succeeds, seven get 409 (a lost race must not reapply the write to the winner's object)."""
    async with cluster.client() as c:
        st = Storage(c)
        created = await st.create(CM, "default", "race", _cm("race", v="0"))
        rv = created["metadata"]["resourceVersion"]

        def writer(i: int) -> Any:
            def set_v(obj: dict[str, Any]) -> dict[str, Any]:
                obj["data"]["v"] = str(i + 1)  # never a no-op (those write nothing)
                return obj
            return st.guaranteed_update(CM, "default", "race", set_v,
                                        expected_resource_version=rv)

        results = await asyncio.gather(*(writer(i) for i in range(8)), return_exceptions=True)
        wins = [r for r in results if isinstance(r, dict)]
        assert len(wins) == 1
        assert all(isinstance(r, E.Conflict) for r in results if not isinstance(r, dict))
        final = await st.get(CM, "default", "race")
        assert final["data"]["v"] == wins[0]["data"]["v"]


async def test_list_pages_are_one_snapshot(cluster: LocalCluster) -> None:
    async with cluster.client() as c:
        st = Storage(c)
        for i in range(5):
            await st.create(CM, "default", f"c{i}", _cm(f"c{i}", v="old"))
        await st.create(CM, "other", "z", _cm("z"))
        page = await st.list(CM, "default", limit=2)
        assert [o["metadata"]["name"] for o in page.items] == ["c0", "c1"]
        assert page.continue_token and page.remaining_item_count == 3
        snapshot = page.resource_version
        # Writes between pages must not show up.
        await st.update(CM, "default", "c3", _cm("c3", v="new"))
        await st.create(CM, "default", "c2a", _cm("c2a"))
        await st.delete(CM, "default", "c4")
        seen = [o["metadata"]["name"] for o in page.items]
        token: str | None = page.continue_token
        while token:
            page = await st.list(CM, "default", limit=2, continue_token=token)
            assert page.resource_version == snapshot
            seen += [o["metadata"]["name"] for o in page.items]
            assert all(o["data"] == {"v": "old"} for o in page.items)
            token = page.continue_token
        assert seen == ["c0", "c1", "c2", "c3", "c4"]
        everything = await st.list(CM)
        assert [o["metadata"]["name"] for o in everything.items] == [
            "c0", "c1", "c2", "c2a", "c3", "z"]
        assert int(everything.resource_version) > int(snapshot)
        old = await st.list(CM, "default", resource_version=snapshot,
                            resource_version_match="Exact")
        assert [o["metadata"]["name"] for o in old.items] == ["c0", "c1", "c2", "c3", "c4"]
        with pytest.raises(E.Timeout):
            await st.list(CM, resource_version=str(int(everything.resource_version) + 100))
        with pytest.raises(E.BadRequest):
            await st.list(CM, continue_token=token or encode_continue(5, ""),
                          resource_version="5")


async def test_continue_from_compacted_revision_is_expired(cluster: LocalCluster) -> None:
    async with cluster.client() as c:
        st = Storage(c)
        for i in range(3):
            await st.create(CM, "default", f"c{i}", _cm(f"c{i}"))
        page = await st.list(CM, "default", limit=1)
        assert page.continue_token
        last = await st.update(CM, "default", "c2", _cm("c2", v="new"))
        await c.compact(int(last["metadata"]["resourceVersion"]))
        with pytest.raises(E.Expired) as ex:
            await st.list(CM, "default", limit=1, continue_token=page.continue_token)
        status = ex.value.to_status()
        assert status["code"] == 410 and status["reason"] == "Expired"
        assert status["message"].startswith(
            "The provided continue parameter is too old to display a consistent list result.")
        fresh = status["metadata"]["continue"]
        rest = await st.list(CM, "default", continue_token=fresh)
        assert [o["metadata"]["name"] for o in rest.items] == ["c1", "c2"]
        assert rest.items[1]["data"] == {"v": "new"}
        with pytest.raises(E.Expired) as ex2:
            await st.list(CM, "default", resource_version=page.resource_version,
                          resource_version_match="Exact")
        assert ex2.value.message == E.LIST_EXPIRED


async def _take(it: Any, n: int) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    async with asyncio.timeout(20):
        async for ev in it:
            out.append(ev)
            if len(out) == n:
                break
    return out


async def test_watch_from_resource_version(cluster: LocalCluster) -> None:
    async with cluster.client() as c:
        st = Storage(c)
        seed = await st.create(CM, "other", "seed", _cm("seed"))
        made = await st.create(CM, "default", "w", _cm("w", v="1"))
        changed = await st.update(CM, "default", "w", _cm("w", v="2"))
        gone = await st.delete(CM, "default", "w")
        await st.create(CM, "default", "w", _cm("w", v="3"))
        got = await _take(st.watch(CM, resource_version=seed["metadata"]["resourceVersion"]), 4)
        assert [(t, o["metadata"]["name"], o["metadata"]["resourceVersion"], o["data"])
                for t, o in got] == [
            ("ADDED", "w", made["metadata"]["resourceVersion"], {"v": "1"}),
            ("MODIFIED", "w", changed["metadata"]["resourceVersion"], {"v": "2"}),
            ("DELETED", "w", gone["metadata"]["resourceVersion"], {"v": "2"}),
            ("ADDED", "w", str(int(gone["metadata"]["resourceVersion"]) + 1), {"v": "3"}),
        ]
        # Namespaced watch sees only its namespace; events from now on.
        watch = st.watch(CM, "other", resource_version=gone["metadata"]["resourceVersion"])
        await st.update(CM, "default", "w", _cm("w", v="4"))
        later = await st.update(CM, "other", "seed", _cm("seed", v="x"))
        assert await _take(watch, 1) == [("MODIFIED", later)]

        await c.compact(int(later["metadata"]["resourceVersion"]))
        with pytest.raises(E.Expired) as ex:
            await _take(st.watch(CM, resource_version=seed["metadata"]["resourceVersion"]), 1)
        assert ex.value.message == (
            f"too old resource version: {seed['metadata']['resourceVersion']} "
            f"({later['metadata']['resourceVersion']})")
