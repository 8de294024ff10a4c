/* Record layouts shared by every ringwatch kernel program.
 *
 * Declared once here and mirrored once in monitor/kernel/records.py; tests/test_kernel_layout.py
 * compiles this header and checks that sizes and offsets agree with the mirror.
 * Every field has a fixed width and explicit padding so the layout is the same for
 * clang (BPF target) and for the host C compiler used by the layout test.
 */
#ifndef RINGWATCH_RECORDS_H
#define RINGWATCH_RECORDS_H

#ifndef __RW_KERNEL_TYPES
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef int32_t __s32;
typedef uint64_t __u64;
typedef int64_t __s64;
#endif

#define RW_COMM_LEN 16
#define RW_PATH_LEN 256
/* argv is stored NUL-separated; one argument is read with at most RW_ARG_LEN bytes and
 * the whole list is cut at RW_ARGS_LEN. The buffer has RW_ARG_LEN of slack so the
 * verifier can prove a read that starts below RW_ARGS_LEN stays inside it. */
#define RW_ARGS_LEN 1024
#define RW_ARG_LEN 256
#define RW_ARGS_BUF (RW_ARGS_LEN + RW_ARG_LEN)
#define RW_MAX_ARGS 32

enum rw_record_type {
    RW_REC_EXEC = 1,
    RW_REC_FORK = 2,
    RW_REC_EXIT = 3,
    RW_REC_SYSCALL = 4,
    RW_REC_THROTTLE = 5,   /* a process (or cgroup) went over its syscall record budget */
    /* 4..15: sensor records. 16..23: enforcement (LSM) records. */
    RW_REC_DENY = 16,
    RW_REC_TYPE_MAX = 32,
};

/* Why a record, or part of one, was lost. Index into the per-CPU `drops` array. */
enum rw_drop_reason {
    RW_DROP_RINGBUF_FULL = 0,      /* record lost: ring buffer had no room */
    RW_DROP_PENDING_FULL = 1,      /* record lost: in-flight exec map had no room */
    RW_DROP_EXIT_NO_ENTER = 2,     /* record lost: sys_exit seen without its sys_enter */
    RW_DROP_ARGV_TRUNCATED = 3,    /* record delivered, argv cut (count or length) */
    RW_DROP_FILENAME_FAILED = 4,   /* record delivered, filename unreadable */
    RW_DROP_ARG_READ_FAILED = 5,   /* record delivered, an argv entry unreadable */
    RW_DROP_FILENAME_TRUNCATED = 6,/* record delivered, filename cut at RW_PATH_LEN */
    RW_DROP_PATH_FAILED = 7,       /* syscall record delivered, a path unreadable */
    RW_DROP_PATH_TRUNCATED = 8,    /* syscall record delivered, a path cut at RW_PATH_LEN */
    RW_DROP_ADDR_FAILED = 9,       /* syscall record delivered, sockaddr unreadable */
    RW_DROP_SYSCALL_RINGBUF_FULL = 10, /* syscall record lost: the syscall lane had no room */
    RW_DROP_REASON_MAX = 11,
};

/* Lanes: process records (exec, fork, exit, deny, throttle) go into the ring buffer
 * `events`, syscall records into `syscalls`, so a syscall flood cannot starve lineage.
 * RW_DROP_RINGBUF_FULL is the process lane's loss, RW_DROP_SYSCALL_RINGBUF_FULL the
 * syscall lane's. What the syscall lane did not send, by why (per-CPU `flood_stats`): */
enum rw_flood_stat {
    RW_FLOOD_COALESCED = 0,        /* a repeat folded into an earlier record's count */
    RW_FLOOD_THROTTLED_PROCESS = 1,/* over the process's budget */
    RW_FLOOD_THROTTLED_CGROUP = 2, /* over the cgroup's budget */
    RW_FLOOD_STAT_MAX = 3,
};

