"""The restricted-security-context rule: each Pod Security Standards control, failing and passing, on every kind."""

from __future__ import annotations

from typing import Any

import pytest

from policy import pod_security, rules
from policy.workloads import WorkloadKind
from tests.unit.policy.manifests import container, template, workload

APP = "container 'hello-world'"
KINDS = list(WorkloadKind)
KIND_IDS = [kind.kind for kind in WorkloadKind]


def violations(pod: dict[str, Any], kind: WorkloadKind = WorkloadKind.DEPLOYMENT) -> list[str]:
    return rules.workload_restricted_security_context(workload(kind, pod), kind)


def test_pod_security_controls_are_every_baseline_and_restricted_control_of_the_standard() -> None:
    assert list(pod_security.CONTROLS) == [
        "HostProcess",
        "Host Namespaces",
        "Privileged Containers",
        "Capabilities",
        "HostPath Volumes",
        "Host Ports",
        "AppArmor",
        "SELinux",
        "/proc Mount Type",
        "Seccomp",
        "Sysctls",
        "Host Probes / Lifecycle Hooks",
        "Volume Types",
        "Privilege Escalation",
        "Running as Non-root",
        "Running as Non-root user",
    ]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_restricted_security_context_accepts_the_programs_pod_in_every_kind(kind: WorkloadKind) -> None:
    assert violations(template(), kind) == []


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_restricted_security_context_finds_the_pod_of_every_kind(kind: WorkloadKind) -> None:
    assert violations(template(hostNetwork=True), kind) == [
        "pod sets hostNetwork: true, which shares the node's network namespace: remove it"
    ]


