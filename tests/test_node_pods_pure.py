"""The pure parts of the pod workers, table-driven: the kubelet's phase rules, conditions,
back-off arithmetic, environment variables and ``$(VAR)`` expansion, container configs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from node.pods.backoff import Backoff
from node.pods.containers import container_config, resolve_port
from node.pods.env import ContainerConfigError, container_env, expand, service_env
from node.pods.plan import go_duration
from node.pods.status import ContainerView, PodFacts, pod_phase, pod_status, qos_class
from node.runtime.api import ContainerState, ContainerStatus, PodSandbox
from node.runtime.downward import PodFacts as DownwardFacts
from tests.nodefakes import Sources, container, pod

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def running() -> dict[str, Any]:
    return {"state": {"running": {}}, "started": True}


def terminated(code: int) -> dict[str, Any]:
    return {"state": {"terminated": {"exitCode": code}}}


def crashlooping(code: int) -> dict[str, Any]:
    return {"state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": code}}}


def waiting() -> dict[str, Any]:
    return {"state": {"waiting": {"reason": "ContainerCreating"}}}


def named(name: str, status: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, **status}


@pytest.mark.parametrize(("policy", "statuses", "terminal", "phase"), [
    pytest.param("Always", [waiting()], False, "Pending", id="waiting"),
    pytest.param("Always", [running()], False, "Running", id="running"),
    pytest.param("Always", [terminated(0)], False, "Running", id="always-restarts-success"),
    pytest.param("Always", [crashlooping(1)], False, "Running", id="crashloop-is-running"),
    pytest.param("Never", [terminated(0)], False, "Succeeded", id="never-success"),
    pytest.param("Never", [terminated(1)], False, "Failed", id="never-failure"),
    pytest.param("OnFailure", [terminated(0)], False, "Succeeded", id="onfailure-success"),
    pytest.param("OnFailure", [terminated(1)], False, "Running", id="onfailure-will-retry"),
    pytest.param("Always", [terminated(143)], True, "Failed", id="deleted-sigterm"),
    pytest.param("Always", [terminated(0)], True, "Succeeded", id="deleted-clean-exit"),
    pytest.param("Never", [running(), terminated(1)], False, "Running", id="one-still-running"),
    pytest.param("Always", [], False, "Pending", id="unknown"),
    # deleted before it finished — before it ever ran (a pod evicted from a partitioned node
    # the agent learns of only after the heal): Failed, never a Pending that lasts forever
    pytest.param("OnFailure", [waiting()], True, "Failed", id="deleted-while-creating"),
    pytest.param("OnFailure", [], True, "Failed", id="deleted-never-seen"),
    pytest.param("OnFailure", [crashlooping(1)], True, "Failed", id="deleted-in-back-off"),
    pytest.param("OnFailure", [terminated(0), waiting()], True, "Failed",
                 id="deleted-half-done"),
])
def test_phase(policy: str, statuses: list[dict[str, Any]], terminal: bool,
               phase: str) -> None:
    names = [f"c{i}" for i in range(max(len(statuses), 1))]
    spec = pod(containers=[container(n) for n in names], restart=policy)
    got = pod_phase(spec, [named(n, s) for n, s in zip(names, statuses, strict=False)],
                    terminal=terminal, initialized_before=False)
    assert got == phase


@pytest.mark.parametrize(("policy", "init_status", "phase"), [
    pytest.param("Never", terminated(1), "Failed", id="never-fails-at-once"),
    pytest.param("Always", crashlooping(1), "Pending", id="always-retries"),
    pytest.param("OnFailure", terminated(1), "Pending", id="onfailure-retries"),
    pytest.param("Always", running(), "Pending", id="init-running"),
    pytest.param("Always", terminated(0), "Pending", id="app-not-started-yet"),
])
def test_phase_with_init_containers(policy: str, init_status: dict[str, Any],
                                    phase: str) -> None:
    spec = pod(init=[container("i")], containers=[container("app")], restart=policy)
    statuses = [named("i", init_status), named("app", {"state": {"waiting": {
        "reason": "PodInitializing"}}})]
    assert pod_phase(spec, statuses, terminal=False, initialized_before=False) == phase


def instance(name: str, state: ContainerState, attempt: int = 0,
             code: int | None = None) -> ContainerStatus:
    return ContainerStatus(id=f"{name}-{attempt}", pod_uid="u", name=name, attempt=attempt,
                           image="busybox", image_ref="ref", state=state, created_at=T0,
                           started_at=T0, finished_at=T0 if code is not None else None,
                           exit_code=code, reason="Completed" if code == 0 else
                           ("Error" if code else ""))


def test_status_keeps_transition_times_and_foreign_conditions() -> None:
    spec = pod(readinessGates=[{"conditionType": "example.com/lb"}])
    spec["status"] = {"phase": "Pending", "conditions": [
        {"type": "example.com/lb", "status": "False"},
        {"type": "Ready", "status": "False", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    views = {"c": ContainerView(instances=(instance("c", ContainerState.RUNNING),),
                                ready=True, started=True)}
    status = pod_status(spec, init={}, app=views, facts=PodFacts(runtime="fake",
                                                                 pod_ip="127.1.0.2",
                                                                 host_ip="127.0.0.1",
                                                                 sandbox_ready=True),
                        now=T0)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["example.com/lb"]["status"] == "False"  # not the kubelet's: kept
    assert by_type["ContainersReady"]["status"] == "True"
    ready = by_type["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ReadinessGatesNotReady")
    assert ready["lastTransitionTime"] == "2025-01-01T00:00:00Z"  # unchanged status
    assert by_type["ContainersReady"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert status["hostIPs"] == [{"ip": "127.0.0.1"}] and status["podIP"] == "127.1.0.2"


def test_terminal_phase_is_final() -> None:
    spec = pod()
    spec["status"] = {"phase": "Succeeded"}
    views = {"c": ContainerView(instances=(instance("c", ContainerState.RUNNING),))}
    status = pod_status(spec, init={}, app=views, facts=PodFacts(runtime="fake"), now=T0)
    assert status["phase"] == "Succeeded"


def test_waiting_reason_moves_the_termination_to_last_state() -> None:
    spec = pod()
    views = {"c": ContainerView(
        instances=(instance("c", ContainerState.EXITED, 2, 1),
                   instance("c", ContainerState.EXITED, 1, 1)),
        waiting=("CrashLoopBackOff", "back-off 20s"), restarting=True)}
    status = pod_status(spec, init={}, app=views, facts=PodFacts(runtime="fake"), now=T0)
    c = status["containerStatuses"][0]
    assert c["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}}
    assert c["lastState"]["terminated"]["containerID"] == "fake://c-2"
    assert c["restartCount"] == 2 and c["ready"] is False


@pytest.mark.parametrize(("resources", "qos"), [
    pytest.param({}, "BestEffort", id="none"),
    pytest.param({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed", id="limits-only"),
    pytest.param({"requests": {"cpu": "1"}}, "Burstable", id="requests"),
    pytest.param({"limits": {"cpu": "1", "memory": "1Gi"},
                  "requests": {"cpu": "500m", "memory": "1Gi"}}, "Burstable", id="unequal"),
])
def test_qos_class(resources: dict[str, Any], qos: str) -> None:
    assert qos_class({"containers": [{"name": "c", "resources": resources}]}) == qos


# --- back-off ------------------------------------------------------------------------------


def test_backoff_doubles_caps_and_resets_after_a_long_run() -> None:
    b = Backoff(initial=10, cap=40, reset_after=600)
    t = T0
    assert b.remaining("c", t, t) == 0  # never failed: restart at once
    b.next("c", t, t)
    assert b.remaining("c", t, t) == 10
    assert b.remaining("c", t, t + dt.timedelta(seconds=4)) == 6
    windows = []
    for _ in range(4):
        b.next("c", t, t)
        windows.append(b.current("c"))
    assert windows == [20, 40, 40, 40]
    later = t + dt.timedelta(seconds=601)  # it ran 10 minutes since the last restart
    assert b.remaining("c", later, later) == 0
    b.next("c", later, later)
    assert b.current("c") == 10


@pytest.mark.parametrize(("seconds", "text"), [(10, "10s"), (80, "1m20s"), (300, "5m0s"),
                                               (3700, "1h1m40s")])
def test_go_durations(seconds: int, text: str) -> None:
    assert go_duration(seconds) == text


# --- environment ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "out"), [
    ("$(A)", "1"), ("x$(A)y$(B)", "x1y2"), ("$(MISSING)", "$(MISSING)"), ("$$(A)", "$(A)"),
    ("$$", "$"), ("$(A", "$(A"), ("a$", "a$"),
])
def test_expand(text: str, out: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == out


def svc(name: str, ns: str, ip: str, *ports: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": list(ports)}}


def test_service_environment_variables() -> None:
    services = [svc("kubernetes", "default", "10.0.0.1", {"name": "https", "port": 443}),
                svc("my-web", "app", "10.0.0.7", {"name": "http", "port": 80},
                    {"name": "metrics-port", "port": 9090, "protocol": "TCP"}),
                svc("headless", "app", "None", {"port": 1}),
                svc("other", "elsewhere", "10.0.0.9", {"port": 1})]
    env = service_env(services, "app")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["MY_WEB_SERVICE_HOST"] == "10.0.0.7"
    assert env["MY_WEB_SERVICE_PORT_METRICS_PORT"] == "9090"
    assert env["MY_WEB_PORT"] == "tcp://10.0.0.7:80"
    assert env["MY_WEB_PORT_9090_TCP_ADDR"] == "10.0.0.7"
    assert env["MY_WEB_PORT_80_TCP_PROTO"] == "tcp"
    assert not any(k.startswith(("HEADLESS", "OTHER")) for k in env)
    no_links = service_env(services, "app", enable_service_links=False)
    assert set(no_links) == {k for k in env if k.startswith("KUBERNETES_")}


async def test_container_env_order_and_sources() -> None:
    sources = Sources()
    sources.configmaps[("default", "cm")] = {"data": {"K": "from-cm", "bad key": "x"}}
    sources.secrets[("default", "s")] = {"data": {"pw": "c2VjcmV0"}}
    sources.service_list = [svc("kubernetes", "default", "10.0.0.1", {"port": 443})]
    c = container("c", envFrom=[{"configMapRef": {"name": "cm"}, "prefix": "CM_"}], env=[
        {"name": "A", "value": "a"},
        {"name": "B", "value": "$(A)-$(KUBERNETES_SERVICE_HOST)-$(C)"},
        {"name": "C", "value": "c"},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x",
                                                          "optional": True}}},
        {"name": "KUBERNETES_SERVICE_HOST", "value": "overridden"}])
    env = await container_env(pod(containers=[c]), c, lookup=sources,
                              services=sources.service_list,
                              facts=DownwardFacts(pod_ip="127.1.0.9"))
    as_dict = dict(env)
    assert as_dict["CM_K"] == "from-cm" and "CM_bad key" not in as_dict
    assert as_dict["B"] == "a-10.0.0.1-$(C)"  # C is defined after B
    assert as_dict["PW"] == "secret" and as_dict["POD"] == "p" and as_dict["IP"] == "127.1.0.9"
    assert "OPT" not in as_dict
    assert as_dict["KUBERNETES_SERVICE_HOST"] == "overridden"
    assert as_dict["KUBERNETES_SERVICE_PORT"] == "443"


async def test_missing_env_sources_are_config_errors() -> None:
    c = container("c", envFrom=[{"secretRef": {"name": "gone"}}])
    with pytest.raises(ContainerConfigError, match='secret "gone" not found'):
        await container_env(pod(containers=[c]), c, lookup=Sources(), services=[],
                            facts=DownwardFacts())


def test_container_config_expands_and_mounts() -> None:
    c = container("c", command=["sh", "-c", "echo $(GREETING) $$(HOME)"], args=["$(X)"],
                  ports=[{"containerPort": 8080, "name": "http"}],
                  volumeMounts=[{"name": "data", "mountPath": "/data", "subPath": "sub"}],
                  resources={"limits": {"cpu": "250m", "memory": "64Mi"}})
    sb = PodSandbox(id="u", uid="u", name="p", namespace="default", ip="127.1.0.2", ready=True,
                    created_at=T0, volume_paths={"data": "/vol/data"})
    cfg = container_config(pod(containers=[c]), c, attempt=3,
                           env=[("GREETING", "hello"), ("X", "x")], sandbox=sb)
    assert cfg.command == ("sh", "-c", "echo hello $(HOME)") and cfg.args == ("x",)
    assert cfg.mounts[0].host_path == "/vol/data/sub" and cfg.attempt == 3
    assert cfg.resources.cpu_limit_millis == 250
    assert cfg.resources.memory_limit_bytes == 64 << 20
    assert resolve_port(c, "http") == 8080 and resolve_port(c, 81) == 81
    with pytest.raises(ValueError, match="not a named port"):
        resolve_port(c, "grpc")


# --- which instance a log request means ----------------------------------------------------


def cs(name: str, state: dict[str, Any], last: dict[str, Any] | None = None,
       cid: str = "") -> dict[str, Any]:
    return {"name": name, "state": state, "lastState": last or {},
            **({"containerID": cid} if cid else {})}


@pytest.mark.parametrize(("status", "previous", "result"), [
    pytest.param(cs("c", {"running": {}}, cid="process://run"), False, "run", id="running"),
    pytest.param(cs("c", {"terminated": {"containerID": "process://done"}}), False, "done",
                 id="terminated"),
    pytest.param(cs("c", {"waiting": {"reason": "CrashLoopBackOff"}},
                    {"terminated": {"containerID": "process://old"}}), False, "old",
                 id="crashloop-shows-last"),
    pytest.param(cs("c", {"running": {}}, {"terminated": {"containerID": "process://old"}},
                    "process://new"), True, "old", id="previous"),
    pytest.param(cs("c", {"running": {}}, cid="process://x"), True,
                 'previous terminated container "c" in pod "p" not found', id="no-previous"),
    pytest.param(cs("c", {"waiting": {"reason": "ErrImagePull"}}), False,
                 'container "c" in pod "p" is waiting to start: image can\'t be pulled',
                 id="image"),
    pytest.param(cs("c", {"waiting": {"reason": "ContainerCreating"}}), False,
                 'container "c" in pod "p" is waiting to start: ContainerCreating',
                 id="creating"),
    pytest.param(cs("other", {"running": {}}), False,
                 'container "c" in pod "p" is waiting to start - no logs yet', id="never-ran"),
])
def test_log_target(status: dict[str, Any], previous: bool, result: str) -> None:
    from node.pods.lookup import LogTargetError, log_container_id

    statuses = {"containerStatuses": [status]}
    if " " in result:
        with pytest.raises(LogTargetError) as e:
            log_container_id(statuses, "p", "c", previous)
        assert e.value.message == result
    else:
        assert log_container_id(statuses, "p", "c", previous) == result
