"""Struct member offsets from the kernel's BTF (/sys/kernel/btf/vmlinux).

bcc compiles against whatever headers it finds, which on hosts without a matching
linux-headers package belong to another kernel: their struct layouts are wrong for the
running one. BTF describes the running kernel exactly, so every kernel struct field the
sensor reads is located here and passed to the compiler.

Only the type and string sections are parsed, and only struct/union members are kept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

_MAGIC = 0xEB9F
_KIND_INT, _KIND_PTR, _KIND_ARRAY, _KIND_STRUCT, _KIND_UNION = 1, 2, 3, 4, 5
_KIND_ENUM, _KIND_FWD, _KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST = 6, 7, 8, 9, 10
_KIND_RESTRICT, _KIND_FUNC, _KIND_FUNC_PROTO, _KIND_VAR, _KIND_DATASEC = 11, 12, 13, 14, 15
_KIND_FLOAT, _KIND_DECL_TAG, _KIND_TYPE_TAG, _KIND_ENUM64 = 16, 17, 18, 19
_MODIFIERS = {_KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST, _KIND_RESTRICT, _KIND_TYPE_TAG}


class BTFError(Exception):
    """The BTF blob is missing, malformed, or lacks a requested member."""


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    type_id: int
    bit_offset: int


@dataclass(slots=True)
class _Type:
    kind: int
    name: str
    ref: int  # referenced type id for modifiers/pointers; size for structs
    members: list[Member] = field(default_factory=list)


class BTF:
    """The struct/union part of a BTF blob, searchable by name."""

    def __init__(self, data: bytes) -> None:
        self._types: list[_Type | None] = [None]  # id 0 is void
        self._structs: dict[str, int] = {}
        # Enumerator name -> value (C gives enumerators one namespace, so no enum name is
        # needed to find one: memory_cgrp_id).
        self._enumerators: dict[str, int] = {}
        self._parse(data)

    @classmethod
    def load(cls, path: Path = VMLINUX_BTF) -> BTF:
        try:
            return cls(path.read_bytes())
        except OSError as exc:
            raise BTFError(f"{path}: {exc.strerror}") from exc

    @classmethod
    def try_load(cls, path: Path = VMLINUX_BTF) -> BTF | BTFError:
        """The BTF, or why it is unusable: parsed once (~0.2 s for vmlinux) for every
        detect() of monitor.kernel.offsets, iouring and cgroups, which each say what the
        error costs them."""
        try:
            return cls.load(path)
        except BTFError as exc:
            return exc

    def _parse(self, data: bytes) -> None:
        if len(data) < 24:
            raise BTFError("BTF blob too short")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != _MAGIC:
            raise BTFError(f"bad BTF magic {magic:#x}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        types_start = hdr_len + type_off
        strs = data[hdr_len + str_off : hdr_len + str_off + str_len]

        def name_at(off: int) -> str:
            end = strs.index(b"\0", off)
            return strs[off:end].decode("ascii", "replace")

        pos, end = types_start, types_start + type_len
        unpack3 = struct.Struct("<III").unpack_from
        while pos < end:
            name_off, info, size_or_type = unpack3(data, pos)
            pos += 12
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            kflag = info >> 31
            if kind in (_KIND_STRUCT, _KIND_UNION):
                members = []
                for i in range(vlen):
                    m_name, m_type, m_off = unpack3(data, pos + 12 * i)
                    bit_off = m_off & 0xFFFFFF if kflag else m_off
                    members.append(Member(name_at(m_name) if m_name else "", m_type, bit_off))
                pos += 12 * vlen
                name = name_at(name_off) if name_off else ""
                self._types.append(_Type(kind, name, size_or_type, members))
                if name and kind == _KIND_STRUCT:
                    self._structs.setdefault(name, len(self._types) - 1)
                continue
            if kind in _MODIFIERS or kind == _KIND_PTR:
                self._types.append(_Type(kind, "", size_or_type))
                continue
            self._types.append(None)
            if kind in (_KIND_INT, _KIND_VAR, _KIND_DECL_TAG):
                pos += 4
            elif kind in (_KIND_ARRAY, _KIND_DATASEC, _KIND_ENUM64):
                pos += 12 if kind == _KIND_ARRAY else 12 * vlen
            elif kind == _KIND_ENUM:
                for i in range(vlen):
                    e_name, e_val = struct.unpack_from("<Ii", data, pos + 8 * i)
                    self._enumerators.setdefault(name_at(e_name), e_val)
                pos += 8 * vlen
            elif kind == _KIND_FUNC_PROTO:
                pos += 8 * vlen
            elif kind in (_KIND_FWD, _KIND_FUNC, _KIND_FLOAT):
                pass
            else:
                raise BTFError(f"unknown BTF kind {kind} at byte {pos - 12}")

    def _resolve(self, type_id: int) -> _Type | None:
        t = self._types[type_id] if type_id < len(self._types) else None
        while t is not None and t.kind in _MODIFIERS:
            t = self._types[t.ref]
        return t

    def _find(self, t: _Type, name: str) -> tuple[int, int] | None:
        """(bit offset, type id) of `name` in t, looking through anonymous members."""
        for m in t.members:
            if m.name == name:
                return m.bit_offset, m.type_id
            if not m.name:
                inner = self._resolve(m.type_id)
                if inner is not None and inner.kind in (_KIND_STRUCT, _KIND_UNION):
                    found = self._find(inner, name)
                    if found is not None:
                        return m.bit_offset + found[0], found[1]
        return None

    def has_struct(self, name: str) -> bool:
        return name in self._structs

    def enumerator(self, name: str) -> int:
        """The value of an enumerator, e.g. memory_cgrp_id."""
        value = self._enumerators.get(name)
        if value is None:
            raise BTFError(f"enumerator {name} not in BTF")
        return value

    def size_of(self, struct_name: str) -> int:
        """sizeof(struct struct_name) in bytes."""
        tid = self._structs.get(struct_name)
        if tid is None:
            raise BTFError(f"struct {struct_name} not in BTF")
        t = self._types[tid]
        assert t is not None
        return t.ref

    def offset_of(self, struct_name: str, path: str) -> int:
        """Byte offset of a dotted member path, e.g. ("cred", "uid.val")."""
        tid = self._structs.get(struct_name)
        if tid is None:
            raise BTFError(f"struct {struct_name} not in BTF")
        t = self._types[tid]
        total = 0
        parts = path.split(".")
        for i, part in enumerate(parts):
            where = ".".join(parts[: i + 1])
            found = self._find(t, part) if t is not None else None
            if found is None:
                raise BTFError(f"struct {struct_name} has no member {where}")
            bit, member_type = found
            if bit % 8:
                raise BTFError(f"{struct_name}.{where} is a bitfield")
            total += bit // 8
            if i + 1 < len(parts):
                t = self._resolve(member_type)
                if t is None or t.kind not in (_KIND_STRUCT, _KIND_UNION):
                    raise BTFError(f"{struct_name}.{where} is not a struct or union")
        return total
