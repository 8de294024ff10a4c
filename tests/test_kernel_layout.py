"""bpf/records.h and its mirror in monitor/kernel/records.py must agree byte for byte."""

from __future__ import annotations

import ctypes as ct
import random
import struct
import subprocess
from pathlib import Path

import pytest

from monitor.kernel import records

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"


def _c_layout(tmp_path: Path) -> dict[str, int]:
    """sizeof and offsetof of every mirrored struct and field, as the C compiler sees them."""
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "records.h"', "int main(void) {"]
    for cname, mirror in records.MIRRORS.items():
        lines.append(f'printf("{cname} %zu\\n", sizeof(struct {cname}));')
        for fname, *_ in mirror._fields_:
            lines.append(f'printf("{cname}.{fname} %zu\\n", offsetof(struct {cname}, {fname}));')
    for const in ("RW_COMM_LEN", "RW_PATH_LEN", "RW_ARGS_LEN", "RW_ARG_LEN", "RW_MAX_ARGS"):
        lines.append(f'printf("{const} %d\\n", {const});')
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-Wall", "-Werror", f"-I{BPF_DIR}", "-o", exe, src], check=True)
    out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    return _c_layout(tmp_path_factory.mktemp("layout"))


@pytest.mark.parametrize("cname", sorted(records.MIRRORS))
def test_struct_size_and_offsets_match(c_layout: dict[str, int], cname: str) -> None:
    mirror = records.MIRRORS[cname]
    assert ct.sizeof(mirror) == c_layout[cname], f"sizeof(struct {cname})"
    for fname, *_ in mirror._fields_:
        assert getattr(mirror, fname).offset == c_layout[f"{cname}.{fname}"], f"{cname}.{fname}"


def test_constants_match(c_layout: dict[str, int]) -> None:
    assert c_layout["RW_COMM_LEN"] == records.COMM_LEN
    assert c_layout["RW_PATH_LEN"] == records.PATH_LEN
    assert c_layout["RW_ARGS_LEN"] == records.ARGS_LEN
    assert c_layout["RW_ARG_LEN"] == records.ARG_LEN
    assert c_layout["RW_MAX_ARGS"] == records.MAX_ARGS


def test_enums_match() -> None:
    header = (BPF_DIR / "records.h").read_text()
    for t in records.RecordType:
        assert f"RW_REC_{t.name} = {t.value}," in header
    for r in records.DropReason:
        assert f"RW_DROP_{r.name} = {r.value}," in header


def _ctypes_values(obj: ct.Structure, prefix: str = "") -> dict[str, object]:
    """Every (flattened) field of a ctypes structure as the struct layout should unpack it."""
    out: dict[str, object] = {}
    for fname, ftype, *_ in obj._fields_:
        val = getattr(obj, fname)
        if isinstance(val, ct.Structure):
            out.update(_ctypes_values(val, f"{prefix}{fname}."))
        elif (isinstance(ftype, type) and issubclass(ftype, ct.Array)
              and ftype._type_ in (ct.c_char, ct.c_uint8)):
            # The raw bytes: a c_char array's value stops at the first NUL.
            out[prefix + fname] = ct.string_at(ct.addressof(obj) + getattr(type(obj), fname).offset,
                                               ct.sizeof(ftype))
        elif isinstance(val, ct.Array):
            out[prefix + fname] = tuple(
                bytes(v) if isinstance(v, ct.Array) else v for v in val)
        else:
            out[prefix + fname] = val
    return out


@pytest.mark.parametrize("cname", sorted(records.MIRRORS))
def test_struct_layouts_read_what_ctypes_reads(cname: str) -> None:
    """The precompiled struct.Struct decoders are derived from the ctypes mirrors (checked
    against C above): on random bytes, every field unpacks to what ctypes reads there."""
    mirror, lay = records.MIRRORS[cname], records.LAYOUTS[cname]
    rng = random.Random(cname)
    for _ in range(20):
        raw = rng.randbytes(ct.sizeof(mirror))
        want = _ctypes_values(mirror.from_buffer_copy(raw))
        got = lay.unpack(raw)
        assert set(lay.index) == set(want), cname
        for name, value in want.items():
            i, n = lay.index[name], lay.count[name]
            assert (got[i] if n == 1 and not isinstance(value, tuple) else tuple(got[i:i + n])) == value, \
                f"{cname}.{name}"


