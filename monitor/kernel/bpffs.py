"""Pinned BPF maps through the bpf(2) syscall: open, describe, iterate, update.

libbcc does not export bpf_obj_get, and bcc silently reuses a pinned map even when the
program declares another size, so resizing the lineage map is done here, before bcc
compiles: read every entry, unpin, let bcc create the new map, write the entries back.
"""

from __future__ import annotations

import ctypes as ct
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor.kernel.bpfsys import BPFSyscallError
from monitor.kernel.bpfsys import bpf as _bpf

_MAP_LOOKUP_ELEM, _MAP_UPDATE_ELEM, _MAP_GET_NEXT_KEY = 1, 2, 4
_OBJ_GET, _OBJ_GET_INFO_BY_FD = 7, 15
_MAP_LOOKUP_BATCH = 24
BPF_ANY, BPF_NOEXIST = 0, 1

class _ElemAttr(ct.Structure):
    _fields_ = [("map_fd", ct.c_uint32), ("_pad", ct.c_uint32), ("key", ct.c_uint64),
                ("value", ct.c_uint64), ("flags", ct.c_uint64)]


class _BatchAttr(ct.Structure):
    _fields_ = [("in_batch", ct.c_uint64), ("out_batch", ct.c_uint64), ("keys", ct.c_uint64),
                ("values", ct.c_uint64), ("count", ct.c_uint32), ("map_fd", ct.c_uint32),
                ("elem_flags", ct.c_uint64), ("flags", ct.c_uint64)]


class _ObjAttr(ct.Structure):
    _fields_ = [("pathname", ct.c_uint64), ("bpf_fd", ct.c_uint32), ("file_flags", ct.c_uint32)]


class _InfoAttr(ct.Structure):
    _fields_ = [("bpf_fd", ct.c_uint32), ("info_len", ct.c_uint32), ("info", ct.c_uint64)]


class _MapInfo(ct.Structure):
    _fields_ = [("type", ct.c_uint32), ("id", ct.c_uint32), ("key_size", ct.c_uint32),
                ("value_size", ct.c_uint32), ("max_entries", ct.c_uint32), ("map_flags", ct.c_uint32),
                ("name", ct.c_char * 16)]


@dataclass(frozen=True, slots=True)
class MapInfo:
    id: int
    type: int
    name: str
    key_size: int
    value_size: int
    max_entries: int


class PinnedMap:
    """An open file descriptor on a map pinned in bpffs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        raw = str(path).encode()
        buf = ct.create_string_buffer(raw)
        try:
            self.fd = _bpf(_OBJ_GET, _ObjAttr(ct.addressof(buf), 0, 0))
        except BPFSyscallError as exc:
            raise BPFSyscallError(exc.errno, f"{path}: {exc.strerror}") from exc
        self.info = self._info()

    def _info(self) -> MapInfo:
        info = _MapInfo()
        _bpf(_OBJ_GET_INFO_BY_FD, _InfoAttr(self.fd, ct.sizeof(info), ct.addressof(info)))
        return MapInfo(info.id, info.type, info.name.decode(errors="replace"), info.key_size,
                       info.value_size, info.max_entries)

    def lookup(self, key: bytes) -> bytes | None:
        kbuf = ct.create_string_buffer(key, self.info.key_size)
        vbuf = ct.create_string_buffer(self.info.value_size)
        try:
            _bpf(_MAP_LOOKUP_ELEM, _ElemAttr(self.fd, 0, ct.addressof(kbuf), ct.addressof(vbuf), 0))
        except BPFSyscallError as exc:
            if exc.errno == 2:  # ENOENT
                return None
            raise
        return vbuf.raw

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> bool:
        """False if flags=BPF_NOEXIST and the key exists."""
        kbuf = ct.create_string_buffer(key, self.info.key_size)
        vbuf = ct.create_string_buffer(value, self.info.value_size)
        try:
            _bpf(_MAP_UPDATE_ELEM, _ElemAttr(self.fd, 0, ct.addressof(kbuf), ct.addressof(vbuf), flags))
        except BPFSyscallError as exc:
            if exc.errno == 17 and flags == BPF_NOEXIST:  # EEXIST
                return False
            raise
        return True

    def keys(self) -> Iterator[bytes]:
        cur = None
        nxt = ct.create_string_buffer(self.info.key_size)
        while True:
            kptr = 0 if cur is None else ct.addressof(cur)
            try:
                _bpf(_MAP_GET_NEXT_KEY, _ElemAttr(self.fd, 0, kptr, ct.addressof(nxt), 0))
            except BPFSyscallError as exc:
                if exc.errno == 2:  # ENOENT: no more keys
                    return
                raise
            cur = ct.create_string_buffer(nxt.raw, self.info.key_size)
            yield nxt.raw

    def count(self, chunk: int = 4096) -> int:
        """Entries now, read in batches: a few syscalls instead of two per entry."""
        # The batch cursor is opaque; for hash maps it is a bucket index (u32), and
        # the kernel wants room for a key.
        tok_in = ct.create_string_buffer(max(8, self.info.key_size))
        tok_out = ct.create_string_buffer(max(8, self.info.key_size))
        keys = ct.create_string_buffer(self.info.key_size * chunk)
        values = ct.create_string_buffer(self.info.value_size * chunk)
        total, first = 0, True
        while True:
            attr = _BatchAttr(0 if first else ct.addressof(tok_in), ct.addressof(tok_out),
                              ct.addressof(keys), ct.addressof(values), chunk, self.fd, 0, 0)
            try:
                _bpf(_MAP_LOOKUP_BATCH, attr)
            except BPFSyscallError as exc:
                if exc.errno == 2:  # ENOENT: this was the last batch
                    return total + int(attr.count)
                raise
            total += attr.count
            ct.memmove(tok_in, tok_out, len(tok_out))
            first = False

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:  # deleted or evicted between the two calls
                yield k, v

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> PinnedMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
