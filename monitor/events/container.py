"""Container identity, Falco's container.* fields, from the kernel's cgroup and the runtime's disk state.

A process's container is read from /proc/PID/cgroup (the kernel's record of where the
process runs, which the process cannot rewrite) and named from the runtime's own state
files (podman's containers.json, docker's config.v2.json): no daemon is asked. Host
processes get container.id "host", as in Falco. A process gone before its first event
was decoded is identified by the cgroups the kernel recorded: the cgroup v2 id of every
record and, on a hybrid host, the v1 cgroup its exec or fork record names (cgroup.v1_id,
monitor/kernel/cgroups.py), found by id in cgroupfs (monitor/events/cgroup_paths.py).
The v2 id alone counts only where it tells: on a pure v2 host, or where its path names
the container; on a hybrid host docker's cgroupfs driver leaves containers in the shim's
v2 cgroup, shared with host processes, and only the v1 cgroup tells them apart. What a
live process's /proc file shows is never filed under the ids of its records: it may have
moved between the two (a runtime's init joins its container after its first records).
If the cgroups are unknown too (removed with the process), container.id is "" (unknown),
which Falco's `container` macro (container.id != host) counts as a container: an exited
process cannot pass for the host.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.events.cgroup_paths import V2, CgroupPaths

# Runtime prefixes in cgroup path components, and the bare id of docker's cgroupfs driver
# and of CRI's kubepods layout.
_COMPONENT = re.compile(
    r"^(?:(?P<prefix>docker|libpod|crio|cri-containerd|containerd)-)?(?P<id>[0-9a-f]{64})(?:\.scope)?$")
_RUNTIME = {"docker": "docker", "libpod": "podman", "crio": "cri-o", "cri-containerd": "containerd",
            "containerd": "containerd"}
CACHE_MAX = 16384


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    full_id: str
    type: str
    name: str = ""
    image: str = ""
    privileged: bool | None = None
    # Kubernetes namespace of the pod (the io.kubernetes.pod.namespace label kubelet sets);
    # "" for a container outside Kubernetes, None when the runtime's state was not read.
    k8s_ns: str | None = None

    @property
    def id(self) -> str:
        # Falco's container.id is the 12-character short id.
        return self.full_id[:12]

    def fields(self) -> dict[str, Any]:
        repo, tag = split_image(self.image)
        out: dict[str, Any] = {
            "container.id": self.id, "container.full_id": self.full_id, "container.type": self.type,
            "container.name": self.name, "container.image": self.image,
            "container.image.repository": repo, "container.image.tag": tag,
        }
        if self.privileged is not None:
            out["container.privileged"] = self.privileged
        if self.k8s_ns is not None:
            out["k8s.ns.name"] = self.k8s_ns
        return out


K8S_NS_LABEL = "io.kubernetes.pod.namespace"
HOST_FIELDS: dict[str, Any] = {"container.id": "host", "container.name": "host", "k8s.ns.name": ""}
UNKNOWN_FIELDS: dict[str, Any] = {"container.id": ""}


def split_image(image: str) -> tuple[str, str]:
    """("registry/repo", "tag") of an image reference; a digest counts as no tag."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, ("" if "@" in image or not image else "latest")


def container_of_cgroup(text: str) -> tuple[str, str] | None:
    """(runtime, full id) from /proc/PID/cgroup text, or None for the host.

    Every hierarchy line is looked at (on a hybrid host the runtime may use only v1)."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for component in reversed(path.split("/")):
            if component.startswith("libpod-conmon-"):
                break  # podman's monitor process, on the host side
            m = _COMPONENT.match(component)
            if m:
                prefix = m.group("prefix")
                if prefix is None:
                    runtime = "containerd" if "kubepods" in path else "docker"
                else:
                    runtime = _RUNTIME[prefix]
                return runtime, m.group("id")
    return None


class _JsonFile:
    """A runtime state file, re-read only when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self.data: Any = None

    def get(self) -> Any:
        try:
            st = self.path.stat()
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                self.data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.data = None
            self._stamp = stamp
        return self.data


class RuntimeState:
    """Names, images and privilege of containers, from podman's and docker's files."""

    def __init__(self, podman_root: Path = Path("/var/lib/containers/storage"),
                 docker_root: Path = Path("/var/lib/docker")) -> None:
        self.podman_root = podman_root
        self.docker_root = docker_root
        self._podman = _JsonFile(podman_root / "overlay-containers" / "containers.json")

    def describe(self, runtime: str, full_id: str) -> ContainerInfo:
        if runtime == "podman":
            return self._from_podman(full_id)
        if runtime == "docker":
            return self._from_docker(full_id)
        return ContainerInfo(full_id, runtime)

    def _from_podman(self, full_id: str) -> ContainerInfo:
        entries = self._podman.get() or []
        for c in entries if isinstance(entries, list) else []:
            if isinstance(c, dict) and c.get("id") == full_id:
                try:
                    meta = json.loads(c.get("metadata") or "{}")
                except ValueError:
                    meta = {}
                names = c.get("names") or [""]
                spec = self._podman_spec(full_id)
                return ContainerInfo(full_id, "podman", str(names[0]), str(meta.get("image-name", "")),
                                     self._podman_privileged(spec),
                                     None if spec is None else str(spec.get(K8S_NS_LABEL, "")))
        return ContainerInfo(full_id, "podman")

    def _podman_spec(self, full_id: str) -> dict[str, Any] | None:
        """The OCI spec's annotations podman wrote for the container."""
        spec = _JsonFile(self.podman_root / "overlay-containers" / full_id / "userdata" / "config.json").get()
        if not isinstance(spec, dict):
            return None
        notes = spec.get("annotations") or {}
        return notes if isinstance(notes, dict) else {}

    @staticmethod
    def _podman_privileged(notes: dict[str, Any] | None) -> bool | None:
        if notes is None:
            return None
        flag = notes.get("io.podman.annotations.privileged")
        return None if flag is None else str(flag).upper() == "TRUE"

    def _from_docker(self, full_id: str) -> ContainerInfo:
        base = self.docker_root / "containers" / full_id
        cfg = _JsonFile(base / "config.v2.json").get()
        host = _JsonFile(base / "hostconfig.json").get()
        if not isinstance(cfg, dict):
            return ContainerInfo(full_id, "docker")
        priv = host.get("Privileged") if isinstance(host, dict) else None
        config = cfg.get("Config") or {}
        labels = config.get("Labels") or {}
        return ContainerInfo(full_id, "docker", str(cfg.get("Name", "")).lstrip("/"),
                             str(config.get("Image", "")),
                             None if priv is None else bool(priv),
                             str(labels.get(K8S_NS_LABEL, "")) if isinstance(labels, dict) else "")