@pytest.mark.parametrize(
    "pod",
    [
        template(container(context={"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})),
        template(context={"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/app.json"}}),
        template(
            container(context={"seccompProfile": {"type": "RuntimeDefault"}}),
            context={"seccompProfile": None},
        ),
        template(container(context={"runAsNonRoot": None})),
        template(context={"runAsNonRoot": None}),
        template(context={"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]}),
        template(
            container(volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}]),
            volumes=[
                {"name": "tmp", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "hello-world"}},
                {"name": "token", "projected": {"sources": []}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "defaulted"},
            ],
        ),
        template(context={"seLinuxOptions": {"type": "container_t", "level": "s0:c123,c456"}}),
        template(
            container(context={"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-app"}}),
            context={"appArmorProfile": {"type": "RuntimeDefault"}},
            annotations={"container.apparmor.security.beta.kubernetes.io/hello-world": "runtime/default"},
        ),
        template(container(ports=[{"name": "http", "containerPort": 8080, "hostPort": 0.0}])),
        template(container(context={"procMount": "Default", "runAsUser": 1000.0})),
    ],
    ids=[
        "net-bind-service",
        "localhost-seccomp",
        "container-seccomp-only",
        "non-root-on-the-pod-only",
        "non-root-on-the-container-only",
        "safe-sysctl",
        "allowed-volumes",
        "container-selinux-type",
        "apparmor-profiles",
        "host-port-zero",
        "default-proc-mount",
    ],
)
def test_restricted_security_context_accepts_what_the_standard_allows(pod: dict[str, Any]) -> None:
    assert violations(pod) == []


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (
            template(context={"windowsOptions": {"hostProcess": True}}),
            "pod sets windowsOptions.hostProcess: true, which gives it full access to the Windows node: remove it",
        ),
        (
            template(container(context={"windowsOptions": {"hostProcess": True}})),
            f"{APP} sets windowsOptions.hostProcess: true, which gives it full access to the Windows node: remove it",
        ),
        (
            template(hostPID=True),
            "pod sets hostPID: true, which shares the node's process namespace: remove it",
        ),
        (
            template(hostIPC=True),
            "pod sets hostIPC: true, which shares the node's IPC namespace: remove it",
        ),
        (
            template(container(context={"privileged": True})),
            f"{APP} sets privileged: true, which disables most isolation from the node: remove it",
        ),
        (
            template(container(context={"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_BIND_SERVICE"]}})),
            f"{APP} adds the capabilities NET_ADMIN: remove them (only NET_BIND_SERVICE may be added back)",
        ),
        (
            template(container(context={"capabilities": {"drop": ["NET_RAW"]}})),
            f"{APP} does not drop all capabilities: set capabilities.drop: [ALL]",
        ),
        (
            template(volumes=[{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]),
            "volume 'docker' is a hostPath volume, which exposes the node's filesystem: "
            "use an emptyDir, configMap, secret or persistentVolumeClaim instead",
        ),
        (
            template(container(ports=[{"name": "http", "containerPort": 8080, "hostPort": 8080.0}])),
            f"{APP} port 'http' sets hostPort 8080, which binds a port on the node: "
            "remove it and reach the pod through a Service",
        ),
        (
            template(context={"appArmorProfile": {"type": "Unconfined"}}),
            'pod sets appArmorProfile.type: "Unconfined", which turns AppArmor off: '
            "set RuntimeDefault or Localhost, or leave it unset",
        ),
        (
            template(container(context={"appArmorProfile": {"type": "Unconfined"}})),
            f'{APP} sets appArmorProfile.type: "Unconfined", which turns AppArmor off: '
            "set RuntimeDefault or Localhost, or leave it unset",
        ),
        (
            template(annotations={"container.apparmor.security.beta.kubernetes.io/hello-world": "unconfined"}),
            'pod annotation container.apparmor.security.beta.kubernetes.io/hello-world is "unconfined", '
            "which overrides the runtime's AppArmor profile: set runtime/default or localhost/<profile>, "
            "or use securityContext.appArmorProfile",
        ),
        (
            template(container(context={"seLinuxOptions": {"type": "spc_t", "user": "system_u", "role": "sysadm_r"}})),
            f'{APP} sets seLinuxOptions type "spc_t", user "system_u", role "sysadm_r": leave user and role unset '
            "and set no type or one of container_t, container_init_t, container_kvm_t, container_engine_t",
        ),
        (
            template(context={"seLinuxOptions": {"user": "system_u"}}),
            'pod sets seLinuxOptions user "system_u": leave user and role unset '
            "and set no type or one of container_t, container_init_t, container_kvm_t, container_engine_t",
        ),
        (
            template(container(context={"procMount": "Unmasked"})),
            f'{APP} sets procMount: "Unmasked", which unmasks /proc: remove it or set Default',
        ),
        (
            template(context={"seccompProfile": {"type": "Unconfined"}}),
            'pod sets seccompProfile.type: "Unconfined": set RuntimeDefault (or Localhost)',
        ),
        (
            template(container(context={"seccompProfile": {"type": "Unconfined"}})),
            f'{APP} sets seccompProfile.type: "Unconfined": set RuntimeDefault (or Localhost)',
        ),
        (
            template(context={"seccompProfile": None}),
            f"{APP} has no seccomp profile: set seccompProfile.type: RuntimeDefault on the pod or the container",
        ),
        (
            template(context={"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]}),
            "pod sets the sysctl 'kernel.msgmax', which is not in Kubernetes' safe set and can affect the whole "
            "node: remove it",
        ),
        (
            template(container(livenessProbe={"httpGet": {"host": "169.254.169.254", "path": "/", "port": 80}})),
            f'{APP} sets livenessProbe.httpGet.host: "169.254.169.254", which aims the kubelet at another host: '
            "remove it so that the kubelet reaches the pod's own IP",
        ),
        (
            template(container(lifecycle={"preStop": {"tcpSocket": {"host": "10.0.0.1", "port": 22}}})),
            f'{APP} sets lifecycle.preStop.tcpSocket.host: "10.0.0.1", which aims the kubelet at another host: '
            "remove it so that the kubelet reaches the pod's own IP",
        ),
        (
            template(volumes=[{"name": "shared", "nfs": {"server": "nfs.example.com", "path": "/"}}]),
            "volume 'shared' is a nfs volume, which the restricted profile does not allow: use one of configMap, "
            "csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected, secret "
            "(reach other storage through a persistentVolumeClaim)",
        ),
        (
            template(container(context={"allowPrivilegeEscalation": None})),
            f"{APP} allows privilege escalation: set allowPrivilegeEscalation: false",
        ),
        (
            template(container(context={"runAsNonRoot": False})),
            f"{APP} sets runAsNonRoot: false: set it to true",
        ),
        (
            template(container(context={"runAsNonRoot": None}), context={"runAsNonRoot": False}),
            "pod sets runAsNonRoot: false: set it to true",
        ),
        (
            template(container(context={"runAsNonRoot": None}), context={"runAsNonRoot": None}),
            f"{APP} may run as root: set runAsNonRoot: true on the pod or the container "
            "(and run as a numeric non-root user)",
        ),
        (
            template(context={"runAsUser": 0.0}),
            "pod sets runAsUser: 0, which is root: set a non-zero user, such as the image's non-root user",
        ),
        (
            template(container(context={"runAsUser": 0})),
            f"{APP} sets runAsUser: 0, which is root: set a non-zero user, such as the image's non-root user",
        ),
        (
            template(container(context={"readOnlyRootFilesystem": False})),
            f"{APP} has a writable root filesystem: set readOnlyRootFilesystem: true "
            "(mount an emptyDir where the app must write)",
        ),
    ],
    ids=[
        "host-process-pod",
        "host-process-container",
        "host-pid",
        "host-ipc",
        "privileged",
        "capability-added",
        "capabilities-kept",
        "host-path-volume",
        "host-port",
        "apparmor-unconfined-pod",
        "apparmor-unconfined-container",
        "apparmor-annotation",
        "selinux-container",
        "selinux-pod-user",
        "proc-mount",
        "seccomp-unconfined-pod",
        "seccomp-unconfined-container",
        "seccomp-missing",
        "unsafe-sysctl",
        "probe-host",
        "lifecycle-host",
        "volume-type",
        "privilege-escalation",
        "non-root-false-on-container",
        "non-root-false-on-pod",
        "non-root-unset",
        "root-user-pod",
        "root-user-container",
        "writable-root-filesystem",
    ],
)
def test_restricted_security_context_rejects_each_control_and_says_how_to_fix_it(
    pod: dict[str, Any], expected: str
) -> None:
    assert violations(pod) == [expected]


@pytest.mark.parametrize(
    ("field", "label"),
    [("initContainers", "init container 'migrate'"), ("ephemeralContainers", "ephemeral container 'debug'")],
    ids=["init", "ephemeral"],
)
def test_restricted_security_context_checks_init_and_ephemeral_containers(field: str, label: str) -> None:
    pod = template()
    pod["spec"][field] = [container(name=label.split("'")[1], context={"privileged": True})]

    assert violations(pod) == [f"{label} sets privileged: true, which disables most isolation from the node: remove it"]


def test_restricted_security_context_lists_every_problem_of_a_bare_pod() -> None:
    pod = template(container(securityContext=None), securityContext=None)

    assert violations(pod) == [
        f"{APP} does not drop all capabilities: set capabilities.drop: [ALL]",
        f"{APP} has no seccomp profile: set seccompProfile.type: RuntimeDefault on the pod or the container",
        f"{APP} allows privilege escalation: set allowPrivilegeEscalation: false",
        f"{APP} may run as root: set runAsNonRoot: true on the pod or the container "
        "(and run as a numeric non-root user)",
        f"{APP} has a writable root filesystem: set readOnlyRootFilesystem: true "
        "(mount an emptyDir where the app must write)",
    ]


def test_restricted_security_context_reports_each_host_namespace() -> None:
    messages = violations(template(hostNetwork=True, hostPID=True, hostIPC=False))

    assert messages == [
        "pod sets hostNetwork: true, which shares the node's network namespace: remove it",
        "pod sets hostPID: true, which shares the node's process namespace: remove it",
    ]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_restricted_security_context_of_a_workload_without_a_pod_template_reports_nothing(kind: WorkloadKind) -> None:
    assert rules.workload_restricted_security_context({"spec": {}}, kind) == []


def test_restricted_security_context_checks_every_source_of_a_volume_that_names_several() -> None:
    pod = template(volumes=[{"name": "data", "emptyDir": {}, "hostPath": {"path": "/"}}])

    assert violations(pod) == [
        "volume 'data' is a hostPath volume, which exposes the node's filesystem: "
        "use an emptyDir, configMap, secret or persistentVolumeClaim instead"
    ]
