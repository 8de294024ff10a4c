"""Enforcement: deny rules compiled into maps read by BPF LSM programs (bpf/lsm.bpf.c)."""
