"""ServiceAccount: every pod runs as an existing ServiceAccount and, unless it opts out, gets
that account's API credentials as a projected volume.

Mutating, on pod create: default ``spec.serviceAccountName`` (and its deprecated alias
``spec.serviceAccount``) to ``default``; reject a pod whose account does not exist; add the
``kube-api-access-<suffix>`` projected volume (token, cluster CA, namespace) mounted read-only
at ``/var/run/secrets/kubernetes.io/serviceaccount`` in every init and app container that has
nothing mounted there; copy the account's ``imagePullSecrets`` when the pod names none.
Validating: the account exists; an account annotated ``kubernetes.io/enforce-mountable-secrets``
limits the Secrets its pods use.  Mirror pods are never changed and may reference no service
account, Secret or token projection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from control.apiserver.admission.podrefs import containers_of, secret_names
from control.apiserver.admission.request import (
    CREATE,
    UPDATE,
    AdmissionRequest,
    ClusterView,
    forbidden,
)

__all__ = [
    "DEFAULT_SERVICE_ACCOUNT",
    "ENFORCE_MOUNTABLE_SECRETS",
    "MIRROR_POD_ANNOTATION",
    "TOKEN_MOUNT_PATH",
    "TOKEN_VOLUME_PREFIX",
    "ServiceAccount",
    "token_volume",
]

DEFAULT_SERVICE_ACCOUNT = "default"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
ENFORCE_MOUNTABLE_SECRETS = "kubernetes.io/enforce-mountable-secrets"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
TOKEN_EXPIRATION_SECONDS = 3607
_NOT_REFERENCED = "is not allowed because service account {} does not reference that secret"


def token_volume(name: str) -> dict[str, Any]:
    """The projected volume holding a pod's API credentials (mode 0644)."""
    return {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                                         "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt",
                               "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                                            "fieldRef": {"apiVersion": "v1",
                                                         "fieldPath": "metadata.namespace"}}]}},
            ],
            "defaultMode": 0o644,
        },
    }


class ServiceAccount:
    """``random_suffix`` names a new token volume (five characters, like generateName)."""

    name = "ServiceAccount"

    def __init__(self, *, random_suffix: Callable[[], str]) -> None:
        self._random_suffix = random_suffix

    async def admit(self, req: AdmissionRequest, view: ClusterView) -> None:
        if not _is_pod(req) or req.subresource or req.operation != CREATE or req.obj is None:
            return
        pod = req.obj
        if _is_mirror(pod):
            _check_mirror(req, pod)
            return
        spec = pod.setdefault("spec", {})
        account_name = (spec.get("serviceAccountName") or spec.get("serviceAccount")
                        or DEFAULT_SERVICE_ACCOUNT)
        spec["serviceAccountName"] = spec["serviceAccount"] = account_name
        account = _lookup(req, view, account_name)
        if _should_automount(account, pod):
            self._mount_token(pod)
        if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": ref.get("name", "")}
                                        for ref in account["imagePullSecrets"]]

    async def validate(self, req: AdmissionRequest, view: ClusterView) -> None:
        if not _is_pod(req) or req.obj is None:
            return
        pod = req.obj
        if req.operation == UPDATE and req.subresource == "ephemeralcontainers":
            spec = pod.get("spec") or {}
            account_name = spec.get("serviceAccountName") or spec.get("serviceAccount")
            account = view.get("", "serviceaccounts", req.namespace, account_name or "")
            if account is not None and _enforces_mountable(account):
                _check_env_secrets(req, pod, account, ("ephemeral container",))
            return
        if req.subresource or req.operation != CREATE:
            return
        if _is_mirror(pod):
            _check_mirror(req, pod)
            return
        spec = pod.get("spec") or {}
        account_name = spec.get("serviceAccountName") or spec.get("serviceAccount")
        if not account_name:
            pod_name = (pod.get("metadata") or {}).get("name", "")
            raise forbidden(req, f"no service account specified for pod {req.namespace}/{pod_name}")
        account = _lookup(req, view, account_name)
        if _enforces_mountable(account):
            _check_secret_references(req, pod, account)

    def _mount_token(self, pod: dict[str, Any]) -> None:
        spec = pod["spec"]
        volumes = spec.get("volumes") or []
        existing = next((v["name"] for v in volumes
                         if str(v.get("name", "")).startswith(TOKEN_VOLUME_PREFIX)), None)
        volume_name = existing or TOKEN_VOLUME_PREFIX + self._random_suffix()
        needed = False
        for field in ("initContainers", "containers"):
            for container in spec.get(field) or []:
                mounts = container.get("volumeMounts") or []
                if any(m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                    continue
                mounts.append({"name": volume_name, "readOnly": True,
                               "mountPath": TOKEN_MOUNT_PATH})
                container["volumeMounts"] = mounts
                needed = True
        if needed and existing is None:
            spec["volumes"] = [*volumes, token_volume(volume_name)]


def _is_pod(req: AdmissionRequest) -> bool:
    return req.group == "" and req.resource == "pods"


def _is_mirror(pod: dict[str, Any]) -> bool:
    return MIRROR_POD_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {})


