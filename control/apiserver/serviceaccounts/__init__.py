"""Service accounts' credentials: bound tokens (TokenRequest), their signing and checking, and
the issuer's discovery documents."""
