"""Names in the OpenAPI documents: schema names, ``$ref`` strings and operationId parts.

Schema names follow Kubernetes' Go package paths (``io.k8s.api.apps.v1.Deployment``,
``io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta``) because kubectl and other clients carry
those names in caches and error messages; the protobuf tables name the same messages
``apps.v1.Deployment`` and ``meta.v1.ObjectMeta``.
"""

from __future__ import annotations

__all__ = [
    "SCHEMA_PREFIX",
    "api_package",
    "operation_group",
    "ref",
    "schema_name",
]

SCHEMA_PREFIX = "#/components/schemas/"

# Protobuf packages that live in k8s.io/apimachinery rather than k8s.io/api.
_APIMACHINERY: dict[str, str] = {
    "meta.v1": "io.k8s.apimachinery.pkg.apis.meta.v1",
    "intstr": "io.k8s.apimachinery.pkg.util.intstr",
    "resource": "io.k8s.apimachinery.pkg.api.resource",
    "runtime": "io.k8s.apimachinery.pkg.runtime",
}


def schema_name(message: str) -> str:
    """``apps.v1.Deployment`` -> ``io.k8s.api.apps.v1.Deployment`` (apimachinery types too)."""
    package, _, type_name = message.rpartition(".")
    prefix = _APIMACHINERY.get(package, f"io.k8s.api.{package}")
    return f"{prefix}.{type_name}"


def ref(name: str) -> dict[str, str]:
    """A ``$ref`` object pointing at the component schema ``name``."""
    return {"$ref": SCHEMA_PREFIX + name}


def api_package(group: str, version: str) -> str:
    """The k8s.io/api package of a group version, as the protobuf tables spell it.

    ``("", "v1")`` -> ``core.v1``; ``("rbac.authorization.k8s.io", "v1")`` -> ``rbac.v1``.
    """
    if not group:
        return f"core.{version}"
    short = group.removesuffix(".k8s.io").split(".")[0]
    return f"{short}.{version}"


def operation_group(group: str, version: str) -> str:
    """The group-version part of an operationId: ``CoreV1``, ``AppsV1``, ``RbacAuthorizationV1``."""
    if not group:
        words = ["core"]
    else:
        words = group.removesuffix(".k8s.io").split(".")
    return "".join(w[:1].upper() + w[1:] for w in words) + version[:1].upper() + version[1:]