/* Flags on an exec record. */
#define RW_EXEC_F_ARGV_TRUNCATED (1u << 0)
#define RW_EXEC_F_FILENAME_FAILED (1u << 1)
#define RW_EXEC_F_ARG_READ_FAILED (1u << 2)
#define RW_EXEC_F_FILENAME_TRUNCATED (1u << 3)
#define RW_EXEC_F_EXE_MEMFD (1u << 4)     /* the executed file is a memfd (fileless) */
#define RW_EXEC_F_EXE_DELETED (1u << 5)   /* the executed file has no name left (unlinked) */
#define RW_EXEC_F_EXEPATH (1u << 6)       /* exepath holds the kernel-resolved path */
#define RW_EXEC_F_EXEPATH_TRUNCATED (1u << 7) /* too deep or too long to resolve */
#define RW_EXEC_F_CWD (1u << 8)           /* cwd holds the kernel-resolved working directory */
/* The executed file is on overlayfs, in its upper (written) or lower (image) layer. High
 * bits so flags other work adds from bit 9 on cannot collide. */
#define RW_EXEC_F_EXE_UPPER_LAYER (1u << 20)
#define RW_EXEC_F_EXE_LOWER_LAYER (1u << 21)
/* argv and/or the filename could not be read from the caller at sys_enter and were read
 * again at sched_process_exec from the kernel's copies (the new image's argument area,
 * bprm->filename); argc is then 0: the arguments are every NUL-separated string in args. */
#define RW_EXEC_F_ARGS_FROM_KERNEL (1u << 22)
/* Selected environment variables of the new image (env below), read at exec: */
#define RW_EXEC_F_ENV (1u << 16)          /* the environment was scanned */
#define RW_EXEC_F_ENV_SCAN_TRUNCATED (1u << 17) /* the scan stopped before the environment's end */
#define RW_EXEC_F_ENV_READ_FAILED (1u << 18)    /* part of the environment was unreadable */
#define RW_EXEC_F_ENV_FULL (1u << 19)     /* a selected variable did not fit in env */

/* The variables kept (LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH, GLIBC_TUNABLES, the proxy
 * variables in either case), NUL-separated "NAME=value" entries: each cut at
 * RW_ENV_VAR_LEN, all cut at RW_ENV_LEN; RW_ENV_SCAN reads of RW_ENV_CHUNK bytes at most. */
#define RW_ENV_LEN 512
#define RW_ENV_VAR_LEN 256
#define RW_ENV_BUF (RW_ENV_LEN + RW_ENV_VAR_LEN)
#define RW_ENV_CHUNK 256
#define RW_ENV_SCAN 128

/* Process lineage, kept by the kernel programs in an LRU hash pinned on bpffs so that it
 * outlives the monitor. Keyed by identity, not pid: a pid can be reused, (tgid, start)
 * cannot. Start is in clock ticks since boot (USER_HZ), the unit /proc/PID/stat uses, so
 * entries backfilled from /proc have the same keys as entries made by the kernel. */
#define RW_PROC_ARGS_LEN 128

struct rw_proc_key {
    __u32 tgid;
    __u32 _pad;
    __u64 start_ticks;
};

#define RW_PROC_F_BACKFILLED (1u << 0)  /* made from /proc, not seen forking */
#define RW_PROC_F_EXE_TRUNCATED (1u << 1)

struct rw_proc {
    __u32 ppid;
    __u32 uid;
    __u64 pstart_ticks;    /* parent's identity: (ppid, pstart_ticks) */
    __u64 exec_ns;         /* CLOCK_MONOTONIC of the last exec; 0 if none seen */
    __u64 exit_ns;         /* CLOCK_MONOTONIC of exit; 0 while alive */
    __u64 cgroup_id;
    __u32 flags;           /* RW_PROC_F_* */
    __u32 args_len;        /* bytes of args used (NUL-separated, cut at RW_PROC_ARGS_LEN) */
    char comm[RW_COMM_LEN];
    char exe[RW_PATH_LEN]; /* the executed file as the kernel resolved it (exec's exepath) */
    char args[RW_PROC_ARGS_LEN];
};

