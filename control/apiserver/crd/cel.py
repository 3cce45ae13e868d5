"""``x-kubernetes-validations``: CEL rules of a structural schema, compiled with cel-python and
evaluated against custom objects, with Kubernetes' limits and messages.

Each rule sees ``self`` (the value at its node, typed by the schema: ``number`` fields are
doubles) and, for a transition rule on an update, ``oldSelf`` (the correlated old value: by
property name, map key, or ``x-kubernetes-list-type: map`` keys; rules using ``oldSelf`` are
skipped where there is none, as in Kubernetes).  The Kubernetes string and list library
functions most rules use (``lowerAscii``, ``split``, ``join``, ``isSorted``, ``sum``, ...) are
provided.

Cost: cel-python has no cost model, so this module estimates one the way apiextensions does:
every operation costs 1, a comprehension over a list or map costs its body once per element,
string functions cost a tenth of the string's length.  At CRD validation sizes come from the
schema (``maxItems``, ``maxProperties``, ``maxLength``; unbounded ones from the 3 MiB request
limit), and a rule over 10,000,000 or a schema over 100,000,000 in total is refused; at
evaluation they come from the object, and a call over 1,000,000 or an object over 10,000,000 in
total stops with Kubernetes' messages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from control.api.errors import Cause
from control.apiserver.strategies.causes import (
    Raw,
    child,
    duplicate,
    forbidden,
    index,
    invalid,
    key,
    required,
)

from .schema import Schema

__all__ = ["PER_CALL_LIMIT", "RULE_REASONS", "RUNTIME_BUDGET", "compile_rules", "evaluate"]

RULE_REASONS = frozenset({"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired",
                          "FieldValueDuplicate"})
STATIC_RULE_LIMIT = 10_000_000
STATIC_CRD_LIMIT = 100_000_000
PER_CALL_LIMIT = 1_000_000
RUNTIME_BUDGET = 10_000_000
_MAX_REQUEST = 3 * 1024 * 1024
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_STRING_FNS = frozenset({"matches", "contains", "startsWith", "endsWith", "split", "replace",
                         "lowerAscii", "upperAscii", "trim", "indexOf", "lastIndexOf",
                         "substring", "join", "find", "findAll", "charAt"})
_KNOWN = frozenset({"self", "oldSelf", "int", "uint", "double", "string", "bytes", "bool",
                    "list", "map", "null_type", "type", "dyn", "duration", "timestamp", "has",
                    "size", "matches", "true", "false", "null"})
_ENV = celpy.Environment()


@dataclass(frozen=True)
class CompiledRule:
    rule: Mapping[str, Any]
    program: Any
    tree: lark.Tree[Any]
    message: Any  # the messageExpression's program, or None
    uses_old_self: bool


# --- compiling (at CRD validation and when a CRD is served) ----------------------------------

def _rule_value(rule: Mapping[str, Any]) -> Raw:
    return Raw.struct((k, rule.get(k)) for k in ("rule", "message", "messageExpression",
                                                 "reason", "fieldPath", "optionalOldSelf"))


def compile_rules(schema: Schema, path: str) -> tuple[list[Cause], int]:
    """Compile every rule of the tree (stored on each node's ``compiled_rules``); the field
    errors of rules that do not compile or cost too much, and the tree's estimated total."""
    out: list[Cause] = []
    total = 0
    for node, where in _walk(schema, path):
        compiled = []
        for i, rule in enumerate(node.rules):
            base = f"{child(where, 'x-kubernetes-validations')}[{i}]"
            text = str(rule.get("rule") or "")
            try:
                tree = _ENV.compile(text)
            except CELParseError as e:
                out.append(invalid(child(base, "rule"), _rule_value(rule),
                                   f"compilation failed: ERROR: <input>:{_first_line(e)}"))
                continue
            unknown = _undeclared(tree)
            if unknown:
                out.append(invalid(child(base, "rule"), _rule_value(rule),
                                   f"compilation failed: ERROR: <input>:1:1: undeclared "
                                   f"reference to '{unknown}' (in container '')"))
                continue
            message = None
            if rule.get("messageExpression"):
                try:
                    message = _ENV.program(_ENV.compile(str(rule["messageExpression"])),
                                           functions=_FUNCTIONS)
                except CELParseError as e:
                    out.append(invalid(child(base, "messageExpression"), _rule_value(rule),
                                       f"messageExpression compilation failed: ERROR: <input>:"
                                       f"{_first_line(e)}"))
                    continue
            uses_old = any(t == "oldSelf" for t in tree.scan_values(
                lambda v: isinstance(v, lark.Token)))
            if rule.get("optionalOldSelf") is not None and not uses_old:
                out.append(invalid(child(base, "optionalOldSelf"), rule["optionalOldSelf"],
                                   "may not be set if oldSelf is not used in rule"))
            cost = _cost(tree, _Static(node), {})
            total += cost
            if cost > STATIC_RULE_LIMIT:
                out.append(forbidden(child(base, "rule"), _cost_message(
                    "estimated rule cost", cost, STATIC_RULE_LIMIT)))
                continue
            compiled.append(CompiledRule(rule, _ENV.program(tree, functions=_FUNCTIONS), tree,
                                         message, uses_old))
        node.compiled_rules = tuple(compiled)
    if total > STATIC_CRD_LIMIT:
        out.append(forbidden(path, _cost_message("x-kubernetes-validations estimated rule cost "
                                                 "total for entire OpenAPIv3 schema", total,
                                                 STATIC_CRD_LIMIT)))
    return out, total


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"1:1: Syntax error: {text[0] if text else 'invalid expression'}"


def _cost_message(what: str, cost: int, limit: int) -> str:
    factor = cost / limit
    shown = "more than 100x" if factor > 100 else (f"{factor:f}x" if factor < 1.5
                                                    else f"{factor:.1f}x")
    return (f"{what} exceeds budget by factor of {shown} (try simplifying the rule, or adding "
            "maxItems, maxProperties, and maxLength where arrays, maps, and strings are "
            "declared)")


def _walk(schema: Schema, path: str) -> Iterator[tuple[Schema, str]]:
    yield schema, path
    for name, prop in schema.properties.items():
        yield from _walk(prop, key(child(path, "properties"), name))
    if isinstance(schema.additional, Schema):
        yield from _walk(schema.additional, child(path, "additionalProperties"))
    if schema.items is not None:
        yield from _walk(schema.items, child(path, "items"))


def _undeclared(tree: lark.Tree[Any]) -> str | None:
    bound = set()
    for sub in tree.iter_subtrees():
        if sub.data == "member_dot_arg" and len(sub.children) >= 3 \
                and str(sub.children[1]) in _MACROS:
            args = sub.children[2]
            first = next(iter(args.scan_values(lambda v: isinstance(v, lark.Token)
                                               and v.type == "IDENT")), None)
            if first is not None:
                bound.add(str(first))
    for sub in tree.iter_subtrees():
        if sub.data == "primary" and sub.children and isinstance(sub.children[0], lark.Tree) \
                and sub.children[0].data == "ident":
            name = str(sub.children[0].children[0])
            if name not in _KNOWN and name not in bound:
                return name
    return None


# --- cost --------------------------------------------------------------------------------------

class _Static:
    """Sizes from the schema (CRD validation)."""

    def __init__(self, node: Schema | None) -> None:
        self.node = node

    def child(self, name: str) -> _Static:
        return _Static(self.node.child_of(name) if self.node else None)

    def element(self) -> _Static:
        if self.node is None:
            return _Static(None)
        if self.node.items is not None:
            return _Static(self.node.items)
        return _Static(self.node.additional if isinstance(self.node.additional, Schema)
                       else None)

    def size(self) -> int:
        raw = self.node.raw if self.node else {}
        for bound in ("maxItems", "maxProperties", "maxLength"):
            if isinstance(raw.get(bound), int):
                return int(raw[bound])
        elem = self.element().node
        smallest = 3 if elem is None or elem.type in ("string", "integer", "boolean") else 4
        return _MAX_REQUEST // smallest


class _Actual:
    """Sizes from the object being validated (evaluation)."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def child(self, name: str) -> _Actual:
        return _Actual([v[name] for v in self.values if isinstance(v, dict) and name in v])

    def element(self) -> _Actual:
        out: list[Any] = []
        for v in self.values:
            out.extend(v if isinstance(v, list) else v.values() if isinstance(v, dict) else ())
        return _Actual(out)

    def size(self) -> int:
        return max((len(v) for v in self.values if isinstance(v, str | list | dict)), default=0)


Shape = _Static | _Actual


def _shape(node: Any, root: Shape, env: dict[str, Shape]) -> Shape | None:
    """What a member expression refers to (self.a.b, x.c, self.m['k']), if it can be told."""
    if not isinstance(node, lark.Tree):
        return None
    if node.data == "primary" and node.children and isinstance(node.children[0], lark.Tree) \
            and node.children[0].data == "ident":
        name = str(node.children[0].children[0])
        return root if name in ("self", "oldSelf") else env.get(name)
    if node.data == "member_dot" and len(node.children) == 2:
        base = _shape(node.children[0], root, env)
        return base.child(str(node.children[1])) if base is not None else None
    if node.data == "member_index" and node.children:
        base = _shape(node.children[0], root, env)
        return base.element() if base is not None else None
    if len(node.children) == 1:
        return _shape(node.children[0], root, env)
    return None


def _cost(node: Any, root: Shape, env: dict[str, Shape]) -> int:
    if not isinstance(node, lark.Tree):
        return 1 if isinstance(node, lark.Token) and node.type not in ("IDENT",) else 0
    if node.data == "member_dot_arg" and len(node.children) >= 2:
        target, name = node.children[0], str(node.children[1])
        args = node.children[2] if len(node.children) > 2 else None
        base = _cost(target, root, env)
        shape = _shape(target, root, env)
        size = shape.size() if shape is not None else _MAX_REQUEST
        if name in _MACROS and isinstance(args, lark.Tree):
            exprs = [c for c in args.children if isinstance(c, lark.Tree)]
            var = next(iter(exprs[0].scan_values(lambda v: isinstance(v, lark.Token)
                                                 and v.type == "IDENT")), None) if exprs else None
            inner = dict(env)
            if var is not None:
                inner[str(var)] = shape.element() if shape is not None else _Static(None)
            body = sum(_cost(e, root, inner) for e in exprs[1:])
            return base + size * (body + 1) + 1
        extra = math.ceil(size * 0.1) if name in _STRING_FNS else 1
        return base + extra + (_cost(args, root, env) if args is not None else 0)
    kids = [_cost(c, root, env) for c in node.children]
    if node.data == "ident_arg" and node.children and str(node.children[0]) in ("size",):
        return 1 + sum(kids)
    return sum(kids) + (1 if len(node.children) > 1 else 0)


# --- evaluating --------------------------------------------------------------------------------

def _to_cel(value: Any, schema: Schema | None) -> Any:
    """A JSON value as a CEL value, typed by its schema (numbers as doubles)."""
    if isinstance(value, dict):
        return celtypes.MapType({celtypes.StringType(k): _to_cel(
            v, schema.child_of(k) if schema else None) for k, v in value.items()})
    if isinstance(value, list):
        return celtypes.ListType([_to_cel(v, schema.items if schema else None) for v in value])
    if schema is not None and schema.type == "number" and isinstance(value, int) \
            and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    return celpy.adapter.json_to_cel(value)


@dataclass
class _Budget:
    left: int = RUNTIME_BUDGET


def evaluate(schema: Schema, new: Any, old: Any, path: str = "") -> list[Cause]:
    """Every failing rule in ``new`` (``old`` is the stored object on an update, else None)."""
    out: list[Cause] = []
    _eval(schema, new, old, path, out, _Budget())
    return out


def _eval(schema: Schema, new: Any, old: Any, path: str, out: list[Cause],
          budget: _Budget) -> None:
    if new is None or budget.left < 0:
        return
    for compiled in schema.compiled_rules or ():
        if compiled.uses_old_self and old is None:
            continue  # transition rules only where there is an old value to compare with
        if not _check(compiled, schema, new, old, path, out, budget):
            return
    if isinstance(new, dict):
        for name, value in new.items():
            sub = schema.child_of(name)
            if sub is not None and (sub.compiled_rules or sub.any_rules()):
                prior = old.get(name) if isinstance(old, dict) else None
                _eval(sub, value, prior, child(path, name), out, budget)
    elif isinstance(new, list) and schema.items is not None and schema.items.any_rules():
        olds = _correlated(schema, new, old)
        for i, value in enumerate(new):
            _eval(schema.items, value, olds[i], index(path, i), out, budget)


def _correlated(schema: Schema, new: list[Any], old: Any) -> list[Any]:
    """The old element of each new one: by map keys for x-kubernetes-list-type map lists;
    nothing for other lists (not correlatable)."""
    if schema.list_type != "map" or not isinstance(old, list) or not schema.map_keys:
        return [None] * len(new)

    def k(v: Any) -> str:
        return json.dumps([v.get(n) for n in schema.map_keys] if isinstance(v, dict) else None)

    by_key = {k(v): v for v in old}
    return [by_key.get(k(v)) for v in new]


def _check(compiled: CompiledRule, schema: Schema, new: Any, old: Any, path: str,
           out: list[Cause], budget: _Budget) -> bool:
    """Run one rule; False when evaluation must stop (budget spent)."""
    rule = compiled.rule
    shown = str(rule.get("message") or "").strip() or str(rule.get("rule") or "").strip()
    typ = schema.type or "object"
    cost = _cost(compiled.tree, _Actual([new]), {})
    budget.left -= cost
    if cost > PER_CALL_LIMIT:
        out.append(invalid(path, typ, "'operation cancelled: actual cost limit exceeded': no "
                                      "further validation rules will be run due to call cost "
                                      f"exceeds limit for rule: {shown}"))
        return False
    if budget.left < 0:
        out.append(invalid(path, typ, "validation failed due to running out of cost budget, "
                                      "no further validation rules will be run"))
        return False
    activation = {"self": _to_cel(new, schema)}
    if compiled.uses_old_self:
        activation["oldSelf"] = _to_cel(old, schema)
    try:
        result = compiled.program.evaluate(activation)
    except CELEvalError as e:
        reason = e.args[0] if e.args else str(e)
        out.append(invalid(path, typ, f"{reason} evaluating rule: {shown}"))
        return True
    if result is True or (isinstance(result, celtypes.BoolType) and bool(result)):
        return True
    if not isinstance(result, bool | celtypes.BoolType):
        out.append(invalid(path, typ, f"rule did not evaluate to a boolean: {shown}"))
        return True
    detail = str(rule.get("message") or "").strip() or f"failed rule: {shown}"
    if compiled.message is not None:
        try:
            text = str(compiled.message.evaluate(activation)).strip()
            if text and "\n" not in text:
                detail = text
        except CELEvalError:
            pass
    where = path + _field_path(str(rule.get("fieldPath") or ""))
    out.append(_error(where, new if typ not in ("object", "array") else None, detail,
                      rule.get("reason")))
    return True


def _field_path(relative: str) -> str:
    """``.spec.x`` or ``['a.b']`` relative to the rule's node, as a field path suffix."""
    if not relative:
        return ""
    out = ""
    for part in relative.replace("['", ".[").split("."):
        if part.startswith("[") and part.endswith("']"):
            out += f"[{part[1:-2]}]"
        elif part:
            out += "." + part
    return out


def _error(path: str, value: Any, detail: str, reason: Any) -> Cause:
    if reason == "FieldValueForbidden":
        return forbidden(path, detail)
    if reason == "FieldValueRequired":
        return required(path, detail)
    if reason == "FieldValueDuplicate":
        return duplicate(path, value)
    if value is None:
        return Cause("FieldValueInvalid", f"Invalid value: {detail}", path)
    return invalid(path, value, detail)


# --- the Kubernetes CEL libraries (the common part) --------------------------------------------

def _str(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any) -> Any:
        out = fn(*args)
        if isinstance(out, bool):
            return celtypes.BoolType(out)
        if isinstance(out, int):
            return celtypes.IntType(out)
        if isinstance(out, list):
            return celtypes.ListType([celtypes.StringType(s) if isinstance(s, str) else s
                                      for s in out])
        return celtypes.StringType(out) if isinstance(out, str) else out
    return wrapped


def _substring(s: Any, start: Any, end: Any = None) -> str:
    text = str(s)
    return text[int(start):] if end is None else text[int(start):int(end)]


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lowerAscii": _str(lambda s: str(s).lower()),
    "upperAscii": _str(lambda s: str(s).upper()),
    "trim": _str(lambda s: str(s).strip()),
    "split": _str(lambda s, sep: str(s).split(str(sep))),
    "join": _str(lambda items, sep="": str(sep).join(str(i) for i in items)),
    "replace": _str(lambda s, a, b: str(s).replace(str(a), str(b))),
    "indexOf": _str(lambda s, sub: str(s).find(str(sub)) if isinstance(s, str)
                    else next((i for i, v in enumerate(s) if v == sub), -1)),
    "lastIndexOf": _str(lambda s, sub: str(s).rfind(str(sub))),
    "substring": _str(_substring),
    "charAt": _str(lambda s, i: str(s)[int(i)] if int(i) < len(str(s)) else ""),
    "isSorted": _str(lambda items: list(items) == sorted(items)),
    "sum": lambda items: sum(items[1:], items[0]) if items else celtypes.IntType(0),
    "min": lambda items: min(items),
    "max": lambda items: max(items),
}