def _lookup(req: AdmissionRequest, view: ClusterView, name: str) -> dict[str, Any]:
    account = view.get("", "serviceaccounts", req.namespace, name)
    if account is None:
        raise forbidden(req, f"error looking up service account {req.namespace}/{name}: "
                             f'serviceaccount "{name}" not found')
    return account


def _should_automount(account: dict[str, Any], pod: dict[str, Any]) -> bool:
    """The pod's explicit choice wins, then the account's; the default is to mount."""
    for choice in ((pod.get("spec") or {}).get("automountServiceAccountToken"),
                   account.get("automountServiceAccountToken")):
        if choice is not None:
            return bool(choice)
    return True


def _enforces_mountable(account: dict[str, Any]) -> bool:
    annotations = (account.get("metadata") or {}).get("annotations") or {}
    return annotations.get(ENFORCE_MOUNTABLE_SECRETS) == "true"


def _check_mirror(req: AdmissionRequest, pod: dict[str, Any]) -> None:
    spec = pod.get("spec") or {}
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        raise forbidden(req, "a mirror pod may not reference service accounts")
    if secret_names(pod):
        raise forbidden(req, "a mirror pod may not reference secrets")
    for volume in spec.get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get("serviceAccountToken") is not None:
                raise forbidden(
                    req, "a mirror pod may not use ServiceAccountToken volume projections")


def _check_secret_references(req: AdmissionRequest, pod: dict[str, Any],
                             account: dict[str, Any]) -> None:
    allowed = {str(s.get("name", "")) for s in account.get("secrets") or []}
    who = account["metadata"]["name"]
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        secret = volume.get("secret")
        if isinstance(secret, dict) and secret.get("secretName", "") not in allowed:
            raise forbidden(req, f'volume with secret.secretName="{secret.get("secretName", "")}" '
                                 + _NOT_REFERENCED.format(who))
    _check_env_secrets(req, pod, account, ("init container", "container"))
    pulls = {str(s.get("name", "")) for s in account.get("imagePullSecrets") or []}
    for i, ref in enumerate((pod.get("spec") or {}).get("imagePullSecrets") or []):
        if ref.get("name", "") not in pulls:
            raise forbidden(req, f'imagePullSecrets[{i}].name="{ref.get("name", "")}" is not '
                                 f"allowed because service account {who} does not reference "
                                 "that imagePullSecret")


def _check_env_secrets(req: AdmissionRequest, pod: dict[str, Any], account: dict[str, Any],
                       kinds: tuple[str, ...]) -> None:
    allowed = {str(s.get("name", "")) for s in account.get("secrets") or []}
    rule = _NOT_REFERENCED.format(account["metadata"]["name"])
    for kind, container in containers_of(pod):
        if kind not in kinds:
            continue
        who = f"{kind} {container.get('name', '')}"
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if isinstance(ref, dict) and ref.get("name", "") not in allowed:
                raise forbidden(req, f"{who} with envVar {env.get('name', '')} referencing "
                                     f'secret.secretName="{ref.get("name", "")}" {rule}')
        for env_from in container.get("envFrom") or []:
            ref = env_from.get("secretRef")
            if isinstance(ref, dict) and ref.get("name", "") not in allowed:
                raise forbidden(req, f"{who} with envFrom referencing "
                                     f'secret.secretName="{ref.get("name", "")}" {rule}')