/* Kernel path-prefix filter for open/openat/openat2 (LPM trie `open_prefixes`). */
#define RW_OPEN_PREFIX_MAX 256
struct rw_pfx_key {
    __u32 prefixlen;       /* bits */
    char path[RW_PATH_LEN];
};

/* Lineage bookkeeping counters (per-CPU array `lineage_stats`). */
enum rw_lineage_stat {
    RW_LIN_FORK_PARENT_MISSING = 0, /* fork: the parent had no entry (evicted or unseen) */
    RW_LIN_EXEC_MISSING = 1,        /* exec: the process had no entry; one was made */
    RW_LIN_EXIT_MISSING = 2,        /* exit: the process had no entry */
    RW_LIN_INSERTS = 3,             /* entries created by the kernel */
    RW_LIN_STAT_MAX = 4,
};

/* Common to every record: who did it and when. */
struct rw_header {
    __u32 type;            /* enum rw_record_type */
    __u32 cpu;
    __u64 ktime_ns;        /* CLOCK_MONOTONIC, bpf_ktime_get_ns() */
    __u32 pid;             /* thread id */
    __u32 tgid;            /* process id */
    __u32 ppid;            /* tgid of real_parent */
    __u32 uid;
    __u32 gid;
    __u32 _pad0;
    __u64 cgroup_id;       /* cgroup v2 id */
    __u64 start_ns;        /* process start, boot-based ns (group_leader->start_boottime) */
    char comm[RW_COMM_LEN];
};

/* execve/execveat, emitted at sys_exit with its return value. */
struct rw_exec {
    struct rw_header h;
    __s64 ret;             /* 0 or -errno */
    __u32 syscall_nr;
    __u32 flags;           /* RW_EXEC_F_* */
    __u32 argc;            /* arguments captured */
    __u32 args_len;        /* bytes of args used */
    __s32 dirfd;           /* execveat only; AT_FDCWD (-100) for execve */
    __u32 at_flags;        /* execveat only */
    /* The file the kernel executed (bprm->file at sched_process_exec; for a script, its
     * interpreter), whatever path string was passed: */
    __u64 exe_ino;
    __u64 exe_ctime_ns;    /* inode change time, ns since the epoch */
    __u64 exe_mtime_ns;    /* inode modification time, ns since the epoch */
    __u32 exe_uid;         /* owner */
    __u32 exe_gid;
    __u32 exe_nlink;
    __u16 exe_mode;        /* i_mode: type and permission bits */
    __u16 _pad1;
    char exepath[RW_PATH_LEN]; /* walked from its dentry and mount (RW_EXEC_F_EXEPATH) */
    /* The process at exec, from its task: */
    __u32 tty;             /* controlling terminal as /proc/PID/stat's tty_nr; 0 if none */
    __u32 sid;             /* session id, in the process's own pid namespace */
    __u32 vpgid;           /* process group id, in the process's own pid namespace */
    __u32 loginuid;        /* audit login uid; 4294967295 if never set */
    /* The kernfs id of the process's cgroup in one v1 hierarchy (monitor/kernel/cgroups.py
     * picks it); 0 if none is compiled in (a pure v2 host). */
    __u64 cgroup1_id;
    char cwd[RW_PATH_LEN]; /* working directory (RW_EXEC_F_CWD) */
    char filename[RW_PATH_LEN]; /* as passed to execve (relative, a symlink, "" ...) */
    char args[RW_ARGS_BUF];
    /* The process's capabilities at sys_exit (task->cred: the new image's after a
     * successful exec), bit n = capability n. */
    __u64 cap_effective;
    __u64 cap_permitted;
    __u64 cap_inheritable;
    /* Selected environment variables of the new image, from its mm's env_start..env_end
     * at sched_process_exec (what execve's envp gave, not the caller's environment). */
    __u32 env_count;       /* entries in env */
    __u32 env_len;         /* bytes of env used */
    __u64 env_cut;         /* bit i: entry i was cut at RW_ENV_VAR_LEN */
    char env[RW_ENV_BUF];
};

