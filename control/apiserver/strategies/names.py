"""Name and key formats (apimachinery ``util/validation``): each check returns the list of
problems with a value, empty when it is valid, worded as Kubernetes words them so the caller
can wrap each in an ``Invalid value`` cause.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from control.api.selectors import SelectorError, validate_label_key, validate_label_value

__all__ = [
    "NAME_RULES",
    "config_key",
    "dns1035_label",
    "dns1123_label",
    "dns1123_subdomain",
    "env_var_name",
    "label_value",
    "path_segment",
    "port_name",
    "qualified_name",
]

_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})*"
_DNS1035 = "[a-z]([-a-z0-9]*[a-z0-9])?"
_CONFIG_KEY = "[-._a-zA-Z0-9]+"
_ENV_VAR = "[-._a-zA-Z][-._a-zA-Z0-9]*"

_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    f"used for validation is '{_LABEL}')"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    f"used for validation is '{_SUBDOMAIN}')"
)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    f"'abc-123', regex used for validation is '{_DNS1035}')"
)
_CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
    f"'{_CONFIG_KEY}')"
)
_ENV_VAR_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
    "or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
    f"'MyEnvName1', regex used for validation is '{_ENV_VAR}')"
)


def _too_long(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters"] if len(value) > limit else []


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def dns1123_label(value: str) -> list[str]:
    """Namespaces, container and port names."""
    return _too_long(value, 63) + ([] if _matches(_LABEL, value) else [_LABEL_MSG])


def dns1123_subdomain(value: str) -> list[str]:
    """Most object names."""
    return _too_long(value, 253) + ([] if _matches(_SUBDOMAIN, value) else [_SUBDOMAIN_MSG])


def dns1035_label(value: str) -> list[str]:
    """Service names (they become DNS labels and environment variable prefixes)."""
    return _too_long(value, 63) + ([] if _matches(_DNS1035, value) else [_DNS1035_MSG])


def path_segment(value: str) -> list[str]:
    """RBAC names: anything that can be one segment of a URL path."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


#: ``name_rule`` → check, for :func:`control.apiserver.strategies.meta.validate_object_meta`.
NAME_RULES: dict[str, Callable[[str], list[str]]] = {
    "subdomain": dns1123_subdomain,
    "label": dns1123_label,
    "dns1035": dns1035_label,
    "path": path_segment,
}


def _selector_problem(exc: SelectorError, value: str) -> str:
    """The detail of a selectors error (``...: Invalid value: "<v>": <detail>``)."""
    text = str(exc)
    marker = f'"{value}": '
    return text.split(marker, 1)[1] if marker in text else text


def qualified_name(value: str) -> list[str]:
    """Label keys, annotation keys, finalizers: ``[dns-subdomain/]name``."""
    try:
        validate_label_key(value)
    except SelectorError as exc:
        return [_selector_problem(exc, value)]
    return []


def label_value(value: str) -> list[str]:
    try:
        validate_label_value("", value)
    except SelectorError as exc:
        return [_selector_problem(exc, value)]
    return []


def config_key(value: str) -> list[str]:
    """ConfigMap and Secret data keys (they become file names)."""
    errs = _too_long(value, 253)
    if not _matches(_CONFIG_KEY, value):
        errs.append(_CONFIG_KEY_MSG)
    if value in (".", ".."):
        errs.append(f"must not be '{value}'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def env_var_name(value: str) -> list[str]:
    return [] if _matches(_ENV_VAR, value) else [_ENV_VAR_MSG]


def port_name(value: str) -> list[str]:
    """An IANA service name (container and service port names)."""
    errs = _too_long(value, 15)
    if not _matches("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs
