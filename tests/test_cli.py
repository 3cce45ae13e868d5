"""The ``ketch`` command line: parser wiring, and clear errors without a cluster.

No replica is started here (tests/test_store_cluster.py does that); the launcher's bookkeeping
that needs no process (layout, pid-file safety) is checked too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ketch.cli import build_parser, main
from store.launch import ClusterError, LocalCluster, ephemeral_port_range, free_ports

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--help"], id="ketch"),
        pytest.param(["store", "--help"], id="store"),
        pytest.param(["store", "lease", "--help"], id="store-lease"),
        pytest.param(["store", "get", "--help"], id="store-get"),
        pytest.param(["certs", "--help"], id="certs"),
    ],
)
def test_help_exits_zero(argv: list[str], capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "usage: ketch" in capsys.readouterr().out


def test_top_level_help_lists_the_components(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("certs", "store"):
        assert command in out


def test_python_dash_m_ketch_runs():
    r = subprocess.run([sys.executable, "-m", "ketch", "store", "--help"], cwd=ROOT, check=False,
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert "watch" in r.stdout and "member" in r.stdout


def test_a_group_without_a_subcommand_shows_help(capsys: pytest.CaptureFixture[str]):
    assert main(["store"]) == 2
    assert main(["store", "lease"]) == 2
    assert "grant" in capsys.readouterr().err
    assert main([]) == 2


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["store", "status"], id="status"),
        pytest.param(["store", "down"], id="down"),
        pytest.param(["store", "put", "k", "v"], id="put"),
        pytest.param(["store", "get", "k", "--prefix", "--json"], id="get"),
        pytest.param(["store", "del", "k"], id="del"),
        pytest.param(["store", "watch", "k", "--rev", "3"], id="watch"),
        pytest.param(["store", "lease", "grant", "10"], id="lease-grant"),
        pytest.param(["store", "lease", "keepalive", "0x1f"], id="lease-keepalive"),
        pytest.param(["store", "compact", "5"], id="compact"),
        pytest.param(["store", "member", "list"], id="member-list"),
    ],
)
def test_a_missing_cluster_is_a_clear_error(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    missing = tmp_path / "nope"
    assert main([*argv, "--dir", str(missing)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: no cluster in {missing}: run `ketch store up --dir {missing}`"
    assert not missing.exists()  # only `up` creates anything


def test_arguments_reach_the_namespace():
    args = build_parser().parse_args(
        ["store", "get", "--dir", "d", "foo", "--prefix", "--rev", "7", "--limit", "2",
         "--serializable"])
    assert (args.key, args.prefix, args.rev, args.limit, args.serializable) == \
        ("foo", True, 7, 2, True)
    assert callable(args.func)
    assert build_parser().parse_args(["store", "lease", "revoke", "--dir", "d", "0x10"]).id == 16
    up = ["store", "up", "--dir", "d"]
    assert [build_parser().parse_args(up + extra).fsync
            for extra in ([], ["--no-fsync"], ["--fsync"])] == [None, False, True]


def test_a_bad_integer_is_a_usage_error(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as info:
        main(["store", "lease", "revoke", "--dir", "d", "ten"])
    assert info.value.code == 2
    assert "not an integer" in capsys.readouterr().err


# --- launcher bookkeeping, no processes ----------------------------------------------------------


def test_layout_uses_base_port_and_is_kept(tmp_path: Path):
    c = LocalCluster(tmp_path, replicas=3, base_port=40100)
    c._create_layout()
    assert [m.client for m in c.members] == [
        "https://127.0.0.1:40100", "https://127.0.0.1:40102", "https://127.0.0.1:40104"]
    assert c.members[0].raft == "127.0.0.1:40101"
    again = LocalCluster(tmp_path)  # a later command reads cluster.json
    assert again.client_urls == c.client_urls and again.names == ["s1", "s2", "s3"]
    assert json.loads((tmp_path / "cluster.json").read_text())["fsync"] is True


def test_free_ports_are_distinct(tmp_path: Path):
    c = LocalCluster(tmp_path, replicas=5)
    c._create_layout()
    ports = [int(u.rsplit(":", 1)[1]) for u in c.client_urls]
    ports += [int(m.raft.rsplit(":", 1)[1]) for m in c.members]
    assert len(set(ports)) == 10


def test_free_ports_lie_outside_the_range_outgoing_connections_take_source_ports_from():
    # A component restarted on its old port failed with EADDRINUSE: the port had come from
    # bind(0), and a client connection had since taken it as its source port.
    lo, hi = ephemeral_port_range()
    ports = free_ports("127.0.0.1", 50)
    assert len(set(ports)) == 50
    assert not [p for p in ports if lo <= p <= hi]


def test_a_pid_file_naming_someone_elses_process_is_ignored(tmp_path: Path):
    c = LocalCluster(tmp_path, base_port=40200)
    c._create_layout()
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "replica.pid").write_text(f"{os.getpid()}\n")  # alive, not a replica
    (tmp_path / "s2").mkdir()
    (tmp_path / "s2" / "replica.pid").write_text("not a pid\n")
    assert c.pid("s1") is None and c.pid("s2") is None and c.pid("s3") is None
    with pytest.raises(ClusterError, match="s1 is not running"):
        c.kill("s1")


def test_unknown_replica_and_wrong_size_are_refused(tmp_path: Path):
    c = LocalCluster(tmp_path, base_port=40300)
    c._create_layout()
    with pytest.raises(ClusterError, match="no replica 's9'"):
        c.start("s9")
    with pytest.raises(ClusterError, match="has 3 replicas, not 5"):
        LocalCluster(tmp_path, replicas=5).up(progress=lambda _: None)
