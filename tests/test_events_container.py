"""Container identity: cgroup paths of each runtime (logic), and a real podman container (kernel)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.events import container
from monitor.events.cgroup_paths import V2, CgroupPaths, Mount
from monitor.events.container import ContainerResolver, container_of_cgroup, split_image
from tests.monitor_proc import RunningMonitor
from tests.podman_util import PODMAN, import_busybox_image, remove_container, run_container

ID = "8a53e5dfaa07dc628350bf7753c7a03ecb7e0df9c81ec8a220215d8e55c6ec02"


@pytest.mark.parametrize(("text", "want"), [
    (f"0::/system.slice/docker-{ID}.scope\n", ("docker", ID)),
    (f"12:memory:/docker/{ID}\n0::/\n", ("docker", ID)),
    (f"0::/machine.slice/libpod-{ID}.scope/container\n", ("podman", ID)),
    (f"4:memory:/libpod_parent/libpod-{ID}\n0::/libpod_parent/libpod-{ID}\n", ("podman", ID)),
    (f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope\n",
     ("containerd", ID)),
    (f"0::/kubepods/besteffort/pod0c2d/{ID}\n", ("containerd", ID)),
    (f"0::/kubepods.slice/crio-{ID}.scope\n", ("cri-o", ID)),
    ("0::/user.slice/user-1000.slice/session-2.scope\n", None),
    (f"0::/machine.slice/libpod-conmon-{ID}.scope\n", None),  # podman's monitor runs on the host
    ("0::/\n", None),
])
def test_cgroup_paths_of_each_runtime(text: str, want: tuple[str, str] | None) -> None:
    assert container_of_cgroup(text) == want


def test_image_references_split_like_falco() -> None:
    assert split_image("docker.io/library/nginx:1.25") == ("docker.io/library/nginx", "1.25")
    assert split_image("localhost:5000/app") == ("localhost:5000/app", "latest")
    assert split_image("quay.io/x/y@sha256:abc") == ("quay.io/x/y", "")
    assert split_image("") == ("", "")


def test_an_exited_process_is_never_taken_for_the_host(tmp_path: Path) -> None:
    """Gone, and no cgroup paths to look its ids up in: unknown (""), which `container.id != host`
    keeps. A live process of the same ids seen before teaches nothing (see below)."""
    proc = tmp_path / "proc"
    (proc / "10").mkdir(parents=True)
    (proc / "10" / "cgroup").write_text(f"0::/system.slice/docker-{ID}.scope\n")
    res = ContainerResolver(proc_root=str(proc))
    assert res.fields(10, 1, "x", 77)["container.id"] == ID[:12]
    assert res.fields(11, 1, "x", 77) == {"container.id": ""}
    assert res.fields(12, 1, "x", 78, 501) == {"container.id": ""}


def test_a_live_process_that_moved_never_names_the_cgroup_of_its_records(tmp_path: Path) -> None:
    """A runtime's init makes records in the test's (host) cgroup, then joins its container;
    its /proc file, read later, shows the container. Filing that answer under the records'
    cgroup id made the next gone host process of that cgroup a container (CI, 2026-12-03:
    'PTRACE anti-debug attempt' got container.id daaf78e3e307). Gone processes are named by
    their cgroups' own paths."""
    v2 = tmp_path / "unified"
    (v2 / "scope").mkdir(parents=True)
    (v2 / "libpod_parent" / f"libpod-{ID}").mkdir(parents=True)
    scope = (v2 / "scope").stat().st_ino
    proc = tmp_path / "proc"
    (proc / "10").mkdir(parents=True)
    (proc / "10" / "cgroup").write_text(f"0::/libpod_parent/libpod-{ID}\n")
    res = ContainerResolver(str(proc), paths=CgroupPaths({V2: Mount(str(v2), "/")}))
    assert res.fields(10, 1, "x", scope)["container.id"] == ID[:12]  # read after the move
    assert res.fields(11, 1, "x", scope)["container.id"] == "host"  # gone, of the scope


def test_processes_sharing_a_cgroup_text_parse_it_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = tmp_path / "proc"
    texts = {10: f"0::/system.slice/docker-{ID}.scope\n", 11: "0::/user.slice\n",
             12: f"0::/system.slice/docker-{ID}.scope\n", 13: "0::/user.slice\n"}
    for pid, text in texts.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_text(text)
    parsed: list[str] = []
    real = container.container_of_cgroup

    def counted(text: str) -> tuple[str, str] | None:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(container, "container_of_cgroup", counted)
    res = ContainerResolver(proc_root=str(proc))
    ids = [res.fields(pid, 1, "x", 1)["container.id"] for pid in texts]
    assert ids == [ID[:12], "host", ID[:12], "host"]
    assert parsed == [texts[10], texts[11]]


def test_a_proc_file_longer_than_one_read_is_read_whole(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(container, "_CHUNK", 8)
    with open("/proc/self/cgroup") as fh:
        want = fh.read()
    assert container._read_small("/proc/self/cgroup") == want
    exact = tmp_path / "sixteen"
    exact.write_text("0123456789abcdef")  # two full reads, then an empty one
    assert container._read_small(str(exact)) == "0123456789abcdef"


# --- a real container -----------------------------------------------------------------------
IMAGE = "localhost/ringwatch-test:1"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    return import_busybox_image(tmp_path_factory.mktemp("rootfs"), IMAGE)


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"rwtest-{uuid.uuid4().hex[:8]}"
    yield name
    remove_container(name)


@pytest.mark.kernel
@pytest.mark.parametrize("privileged", [False, True])
def test_a_podman_container_is_named_from_its_cgroup_and_state(
        tmp_path: Path, image: str, container_name: str, privileged: bool) -> None:
    with RunningMonitor(tmp_path) as mon:
        flags = ["--privileged"] if privileged else []
        full_id = run_container(container_name, image, *flags, command=("/bin/sleep", "30"))
        pid = int(subprocess.run([*PODMAN, "inspect", "-f", "{{.State.Pid}}", container_name], check=True,
                                 capture_output=True, text=True, timeout=60).stdout)
        ev = mon.wait_for(lambda e: e["evt.type"] == "execve" and e["proc.pid"] == pid
                          and e.get("proc.argv") == ["/bin/sleep", "30"], timeout=60)
        host = mon.wait_for(lambda e: e["evt.type"] == "execve" and e["proc.name"] == "podman")
        assert mon.stop() == 0
    assert len(full_id) == 64
    assert ev["container.id"] == full_id[:12] and ev["container.full_id"] == full_id
    assert ev["container.type"] == "podman"
    assert ev["container.name"] == container_name
    assert ev["container.image"] == IMAGE
    assert (ev["container.image.repository"], ev["container.image.tag"]) == ("localhost/ringwatch-test", "1")
    assert ev["container.privileged"] is privileged
    assert host["container.id"] == "host" and host["container.name"] == "host"
