"""EndpointSlices (discovery.k8s.io/v1): defaults, validation causes with Kubernetes' field
paths and messages, update rules and generation, the Table row, field selectors, and the
protobuf field numbers of discovery/v1's generated.proto."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from control.api.errors import Cause
from control.api.fieldselectors import (
    field_selector_for_kind,
    object_fields,
    parse_field_selector,
)
from control.api.selectors import SelectorError
from control.apiserver.protobuf import decode_request
from control.apiserver.strategies import strategy_for
from control.apiserver.tables import table_for

Obj = dict[str, Any]
NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
GROUP = "discovery.k8s.io"


def eps(**more: Any) -> Obj:
    obj: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "web-x7k2p", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["127.0.1.5"], "conditions": {"ready": True},
                               "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "web-1"}}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    obj.update(more)
    return obj


def created(obj: Obj) -> Obj:
    strategy_for(GROUP, "endpointslices").prepare_for_create(obj)
    return obj


def test_defaults_generation_and_dropped_topology() -> None:
    obj = created(eps(ports=[{"port": 53}, {"name": "dns", "protocol": "UDP"}],
                      endpoints=[{"addresses": ["127.0.1.5"],
                                  "deprecatedTopology": {"x": "y"}}]))
    assert obj["ports"] == [{"port": 53, "name": "", "protocol": "TCP"},
                            {"name": "dns", "protocol": "UDP"}]
    assert obj["endpoints"] == [{"addresses": ["127.0.1.5"]}]
    assert obj["metadata"]["generation"] == 1 and "status" not in obj
    s = strategy_for(GROUP, "endpointslices")
    new = copy.deepcopy(obj)
    new["metadata"]["labels"]["extra"] = "1"
    s.prepare_for_update(new, obj)
    assert new["metadata"]["generation"] == 1
    new["endpoints"][0]["conditions"] = {"ready": False}
    s.prepare_for_update(new, obj)
    assert new["metadata"]["generation"] == 2


def _set(key: str, value: Any, at: int | None = None, under: str = "") -> Callable[[Obj], None]:
    def edit(obj: Obj) -> None:
        node = obj[under][at] if under and at is not None else obj
        node[key] = value
    return edit


LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
             "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
             "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


@pytest.mark.parametrize(("edit", "expected"), [
    pytest.param(_set("addressType", ""), Cause("FieldValueRequired", "Required value",
                                                 "addressType"), id="type-required"),
    pytest.param(_set("addressType", "IPv5"), Cause(
        "FieldValueNotSupported", 'Unsupported value: "IPv5": supported values: "FQDN", '
        '"IPv4", "IPv6"', "addressType"), id="type-unsupported"),
    pytest.param(_set("addresses", ["10.0.0.300"], 0, "endpoints"), Cause(
        "FieldValueInvalid", 'Invalid value: "10.0.0.300": must be a valid IPv4 address',
        "endpoints[0].addresses[0]"), id="ipv4"),
    pytest.param(_set("addresses", ["fd00::1"], 0, "endpoints"), Cause(
        "FieldValueInvalid", 'Invalid value: "fd00::1": must be a valid IPv4 address',
        "endpoints[0].addresses[0]"), id="family"),
    pytest.param(_set("addresses", [], 0, "endpoints"), Cause(
        "FieldValueRequired", "Required value: must contain at least 1 address",
        "endpoints[0].addresses"), id="no-address"),
    pytest.param(_set("addresses", [f"127.0.0.{i}" for i in range(101)], 0, "endpoints"), Cause(
        "FieldValueTooMany", "Too many: 101: must have at most 100 items",
        "endpoints[0].addresses"), id="too-many"),
    pytest.param(_set("hostname", "Web_1", 0, "endpoints"), Cause(
        "FieldValueInvalid", f'Invalid value: "Web_1": {LABEL_MSG}', "endpoints[0].hostname"),
        id="hostname"),
    pytest.param(_set("hints", {"forZones": [{"name": "a"}, {"name": "a"}]}, 0, "endpoints"),
                 Cause("FieldValueDuplicate", 'Duplicate value: "a"',
                       "endpoints[0].hints.forZones[1].name"), id="zone-hint"),
    pytest.param(_set("name", "HTTP", 0, "ports"), Cause(
        "FieldValueInvalid", f'Invalid value: "HTTP": {LABEL_MSG}', "ports[0].name"),
        id="port-name"),
    pytest.param(_set("ports", [{"name": "a", "protocol": "TCP"}, {"name": "a",
                                                                    "protocol": "TCP"}]),
                 Cause("FieldValueDuplicate", 'Duplicate value: "a"', "ports[1].name"),
                 id="port-duplicate"),
    pytest.param(_set("protocol", "ICMP", 0, "ports"), Cause(
        "FieldValueNotSupported", 'Unsupported value: "ICMP": supported values: "SCTP", "TCP", '
        '"UDP"', "ports[0].protocol"), id="protocol"),
    pytest.param(_set("appProtocol", "-h2c", 0, "ports"), Cause(
        "FieldValueInvalid", 'Invalid value: "-h2c": name part must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')", "ports[0].appProtocol"),
        id="app-protocol"),
])
def test_validation(edit: Callable[[Obj], None], expected: Cause) -> None:
    obj = created(eps())
    edit(obj)
    causes = strategy_for(GROUP, "endpointslices").validate(obj)
    assert expected in causes, causes


@pytest.mark.parametrize(("kind", "address", "message"), [
    ("IPv6", "fd00::1", None), ("IPv6", "127.0.0.1", "must be a valid IPv6 address"),
    ("IPv4", "127.0.1.9", None),  # ketch's pods live on 127.0.0.0/8
    ("FQDN", "db.example.com", None), ("FQDN", "db.example.com.", None),
    ("FQDN", "db", "should be a domain with at least two segments separated by dots"),
])
def test_address_types(kind: str, address: str, message: str | None) -> None:
    obj = created(eps(addressType=kind, endpoints=[{"addresses": [address]}]))
    causes = strategy_for(GROUP, "endpointslices").validate(obj)
    assert [c.message.rpartition(": ")[2] for c in causes] == ([message] if message else [])


def test_address_type_is_immutable() -> None:
    s = strategy_for(GROUP, "endpointslices")
    old = created(eps())
    new = copy.deepcopy(old)
    new["endpoints"].append({"addresses": ["127.0.1.6"]})
    assert s.validate_update(new, old) == []
    new["addressType"] = "FQDN"
    new["endpoints"] = [{"addresses": ["web.example.com"]}]
    assert s.validate_update(new, old) == [Cause(
        "FieldValueInvalid", 'Invalid value: "FQDN": field is immutable', "addressType")]


def test_table() -> None:
    many = eps(endpoints=[{"addresses": [f"127.0.1.{i}"]} for i in range(5)],
               ports=[{"port": 80}, {"name": "dns"}, {}, {"port": 9}])
    empty = eps(endpoints=[], ports=[])
    table = table_for("EndpointSlice", [created(eps()), many, empty], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "AddressType", "Ports", "Endpoints", "Age"]
    assert [r["cells"][1:4] for r in table["rows"]] == [
        ["IPv4", "8080", "127.0.1.5"],
        ["IPv4", "80,dns,* + 1 more...", "127.0.1.0,127.0.1.1,127.0.1.2 + 2 more..."],
        ["IPv4", "<unset>", "<unset>"]]


def test_field_selectors_are_metadata_only() -> None:
    obj = eps()
    sel = field_selector_for_kind(parse_field_selector("metadata.name=web-x7k2p"),
                                  "EndpointSlice")
    assert sel.matches(object_fields("EndpointSlice", obj))
    with pytest.raises(SelectorError, match='"addressType" is not a known field selector'):
        field_selector_for_kind(parse_field_selector("addressType=IPv4"), "EndpointSlice")


# --- protobuf: the field numbers of k8s.io/api discovery/v1 generated.proto ---------------

def _ld(number: int, data: bytes) -> bytes:
    assert len(data) < 128
    return bytes([(number << 3) | 2, len(data)]) + data


def _varint(number: int, value: int) -> bytes:
    assert value < 128
    return bytes([number << 3, value])


def test_protobuf_body_decodes_by_upstream_field_numbers() -> None:
    # EndpointSlice{metadata=1, endpoints=2, ports=3, addressType=4}; Endpoint{addresses=1,
    # conditions=2, nodeName=6}; EndpointConditions{ready=1}; EndpointPort{name=1,
    # protocol=2, port=3}
    endpoint = _ld(1, b"127.0.1.5") + _ld(2, _varint(1, 1)) + _ld(6, b"n1")
    port = _ld(1, b"http") + _ld(2, b"TCP") + _varint(3, 80)
    raw = _ld(1, _ld(1, b"web-x")) + _ld(2, endpoint) + _ld(3, port) + _ld(4, b"IPv4")
    body = b"k8s\x00" + _ld(1, _ld(1, b"discovery.k8s.io/v1") + _ld(2, b"EndpointSlice")) \
        + _ld(2, raw)
    _, kind, obj = decode_request(body)
    assert kind == "EndpointSlice"
    assert obj == {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": "web-x"}, "addressType": "IPv4",
                   "endpoints": [{"addresses": ["127.0.1.5"], "conditions": {"ready": True},
                                  "nodeName": "n1"}],
                   "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}


def test_protobuf_controller_revision_by_upstream_field_numbers() -> None:
    # ControllerRevision{metadata=1, data=2 (RawExtension{raw=1}), revision=3}
    raw = _ld(1, _ld(1, b"web-1")) + _ld(2, _ld(1, b'{"a":1}')) + _varint(3, 4)
    body = b"k8s\x00" + _ld(1, _ld(1, b"apps/v1") + _ld(2, b"ControllerRevision")) + _ld(2, raw)
    _, _, obj = decode_request(body)
    assert obj["data"] == {"a": 1} and obj["revision"] == 4
