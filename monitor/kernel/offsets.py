"""Kernel struct offsets the sensor needs, as -D flags for bcc.

The single list of kernel fields read by the BPF programs lives here. Offsets come
from the running kernel's BTF; without BTF they fall back to offsetof() against the
compile-time headers, which is only right when those headers match the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.kernel.btf import BTF, BTFError

# macro suffix -> (struct, member path). A path may list alternatives, newest layout first,
# separated by "|": the first one the kernel's BTF has is used (inode times moved from
# `struct timespec64 i_ctime` (6.1) to `__i_ctime` (6.6) to `i_ctime_sec`/`_nsec` (6.11)).
KERNEL_FIELDS: dict[str, tuple[str, str]] = {
    "TASK_PID": ("task_struct", "pid"),
    "TASK_TGID": ("task_struct", "tgid"),
    "TASK_REAL_PARENT": ("task_struct", "real_parent"),
    "TASK_GROUP_LEADER": ("task_struct", "group_leader"),
    "TASK_START_BOOTTIME": ("task_struct", "start_boottime"),
    "TASK_COMM": ("task_struct", "comm"),
    "TASK_SIGNAL": ("task_struct", "signal"),
    "TASK_EXIT_CODE": ("task_struct", "exit_code"),
    "TASK_MM": ("task_struct", "mm"),
    "TASK_FS": ("task_struct", "fs"),
    # Coalescing keys: a new process image (every exec bumps it) never repeats an old one.
    "TASK_SELF_EXEC_ID": ("task_struct", "self_exec_id"),
    "SIGNAL_LIVE": ("signal_struct", "live.counter"),
    "MM_EXE_FILE": ("mm_struct", "exe_file"),
    "MM_ARG_START": ("mm_struct", "arg_start"),
    "MM_ARG_END": ("mm_struct", "arg_end"),
    "FILE_F_PATH": ("file", "f_path"),
    "PATH_DENTRY": ("path", "dentry"),
    "PATH_MNT": ("path", "mnt"),
    "DENTRY_D_NAME": ("dentry", "d_name"),
    "DENTRY_D_PARENT": ("dentry", "d_parent"),
    "QSTR_NAME": ("qstr", "name"),
    "BINPRM_FILENAME": ("linux_binprm", "filename"),
    # bpf/lsm.bpf.c (enforcement): the file being executed.
    "BINPRM_FILE": ("linux_binprm", "file"),
    # dup2/dup3 onto stdio: is the source a socket, and where does it lead?
    "TASK_FILES": ("task_struct", "files"),
    "FILES_FDT": ("files_struct", "fdt"),
    "FDTABLE_FD": ("fdtable", "fd"),
    "FDTABLE_MAX_FDS": ("fdtable", "max_fds"),
    "FILE_F_INODE": ("file", "f_inode"),
    "FILE_PRIVATE_DATA": ("file", "private_data"),
    "INODE_I_MODE": ("inode", "i_mode"),
    "SOCKET_SK": ("socket", "sk"),
    "SOCK_FAMILY": ("sock", "__sk_common.skc_family"),
    "SOCK_DADDR": ("sock", "__sk_common.skc_daddr"),
    "SOCK_DPORT": ("sock", "__sk_common.skc_dport"),
    "SOCK_V6_DADDR": ("sock", "__sk_common.skc_v6_daddr"),
    # The base directory of a relative path, walked up to the root across mounts.
    "FS_PWD": ("fs_struct", "pwd"),
    "MOUNT_MNT": ("mount", "mnt"),
    "MOUNT_PARENT": ("mount", "mnt_parent"),
    "MOUNT_MOUNTPOINT": ("mount", "mnt_mountpoint"),
    "VFSMOUNT_ROOT": ("vfsmount", "mnt_root"),
    # Executable and open truth: the path walk's name lengths, and the executed file's
    # inode (number, times, owner, link count) and whether its dentry is still hashed.
    "QSTR_LEN": ("qstr", "len"),
    "DENTRY_D_HASH_PPREV": ("dentry", "d_hash.pprev"),
    "INODE_I_INO": ("inode", "i_ino"),
    "INODE_I_UID": ("inode", "i_uid.val"),
    "INODE_I_GID": ("inode", "i_gid.val"),
    "INODE_I_NLINK": ("inode", "i_nlink"),
    "INODE_CTIME_SEC": ("inode", "i_ctime_sec|__i_ctime.tv_sec|i_ctime.tv_sec"),
    "INODE_CTIME_NSEC": ("inode", "i_ctime_nsec|__i_ctime.tv_nsec|i_ctime.tv_nsec"),
    "INODE_MTIME_SEC": ("inode", "i_mtime_sec|__i_mtime.tv_sec|i_mtime.tv_sec"),
    "INODE_MTIME_NSEC": ("inode", "i_mtime_nsec|__i_mtime.tv_nsec|i_mtime.tv_nsec"),
    # The process at exec: login uid, session and group ids, controlling terminal.
    "TASK_LOGINUID": ("task_struct", "loginuid.val"),
    "SIGNAL_PIDS": ("signal_struct", "pids"),
    "SIGNAL_TTY": ("signal_struct", "tty"),
    "PID_LEVEL": ("pid", "level"),
    "PID_NUMBERS": ("pid", "numbers"),
    "TTY_INDEX": ("tty_struct", "index"),
    "TTY_DRIVER": ("tty_struct", "driver"),
    "TTY_DRIVER_MAJOR": ("tty_driver", "major"),
    "TTY_DRIVER_MINOR_START": ("tty_driver", "minor_start"),
    # thread.cap_*: the task's subjective credentials (task->cred), as Falco reads them.
    # kernel_cap_t is a u64 `val` since 6.3 and `u32 cap[2]` before: 8 bytes either way.
    "TASK_CRED": ("task_struct", "cred"),
    "CRED_CAP_INHERITABLE": ("cred", "cap_inheritable"),
    "CRED_CAP_PERMITTED": ("cred", "cap_permitted"),
    "CRED_CAP_EFFECTIVE": ("cred", "cap_effective"),
    # fd.l4proto: the socket's own type and protocol, not what socket() was asked for.
    "SOCK_TYPE": ("sock", "sk_type"),
    "SOCK_PROTOCOL": ("sock", "sk_protocol"),
    # fd.cip/fd.lport...: the socket's local end (inet_rcv_saddr, inet_num).
    "SOCK_NUM": ("sock", "__sk_common.skc_num"),
    "SOCK_RCV_SADDR": ("sock", "__sk_common.skc_rcv_saddr"),
    "SOCK_V6_RCV_SADDR": ("sock", "__sk_common.skc_v6_rcv_saddr"),
    # proc.is_exe_upper_layer: the executed file's superblock (overlayfs?) and inode.
    "DENTRY_D_SB": ("dentry", "d_sb"),
    "DENTRY_D_INODE": ("dentry", "d_inode"),
    "SB_MAGIC": ("super_block", "s_magic"),
    # kill: the signalled task's real uid (signal_generate).
    "TASK_REAL_CRED": ("task_struct", "real_cred"),
    "CRED_UID": ("cred", "uid.val"),
    # setns: the namespace an nsfs fd names (inode->i_private is its ns_common).
    "INODE_I_SB": ("inode", "i_sb"),
    "INODE_I_PRIVATE": ("inode", "i_private"),
    "NS_COMMON_OPS": ("ns_common", "ops"),
    "PROC_NS_OPS_NAME": ("proc_ns_operations", "name"),
}

# The new image's environment at exec (bpf/sensor.bpf.c, exec_env): required like the above.
ENV_FIELDS: dict[str, tuple[str, str]] = {
    "MM_ENV_START": ("mm_struct", "env_start"),
    "MM_ENV_END": ("mm_struct", "env_end"),
}


@dataclass(frozen=True, slots=True)
class Offsets:
    source: str  # "btf" or "headers"
    values: dict[str, int | str]

    def cflags(self) -> list[str]:
        flags = [f"-DRW_OFF_{name}={value}" for name, value in self.values.items()]
        if self.source == "headers":
            flags.append("-DRW_OFFSETS_FROM_HEADERS=1")
        return flags


def member_path(btf: BTF, struct_name: str, paths: str) -> str:
    """The first alternative of `paths` that the BTF has (the last one if none: its error
    is the one to report)."""
    alternatives = paths.split("|")
    for path in alternatives[:-1]:
        try:
            btf.offset_of(struct_name, path)
        except BTFError:
            continue
        return path
    return alternatives[-1]


def ovl_upper_offset(btf: BTF) -> int:
    """Where an overlayfs inode keeps its upper dentry, counted from its VFS inode.

    struct ovl_inode (fs/overlayfs/ovl_entry.h) embeds `struct inode vfs_inode` directly
    followed by `struct dentry *__upperdentry`; the overlay inode a dentry points at is
    that vfs_inode. Taken from BTF when overlayfs is built in; otherwise (a module, whose
    BTF is split) sizeof(struct inode), which is what Falco's drivers use."""
    if btf.has_struct("ovl_inode"):
        return btf.offset_of("ovl_inode", "__upperdentry") - btf.offset_of("ovl_inode", "vfs_inode")
    return btf.size_of("inode")


