"""Compact JWS (JWT) with ES256 over the cluster's service-account key (``certs/sa.key``), and
the key's JWK for the JWKS document.  Pure functions over ``cryptography`` keys.

The key id is what kube-apiserver derives from the public key: the unpadded base64url SHA-256
of its DER SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = ["InvalidToken", "jwk", "key_id", "sign", "verify"]

_ALG = "ES256"
_SIZE = 32  # P-256 coordinates and signature halves


class InvalidToken(Exception):
    """Not a JWT we signed (malformed, another algorithm or key, a bad signature)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as e:
        raise InvalidToken(f"malformed base64url: {e}") from None


def key_id(public: ec.EllipticCurvePublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


def jwk(public: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public.public_numbers()
    return {"use": "sig", "kty": "EC", "kid": key_id(public), "crv": "P-256", "alg": _ALG,
            "x": _b64(numbers.x.to_bytes(_SIZE, "big")),
            "y": _b64(numbers.y.to_bytes(_SIZE, "big"))}


def sign(claims: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    header = {"alg": _ALG, "kid": key_id(key.public_key())}
    signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + _b64(json.dumps(claims, separators=(",", ":")).encode()))
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return signing_input + "." + _b64(r.to_bytes(_SIZE, "big") + s.to_bytes(_SIZE, "big"))


def verify(token: str, public: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The claims of ``token`` if ``public`` signed it with ES256; InvalidToken otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a compact JWS")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        raise InvalidToken("malformed header or claims") from None
    if not isinstance(header, dict) or header.get("alg") != _ALG or not isinstance(claims, dict):
        raise InvalidToken("unexpected algorithm")
    raw = _unb64(parts[2])
    if len(raw) != 2 * _SIZE:
        raise InvalidToken("malformed signature")
    der = encode_dss_signature(int.from_bytes(raw[:_SIZE], "big"),
                               int.from_bytes(raw[_SIZE:], "big"))
    try:
        public.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise InvalidToken("signature does not verify") from None
    return claims
