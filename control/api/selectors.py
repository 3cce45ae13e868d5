"""Label and field selectors: parsed once from a query or an object spec, matched many times.

The apiserver parses ``labelSelector``/``fieldSelector`` query strings here, checks field
selectors against the kind's selectable-field table, and filters lists and watch events with
``matches``. Controllers turn ``spec.selector`` (matchLabels/matchExpressions) into the same
``LabelSelector`` with ``from_label_selector``. Pure: no I/O, values are immutable.

Grammar and semantics follow apimachinery ``pkg/labels``; field selectors live in
:mod:`control.api.fieldselectors`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "EVERYTHING",
    "NOTHING",
    "LabelSelector",
    "Operator",
    "Requirement",
    "SelectorError",
    "from_label_selector",
    "parse_label_selector",
    "selector_from_set",
    "validate_label_key",
    "validate_label_value",
]


class SelectorError(ValueError):
    """A selector that cannot be parsed or is not valid; the message is meant for the user
    (the apiserver answers 400 BadRequest with it)."""


class Operator(str, Enum):
    """Label selector operators; the value is how the operator is written in a selector."""

    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_SET_OPS = (Operator.IN, Operator.NOT_IN)
_NO_VALUE_OPS = (Operator.EXISTS, Operator.DOES_NOT_EXIST)
_SINGLE_VALUE_OPS = (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS)
_NUMERIC_OPS = (Operator.GREATER_THAN, Operator.LESS_THAN)

# --- label keys and values ----------------------------------------------------------------

_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_DNS1123_SUBDOMAIN_RE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"
)
_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value', "
    " or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def validate_label_key(key: str) -> None:
    """Raise SelectorError unless ``key`` is a qualified name (``[dns-subdomain/]name``)."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (0 < len(prefix) <= 253 and _DNS1123_SUBDOMAIN_RE.match(prefix)):
        problem = (
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character"
        )
    elif not name or len(name) > 63:
        problem = "name part must be non-empty and no more than 63 characters"
    elif not _NAME_RE.match(name):
        problem = _NAME_MSG
    else:
        return
    raise SelectorError(f'key: Invalid value: "{key}": {problem}')


def validate_label_value(key: str, value: str) -> None:
    """Raise SelectorError unless ``value`` is a valid label value (may be empty)."""
    if value and (len(value) > 63 or not _NAME_RE.match(value)):
        detail = "must be no more than 63 characters" if len(value) > 63 else _VALUE_MSG
        raise SelectorError(f'values[0][{key}]: Invalid value: "{value}": {detail}')