class ContainerResolver:
    """container.* fields for a process; cached per process and per cgroup."""

    def __init__(self, proc_root: str = "/proc", state: RuntimeState | None = None,
                 cgroup1_controller: str = "", paths: CgroupPaths | None = None) -> None:
        self.proc_root = proc_root
        self.state = state or RuntimeState()
        # The v1 hierarchy whose cgroup exec records name (the sensor's choice; "" none).
        self.cgroup1_controller = cgroup1_controller
        # Where ids the kernel recorded are looked up when a process is gone (None: not).
        self.paths = paths
        self._by_proc: OrderedDict[tuple[int, int, str], dict[str, Any]] = OrderedDict()
        # Answers for gone processes from their cgroups' paths, by (v2 id, v1 id); v1 id 0:
        # the v2 id alone tells. Ids are never reused (kernfs ids carry a generation).
        self._by_cgroup: OrderedDict[tuple[int, int], dict[str, Any]] = OrderedDict()
        # Most processes share a few cgroup files' texts (a host's processes all have
        # one): each text is parsed once.
        self._by_text: OrderedDict[str, tuple[str, str] | None] = OrderedDict()

    @staticmethod
    def _put(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        cache[key] = value
        if len(cache) > CACHE_MAX:
            cache.popitem(last=False)

    def fields(self, pid: int, start_ns: int, exec_id: str, cgroup_id: int,
               cgroup1_id: int = 0) -> dict[str, Any]:
        """Per process image: a runtime's init starts on the host and execs inside.
        cgroup1_id: the v1 cgroup of the record (exec, fork) or of the process's last fork
        or exec (0: none known)."""
        key = (pid, start_ns, exec_id)
        found = self._by_proc.get(key)
        if found is not None:
            return found
        try:
            text = _read_small(f"{self.proc_root}/{pid}/cgroup")
        except OSError:
            return self._gone(key, cgroup_id, cgroup1_id)
        fields = self._fields_of(text)
        self._put(self._by_proc, key, fields)
        return fields

    def _hit(self, text: str) -> tuple[str, str] | None:
        if text in self._by_text:
            return self._by_text[text]
        hit = container_of_cgroup(text)
        self._put(self._by_text, text, hit)
        return hit

    def _fields_of(self, text: str) -> dict[str, Any]:
        hit = self._hit(text)
        return HOST_FIELDS if hit is None else self.state.describe(*hit).fields()

    def _gone(self, key: tuple[int, int, str], cgroup_id: int, cgroup1_id: int) -> dict[str, Any]:
        """A process gone before its lookup: what its recorded cgroups' paths tell, else unknown."""
        found = self._by_cgroup.get((cgroup_id, 0))
        if found is None and cgroup1_id:
            found = self._by_cgroup.get((cgroup_id, cgroup1_id))
        if found is None:
            told = self._text_of(cgroup_id, cgroup1_id)
            if told is None:
                return UNKNOWN_FIELDS
            text, v1_key = told
            found = self._fields_of(text)
            self._put(self._by_cgroup, (cgroup_id, v1_key), found)
        # Its later events (which carry no v1 id) find it here.
        self._put(self._by_proc, key, found)
        return found

    def _text_of(self, cgroup_id: int, cgroup1_id: int) -> tuple[str, int] | None:
        """/proc/PID/cgroup lines rebuilt from the recorded ids, where they alone tell the
        answer, with the v1 id they depend on (0: the v2 id alone); None if they do not.

        The v1 line is that of one hierarchy: a runtime naming its containers in another
        one only would be taken for the host (docker's cgroupfs driver, CRI's kubepods and
        systemd's scopes name them in every controller)."""
        paths = self.paths
        if paths is None:
            return None
        v2 = paths.path(V2, cgroup_id)
        if v2 is not None:
            only = f"0::{v2}\n"
            if not paths.has_v1 or self._hit(only) is not None:
                return only, 0
        controller = self.cgroup1_controller
        if not cgroup1_id or not controller:
            return None
        v1 = paths.path(controller, cgroup1_id)
        if v1 is None or (v2 is None and V2 in paths.mounts):
            return None
        return ("" if v2 is None else f"0::{v2}\n") + f"1:{controller}:{v1}\n", cgroup1_id


_CHUNK = 16384


def _read_small(path: str) -> str:
    """A /proc file's text, without pathlib's and io's layers (one lookup per new process
    image: pathlib's read_text was 18 us of it, this about half)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, _CHUNK)]
        # /proc/PID/cgroup is written whole into one read (a single_open seq_file); a
        # full read may have more behind it.
        while len(chunks[-1]) == _CHUNK:
            chunks.append(os.read(fd, _CHUNK))
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape")

