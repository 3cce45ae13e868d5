"""ketch's PKI: one cluster CA, a certificate per component and user, mutual TLS everywhere.

``authority`` creates the CA and issues and verifies certificates (no files); ``pairs`` keeps or
adds certificate pairs on disk safely; ``layout`` says which files a cluster has and makes them
exist (:func:`init_cluster_certs`, :func:`issue_user`); ``tls`` builds the ssl contexts every
server and client uses; ``cli`` is ``ketch certs``.  This package imports nothing else of ketch.
"""

from __future__ import annotations

from .authority import (
    CA,
    CertInfo,
    CertsError,
    create_ca,
    days_left,
    describe,
    issue,
    load_ca,
    load_cert,
    verify_issued_by,
)
from .layout import (
    COMPONENTS,
    CertPaths,
    FileResult,
    Identity,
    Report,
    admin_paths,
    apiserver_kubelet_client_paths,
    apiserver_store_client_paths,
    ca_paths,
    identity_paths,
    init_cluster_certs,
    issue_user,
    raft_secret,
    raft_secret_path,
    store_client_paths,
    store_replica_paths,
    user_paths,
)
from .tls import client_context, peer_identity, server_context

__all__ = [
    "CA",
    "COMPONENTS",
    "CertInfo",
    "CertPaths",
    "CertsError",
    "FileResult",
    "Identity",
    "Report",
    "admin_paths",
    "apiserver_kubelet_client_paths",
    "apiserver_store_client_paths",
    "ca_paths",
    "client_context",
    "create_ca",
    "days_left",
    "describe",
    "identity_paths",
    "init_cluster_certs",
    "issue",
    "issue_user",
    "load_ca",
    "load_cert",
    "peer_identity",
    "raft_secret",
    "raft_secret_path",
    "server_context",
    "store_client_paths",
    "store_replica_paths",
    "user_paths",
    "verify_issued_by",
]
