"""Small answers of the front door that clients read closely: ``/openapi/v2`` for kubectl's
client-side validator, unserved subresources, and timestamps stored as Go writes them."""

from __future__ import annotations

from typing import Any

import pytest

from control.apiserver.openapi.v2 import PROTOBUF_TYPE

EVENTS = "/api/v1/namespaces/default/events"


async def test_openapi_v2_is_served_empty_in_protobuf_and_json(api: Any) -> None:
    async with api.client() as admin:
        r = await admin.raw("GET", "/openapi/v2", headers={
            "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
        assert r.status == 200 and r.headers["Content-Type"] == PROTOBUF_TYPE
        # swagger "2.0", info{title, version}, empty paths and definitions
        assert r.body.startswith(b"\x0a\x032.0\x12") and r.body.endswith(b"\x42\x00\x4a\x00")
        r = await admin.raw("GET", "/openapi/v2", headers={"Accept": "application/json"})
        assert r.json()["swagger"] == "2.0" and r.json()["definitions"] == {}


@pytest.mark.parametrize(("path", "says"), [
    pytest.param("/api/v1/namespaces/default/pods/px/resize", "Kubernetes subresource that "
                  "ketch does not serve yet", id="kubernetes-has-it"),
    pytest.param("/api/v1/namespaces/default/pods/px/ephemeralcontainers", "does not serve yet",
                 id="ephemeral"),
    pytest.param("/api/v1/namespaces/default/configmaps/c/nonsense", "is not a subresource",
                 id="nobody-has-it"),
])
async def test_an_unserved_subresource_is_not_a_missing_object(api: Any, path: str,
                                                               says: str) -> None:
    async with api.client() as admin:
        r = await admin.raw("GET", path)
    status = r.json()
    assert r.status == 404 and status["reason"] == "NotFound"
    assert status["message"].startswith("the server could not find the requested resource: ")
    assert says in status["message"]
    assert "name" not in status["details"]  # kubectl debug: "disabled for this cluster"


async def test_event_timestamps_are_normalised(api: Any) -> None:
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
             "involvedObject": {"kind": "Pod", "name": "x", "namespace": "default"},
             "reason": "Test", "message": "hi", "type": "Normal",
             "firstTimestamp": "2026-01-01T02:00:00.5+02:00",
             "lastTimestamp": "2026-01-01T02:00:00+02:00",
             "eventTime": "2026-01-01T02:00:00.123456789+02:00",
             "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01Z"},
             "reportingComponent": "me", "reportingInstance": "me-1", "action": "Test"}
    async with api.client() as admin:
        r = await admin.raw("POST", EVENTS, body=event)
        assert r.status == 201, r.body
        got = r.json()
        assert got["firstTimestamp"] == got["lastTimestamp"] == "2026-01-01T00:00:00Z"
        assert got["eventTime"] == "2026-01-01T00:00:00.123456Z"
        assert got["series"]["lastObservedTime"] == "2026-01-01T00:00:01.000000Z"
        bad = dict(event, metadata={"name": "e2"}, lastTimestamp="yesterday")
        r = await admin.raw("POST", EVENTS, body=bad)
        assert r.status == 400 and "parsing time" in r.json()["message"]


async def test_timestamps_of_kinds_with_field_tables_are_normalised(api: Any) -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "l1"},
             "spec": {"holderIdentity": "a", "renewTime": "2026-01-01T01:00:00+01:00",
                      "acquireTime": "2026-01-01T00:00:00.5Z"}}
    async with api.client() as admin:
        r = await admin.raw("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                            body=lease)
        assert r.status == 201, r.body
        assert r.json()["spec"]["renewTime"] == "2026-01-01T00:00:00.000000Z"
        assert r.json()["spec"]["acquireTime"] == "2026-01-01T00:00:00.500000Z"
        bad = {**lease, "metadata": {"name": "l2"},
               "spec": {"renewTime": "2026-13-01T00:00:00Z"}}
        r = await admin.raw("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                            body=bad)
        assert r.status == 400
        assert r.json()["message"].startswith('Lease in version "v1" cannot be handled as a '
                                              "Lease: spec.renewTime: parsing time")
