"""``/openapi/v2``: the Swagger 2.0 document kubectl's client-side validator downloads, in
the protobuf form it asks for (gnostic ``openapi_v2.Document``) or as JSON.

It is deliberately empty of definitions.  kubectl validates a manifest on the server when the
kind's ``/openapi/v3`` PATCH operation lists ``fieldValidation`` (every kind ketch serves,
custom resources included); only for a kind the server does not know does it fall back to
this document, and a kind with no definition here passes on to the RESTMapper, which says what
Kubernetes says: ``no matches for kind "X" in version "g/v" … ensure CRDs are installed
first``.  Without the document (a 404) kubectl stops earlier with the misleading ``error
validating data: the server could not find the requested resource``.
"""

from __future__ import annotations

import json

from control.apiserver.openapi import KUBERNETES_VERSION

__all__ = ["PROTOBUF_TYPE", "v2_document"]

#: kube-apiserver's Content-Type for the protobuf document (kubectl asks with ``…v2@v1.0…``).
PROTOBUF_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (short payloads only: one-byte lengths)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def _protobuf() -> bytes:
    info = _field(1, b"Kubernetes") + _field(2, KUBERNETES_VERSION.encode())
    # Document: swagger = 1, info = 2, paths = 8 (empty), definitions = 9 (empty)
    return _field(1, b"2.0") + _field(2, info) + _field(8, b"") + _field(9, b"")


def v2_document(accept: str) -> tuple[bytes, str]:
    """The body and Content-Type for a request with this ``Accept`` header."""
    if "protobuf" in accept:
        return _protobuf(), PROTOBUF_TYPE
    doc = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
           "paths": {}, "definitions": {}}
    return json.dumps(doc, separators=(",", ":")).encode(), "application/json"
