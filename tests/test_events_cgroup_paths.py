"""Cgroup paths from recorded ids (logic): mountinfo parsing, the walk, its rate limit, and the
container lookup of gone processes built on them.

A directory tree under tmp_path stands for a cgroupfs mount: the walk reads directory
inode numbers, which any filesystem has (on cgroupfs they are the cgroup ids; the real
kernel case is tests/test_container_gone_kernel.py)."""

from __future__ import annotations

from pathlib import Path

from monitor.events.cgroup_paths import V2, CgroupPaths, Mount, cgroup_mounts, walk
from monitor.events.container import ContainerResolver

ID = "8a53e5dfaa07dc628350bf7753c7a03ecb7e0df9c81ec8a220215d8e55c6ec02"

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 /process_api/f2 /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/cpu\\040two rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 23 0:38 / /mnt/again rw,relatime - cgroup2 cgroup2 rw
"""


def test_mountinfo_gives_each_hierarchy_its_first_mount_and_root() -> None:
    mounts = cgroup_mounts(MOUNTINFO)
    assert mounts[V2] == Mount("/sys/fs/cgroup/unified", "/")
    assert mounts["memory"] == Mount("/sys/fs/cgroup/memory", "/process_api/f2")  # a bind of a sub-cgroup
    assert mounts["cpu"] == Mount("/sys/fs/cgroup/cpu", "/")
    assert mounts["cpuacct"] == Mount("/sys/fs/cgroup/cpu two", "/")  # \040 is a space
    assert "mode=755" not in mounts  # tmpfs is no hierarchy
    assert CgroupPaths(mounts).has_v1 and not CgroupPaths({V2: mounts[V2]}).has_v1


def tree(base: Path, *paths: str) -> dict[str, int]:
    """Directories under base; path -> inode number."""
    base.mkdir(parents=True, exist_ok=True)
    out = {"/": base.stat().st_ino}
    for p in paths:
        (base / p.lstrip("/")).mkdir(parents=True, exist_ok=True)
        out[p] = (base / p.lstrip("/")).stat().st_ino
    return out


def test_a_walk_maps_every_directory_inode_to_its_cgroup_path(tmp_path: Path) -> None:
    ino = tree(tmp_path, "/docker", f"/docker/{ID}", "/user.slice", "/user.slice/user-0.slice")
    (tmp_path / "cgroup.procs").write_text("")  # files are no cgroups
    (tmp_path / "link").symlink_to(tmp_path / "docker")
    got = walk(Mount(str(tmp_path), "/"))
    assert got == {ino["/"]: "/", ino["/docker"]: "/docker", ino[f"/docker/{ID}"]: f"/docker/{ID}",
                   ino["/user.slice"]: "/user.slice",
                   ino["/user.slice/user-0.slice"]: "/user.slice/user-0.slice"}
    # Mounted from a sub-cgroup: paths start at the mount's root, as /proc/PID/cgroup shows them.
    assert walk(Mount(str(tmp_path), "/process_api/f2"))[ino["/docker"]] == "/process_api/f2/docker"
    assert walk(Mount(str(tmp_path / "absent"), "/")) == {}


def test_only_a_newer_id_walks_again_and_within_a_budget(tmp_path: Path) -> None:
    now = [100.0]
    paths = CgroupPaths({V2: Mount(str(tmp_path), "/")}, walk_rate=2.0, walk_burst=2.0, clock=lambda: now[0])
    ino = tree(tmp_path, "/a")
    assert paths.path(V2, ino["/a"]) == "/a" and paths.walks == 1
    assert paths.path(V2, ino["/a"]) == "/a" and paths.walks == 1  # a hit walks nothing
    ino |= tree(tmp_path, "/b")
    assert ino["/b"] > ino["/a"]  # as kernfs ids: a newer directory has a higher number here too
    assert paths.path(V2, ino["/b"]) == "/b" and paths.walks == 2  # the burst's second walk
    ino |= tree(tmp_path, "/c")
    assert paths.path(V2, ino["/c"]) is None and paths.walks == 2  # budget spent
    now[0] += 0.5  # one walk's worth at 2 a second
    ino |= tree(tmp_path, "/d")  # made before /a goes: no filesystem gives it /a's number
    (tmp_path / "a").rmdir()
    assert paths.path(V2, ino["/c"]) == "/c" and paths.walks == 3
    assert paths.path(V2, ino["/d"]) == "/d" and paths.walks == 3  # that walk saw it too
    assert paths.path(V2, ino["/a"]) is None  # removed: forgotten by the walk that replaced the map
    now[0] += 10.0
    # Older than the newest id seen and not in the map: removed before the last walk, none can find it.
    assert paths.path(V2, ino["/a"]) is None and paths.walks == 3
    assert paths.path("memory", ino["/b"]) is None and paths.path(V2, 0) is None


def hybrid(tmp_path: Path) -> tuple[ContainerResolver, dict[str, int], dict[str, int]]:
    """Docker's cgroupfs driver on a hybrid host: containers in v1 only, all in the v2 root."""
    v2 = tree(tmp_path / "unified")
    mem = tree(tmp_path / "memory", f"/docker/{ID}", "/user.slice")
    paths = CgroupPaths({V2: Mount(str(tmp_path / "unified"), "/"),
                         "memory": Mount(str(tmp_path / "memory"), "/")})
    (tmp_path / "proc").mkdir()
    return ContainerResolver(str(tmp_path / "proc"), cgroup1_controller="memory", paths=paths), v2, mem


