"""A stranger who reaches a Raft port and sends bytes executes nothing.

pysyncobj unpickles every frame it accepts; ketch always sets the cluster's Raft secret, so a
frame must carry a valid MAC (Fernet, keyed from the secret) before it is unpickled.  These
tests send real frames, in pysyncobj's framing, to a real replica's Raft port.
"""

from __future__ import annotations

import pickle
import socket
import struct
import time
import zlib
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from store.launch import LocalCluster
from tests.conftest import wait_for_leader

pytestmark = pytest.mark.integration


class _Exploit:
    """Unpickling this creates a file: proof of code execution if it ever runs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _frame(payload: bytes) -> bytes:
    return struct.pack("i", len(payload)) + payload


def _send_and_wait_close(addr: str, frames: list[bytes], timeout: float = 10.0) -> bool:
    """Send the frames; True if the replica closed the connection (it should)."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        for f in frames:
            try:
                s.sendall(f)
            except (BrokenPipeError, ConnectionResetError):
                return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if s.recv(65536) == b"":
                    return True
            except (ConnectionResetError, TimeoutError):
                return True
    return False


def test_a_stranger_on_the_raft_port_executes_nothing(cluster: LocalCluster, tmp_path: Path):
    marker = tmp_path / "pwned"
    plain = zlib.compress(pickle.dumps(_Exploit(marker)), 3)
    wrong_key = Fernet(Fernet.generate_key()).encrypt(plain)
    utility = zlib.compress(pickle.dumps(["status"]), 3)
    leader = wait_for_leader(cluster)
    for m in cluster.members:
        for frames in ([_frame(plain)], [_frame(wrong_key)], [_frame(utility)],
                       [_frame(b"\x00" * 64), _frame(plain)]):
            assert _send_and_wait_close(m.raft, frames), f"{m.name} kept the connection open"
    assert not marker.exists(), "a pickled payload from a stranger was executed"
    # The replicas are unharmed: the same leader still serves, every member still runs.
    assert wait_for_leader(cluster) == leader
    assert all(cluster.pid(n) is not None for n in cluster.names)