/* A new process (not a thread). Header describes the child. */
struct rw_fork {
    struct rw_header h;
    __u32 parent_pid;      /* thread that forked */
    __u32 parent_tgid;
    __u64 parent_start_ns;
    __u64 cgroup1_id;      /* the child's, as rw_exec.cgroup1_id */
};

/* Flags on a syscall record. */
#define RW_SC_F_PATH_FAILED (1u << 0)     /* path unreadable */
#define RW_SC_F_PATH_TRUNCATED (1u << 1)  /* path cut at RW_PATH_LEN */
#define RW_SC_F_PATH2_FAILED (1u << 2)
#define RW_SC_F_PATH2_TRUNCATED (1u << 3)
#define RW_SC_F_ADDR_FAILED (1u << 4)     /* sockaddr unreadable */
#define RW_SC_F_SOCKET (1u << 5)          /* dup source is a socket: family/addr/port are its peer */
#define RW_SC_F_BASE (1u << 6)            /* kpath: the directory of a relative path */
#define RW_SC_F_BASE_TRUNCATED (1u << 7)  /* too deep or too long: kpath is unusable */
#define RW_SC_F_RESOLVED (1u << 8)        /* kpath: the file an open returned, resolved */
/* sock_* hold the kernel's socket behind the syscall's fd (connect, dup of a
 * socket) or the fd it returned (socket); named sock_*, not sk_*: net/sock.h defines sk_family,
 * sk_num, ... as macros. High bit: flags added from bit 9 on stay clear. */
#define RW_SC_F_SOCKINFO (1u << 20)
/* Coverage (dup/fcntl, truncate, chown, mkdir, xattrs, utimensat, sockets, kill, setns): */
#define RW_SC_F_BASE2 (1u << 9)           /* kpath2: the directory of a relative first path */
#define RW_SC_F_LOCAL (1u << 10)          /* laddr/lport: the socket's local end, from its sock */
#define RW_SC_F_TARGET (1u << 11)         /* target_pid/target_uid: the signalled task, from the kernel */
#define RW_SC_F_NSFS (1u << 12)           /* aux: setns fd's namespace type, from its nsfs inode */
#define RW_SC_F_TIMES (1u << 13)          /* aux: utimensat's two struct timespec, as given */
/* Operations submitted through io_uring (bpf/sensor.bpf.c, the io_uring tracepoints):
 * recorded as the syscall they stand for (nr: openat, openat2, connect). */
#define RW_SC_F_IO_URING (1u << 30)       /* submitted through io_uring, not a syscall of its own */
#define RW_SC_F_URING_NO_RESULT (1u << 29) /* IOSQE_CQE_SKIP_SUCCESS: recorded at submission, ret unknown */
/* io_uring records: args[4] is the IORING_OP_* opcode, args[5] the fixed-file slot (0: none). */
#define RW_AUX_LEN 32
/* Path walks (dentry to the mount root, then across mounts) give up past this depth. */
#define RW_WALK_DEPTH 32

/* Any other syscall, recorded at sys_exit with its arguments (read from the saved
 * registers) and return value. Which arguments are paths or addresses depends on nr;
 * monitor/events/syscall_args.py decodes them. For openat2, args[2] and args[3] hold
 * open_how.flags and open_how.mode, as openat has them. */