def from_btf(btf: BTF) -> Offsets:
    values: dict[str, int | str] = {
        k: btf.offset_of(s, member_path(btf, s, p))
        for k, (s, p) in (KERNEL_FIELDS | ENV_FIELDS).items()
    }
    values["OVL_UPPERDENTRY"] = ovl_upper_offset(btf)
    return Offsets("btf", values)


# struct mount is private to fs/ (fs/mount.h): headers cannot give its layout.
_BTF_ONLY = frozenset({"MOUNT_MNT", "MOUNT_PARENT", "MOUNT_MOUNTPOINT"})


def from_headers() -> Offsets:
    """offsetof() expressions, evaluated by the compiler against whatever headers it has."""
    # Of alternative paths the last (oldest layout): the headers bcc finds are old ones.
    values: dict[str, int | str] = {
        k: f"__builtin_offsetof(struct {s},{p.split('|')[-1]})"
        for k, (s, p) in (KERNEL_FIELDS | ENV_FIELDS).items() if k not in _BTF_ONLY
    }
    # struct ovl_inode is private to fs/overlayfs: its upper dentry follows the inode.
    values["OVL_UPPERDENTRY"] = "sizeof(struct inode)"
    return Offsets("headers", values)


def detect(btf: BTF | BTFError) -> tuple[Offsets, str | None]:
    """Offsets for the running kernel (BTF.try_load), and a warning when they are not from BTF."""
    try:
        if isinstance(btf, BTFError):
            raise btf
        return from_btf(btf), None
    except BTFError as exc:
        return from_headers(), (
            f"kernel BTF unusable ({exc}); struct offsets come from compile-time headers, "
            "which are wrong if they do not match the running kernel"
        )
