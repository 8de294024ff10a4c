"""Offsets from monitor.btf agree with bpftool's reading of the same BTF."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from monitor.kernel import offsets
from monitor.kernel.btf import BTF, VMLINUX_BTF, BTFError


@pytest.fixture(scope="module")
def bpftool_structs() -> dict[str, dict[str, int]]:
    """struct name -> {member: byte offset} for named, top-level members, per bpftool."""
    out = subprocess.run(
        ["bpftool", "btf", "dump", "file", str(VMLINUX_BTF), "format", "raw"],
        check=True, capture_output=True, text=True,
    ).stdout
    wanted = {s for s, _ in offsets.KERNEL_FIELDS.values()}
    structs: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    for line in out.splitlines():
        m = re.match(r"\[\d+\] STRUCT '(\w+)' size=\d+ vlen=\d+", line)
        if m:
            name = m.group(1)
            current = structs.setdefault(name, {}) if name in wanted and name not in structs else None
            continue
        if line.startswith("["):
            current = None
            continue
        m = re.match(r"\s+'(\w+)' type_id=\d+ bits_offset=(\d+)", line)
        if m and current is not None:
            current[m.group(1)] = int(m.group(2)) // 8
    return structs


def test_every_kernel_field_resolves_and_matches_bpftool(
    bpftool_structs: dict[str, dict[str, int]],
) -> None:
    btf = BTF.load()
    compared = 0
    for key, (struct_name, paths) in offsets.KERNEL_FIELDS.items():
        path = offsets.member_path(btf, struct_name, paths)
        ours = btf.offset_of(struct_name, path)
        top = path.split(".")[0]
        theirs = bpftool_structs[struct_name].get(top)
        if theirs is not None and "." not in path:
            assert ours == theirs, f"{key}: {struct_name}.{path}"
            compared += 1
    assert compared >= len(offsets.KERNEL_FIELDS) // 2


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
    offs, warning = offsets.detect(tmp_path / "absent")
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