# Environment at exec and io_uring records: constants and flag bits the decoder relies on.
_ENV_URING_CONSTANTS = {
    "RW_ENV_LEN": records.ENV_LEN, "RW_ENV_VAR_LEN": records.ENV_VAR_LEN,
    "RW_ENV_BUF": records.ENV_BUF, "RW_ENV_CHUNK": records.ENV_CHUNK, "RW_ENV_SCAN": records.ENV_SCAN,
    "RW_EXEC_F_ENV": records.EXEC_F_ENV,
    "RW_EXEC_F_ENV_SCAN_TRUNCATED": records.EXEC_F_ENV_SCAN_TRUNCATED,
    "RW_EXEC_F_ENV_READ_FAILED": records.EXEC_F_ENV_READ_FAILED,
    "RW_EXEC_F_ENV_FULL": records.EXEC_F_ENV_FULL,
    "RW_EXEC_F_ARGS_FROM_KERNEL": records.EXEC_F_ARGS_FROM_KERNEL,
    "RW_SC_F_IO_URING": records.SC_F_IO_URING, "RW_SC_F_URING_NO_RESULT": records.SC_F_URING_NO_RESULT,
    "RW_SC_FIXED_LEN": records.SC_FIXED_LEN, "RW_SC_STRINGS": len(records.SC_STRINGS),
    "RW_SC_STRS_BUF": records.SC_STRS_BUF,
}


def test_env_and_io_uring_constants_match(tmp_path: Path) -> None:
    lines = ['#include <stdio.h>', '#include "records.h"', "int main(void) {"]
    lines += [f'printf("{c} %lu\\n", (unsigned long)({c}));' for c in _ENV_URING_CONSTANTS]
    src = tmp_path / "consts.c"
    src.write_text("\n".join([*lines, "return 0; }"]))
    exe = tmp_path / "consts"
    subprocess.run(["gcc", "-Wall", "-Werror", f"-I{BPF_DIR}", "-o", exe, src], check=True)
    out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    assert {k: int(v) for k, v in (line.split() for line in out.splitlines())} == _ENV_URING_CONSTANTS


def _syscall(**strings: bytes) -> records.CSyscall:
    r = records.CSyscall()
    r.h.type, r.h.pid, r.h.tgid, r.nr, r.ret = records.RecordType.SYSCALL, 5, 5, 264, 0
    r.flags = records.SC_F_BASE | records.SC_F_BASE2
    # aux stays in the fixed part, whole (utimensat's times are binary).
    ct.memmove(ct.addressof(r) + records.CSyscall.aux.offset, b"\x00\x01binary", 8)
    for name, value in strings.items():
        setattr(r, name, value)
    return r


def test_wire_record_carries_each_string_once_and_decodes_back() -> None:
    r = _syscall(path=b"new", path2=b"/tmp/\xffold", kpath=b"/root", kpath2=b"/srv/d" + b"x" * 249)
    raw = records.wire(r)
    assert len(raw) == records.SC_WIRE_HEAD + 3 + 9 + 5 + 255
    rec = records.decode_bytes(raw)
    assert isinstance(rec, records.SyscallRecord)
    assert (rec.path, rec.path2, rec.base) == ("new", "/tmp/\udcffold", "/root")
    assert rec.base2 == "/srv/d" + "x" * 249
    assert rec.aux_raw == b"\x00\x01binary" + bytes(records.AUX_LEN - 8)
    # The strings' lengths come before them, in the order of records.h.
    assert struct.unpack_from("<4H", raw, records.SC_FIXED_LEN) == (3, 9, 5, 255)


def test_wire_record_shorter_than_its_strings_is_a_decode_error() -> None:
    raw = records.wire(_syscall(path=b"/etc/passwd"))
    with pytest.raises(records.DecodeError, match="strings of 11\\+0\\+0\\+0 bytes do not fit"):
        records.decode_bytes(raw[:-1])
    with pytest.raises(records.DecodeError, match="expected"):
        records.decode_bytes(raw[:records.SC_FIXED_LEN])


def test_wire_string_is_cut_at_a_nul_the_kernel_sent() -> None:
    raw = bytearray(records.wire(_syscall(path=b"/etc/passwd")))
    raw[records.SC_WIRE_HEAD + 4] = 0
    rec = records.decode_bytes(bytes(raw))
    assert isinstance(rec, records.SyscallRecord) and rec.path == "/etc"
