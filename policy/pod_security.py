"""The Pod Security Standards' restricted profile: every baseline and restricted control, one function each.

Mirrors the checks of Kubernetes' Pod Security Admission (k8s.io/pod-security-admission/policy,
``latest`` as of v1.36) without its relaxations: no Windows exemption (``spec.os.name``) and none
for user-namespace pods (``hostUsers: false``), so a pod that passes here passes every version.
Like the admission, it inspects containers, init containers and ephemeral containers alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from policy.properties import get, integer, items, mapping, shown
from policy.workloads import containers

PROFILE_TYPES = ("RuntimeDefault", "Localhost")
"""The seccomp and AppArmor profile types a restricted pod may set."""
ADDABLE_CAPABILITY = "NET_BIND_SERVICE"
"""The one capability a restricted container may add back after dropping ALL."""
SELINUX_TYPES = ("container_t", "container_init_t", "container_kvm_t", "container_engine_t")
"""SELinux types a pod may ask for (besides none); user and role must stay unset."""
SAFE_SYSCTLS = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_wmem",
)
"""Namespaced sysctls isolated from other pods (the baseline's safe set, Kubernetes v1.32 and later)."""
VOLUME_TYPES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
"""Volume sources the restricted profile allows; other storage is reached through a persistentVolumeClaim."""
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
"""Prefix of the deprecated per-container AppArmor annotations, which the admission still checks."""
_HOST_NAMESPACES = {"hostNetwork": "network", "hostPID": "process", "hostIPC": "IPC"}
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_LIFECYCLE_HOOKS = ("postStart", "preStop")


@dataclass(frozen=True)
class Pod:
    """A pod template (or a Pod) as the engine sends it."""

    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]

    @classmethod
    def of(cls, template: Mapping[str, Any]) -> Pod:
        """The pod described by a template's (or a Pod's) ``metadata`` and ``spec``."""
        return cls(metadata=mapping(template.get("metadata")), spec=mapping(template.get("spec")))

    @property
    def context(self) -> Mapping[str, Any]:
        """The pod's securityContext, which containers inherit some settings from."""
        return mapping(self.spec.get("securityContext"))

    def container_contexts(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Every container's label and securityContext, init and ephemeral containers included."""
        for label, container in containers(self.spec):
            yield label, mapping(container.get("securityContext"))

    def contexts(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """The pod's securityContext, labelled ``pod``, then every container's."""
        yield "pod", self.context
        yield from self.container_contexts()


Control = Callable[[Pod], list[str]]
"""One control of the standard: a pod -> violation messages."""


def host_process(pod: Pod) -> list[str]:
    """Baseline, HostProcess: no Windows HostProcess pod or container, which has full access to the node."""
    return [
        f"{label} sets windowsOptions.hostProcess: true, which gives it full access to the Windows node: remove it"
        for label, context in pod.contexts()
        if get(context, "windowsOptions", "hostProcess") is True
    ]


def host_namespaces(pod: Pod) -> list[str]:
    """Baseline, host namespaces: the pod shares neither the node's network, process nor IPC namespace."""
    return [
        f"pod sets {field}: true, which shares the node's {namespace} namespace: remove it"
        for field, namespace in _HOST_NAMESPACES.items()
        if pod.spec.get(field) is True
    ]


def privileged(pod: Pod) -> list[str]:
    """Baseline, privileged containers: no container runs privileged, which disables most isolation."""
    return [
        f"{label} sets privileged: true, which disables most isolation from the node: remove it"
        for label, context in pod.container_contexts()
        if context.get("privileged") is True
    ]


def capabilities(pod: Pod) -> list[str]:
    """Restricted, capabilities: every container drops ALL and adds back at most NET_BIND_SERVICE."""
    messages = []
    for label, context in pod.container_contexts():
        added = [str(name) for name in items(get(context, "capabilities", "add")) if name != ADDABLE_CAPABILITY]
        if added:
            messages.append(
                f"{label} adds the capabilities {', '.join(added)}: remove them "
                f"(only {ADDABLE_CAPABILITY} may be added back)"
            )
        if "ALL" not in items(get(context, "capabilities", "drop")):
            messages.append(f"{label} does not drop all capabilities: set capabilities.drop: [ALL]")
    return messages


def host_path_volumes(pod: Pod) -> list[str]:
    """Baseline, hostPath volumes: no volume mounts a path of the node."""
    return [
        f"volume '{name}' is a hostPath volume, which exposes the node's filesystem: "
        "use an emptyDir, configMap, secret or persistentVolumeClaim instead"
        for name, source in _volumes(pod)
        if source == "hostPath"
    ]


def host_ports(pod: Pod) -> list[str]:
    """Baseline, host ports: no container binds a port of the node."""
    messages = []
    for label, container in containers(pod.spec):
        for index, port in enumerate(items(container.get("ports"))):
            raw = get(port, "hostPort")
            if raw is None or integer(raw) == 0:
                continue
            name = get(port, "name") or integer(get(port, "containerPort")) or index
            messages.append(
                f"{label} port '{name}' sets hostPort {shown(raw)}, which binds a port "
                "on the node: remove it and reach the pod through a Service"
            )
    return messages


def app_armor(pod: Pod) -> list[str]:
    """Baseline, AppArmor: no pod, container or annotation overrides the runtime's profile but with a Localhost one."""
    messages = [
        f"{label} sets appArmorProfile.type: {shown(profile_type)}, which turns AppArmor off: "
        "set RuntimeDefault or Localhost, or leave it unset"
        for label, context in pod.contexts()
        if isinstance(context.get("appArmorProfile"), Mapping)
        and (profile_type := get(context, "appArmorProfile", "type")) not in PROFILE_TYPES
    ]
    for key, value in mapping(pod.metadata.get("annotations")).items():
        if not str(key).startswith(APPARMOR_ANNOTATION):
            continue
        if value in ("", "runtime/default") or (isinstance(value, str) and value.startswith("localhost/")):
            continue
        messages.append(
            f"pod annotation {key} is {shown(value)}, which overrides the runtime's AppArmor profile: "
            "set runtime/default or localhost/<profile>, or use securityContext.appArmorProfile"
        )
    return messages


def se_linux(pod: Pod) -> list[str]:
    """Baseline, SELinux: no custom SELinux user or role, and only a container type."""
    messages = []
    for label, context in pod.contexts():
        options = context.get("seLinuxOptions")
        if not isinstance(options, Mapping):
            continue
        custom = [f"{field} {shown(options.get(field))}" for field in ("user", "role") if options.get(field)]
        if options.get("type") not in (None, "", *SELINUX_TYPES):
            custom.insert(0, f"type {shown(options.get('type'))}")
        if custom:
            messages.append(
                f"{label} sets seLinuxOptions {', '.join(custom)}: leave user and role unset and set no type "
                f"or one of {', '.join(SELINUX_TYPES)}"
            )
    return messages


def proc_mount(pod: Pod) -> list[str]:
    """Baseline, /proc mount type: every container keeps the default, masked /proc."""
    return [
        f"{label} sets procMount: {shown(context.get('procMount'))}, which unmasks /proc: remove it or set Default"
        for label, context in pod.container_contexts()
        if context.get("procMount") not in (None, "Default")
    ]


def seccomp(pod: Pod) -> list[str]:
    """Restricted, seccomp: the pod, or every container, sets the RuntimeDefault or a Localhost profile."""
    messages = [
        f"{label} sets seccompProfile.type: {shown(get(context, 'seccompProfile', 'type'))}: "
        "set RuntimeDefault (or Localhost)"
        for label, context in pod.contexts()
        if isinstance(context.get("seccompProfile"), Mapping)
        and get(context, "seccompProfile", "type") not in PROFILE_TYPES
    ]
    # A pod-level profile, even a wrong one reported above, is what a container without one inherits.
    if not isinstance(pod.context.get("seccompProfile"), Mapping):
        messages += [
            f"{label} has no seccomp profile: set seccompProfile.type: RuntimeDefault on the pod or the container"
            for label, context in pod.container_contexts()
            if not isinstance(context.get("seccompProfile"), Mapping)
        ]
    return messages


def sysctls(pod: Pod) -> list[str]:
    """Baseline, sysctls: the pod sets only sysctls of the safe set, which cannot affect other pods."""
    return [
        f"pod sets the sysctl '{name}', which is not in Kubernetes' safe set and can affect the whole node: remove it"
        for name in (get(sysctl, "name") for sysctl in items(pod.context.get("sysctls")))
        if name not in SAFE_SYSCTLS
    ]


def host_probes_and_lifecycle_hooks(pod: Pod) -> list[str]:
    """Baseline, probes and lifecycle hooks (Kubernetes v1.34): none aims the kubelet at another host."""
    messages = []
    for label, container in containers(pod.spec):
        handlers = [(probe, container.get(probe)) for probe in _PROBES]
        handlers += [(f"lifecycle.{hook}", get(container, "lifecycle", hook)) for hook in _LIFECYCLE_HOOKS]
        for name, handler in handlers:
            for action in ("httpGet", "tcpSocket"):
                if host := get(handler, action, "host"):
                    messages.append(
                        f"{label} sets {name}.{action}.host: {shown(host)}, which aims the kubelet at another "
                        "host: remove it so that the kubelet reaches the pod's own IP"
                    )
    return messages


def volume_types(pod: Pod) -> list[str]:
    """Restricted, volume types: only the allowed volume sources (hostPath is the baseline's own control)."""
    return [
        f"volume '{name}' is a {source} volume, which the restricted profile does not allow: use one of "
        f"{', '.join(VOLUME_TYPES)} (reach other storage through a persistentVolumeClaim)"
        for name, source in _volumes(pod)
        if source not in (*VOLUME_TYPES, "hostPath")
    ]


def privilege_escalation(pod: Pod) -> list[str]:
    """Restricted, privilege escalation: every container forbids it, so setuid binaries gain nothing."""
    return [
        f"{label} allows privilege escalation: set allowPrivilegeEscalation: false"
        for label, context in pod.container_contexts()
        if context.get("allowPrivilegeEscalation") is not False
    ]


def run_as_non_root(pod: Pod) -> list[str]:
    """Restricted, running as non-root: runAsNonRoot is true on the pod or on every container, false nowhere."""
    messages = [
        f"{label} sets runAsNonRoot: {shown(context.get('runAsNonRoot'))}: set it to true"
        for label, context in pod.contexts()
        if context.get("runAsNonRoot") not in (None, True)
    ]
    # A container without the setting inherits the pod's; a pod's false is reported above.
    if pod.context.get("runAsNonRoot") is None:
        messages += [
            f"{label} may run as root: set runAsNonRoot: true on the pod or the container "
            "(and run as a numeric non-root user)"
            for label, context in pod.container_contexts()
            if context.get("runAsNonRoot") is None
        ]
    return messages


def run_as_user(pod: Pod) -> list[str]:
    """Restricted, running as non-root user: neither the pod nor a container sets runAsUser 0."""
    return [
        f"{label} sets runAsUser: 0, which is root: set a non-zero user, such as the image's non-root user"
        for label, context in pod.contexts()
        if integer(context.get("runAsUser")) == 0
    ]


CONTROLS: dict[str, Control] = {
    "HostProcess": host_process,
    "Host Namespaces": host_namespaces,
    "Privileged Containers": privileged,
    "Capabilities": capabilities,
    "HostPath Volumes": host_path_volumes,
    "Host Ports": host_ports,
    "AppArmor": app_armor,
    "SELinux": se_linux,
    "/proc Mount Type": proc_mount,
    "Seccomp": seccomp,
    "Sysctls": sysctls,
    "Host Probes / Lifecycle Hooks": host_probes_and_lifecycle_hooks,
    "Volume Types": volume_types,
    "Privilege Escalation": privilege_escalation,
    "Running as Non-root": run_as_non_root,
    "Running as Non-root user": run_as_user,
}
"""Every control of the restricted profile (baseline controls first), by its name in the standard."""


def violations(template: Mapping[str, Any]) -> list[str]:
    """What the pod described by ``template`` (its ``metadata`` and ``spec``) does against the restricted profile."""
    pod = Pod.of(template)
    return [message for control in CONTROLS.values() for message in control(pod)]


def _volumes(pod: Pod) -> Iterator[tuple[str, str]]:
    """Each volume's name and source type (every one, should a volume name several); no source is an emptyDir."""
    for index, raw in enumerate(items(pod.spec.get("volumes"))):
        volume = mapping(raw)
        name = str(volume.get("name") or index)
        sources = [key for key, value in volume.items() if key != "name" and value is not None]
        for source in sources or ["emptyDir"]:
            yield name, source
