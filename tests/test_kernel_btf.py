"""Offsets from monitor.btf agree with bpftool's reading of the same BTF."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from monitor.kernel import cgroups, iouring, offsets
from monitor.kernel.btf import BTF, VMLINUX_BTF, BTFError


class BpftoolBTF:
    """Every struct and union of the kernel's BTF as bpftool prints it (`format raw`), with
    a member-path resolver of its own: an independent reading to check monitor.btf against."""

    _TYPE = re.compile(r"\[(\d+)\] (\w+) '([^']*)'(.*)")
    _MEMBER = re.compile(r"\s+'([^']*)' type_id=(\d+) bits_offset=(\d+)")

    def __init__(self, raw: str) -> None:
        self.kind: dict[int, str] = {}
        self.ref: dict[int, int] = {}  # typedef/const/volatile -> the type they name
        self.members: dict[int, list[tuple[str, int, int]]] = {}
        self.by_name: dict[str, int] = {}
        current: int | None = None
        for line in raw.splitlines():
            m = self._TYPE.match(line)
            if m:
                tid, kind, name, rest = int(m[1]), m[2], m[3], m[4]
                self.kind[tid] = kind
                current = tid if kind in ("STRUCT", "UNION") else None
                if current is not None:
                    self.members[tid] = []
                    if kind == "STRUCT" and name != "(anon)":
                        self.by_name.setdefault(name, tid)
                ref = re.search(r"type_id=(\d+)", rest)
                if kind in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG") and ref:
                    self.ref[tid] = int(ref[1])
                continue
            m = self._MEMBER.match(line)
            if m and current is not None:
                self.members[current].append((m[1], int(m[2]), int(m[3]) // 8))

    def _strip(self, tid: int) -> int:
        while tid in self.ref:
            tid = self.ref[tid]
        return tid

    def _find(self, tid: int, name: str) -> tuple[int, int] | None:
        """(byte offset, member type) of `name` in struct/union tid, looking into anonymous members."""
        for mname, mtype, off in self.members.get(tid, []):
            if mname == name:
                return off, self._strip(mtype)
            if mname == "(anon)":
                inner = self._find(self._strip(mtype), name)
                if inner is not None:
                    return off + inner[0], inner[1]
        return None

    def offset_of(self, struct: str, path: str) -> int:
        tid, total = self.by_name[struct], 0
        for part in path.split("."):
            found = self._find(tid, part)
            assert found is not None, f"bpftool: {struct} has no {path}"
            total += found[0]
            tid = found[1]
        return total


@pytest.fixture(scope="module")
def bpftool_btf() -> BpftoolBTF:
    out = subprocess.run(
        ["bpftool", "btf", "dump", "file", str(VMLINUX_BTF), "format", "raw"],
        check=True, capture_output=True, text=True,
    ).stdout
    return BpftoolBTF(out)


def test_every_kernel_field_matches_bpftool_exactly(bpftool_btf: BpftoolBTF) -> None:
    """Every offset the kernel programs are compiled with, nested and anonymous members
    included, equals the one bpftool's dump gives: none is skipped."""
    btf = BTF.load()
    # Of alternative member paths (inode times), the one this kernel has.
    chosen = {key: (s, offsets.member_path(btf, s, p)) for key, (s, p) in offsets.KERNEL_FIELDS.items()}
    mismatched = {key: (btf.offset_of(s, p), bpftool_btf.offset_of(s, p))
                  for key, (s, p) in chosen.items()
                  if btf.offset_of(s, p) != bpftool_btf.offset_of(s, p)}
    assert mismatched == {}
    assert len(offsets.KERNEL_FIELDS) >= 30


def test_the_independent_reader_sees_nesting(bpftool_btf: BpftoolBTF) -> None:
    """The checker itself resolves through wrappers: sock.__sk_common.skc_dport is not at 0,
    and a struct's second member is not at the first's offset."""
    assert bpftool_btf.offset_of("sock", "__sk_common.skc_dport") > 0
    assert bpftool_btf.offset_of("task_struct", "tgid") != bpftool_btf.offset_of("task_struct", "pid")


def test_nested_and_anonymous_members() -> None:
    btf = BTF.load()
    # cred.uid is a kuid_t wrapping `val`; the nested path adds the inner offset (0).
    assert btf.offset_of("cred", "uid.val") == btf.offset_of("cred", "uid")
    # mm_struct keeps most members inside an anonymous struct on recent kernels.
    assert btf.offset_of("mm_struct", "arg_end") == btf.offset_of("mm_struct", "arg_start") + 8


def test_errors_name_the_member() -> None:
    btf = BTF.load()
    with pytest.raises(BTFError, match="task_struct has no member no_such_member"):
        btf.offset_of("task_struct", "no_such_member")
    with pytest.raises(BTFError, match="struct no_such_struct not in BTF"):
        btf.offset_of("no_such_struct", "x")