def test_a_gone_process_never_seen_alive_is_named_by_its_cgroups_paths(tmp_path: Path) -> None:
    res, v2, mem = hybrid(tmp_path)
    box = res.fields(10, 1, "x", v2["/"], mem[f"/docker/{ID}"])
    assert (box["container.id"], box["container.full_id"], box["container.type"]) == (ID[:12], ID, "docker")
    assert res.fields(11, 1, "x", v2["/"], mem["/user.slice"])["container.id"] == "host"
    # No v1 id (not an exec), or the sensor reads none: the shared v2 root cannot tell.
    assert res.fields(12, 1, "x", v2["/"]) == {"container.id": ""}
    unread, v2, mem = hybrid(tmp_path / "unread")
    unread.cgroup1_controller = ""
    assert unread.fields(13, 1, "x", v2["/"], mem[f"/docker/{ID}"]) == {"container.id": ""}


def test_a_container_cgroup_removed_with_its_process_is_unknown_not_the_host(tmp_path: Path) -> None:
    res, v2, mem = hybrid(tmp_path)
    (tmp_path / "memory" / "docker" / ID).rmdir()
    assert res.fields(10, 1, "x", v2["/"], mem[f"/docker/{ID}"]) == {"container.id": ""}


def test_on_a_pure_v2_host_the_v2_path_alone_tells(tmp_path: Path) -> None:
    v2 = tree(tmp_path, f"/system.slice/docker-{ID}.scope", "/user.slice")
    (tmp_path / "proc").mkdir()
    res = ContainerResolver(str(tmp_path / "proc"), paths=CgroupPaths({V2: Mount(str(tmp_path), "/")}))
    assert res.fields(10, 1, "x", v2[f"/system.slice/docker-{ID}.scope"])["container.id"] == ID[:12]
    assert res.fields(11, 1, "x", v2["/user.slice"])["container.id"] == "host"
    assert res.fields(12, 1, "x", 999_999_999) == {"container.id": ""}


def test_on_a_hybrid_host_a_v2_path_naming_a_container_tells_without_a_v1_id(tmp_path: Path) -> None:
    res, _v2, _mem = hybrid(tmp_path)
    v2 = tree(tmp_path / "unified", f"/machine.slice/libpod-{ID}.scope")
    assert res.fields(10, 1, "x", v2[f"/machine.slice/libpod-{ID}.scope"])["container.type"] == "podman"