# --- label requirements and selectors ------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector. ``values`` is sorted and de-duplicated.

    Construct through ``Requirement.new`` to get validation; direct construction trusts the
    caller.
    """

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    @classmethod
    def new(
        cls, key: str, operator: Operator, values: tuple[str, ...] | list[str] = ()
    ) -> Requirement:
        """Validate key, operator arity and values (as Kubernetes' NewRequirement does)."""
        validate_label_key(key)
        vals = tuple(sorted(set(values)))
        if operator in _SET_OPS and not vals:
            raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
        if operator in _SINGLE_VALUE_OPS and len(vals) != 1:
            raise SelectorError("exact-match compatibility requires one single value")
        if operator in _NO_VALUE_OPS and vals:
            raise SelectorError("values set must be empty for exists and does not exist")
        if operator in _NUMERIC_OPS:
            if len(vals) != 1:
                raise SelectorError("for 'Gt', 'Lt' operators, exactly one value is required")
            if not re.fullmatch(r"[+-]?\d+", vals[0]):
                raise SelectorError(
                    f"for 'Gt', 'Lt' operators, the value must be an integer: {vals[0]}"
                )
        else:
            for value in vals:
                validate_label_value(key, value)
        return cls(key, operator, vals)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this term; an absent key satisfies only !=, notin, !."""
        op, present = self.operator, self.key in labels
        if op in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN):
            return present and labels[self.key] in self.values
        if op in (Operator.NOT_EQUALS, Operator.NOT_IN):
            return not present or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return present
        if op is Operator.DOES_NOT_EXIST:
            return not present
        if not present or not re.fullmatch(r"[+-]?\d+", labels[self.key]):
            return False
        have, want = int(labels[self.key]), int(self.values[0])
        return have > want if op is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        if op in _SET_OPS:
            return f"{self.key} {op.value} ({','.join(self.values)})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements, sorted by key. No requirements selects everything;
    ``match_nothing`` (a nil selector in an object spec) selects nothing."""

    requirements: tuple[Requirement, ...] = ()
    match_nothing: bool = False

    @property
    def empty(self) -> bool:
        """True when the selector matches every label set."""
        return not self.requirements and not self.match_nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.match_nothing:
            return False
        have = labels or {}
        return all(r.matches(have) for r in self.requirements)

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must equal for a match, if the selector pins one."""
        for r in self.requirements:
            exact = r.operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)
            if r.key == key and exact and len(r.values) == 1:
                return r.values[0]
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(match_nothing=True)


def _selector(requirements: list[Requirement]) -> LabelSelector:
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


# --- the label selector parser -----------------------------------------------------------

_TOKEN_RE = re.compile(r"\s*(?:(==|!=|=|!|\(|\)|,|>|<)|([^\s=!(),<>]+))")
_OPERATOR_TOKENS = {
    "=": Operator.EQUALS,
    "==": Operator.DOUBLE_EQUALS,
    "!=": Operator.NOT_EQUALS,
    "in": Operator.IN,
    "notin": Operator.NOT_IN,
    ">": Operator.GREATER_THAN,
    "<": Operator.LESS_THAN,
}
_SYMBOLS = frozenset({"==", "!=", "=", "!", "(", ")", ",", ">", "<"})


def _is_word(token: str) -> bool:
    return bool(token) and token not in _SYMBOLS


class _Parser:
    """Recursive descent over tokens; "" stands for the end of the string."""

    def __init__(self, text: str) -> None:
        self._tokens = [sym or word for sym, word in _TOKEN_RE.findall(text)]
        self._pos = 0

    def peek(self) -> str:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else ""

    def take(self) -> str:
        token = self.peek()
        self._pos += 1
        return token

    @staticmethod
    def fail(found: str, expected: str) -> SelectorError:
        return SelectorError(f"unable to parse requirement: found '{found}', expected: {expected}")

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while self.peek():
            if reqs and (token := self.take()) != ",":
                raise self.fail(token, "',' or 'end of string'")
            reqs.append(self.requirement())
        return reqs

    def requirement(self) -> Requirement:
        negated = self.peek() == "!"
        if negated:
            self.take()
        key = self.take()
        if not _is_word(key) or key in ("in", "notin"):
            raise self.fail(key, "identifier")
        if negated or self.peek() in ("", ","):
            return _checked(key, Operator.DOES_NOT_EXIST if negated else Operator.EXISTS, ())
        op = _OPERATOR_TOKENS.get(token := self.take())
        if op is None:
            raise self.fail(token, "'=', '!=', '==', 'in', notin'")
        return _checked(key, op, self.value_set() if op in _SET_OPS else (self.single_value(),))

    def single_value(self) -> str:
        if self.peek() in ("", ","):
            return ""
        if not _is_word(token := self.take()):
            raise self.fail(token, "identifier")
        return token

    def value_set(self) -> tuple[str, ...]:
        if (token := self.take()) != "(":
            raise self.fail(token, "'('")
        values, pending = [], ""  # "in (a,,b)" and "in (a,)" hold "" as Kubernetes does
        while (token := self.take()) != ")":
            if token == ",":
                values.append(pending)
                pending = ""
            elif _is_word(token) and not pending:
                pending = token
            else:
                raise self.fail(token, "',', ')' or identifier")
        return (*values, pending) if values or pending else ()


def _checked(key: str, op: Operator, values: tuple[str, ...]) -> Requirement:
    try:
        return Requirement.new(key, op, values)
    except SelectorError as exc:
        raise SelectorError(f"unable to parse requirement: {exc}") from None


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query string. Empty text selects everything.

    Raises SelectorError (with Kubernetes-like wording) on bad syntax, keys or values.
    """
    return _selector(_Parser(text).parse())


def selector_from_set(labels: Mapping[str, str]) -> LabelSelector:
    """An equality selector for each pair (a Service's or RC's ``spec.selector``)."""
    return _selector([Requirement.new(k, Operator.EQUALS, (v,)) for k, v in labels.items()])


_EXPRESSION_OPS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def from_label_selector(spec: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a metav1.LabelSelector dict (matchLabels, matchExpressions).

    None selects nothing; an empty dict selects everything (as LabelSelectorAsSelector).
    Raises SelectorError for an unknown operator or invalid keys, values or arity.
    """
    if spec is None:
        return NOTHING
    reqs = [
        Requirement.new(k, Operator.EQUALS, (str(v),))
        for k, v in (spec.get("matchLabels") or {}).items()
    ]
    for expr in spec.get("matchExpressions") or []:
        op_name = expr.get("operator", "")
        if op_name not in _EXPRESSION_OPS:
            raise SelectorError(f'"{op_name}" is not a valid label selector operator')
        values = tuple(expr.get("values") or ())
        reqs.append(Requirement.new(expr.get("key", ""), _EXPRESSION_OPS[op_name], values))
    return _selector(reqs)

