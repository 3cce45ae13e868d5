"""Label and field selectors: parsing, matching, canonical strings and error messages."""

from __future__ import annotations

from typing import Any

import pytest

from control.api.fieldselectors import field_selector_for_kind, object_fields, parse_field_selector
from control.api.selectors import (
    EVERYTHING,
    NOTHING,
    SelectorError,
    from_label_selector,
    parse_label_selector,
    selector_from_set,
)

WEB = {"app": "web", "tier": "front", "env": "prod"}
DB = {"app": "db", "tier": "back"}
BARE: dict[str, str] = {}


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        pytest.param("", WEB, True, id="empty-matches-all"),
        pytest.param("", BARE, True, id="empty-matches-no-labels"),
        pytest.param("app=web", WEB, True, id="eq"),
        pytest.param("app=web", DB, False, id="eq-other"),
        pytest.param("app==web", WEB, True, id="double-eq"),
        pytest.param("app!=web", DB, True, id="neq"),
        pytest.param("app!=web", WEB, False, id="neq-same"),
        pytest.param("app!=web", BARE, True, id="neq-absent"),
        pytest.param("app in (web,db)", DB, True, id="in"),
        pytest.param("app in (web, db)", WEB, True, id="in-spaces"),
        pytest.param("app in (cache)", WEB, False, id="in-miss"),
        pytest.param("app in (web)", BARE, False, id="in-absent"),
        pytest.param("app notin (web)", DB, True, id="notin"),
        pytest.param("app notin (web)", WEB, False, id="notin-hit"),
        pytest.param("app notin (web)", BARE, True, id="notin-absent"),
        pytest.param("env", WEB, True, id="exists"),
        pytest.param("env", DB, False, id="exists-absent"),
        pytest.param("!env", DB, True, id="not-exists"),
        pytest.param("!env", WEB, False, id="not-exists-present"),
        pytest.param("app=web,tier=front", WEB, True, id="and"),
        pytest.param("app=web,tier=back", WEB, False, id="and-one-fails"),
        pytest.param("app in (web,db),!env", DB, True, id="mixed"),
        pytest.param(" app = web , env ", WEB, True, id="whitespace"),
        pytest.param("app=", {"app": ""}, True, id="empty-value"),
        pytest.param("app=", WEB, False, id="empty-value-miss"),
        pytest.param("app in (web,)", {"app": ""}, True, id="in-trailing-comma-means-empty"),
        pytest.param(
            "kubernetes.io/cluster-service=true",
            {"kubernetes.io/cluster-service": "true"},
            True,
            id="prefixed-key",
        ),
        pytest.param("app=in", {"app": "in"}, True, id="keyword-as-value"),
        pytest.param("n>5", {"n": "7"}, True, id="gt"),
        pytest.param("n>5", {"n": "5"}, False, id="gt-equal"),
        pytest.param("n<5", {"n": "x"}, False, id="lt-non-integer"),
        pytest.param("n<5", BARE, False, id="lt-absent"),
    ],
)
def test_label_match(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        pytest.param("tier=front,app=web", "app=web,tier=front", id="sorted-by-key"),
        pytest.param("app in (web, db)", "app in (db,web)", id="sorted-values"),
        pytest.param("app==web", "app==web", id="double-eq"),
        pytest.param("!env,app", "app,!env", id="existence"),
        pytest.param("a notin (x)", "a notin (x)", id="notin"),
        pytest.param("n > 3", "n>3", id="gt"),
    ],
)
def test_label_string(text: str, canonical: str) -> None:
    parsed = parse_label_selector(text)
    assert str(parsed) == canonical
    assert parse_label_selector(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("app=web,", "found '', expected: identifier", id="trailing-comma"),
        pytest.param(",app", "found ',', expected: identifier", id="leading-comma"),
        pytest.param("app web", "found 'web', expected: '=', '!=', '=='", id="two-words"),
        pytest.param("app=web x", "found 'x', expected: ',' or 'end of string'", id="after-value"),
        pytest.param("app in web", "found 'web', expected: '('", id="in-no-paren"),
        pytest.param("app in (web", "found '', expected: ',', ')' or identifier", id="unclosed"),
        pytest.param("app in ()", "values set can't be empty", id="in-empty"),
        pytest.param("app=(web)", "found '(', expected: identifier", id="paren-value"),
        pytest.param("!app=web", "found '=', expected: ',' or 'end of string'", id="negated-op"),
        pytest.param("a b c=d", "found 'b'", id="junk"),
        pytest.param("-app=web", 'key: Invalid value: "-app"', id="bad-key"),
        pytest.param("Example.COM/app=web", "prefix part", id="bad-prefix"),
        pytest.param("a" * 64 + "=x", "no more than 63 characters", id="long-key"),
        pytest.param("app=-web", 'values[0][app]: Invalid value: "-web"', id="bad-value"),
        pytest.param("app=" + "v" * 64, "must be no more than 63 characters", id="long-value"),
        pytest.param("n>x", "must be an integer", id="gt-non-integer"),
        pytest.param("in=x", "found 'in', expected: identifier", id="keyword-key"),
    ],
)
def test_label_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match="unable to parse requirement") as err:
        parse_label_selector(text)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("spec", "labels", "expected"),
    [
        pytest.param(None, WEB, False, id="null-matches-nothing"),
        pytest.param({}, WEB, True, id="empty-matches-everything"),
        pytest.param({"matchLabels": {"app": "web"}}, WEB, True, id="match-labels"),
        pytest.param({"matchLabels": {"app": "web"}}, DB, False, id="match-labels-miss"),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]},
            DB,
            True,
            id="In",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]},
            WEB,
            False,
            id="NotIn",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "Exists"}]}, WEB, True, id="Exists"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]},
            WEB,
            False,
            id="DoesNotExist",
        ),
        pytest.param(
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "env", "operator": "DoesNotExist"}],
            },
            WEB,
            False,
            id="both-anded",
        ),
    ],
)
def test_from_label_selector(
    spec: dict[str, Any] | None, labels: dict[str, str], expected: bool
) -> None:
    assert from_label_selector(spec).matches(labels) is expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
            '"Equals" is not a valid label selector operator',
            id="bad-operator",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
            "values set can't be empty",
            id="in-empty",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            "values set must be empty",
            id="exists-with-values",
        ),
        pytest.param({"matchLabels": {"a": "b c"}}, "Invalid value", id="bad-value"),
        pytest.param({"matchLabels": {"": "b"}}, "name part", id="empty-key"),
    ],
)
def test_from_label_selector_errors(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        from_label_selector(spec)


def test_selector_helpers() -> None:
    assert EVERYTHING.empty and not NOTHING.empty and not NOTHING.matches({})
    assert selector_from_set({"app": "web"}).matches(WEB)
    assert selector_from_set({}).empty
    assert parse_label_selector("app=web,x in (y)").requires_exact_match("x") == "y"
    assert parse_label_selector("app!=web").requires_exact_match("app") is None


# --- field selectors ----------------------------------------------------------------------

POD = {
    "kind": "Pod",
    "metadata": {"name": "p1", "namespace": "default"},
    "spec": {"nodeName": "n1", "restartPolicy": "Always"},
    "status": {"phase": "Running", "podIP": "10.0.0.5"},
}
PENDING = {
    "kind": "Pod",
    "metadata": {"name": "p2", "namespace": "other"},
    "spec": {},
    "status": {"phase": "Pending"},
}
EVENT = {
    "kind": "Event",
    "metadata": {"name": "e", "namespace": "default"},
    "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "default", "uid": "u-1"},
    "reason": "Scheduled",
    "type": "Normal",
    "source": {"component": "scheduler"},
}
NODE = {"kind": "Node", "metadata": {"name": "n1"}, "spec": {"unschedulable": True}}


@pytest.mark.parametrize(
    ("kind", "text", "obj", "expected"),
    [
        pytest.param("Pod", "", POD, True, id="empty"),
        pytest.param("Pod", "metadata.name=p1", POD, True, id="name"),
        pytest.param("Pod", "metadata.name==p1", POD, True, id="name-double-eq"),
        pytest.param("Pod", "metadata.namespace!=default", POD, False, id="ns-neq"),
        pytest.param("Pod", "metadata.namespace!=default", PENDING, True, id="ns-neq-other"),
        pytest.param("Pod", "spec.nodeName=", PENDING, True, id="unscheduled"),
        pytest.param("Pod", "spec.nodeName=", POD, False, id="scheduled"),
        pytest.param("Pod", "spec.host=n1", POD, True, id="legacy-spec-host"),
        pytest.param(
            "Pod",
            "spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed",
            POD,
            True,
            id="describe-node",
        ),
        pytest.param("Pod", "status.phase=Running", PENDING, False, id="phase"),
        pytest.param("Pod", "spec.hostNetwork=false", POD, True, id="bool-zero-value"),
        pytest.param("Pod", "status.podIP=10.0.0.5", POD, True, id="pod-ip"),
        pytest.param(
            "Event",
            "involvedObject.kind=Pod,involvedObject.name=p1,"
            "involvedObject.namespace=default,involvedObject.uid=u-1",
            EVENT,
            True,
            id="describe-events",
        ),
        pytest.param(
            "Event", "source=scheduler,type=Normal,reason=Scheduled", EVENT, True, id="event-source"
        ),
        pytest.param("Node", "spec.unschedulable=true", NODE, True, id="node-bool"),
        pytest.param(
            "Node",
            "spec.unschedulable=false",
            {"metadata": {"name": "n2"}},
            True,
            id="node-bool-default",
        ),
        pytest.param("ConfigMap", "metadata.name=p1", POD, True, id="default-kind"),
    ],
)
def test_field_match(kind: str, text: str, obj: dict[str, Any], expected: bool) -> None:
    selector = field_selector_for_kind(parse_field_selector(text), kind)
    assert selector.matches(object_fields(kind, obj)) is expected


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        pytest.param("Pod", "spec.foo=x", "field label not supported: spec.foo", id="pod"),
        pytest.param(
            "Node",
            "metadata.namespace=x",
            "field label not supported: metadata.namespace",
            id="node-namespace",
        ),
        pytest.param(
            "Event",
            "involvedObject.foo=x",
            "field label not supported: involvedObject.foo",
            id="event",
        ),
        pytest.param(
            "ConfigMap",
            "data.x=y",
            '"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"',
            id="default-kind",
        ),
    ],
)
def test_field_unsupported(kind: str, text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        field_selector_for_kind(parse_field_selector(text), kind)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "metadata.name",
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
            id="no-operator",
        ),
        pytest.param("a=b,c", "can't understand 'c'", id="second-term"),
        pytest.param("a=b=c", "unescaped character in value: =", id="unescaped-equals"),
        pytest.param("a=b\\x", "invalid escape sequence: \\x", id="bad-escape"),
        pytest.param("a=b\\", "invalid escape sequence", id="trailing-backslash"),
    ],
)
def test_field_parse_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_field_selector(text)
    assert message in str(err.value)


def test_field_escapes_and_strings() -> None:
    selector = parse_field_selector("metadata.name=a\\,b\\=c\\\\d")
    assert selector.requires_exact_match("metadata.name") == "a,b=c\\d"
    assert parse_field_selector(str(selector)) == selector
    assert str(parse_field_selector("b!=2,a==1")) == "a=1,b!=2"
    assert parse_field_selector(",,").empty
    assert parse_field_selector("metadata.name!=x").requires_exact_match("metadata.name") is None
