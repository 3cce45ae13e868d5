"""Decoding of Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``).

kubectl's typed clients POST built-in kinds as protobuf and never fall back to JSON, so the
apiserver's decode stage turns such a body into the JSON object it stands for with
`decode_request` (or `decode_request_full`, which also reports unknown fields for strict
field validation). Failures are `ProtobufError`; ``unsupported_kind`` marks 415 cases.
The schema tables are checked for consistency when this package is imported.
"""

from __future__ import annotations

from control.api.kinds.schema import KINDS, MESSAGES, supported_kinds, validate_schema
from control.apiserver.protobuf.decode import (
    MAGIC,
    PROTOBUF_CONTENT_TYPE,
    DecodedRequest,
    Envelope,
    decode_message,
    decode_request,
    decode_request_full,
    read_envelope,
)
from control.apiserver.protobuf.wire import MAX_BODY_BYTES, MAX_DEPTH, ProtobufError

validate_schema()

__all__ = [
    "KINDS",
    "MAGIC",
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MESSAGES",
    "PROTOBUF_CONTENT_TYPE",
    "DecodedRequest",
    "Envelope",
    "ProtobufError",
    "decode_message",
    "decode_request",
    "decode_request_full",
    "read_envelope",
    "supported_kinds",
]
