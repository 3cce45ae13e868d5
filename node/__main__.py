"""``python -m node --kubeconfig F --name N --dir D --address A``: one node agent process
(``ketch node`` runs the same).

Identity: the kubeconfig's client certificate, ``system:node:NAME`` in ``system:nodes``
(``ketch certs node NAME --address A`` issues it and the streaming server's serving pair).
The streaming server listens on ``ADDRESS:--streaming-port`` (kubelet's 10250 by default; 0:
any free port, published in the Node's status) and lets only the apiserver in.  ``--listen``
serves /metrics, /healthz and /readyz over HTTPS with the same serving pair (any client
certificate from the cluster CA).  SIGTERM stops it: its pods are terminated gracefully and
reported Failed (the kubelet's graceful node shutdown), or left running for the next agent with
``--keep-pods-on-exit``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from certs.authority import CertsError
from certs.layout import CertPaths
from control.api import sabotage
from control.api.quantity import QuantityError, parse_quantity
from control.client import ClientConfig
from control.client.health import health_app, serve_health
from control.client.process import configure_logging, run_main, stop_event
from node.streaming import serving_context

from .agent import NodeAgent
from .clients import agent_clients
from .config import KUBELET_VERSION, AgentConfig, positive_seconds
from .hollow_cli import add_hollow_arguments, run_hollow
from .metrics import agent_registry
from .pods import worker
from .registration import RegistrationError

__all__ = ["add_arguments", "config_of", "main", "run"]

log = logging.getLogger("ketch.node")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", required=True, help="kubeconfig with this node's identity")
    p.add_argument("--name", required=True, help="the Node's name")
    p.add_argument("--dir", required=True, help="the agent's state directory (runtime, logs)")
    p.add_argument("--address", default="127.0.0.1",
                   help="the node's InternalIP: streaming server and NodePorts listen here")
    p.add_argument("--server", action="append", default=[],
                   help="another apiserver URL to fail over to (repeatable)")
    p.add_argument("--streaming-port", type=int, default=10250,
                   help="the streaming server's port on --address (0: any free port)")
    p.add_argument("--streaming-advertise-port", type=int, default=0,
                   help="publish this port for the streaming server in the Node's status (a "
                        "proxy's in front of it; 0: the port it listens on)")
    p.add_argument("--serving-cert", default="", help="the streaming server's certificate")
    p.add_argument("--serving-key", default="")
    p.add_argument("--ca", default="", help="CA of client certificates (default: the "
                   "kubeconfig's cluster CA)")
    p.add_argument("--listen", default="", help="HOST:PORT for /metrics, /healthz, /readyz")
    p.add_argument("--node-labels", default="", help="extra labels, k=v,k2=v2")
    p.add_argument("--pod-cidr", default="",
                   help="pod CIDR to use if the controller-manager assigns none in time")
    p.add_argument("--pod-cidr-wait", type=float, default=10.0)
    p.add_argument("--lease-duration", type=int, default=40,
                   help="seconds; renewed every quarter of it")
    p.add_argument("--node-status-update", type=float, default=300.0,
                   help="post the node status at least this often (seconds)")
    p.add_argument("--node-status-compute", type=float, default=10.0,
                   help="compute the node status this often (seconds)")
    p.add_argument("--sync-frequency", type=float, default=60.0,
                   help="seconds between a pod worker's periodic syncs (the kubelet's "
                        "--sync-frequency; changes and runtime events sync at once)")
    p.add_argument("--shutdown-grace", type=float, default=30.0,
                   help="on SIGTERM, give pods at most this many seconds to stop")
    p.add_argument("--keep-pods-on-exit", action="store_true",
                   help="on SIGTERM, leave pods running (a new agent re-adopts them)")
    for res in ("cpu", "memory", "ephemeral-storage"):
        p.add_argument(f"--{res}", default="", help=f"report this {res} capacity")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--image", action="append", default=[], metavar="NAME=COMMAND",
                   help="an image catalog entry: NAME runs COMMAND (split on spaces)")
    p.add_argument("--images-file", default="",
                   help="YAML/JSON mapping of image name to command list or "
                        "{command, args, env, workingDir, ports}")
    p.add_argument("--crash-loop-backoff-cap", type=float, default=300.0)
    p.add_argument("--no-service-proxy", action="store_true")
    p.add_argument("--kube-api-qps", type=float, default=0,
                   help="client requests per second (0: unlimited; kubelet: 50)")
    p.add_argument("--kube-api-burst", type=int, default=0)
    p.add_argument("--run-record", default="",
                   help="append a JSON line per container start and exit to this file (what "
                        "really ran, for chaos runs)")
    p.add_argument("--sabotage", choices=sabotage.KINDS["node"],
                   help="run deliberately broken (chaos proofs; needs KETCH_ALLOW_SABOTAGE=1)")
    p.add_argument("--log-level", default="INFO")
    add_hollow_arguments(p)


def _labels(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        k, eq, v = item.partition("=")
        if not eq:
            raise ValueError(f"--node-labels: {item!r} is not key=value")
        out[k] = v
    return out


def _images(args: argparse.Namespace) -> dict[str, Any]:
    images: dict[str, Any] = {}
    if args.images_file:
        loaded = yaml.safe_load(Path(args.images_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.images_file}: expected a mapping of image to command")
        images.update(loaded)
    for item in args.image:
        name, eq, command = item.partition("=")
        if not eq or not command.split():
            raise ValueError(f"--image {item!r}: expected NAME=COMMAND")
        images[name] = command.split()
    return images


def config_of(args: argparse.Namespace) -> AgentConfig:
    """The agent's settings from its flags; ValueError naming a bad one."""
    capacity = {}
    for res in ("cpu", "memory", "ephemeral-storage"):
        value = getattr(args, res.replace("-", "_"))
        if value:
            try:
                parse_quantity(value)
            except QuantityError as e:
                raise ValueError(f"--{res} {value!r}: {e}") from None
            capacity[res] = value
    return AgentConfig(
        name=args.name, dir=str(Path(args.dir).resolve()), address=args.address,
        streaming_port=args.streaming_port, labels=_labels(args.node_labels),
        pod_cidr=args.pod_cidr, pod_cidr_wait=args.pod_cidr_wait,
        lease_duration=args.lease_duration, status_report_seconds=args.node_status_update,
        status_compute_seconds=args.node_status_compute, max_pods=args.max_pods,
        sync_seconds=positive_seconds("--sync-frequency", args.sync_frequency),
        capacity=capacity, images=_images(args), keep_pods_on_exit=args.keep_pods_on_exit,
        shutdown_grace=args.shutdown_grace, backoff_cap=args.crash_loop_backoff_cap,
        service_proxy=not args.no_service_proxy,
        streaming_advertise_port=args.streaming_advertise_port,
        run_record=str(Path(args.run_record).resolve()) if args.run_record else "")