struct rw_syscall {
    struct rw_header h;
    /* Coalescing: occurrences this record stands for (1 + repeats folded into it, see
     * rw_coal_key) and the time of the first of them; h.ktime_ns is the last. */
    __u64 count;
    __u64 first_ns;
    /* From here to the end: what makes two records the same event (rw_coal_key.body). */
    __s64 ret;
    __u64 args[6];
    __u32 nr;
    __u32 flags;           /* RW_SC_F_* */
    __u16 family;          /* AF_* of a connect address or a dup'ed socket */
    __u16 port;            /* host byte order */
    __u32 _pad1;
    __u8 addr[16];         /* IPv4 in the first 4 bytes, or IPv6 */
    char aux[RW_AUX_LEN];  /* mount: filesystem type */
    /* The caller's capabilities at the event (task->cred), bit n = capability n. */
    __u64 cap_effective;
    __u64 cap_permitted;
    __u64 cap_inheritable;
    __u16 sock_type;      /* SOCK_STREAM, SOCK_DGRAM, SOCK_RAW ... (RW_SC_F_SOCKINFO) */
    __u16 sock_protocol;  /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP ... (RW_SC_F_SOCKINFO) */
    __u16 sock_family;    /* the socket's AF_* (RW_SC_F_SOCKINFO) */
    __u16 _pad2;
    /* The socket's own ends as the kernel holds them at sys_exit (RW_SC_F_SOCKINFO; all
     * zero while unbound/unconnected), not the sockaddr the caller passed: */
    __u16 sock_lport;     /* local port, host byte order */
    __u16 sock_rport;     /* remote port, host byte order */
    __u32 _pad3;
    __u8 sock_laddr[16];  /* local address, network byte order (IPv4 in [0..4)) */
    __u8 sock_raddr[16];  /* remote address */
    /* Appended for coverage. aux holds an xattr name, a namespace type or utimensat's times. */
    __u8 laddr[16];        /* local address (RW_SC_F_LOCAL): IPv4 in the first 4 bytes, or IPv6 */
    __u16 lport;           /* local port, host byte order */
    __u16 _pad4;
    __u32 target_uid;      /* kill: real uid of the task signalled (RW_SC_F_TARGET) */
    __u32 target_pid;      /* kill: its tgid */
    __u32 target_tid;      /* kill: its thread id */
    /* The strings last: the ring gets each one's bytes only (struct rw_syscall_wire). */
    char path[RW_PATH_LEN];
    char path2[RW_PATH_LEN];
    /* A path the kernel resolved from a struct path, absolute from the global root:
     * for a successful open, the file the returned fd refers to (RW_SC_F_RESOLVED);
     * else, for a relative path, the directory it was relative to (RW_SC_F_BASE). For a
     * fd-based call (ftruncate, fchmod, fchown, fsetxattr, utimensat(fd, NULL), an *at
     * call with AT_EMPTY_PATH) the fd's file (RW_SC_F_RESOLVED). */
    char kpath[RW_PATH_LEN];
    char kpath2[RW_PATH_LEN]; /* rename/link: base of the first (source) path (RW_SC_F_BASE2) */
};

/* A syscall record as the ring carries it: rw_syscall's fixed part as it is, then its
 * four strings, each as many bytes as it has (up to its first NUL), one after the other.
 * An open's record is about 350 bytes instead of 1336: the ring holds four times as
 * many, and its reader touches a quarter of the memory. */
#define RW_SC_FIXED_LEN __builtin_offsetof(struct rw_syscall, path)
#define RW_SC_STRINGS 4        /* path, path2, kpath, kpath2, in that order */
/* Room for all four whole, and RW_PATH_LEN of slack so the verifier can prove a copy
 * that starts below RW_SC_STRINGS * RW_PATH_LEN stays inside. */
#define RW_SC_STRS_BUF ((RW_SC_STRINGS + 1) * RW_PATH_LEN)
struct rw_syscall_wire {
    __u8 fixed[RW_SC_FIXED_LEN];
    __u16 len[RW_SC_STRINGS];  /* bytes of each string in strs */
    char strs[RW_SC_STRS_BUF];
};

/* Set by userspace only, on a record it rebuilt from a coalescing entry: it reports
 * repeats of an event already delivered (count), not an event of its own. */
#define RW_SC_F_COUNT_ONLY (1u << 31)