def test_missing_btf_falls_back_to_headers_with_a_warning(tmp_path: Path) -> None:
    offs, warning = offsets.detect(BTF.try_load(tmp_path / "absent"))
    assert offs.source == "headers"
    assert warning is not None and "compile-time headers" in warning
    assert "-DRW_OFF_TASK_REAL_PARENT=__builtin_offsetof(struct task_struct,real_parent)" in offs.cflags()


def test_garbage_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "btf"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(BTFError, match="bad BTF magic"):
        BTF.load(bad)


def test_alternative_member_paths_take_the_first_the_kernel_has() -> None:
    btf = BTF.load()
    # Inode times moved between kernel versions; whichever layout this kernel has is found.
    path = offsets.member_path(btf, "inode", offsets.KERNEL_FIELDS["INODE_CTIME_SEC"][1])
    assert path in ("i_ctime_sec", "__i_ctime.tv_sec", "i_ctime.tv_sec")
    assert offsets.member_path(btf, "inode", "no_such|i_ino") == "i_ino"
    with pytest.raises(BTFError, match="inode has no member nope2"):
        btf.offset_of("inode", offsets.member_path(btf, "inode", "nope1|nope2"))


def test_env_and_io_uring_fields_match_bpftool(bpftool_btf: BpftoolBTF) -> None:
    """The environment-at-exec offsets and io_uring's private request layout (which only
    BTF can give: no header has struct io_kiocb's neighbours io_open and io_connect)."""
    btf = BTF.load()
    fields = {**offsets.ENV_FIELDS, **iouring.URING_FIELDS}
    mismatched = {key: (btf.offset_of(s, p), bpftool_btf.offset_of(s, p))
                  for key, (s, p) in fields.items() if btf.offset_of(s, p) != bpftool_btf.offset_of(s, p)}
    assert mismatched == {}
    flags = iouring.detect(btf).cflags
    assert f"-DRW_OFF_IO_OPEN_FILENAME={btf.offset_of('io_open', 'filename')}" in flags


def test_cgroup_fields_and_subsystem_index_match_bpftool(bpftool_btf: BpftoolBTF) -> None:
    """task->cgroups->subsys[memory_cgrp_id]->cgroup->kn->id and ->dfl_cgrp: offsets and
    the enumerator's value, against bpftool's dump (its enum lines: `'memory_cgrp_id' val=4`)."""
    btf = BTF.load()
    mismatched = {key: (btf.offset_of(s, p), bpftool_btf.offset_of(s, p))
                  for key, (s, p) in cgroups.CGROUP_FIELDS.items()
                  if btf.offset_of(s, p) != bpftool_btf.offset_of(s, p)}
    assert mismatched == {}
    dump = subprocess.run(["bpftool", "btf", "dump", "file", str(VMLINUX_BTF), "format", "raw"],
                          check=True, capture_output=True, text=True).stdout
    vals = dict(re.findall(r"^\s+'(\w+_cgrp_id)' val=(\d+)$", dump, re.M))
    assert len(vals) >= 5
    assert {name: btf.enumerator(name) for name in vals} == {n: int(v) for n, v in vals.items()}
    with pytest.raises(BTFError, match="enumerator nope_cgrp_id not in BTF"):
        btf.enumerator("nope_cgrp_id")


PROC_CGROUPS_HYBRID = """#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t1\t1
cpu\t1\t1\t1
memory\t4\t24\t1
pids\t8\t1\t1
"""


@pytest.mark.parametrize(("text", "want"), [
    (PROC_CGROUPS_HYBRID, "memory"),
    (PROC_CGROUPS_HYBRID.replace("memory\t4", "memory\t0"), "pids"),  # memory on v2 only
    (PROC_CGROUPS_HYBRID.replace("24\t1", "24\t0"), "pids"),  # memory disabled (cgroup_disable=)
    ("".join(f"{c}\t0\t1\t1\n" for c in ("cpu", "memory", "pids")), ""),  # pure v2
])
def test_the_v1_hierarchy_is_the_first_preferred_controller_bound_to_one(
        tmp_path: Path, text: str, want: str) -> None:
    path = tmp_path / "cgroups"
    path.write_text(text)
    found = cgroups.detect(BTF.try_load(), path)
    assert found.controller == want
    if want:
        index = BTF.load().enumerator(f"{want}_cgrp_id")
        assert f"-DRW_CGROUP1_SUBSYS={index}" in found.cflags and found.reason == ""
    else:
        assert "pure cgroup v2" in found.reason
        assert not any(f.startswith("-DRW_CGROUP1_SUBSYS") for f in found.cflags)
    # The child's own v2 cgroup at fork is read on any host with BTF.
    assert f"-DRW_OFF_CSS_SET_DFL_CGRP={BTF.load().offset_of('css_set', 'dfl_cgrp')}" in found.cflags


def test_without_btf_no_cgroup_is_read(tmp_path: Path) -> None:
    path = tmp_path / "cgroups"
    path.write_text(PROC_CGROUPS_HYBRID)
    found = cgroups.detect(BTF.try_load(tmp_path / "no-btf"), path)
    assert (found.controller, found.cflags) == ("", ())
    assert "cgroup layout unknown" in found.reason