async def amain(args: argparse.Namespace) -> int:
    try:
        config = config_of(args)
        kind = sabotage.permit("node", args.sabotage)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not (args.serving_cert and args.serving_key):
        print(f"error: the streaming server needs --serving-cert and --serving-key (issue them "
              f"with `ketch certs node {args.name} --address {args.address}`)", file=sys.stderr)
        return 2
    worker.KEEP_REPLACED_PODS_FOR_SABOTAGE = kind == "keep-replaced-pods"
    client_config = ClientConfig.from_kubeconfig(args.kubeconfig,
                                                 extra_servers=tuple(args.server))
    ca = args.ca or _ca_file(args.kubeconfig, config.dir)
    paths = CertPaths(Path(ca), Path(args.serving_cert), Path(args.serving_key))
    tls = serving_context(paths)
    agent_ua = f"kubelet/{KUBELET_VERSION} (linux) ketch"
    stop = stop_event()
    async with agent_clients(client_config, agent_ua, config, qps=args.kube_api_qps,
                             burst=args.kube_api_burst) as (client, heartbeat):
        agent = NodeAgent(config, client, heartbeat_client=heartbeat, serving_tls=tls)
        runner = None
        if args.listen:
            app = health_app(agent_registry(agent), checks={
                "node": lambda: "; ".join(agent.problems()) or None})
            runner = await serve_health(app, args.listen, tls)
        work = asyncio.create_task(agent.run(), name="node agent")
        waiter = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
            agent.stop()
            await asyncio.wait({work})
        finally:
            waiter.cancel()
            if runner is not None:
                await runner.cleanup()
        failure = work.exception()
        if isinstance(failure, RegistrationError):
            print(f"error: {failure}", file=sys.stderr)
            return 1
        if failure is not None:
            log.error("node agent failed: %r", failure, exc_info=failure)
            return 1
    return 0


def _ca_file(kubeconfig: str, directory: str) -> str:
    """The kubeconfig's cluster CA as a file (the TLS context reads files)."""
    from certs.kubeconfig import read_kubeconfig

    path = Path(directory) / "ca.crt"
    Path(directory).mkdir(parents=True, exist_ok=True)
    path.write_bytes(read_kubeconfig(kubeconfig)["ca_pem"])
    return str(path)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m node", description="Run a ketch node agent.")
    add_arguments(p)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    if args.hollow:
        return run_hollow(args)
    configure_logging(args.log_level)
    try:
        return run_main(amain(args))
    except CertsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse(argv))


if __name__ == "__main__":
    sys.exit(main())