/* Coalescing (LRU hash `coalesce`): identical syscall records from one process image
 * within the window become one record with a count. Keyed by everything that makes two
 * records the same event, compared exactly by the map (no hash collisions to craft):
 * identity and credentials of the process, its exec (a new image starts afresh), and
 * the record from `ret` on, with the argument slots that are user pointers zeroed (the
 * bytes they point to are in the record; the address is not part of the event). */
#define RW_SC_BODY_OFF __builtin_offsetof(struct rw_syscall, ret)
#define RW_SC_BODY_LEN (sizeof(struct rw_syscall) - RW_SC_BODY_OFF)
struct rw_coal_key {
    __u32 tgid;
    __u32 uid;
    __u32 gid;
    __u32 _pad;
    __u64 cgroup_id;
    __u64 exec_id;         /* task->self_exec_id: bumped by every exec */
    char comm[RW_COMM_LEN];
    __u8 body[RW_SC_BODY_LEN];
};

struct rw_coal_val {
    __u64 window_ns;       /* when the last record for this key went out */
    __u64 pending;         /* repeats since then, in no record yet */
    __u64 first_ns;        /* first of those repeats */
    __u64 last_ns;         /* last of those repeats */
    /* Header of the last repeat, so userspace can report a tail nobody flushed. */
    __u32 tid;
    __u32 ppid;
    __u64 start_ns;
    __u32 cpu;
    __u32 _pad;
};

/* Throttling: a token bucket per process (LRU hash `throttle_procs`, by tgid) and per
 * cgroup (`throttle_cgroups`, by cgroup id). Tokens are in 1e-9 units of one record. */
struct rw_bucket {
    __u64 tokens;
    __u64 last_ns;         /* last refill */
    __u64 throttled;       /* records refused, ever */
    __u64 notice_ns;       /* last throttle record sent for this bucket */
};

enum rw_throttle_scope {
    RW_THROTTLE_PROCESS = 1,
    RW_THROTTLE_CGROUP = 2,
};

/* Sent on the process lane when a bucket refuses a record, at most once per notice
 * interval per bucket. Header: the process whose record was refused. */
struct rw_throttle {
    struct rw_header h;
    __u32 scope;           /* enum rw_throttle_scope */
    __u32 nr;              /* syscall of the refused record */
    __u64 throttled;       /* records this bucket refused so far */
    __u32 rate;            /* the bucket's budget: records per second, */
    __u32 burst;           /* and burst */
};

/* Last thread of a process exited. */
struct rw_exit {
    struct rw_header h;
    __u32 exit_status;     /* as wait(2) reports: code << 8 | signal */
    __u32 _pad1;
};

/* Enforcement (bpf/lsm.bpf.c): one record per LSM decision that matched a deny rule,
 * whether it denied (enforce mode) or only reported (audit mode). */
#define RW_DENY_ANCESTORS 4

enum rw_deny_hook {
    RW_HOOK_EXEC = 1,      /* bprm_check_security */
    RW_HOOK_OPEN = 2,      /* file_open */
    RW_HOOK_CONNECT = 3,   /* socket_connect */
};

#define RW_DENY_F_AUDIT (1u << 0)          /* audit mode: reported, not denied */

struct rw_deny {
    struct rw_header h;
    __u32 hook;            /* enum rw_deny_hook */
    __u32 rule_id;         /* userspace's id for the deny rule that matched */
    __s32 ret;             /* what the hook returned: -EPERM, or 0 in audit mode */
    __u32 flags;           /* RW_DENY_F_* */
    __u16 family;          /* connect: AF_INET or AF_INET6 */
    __u16 port;            /* connect: destination port, host byte order */
    __u32 _pad1;
    __u8 addr[16];         /* connect: destination, network byte order (IPv4 in [0..4)) */
    __u32 anc_pid[RW_DENY_ANCESTORS];          /* tgid of parent, grandparent, ... */
    char anc_comm[RW_DENY_ANCESTORS][RW_COMM_LEN];
    char path[RW_PATH_LEN]; /* exec/open: the file, as the kernel resolves it */
};

#endif
