"""Kernel side: compiling and attaching bpf/, ring buffers, record layouts, BTF offsets, pinned maps."""
