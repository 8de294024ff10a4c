/* ringwatch sensor: exec, fork and exit records into one ring buffer.
 *
 * Compiled by bcc at start (monitor/kernel/sensor.py). Kernel struct fields are never read
 * through the compile-time headers: every RW_OFF_* offset is passed in with -D, taken
 * from the running kernel's BTF (monitor/offsets.py), because the headers bcc finds
 * may belong to another kernel version. Build-time knobs, also passed with -D:
 *   RW_RINGBUF_PAGES     process lane (`events`) size in pages (power of two)
 *   RW_SYSCALL_RINGBUF_PAGES   syscall lane (`syscalls`) size in pages
 *   RW_SYSCALL_WAKEUP_RECORDS  syscall records per CPU per consumer wake-up (1 = each)
 *   RW_COALESCE_WINDOW_NS, RW_COALESCE_MAX   coalescing window (0 = off) and entries
 *   RW_PROC_RATE/_BURST, RW_CG_RATE/_BURST   throttling budgets (records/s; 0 = off)
 *   RW_THROTTLE_MAX, RW_THROTTLE_NOTICE_NS   bucket map size, throttle record interval
 *   RW_SELF_TGID         the monitor's own pid, never traced (no feedback loop)
 *   RW_CGROUP_FILTER_N   number of cgroups to restrict tracing to (0 = all)
 *   RW_PROCS_MAX, RW_PROCS_PIN   lineage map size and its bpffs path
 *   RW_NS_PER_TICK       ns per USER_HZ tick, the unit of /proc/PID/stat starttime
 *   RW_CGROUP1_SUBSYS    the v1 controller (subsystem index) exec and fork records name a
 *                        cgroup of (monitor/kernel/cgroups.py); absent: none, cgroup1_id is 0
 */
#define __RW_KERNEL_TYPES
#include <linux/sched.h>
#include <uapi/linux/ptrace.h>
#include "records.h"
#ifdef RW_OFFSETS_FROM_HEADERS
/* No BTF: offsetof() needs the full struct definitions (slower to compile). */
#include <linux/sched/signal.h>
#include <linux/mm_types.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/mount.h>
#include <linux/binfmts.h>
#include <linux/fdtable.h>
#include <linux/net.h>
#include <net/sock.h>
#include <linux/tty.h>
#include <linux/tty_driver.h>
#include <linux/cred.h>
#include <linux/proc_ns.h>
#endif

/* Syscall numbers (RW_NR_<name>) come from the event catalogue, monitor/events/catalog.py,
 * as -D defines: Python and the kernel programs cannot disagree. */
#define RW_NR_MAX 512
#ifndef RW_CGROUP1_SUBSYS
#define RW_CGROUP1_SUBSYS -1
#endif
#define RW_S_IFMT 0170000
#define RW_S_IFSOCK 0140000

/* Two lanes: process records (exec, fork, exit, deny, throttle) in `events`, syscall
 * records in `syscalls`. Userspace drains `events` first; a syscall flood fills only
 * its own lane. */
BPF_RINGBUF_OUTPUT(events, RW_RINGBUF_PAGES);
BPF_RINGBUF_OUTPUT(syscalls, RW_SYSCALL_RINGBUF_PAGES);
/* Every record the kernel tried to deliver, by record type, and every loss by reason:
 * userspace checks delivered + dropped == produced. */
BPF_PERCPU_ARRAY(produced, u64, RW_REC_TYPE_MAX);
BPF_PERCPU_ARRAY(drops, u64, RW_DROP_REASON_MAX);
/* Exec arguments are only readable before the new image replaces the old one, and the
 * result only after: the record waits here, keyed by thread id, between the two. */
BPF_PERCPU_ARRAY(exec_scratch, struct rw_exec, 1);
BPF_HASH(pending_exec, u32, struct rw_exec, RW_PENDING_MAX);
#if RW_CGROUP_FILTER_N > 0
BPF_CGROUP_ARRAY(cgroup_filter, RW_CGROUP_FILTER_N);
#endif
/* Lineage outlives the monitor: pinned, so a restart reopens it. Kept for every process,
 * filtered or not, and whether or not its records reach userspace. */
BPF_TABLE_PINNED("lru_hash", struct rw_proc_key, struct rw_proc, procs, RW_PROCS_MAX, RW_PROCS_PIN);
BPF_PERCPU_ARRAY(proc_scratch, struct rw_proc, 1);
/* In-kernel filter: 1 for each syscall some loaded rule can use, refilled on reload.
 * A syscall nobody asked for costs one array lookup at sys_exit and no record. */
BPF_ARRAY(syscall_wanted, u8, RW_NR_MAX);
/* Path filter for opens: when on, an open of a canonical absolute path makes a record
 * only if a prefix in the trie matches it (monitor/kernel/filters.py derives them from the
 * rules). [0] of open_filter: 1 = on. filtered_opens counts what it kept out. */
BPF_F_TABLE("lpm_trie", struct rw_pfx_key, u8, open_prefixes, RW_OPEN_PREFIX_MAX, BPF_F_NO_PREALLOC);
BPF_ARRAY(open_filter, u32, 1);
/* [0] = 1: also keep opens of /proc/<pid>/mem and /proc/<pid>/maps (a rule on reading
 * another process's memory asks; a prefix trie cannot say "any pid"). */
BPF_ARRAY(proc_mem_wanted, u32, 1);
/* bpf() by command: [RW_BPF_CMD_MAX] of bpf_cmd_wanted is 1 when the filter is on; a
 * command the rules name is 1 at its index. Commands past the table always pass. */
#define RW_BPF_CMD_MAX 64
BPF_ARRAY(bpf_cmd_wanted, u8, RW_BPF_CMD_MAX + 1);
BPF_PERCPU_ARRAY(filtered_opens, u64, 1);
/* [0]: the path an open was given; [1]: the path of the file it returned. */
BPF_PERCPU_ARRAY(pfx_scratch, struct rw_pfx_key, 2);
BPF_PERCPU_ARRAY(lineage_stats, u64, RW_LIN_STAT_MAX);
/* Syscall records are built here, not in the ring buffer: a record that is coalesced or
 * throttled must not take ring space (a reserved-then-discarded record still occupies
 * it until the consumer passes). Zeroed per record so equal events have equal bytes. */
BPF_PERCPU_ARRAY(syscall_scratch, struct rw_syscall, 1);
BPF_ARRAY(syscall_blank, struct rw_syscall, 1);
BPF_PERCPU_ARRAY(coal_scratch, struct rw_coal_key, 1);
BPF_TABLE("lru_hash", struct rw_coal_key, struct rw_coal_val, coalesce, RW_COALESCE_MAX);
BPF_TABLE("lru_hash", u32, struct rw_bucket, throttle_procs, RW_THROTTLE_MAX);
BPF_TABLE("lru_hash", u64, struct rw_bucket, throttle_cgroups, RW_THROTTLE_MAX);
BPF_PERCPU_ARRAY(flood_stats, u64, RW_FLOOD_STAT_MAX);
/* Records refused, by process and by cgroup: only those ever throttled, so userspace
 * reads a short map, not every bucket. */
BPF_TABLE("lru_hash", u32, u64, throttled_pids, 1024);
BPF_TABLE("lru_hash", u64, u64, throttled_cgroups, 1024);

/* One counter helper per array: bcc rewrites map calls itself and refuses them inside
 * macros or behind a table passed as an argument, so these cannot be shared. */
static __always_inline void count_drop(u32 reason)
{
    u64 *v = drops.lookup(&reason);
    if (v)
        (*v)++;
}

static __always_inline void count_produced(u32 type)
{
    u64 *v = produced.lookup(&type);
    if (v)
        (*v)++;
}

static __always_inline void count_lineage(u32 stat)
{
    u64 *v = lineage_stats.lookup(&stat);
    if (v)
        (*v)++;
}

static __always_inline void count_flood(u32 stat)
{
    u64 *v = flood_stats.lookup(&stat);
    if (v)
        (*v)++;
}

static __always_inline u64 rd_u64(const void *base, u32 off)
{
    u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
    return v;
}

static __always_inline u32 rd_u32(const void *base, u32 off)
{
    u32 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
    return v;
}

static __always_inline const void *rd_ptr(const void *base, u32 off)
{
    const void *v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (const char *)base + off);
    return v;
}

/* task->cgroups->subsys[RW_CGROUP1_SUBSYS]->cgroup->kn->id: on a hybrid host the v1
 * cgroup tells a container from the host where the shared v2 cgroup cannot. */
static __always_inline u64 task_cgroup1_id(const void *task)
{
#if RW_CGROUP1_SUBSYS >= 0
    const void *cset = rd_ptr(task, RW_OFF_TASK_CGROUPS);
    const void *css = rd_ptr(cset, RW_OFF_CSS_SET_SUBSYS + RW_CGROUP1_SUBSYS * sizeof(void *));
    const void *kn = rd_ptr(rd_ptr(css, RW_OFF_CSS_CGROUP), RW_OFF_CGROUP_KN);
    return kn ? rd_u64(kn, RW_OFF_KERNFS_NODE_ID) : 0;
#else
    return 0;
#endif
}

/* A task's cgroup v2 id, as bpf_get_current_cgroup_id() gives the current task's
 * (task->cgroups->dfl_cgrp->kn->id): a child made by clone3(CLONE_INTO_CGROUP) starts in
 * another cgroup than its parent, in whose context sched_process_fork runs. Without BTF
 * (no offsets) the parent's. */
static __always_inline u64 task_cgroup_id(const void *task)
{
#ifdef RW_OFF_CSS_SET_DFL_CGRP
    const void *cgrp = rd_ptr(rd_ptr(task, RW_OFF_TASK_CGROUPS), RW_OFF_CSS_SET_DFL_CGRP);
    const void *kn = rd_ptr(cgrp, RW_OFF_CGROUP_KN);
    if (kn)
        return rd_u64(kn, RW_OFF_KERNFS_NODE_ID);
#endif
    return bpf_get_current_cgroup_id();
}

/* One read instead of two or three where the kernel keeps the fields side by side (it
 * has for years; BTF says so at start, or the reads stay apart): a dentry's parent, name
 * length and name pointer (d_parent, then d_name); a path's mount and dentry; an fd
 * table's size and array. Each bpf_probe_read_kernel is a helper call, and the path walk
 * runs on every open the filter judges: 107 ns less per open of a 4-deep path. */
#define RW_DH_SPAN (RW_OFF_DENTRY_D_NAME + RW_OFF_QSTR_NAME + 8 - RW_OFF_DENTRY_D_PARENT)
#ifndef RW_OFFSETS_FROM_HEADERS /* offsetof() is no number the preprocessor can compare */
#if RW_OFF_DENTRY_D_NAME > RW_OFF_DENTRY_D_PARENT && RW_DH_SPAN <= 64
#define RW_DH_ONE_READ 1
#endif
#if RW_OFF_PATH_DENTRY == RW_OFF_PATH_MNT + 8
#define RW_PATH_ONE_READ 1
#endif
#if RW_OFF_FDTABLE_FD == RW_OFF_FDTABLE_MAX_FDS + 8
#define RW_FDT_ONE_READ 1
#endif
#endif

/* Identity of the process a task belongs to: its tgid and its leader's start tick. */
static __always_inline void proc_key_of(struct rw_proc_key *k, const void *task)
{
    const void *leader = rd_ptr(task, RW_OFF_TASK_GROUP_LEADER);
    k->tgid = rd_u32(task, RW_OFF_TASK_TGID);
    k->_pad = 0;
    k->start_ticks = rd_u64(leader, RW_OFF_TASK_START_BOOTTIME) / RW_NS_PER_TICK;
}

static __always_inline struct rw_proc *zeroed_proc(void)
{
    u32 zero = 0;
    struct rw_proc *p = proc_scratch.lookup(&zero);
    if (p)
        __builtin_memset(p, 0, sizeof(*p));
    return p;
}

/* Parent identity of a task: real_parent's process. */
static __always_inline void set_parent(struct rw_proc *p, const void *task)
{
    struct rw_proc_key pk = {};
    const void *parent = rd_ptr(task, RW_OFF_TASK_REAL_PARENT);
    proc_key_of(&pk, parent);
    p->ppid = pk.tgid;
    p->pstart_ticks = pk.start_ticks;
}

static __always_inline int filtered(void)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (tgid == RW_SELF_TGID)
        return 1;
#if RW_CGROUP_FILTER_N > 0
    #pragma unroll
    for (int i = 0; i < RW_CGROUP_FILTER_N; i++) {
        if (cgroup_filter.check_current_task(i) == 1)
            return 0;
    }
    return 1;
#else
    return 0;
#endif
}

/* Header for the current task. */
static __always_inline void fill_header(struct rw_header *h, u32 type)
{
    const void *task = (const void *)bpf_get_current_task();
    u64 id = bpf_get_current_pid_tgid();
    u64 ug = bpf_get_current_uid_gid();

    h->type = type;
    h->cpu = bpf_get_smp_processor_id();
    h->ktime_ns = bpf_ktime_get_ns();
    h->pid = (u32)id;
    h->tgid = id >> 32;
    h->ppid = rd_u32(rd_ptr(task, RW_OFF_TASK_REAL_PARENT), RW_OFF_TASK_TGID);
    h->uid = (u32)ug;
    h->gid = ug >> 32;
    h->_pad0 = 0;
    h->cgroup_id = bpf_get_current_cgroup_id();
    h->start_ns = rd_u64(rd_ptr(task, RW_OFF_TASK_GROUP_LEADER), RW_OFF_TASK_START_BOOTTIME);
    bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* thread.cap_*: the current task's subjective credentials (task->cred), what the kernel
 * checks the task's next privileged operation against. Bit n is capability n. */
static __always_inline void read_caps(u64 *eff, u64 *prm, u64 *inh)
{
    const void *cred = rd_ptr((const void *)bpf_get_current_task(), RW_OFF_TASK_CRED);
    *eff = rd_u64(cred, RW_OFF_CRED_CAP_EFFECTIVE);
    *prm = rd_u64(cred, RW_OFF_CRED_CAP_PERMITTED);
    *inh = rd_u64(cred, RW_OFF_CRED_CAP_INHERITABLE);
}

/* The child inherits its parent's image (exe, args, comm) until it execs. */
static __always_inline void lineage_fork(const void *child)
{
    struct rw_proc_key ck = {}, pk = {};
    const void *task = (const void *)bpf_get_current_task();
    proc_key_of(&ck, child);
    proc_key_of(&pk, task);
    struct rw_proc *np = zeroed_proc();
    if (!np)
        return;
    struct rw_proc *pp = procs.lookup(&pk);
    if (pp) {
        __builtin_memcpy(np, pp, sizeof(*np));
        np->flags &= ~RW_PROC_F_BACKFILLED;
    } else {
        count_lineage(RW_LIN_FORK_PARENT_MISSING);
        bpf_probe_read_kernel_str(np->comm, sizeof(np->comm), (const char *)child + RW_OFF_TASK_COMM);
    }
    set_parent(np, child);
    np->uid = (u32)bpf_get_current_uid_gid();
    np->cgroup_id = task_cgroup_id(child);
    np->exit_ns = 0;
    procs.update(&ck, np);
    count_lineage(RW_LIN_INSERTS);
}

/* After a successful exec: the process keeps its identity and takes the new image. */
static __always_inline void lineage_exec(const struct rw_exec *e)
{
    struct rw_proc_key k = {};
    const void *task = (const void *)bpf_get_current_task();
    proc_key_of(&k, task);
    struct rw_proc *p = procs.lookup(&k);
    if (!p) {
        count_lineage(RW_LIN_EXEC_MISSING);
        p = zeroed_proc();
        if (!p)
            return;
        set_parent(p, task);
        count_lineage(RW_LIN_INSERTS);
    }
    __builtin_memcpy(p->comm, e->h.comm, sizeof(p->comm));
    /* Ancestors are judged by what they executed, not by the string they passed. */
    if (e->flags & RW_EXEC_F_EXEPATH)
        __builtin_memcpy(p->exe, e->exepath, sizeof(p->exe));
    else
        __builtin_memcpy(p->exe, e->filename, sizeof(p->exe));
    __builtin_memcpy(p->args, e->args, sizeof(p->args));
    p->args_len = e->args_len < RW_PROC_ARGS_LEN ? e->args_len : RW_PROC_ARGS_LEN;
    /* Without a resolved path the string passed stands in: cut, or not what ran. */
    p->flags = (e->flags & RW_EXEC_F_EXEPATH) ? 0 : RW_PROC_F_EXE_TRUNCATED;
    p->exec_ns = e->h.ktime_ns;
    p->uid = e->h.uid;
    p->cgroup_id = e->h.cgroup_id;
    procs.update(&k, p);
}

static __always_inline void lineage_exit(const void *task)
{
    struct rw_proc_key k = {};
    proc_key_of(&k, task);
    struct rw_proc *p = procs.lookup(&k);
    if (!p) {
        count_lineage(RW_LIN_EXIT_MISSING);
        return;
    }
    /* Kept, not deleted: orphans still name this process as their parent. LRU
     * eviction reclaims it; userspace counts utilisation. */
    p->exit_ns = bpf_ktime_get_ns();
}

static __always_inline void read_argv(struct rw_exec *e, const char *const *argv)
{
    u32 off = 0;
    u32 argc = 0;
    int i;

    #pragma unroll
    for (i = 0; i < RW_MAX_ARGS; i++) {
        const char *argp = 0;
        if (bpf_probe_read_user(&argp, sizeof(argp), &argv[i]) != 0) {
            e->flags |= RW_EXEC_F_ARG_READ_FAILED;
            goto out;
        }
        if (!argp)
            goto out;
        if (off >= RW_ARGS_LEN) {
            e->flags |= RW_EXEC_F_ARGV_TRUNCATED;
            goto out;
        }
        long n = bpf_probe_read_user_str(&e->args[off & (RW_ARGS_LEN - 1)], RW_ARG_LEN, argp);
        if (n <= 0) {
            e->flags |= RW_EXEC_F_ARG_READ_FAILED;
            goto out;
        }
        if (n == RW_ARG_LEN) {
            /* Full buffer: the argument was cut unless its next byte is the NUL. */
            char next = 0;
            bpf_probe_read_user(&next, 1, argp + RW_ARG_LEN - 1);
            if (next)
                e->flags |= RW_EXEC_F_ARGV_TRUNCATED;
        }
        off += n;
        argc++;
    }
    {
        const char *more = 0;
        bpf_probe_read_user(&more, sizeof(more), &argv[RW_MAX_ARGS]);
        if (more)
            e->flags |= RW_EXEC_F_ARGV_TRUNCATED;
    }
out:
    e->argc = argc;
    e->args_len = off;
}

static __always_inline int on_exec_enter(struct pt_regs *regs, u32 nr)
{
    u32 zero = 0;
    struct rw_exec *e = exec_scratch.lookup(&zero);
    if (!e)
        return 0;

    u64 a0 = 0, a1 = 0, a2 = 0, a4 = 0;
    bpf_probe_read_kernel(&a0, sizeof(a0), &regs->di);
    bpf_probe_read_kernel(&a1, sizeof(a1), &regs->si);
    bpf_probe_read_kernel(&a2, sizeof(a2), &regs->dx);
    bpf_probe_read_kernel(&a4, sizeof(a4), &regs->r8);

    const char *filename;
    const char *const *argv;
    e->syscall_nr = nr;
    e->flags = 0;
    e->ret = 0;
    /* Filled at sched_process_exec, which a failed exec never reaches. */
    e->exepath[0] = 0;
    e->exe_ino = 0;
    e->exe_ctime_ns = 0;
    e->exe_mtime_ns = 0;
    e->exe_uid = 0;
    e->exe_gid = 0;
    e->exe_nlink = 0;
    e->exe_mode = 0;
    e->_pad1 = 0;
    e->tty = 0;
    e->sid = 0;
    e->vpgid = 0;
    e->loginuid = 0;
    e->cgroup1_id = 0;
    e->cwd[0] = 0;
    e->env_count = 0;
    e->env_len = 0;
    e->env_cut = 0;
    if (nr == RW_NR_execveat) {
        e->dirfd = (s32)a0;
        e->at_flags = (u32)a4;
        filename = (const char *)a1;
        argv = (const char *const *)a2;
    } else {
        e->dirfd = -100;
        e->at_flags = 0;
        filename = (const char *)a0;
        argv = (const char *const *)a1;
    }

    long n = bpf_probe_read_user_str(e->filename, sizeof(e->filename), filename);
    if (n <= 0) {
        e->filename[0] = 0;
        e->flags |= RW_EXEC_F_FILENAME_FAILED;
    } else if (n == sizeof(e->filename)) {
        char next = 0;
        bpf_probe_read_user(&next, 1, filename + sizeof(e->filename) - 1);
        if (next)
            e->flags |= RW_EXEC_F_FILENAME_TRUNCATED;
    }
    read_argv(e, argv);

    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (pending_exec.update(&tid, e) != 0 && !filtered()) {
        count_produced(RW_REC_EXEC);
        count_drop(RW_DROP_PENDING_FULL);
    }
    return 0;
}

static __always_inline void read_user_path(char *dst, const char *src, u32 *flags, u32 failed,
                                           u32 truncated)
{
    long n = bpf_probe_read_user_str(dst, RW_PATH_LEN, src);
    if (n <= 0) {
        dst[0] = 0;
        *flags |= failed;
        count_drop(RW_DROP_PATH_FAILED);
    } else if (n == RW_PATH_LEN) {
        char next = 0;
        bpf_probe_read_user(&next, 1, src + RW_PATH_LEN - 1);
        if (next) {
            *flags |= truncated;
            count_drop(RW_DROP_PATH_TRUNCATED);
        }
    }
}

/* current->files->fdt->fd[fd], or 0. */
static __always_inline const void *fd_file(u64 fd)
{
    const void *task = (const void *)bpf_get_current_task();
    const void *fdt = rd_ptr(rd_ptr(task, RW_OFF_TASK_FILES), RW_OFF_FILES_FDT);
    if (!fdt)
        return 0;
#ifdef RW_FDT_ONE_READ
    /* struct fdtable starts with max_fds, then the fd array: one read for both. */
    u64 head[2] = {};
    bpf_probe_read_kernel(head, sizeof(head), (const char *)fdt + RW_OFF_FDTABLE_MAX_FDS);
    u32 max_fds = (u32)head[0];
    const void *fds = (const void *)head[1];
#else
    u32 max_fds = rd_u32(fdt, RW_OFF_FDTABLE_MAX_FDS);
    const void *fds = rd_ptr(fdt, RW_OFF_FDTABLE_FD);
#endif
    if (fd >= max_fds)
        return 0;
    return rd_ptr(fds, (u32)fd * sizeof(void *));
}

static __always_inline int is_socket(const void *file)
{
    u16 mode = 0;
    bpf_probe_read_kernel(&mode, sizeof(mode), (const char *)rd_ptr(file, RW_OFF_FILE_F_INODE) + RW_OFF_INODE_I_MODE);
    return (mode & RW_S_IFMT) == RW_S_IFSOCK;
}

/* Where a socket leads: its family and peer address. */
static __always_inline void socket_peer(struct rw_syscall *r, const void *file)
{
    const void *sk = rd_ptr(rd_ptr(file, RW_OFF_FILE_PRIVATE_DATA), RW_OFF_SOCKET_SK);
    u16 family = 0, port = 0;
    bpf_probe_read_kernel(&family, sizeof(family), (const char *)sk + RW_OFF_SOCK_FAMILY);
    bpf_probe_read_kernel(&port, sizeof(port), (const char *)sk + RW_OFF_SOCK_DPORT);
    r->family = family;
    r->port = __builtin_bswap16(port);
    if (family == 2 /* AF_INET */)
        bpf_probe_read_kernel(r->addr, 4, (const char *)sk + RW_OFF_SOCK_DADDR);
    else if (family == 10 /* AF_INET6 */)
        bpf_probe_read_kernel(r->addr, 16, (const char *)sk + RW_OFF_SOCK_V6_DADDR);
    r->flags |= RW_SC_F_SOCKET;
}

/* fd.l4proto: the type and protocol of the socket the kernel holds behind the fd, not the
 * arguments socket() was given (inet_create fills in IPPROTO_TCP for protocol 0). */
static __always_inline void sock_info(struct rw_syscall *r, const void *file)
{
    if (!file || !is_socket(file))
        return;
    const void *sk = rd_ptr(rd_ptr(file, RW_OFF_FILE_PRIVATE_DATA), RW_OFF_SOCKET_SK);
    if (!sk)
        return;
    u16 type = 0, proto = 0, family = 0;
    bpf_probe_read_kernel(&family, sizeof(family), (const char *)sk + RW_OFF_SOCK_FAMILY);
    bpf_probe_read_kernel(&type, sizeof(type), (const char *)sk + RW_OFF_SOCK_TYPE);
    bpf_probe_read_kernel(&proto, sizeof(proto), (const char *)sk + RW_OFF_SOCK_PROTOCOL);
    r->sock_type = type;
    r->sock_protocol = proto;
    r->sock_family = family;
    /* Its ends, as the kernel set them (what connect really connected to, whatever the
     * caller's sockaddr memory holds by now). */
    u16 lport = 0, rport = 0;
    bpf_probe_read_kernel(&lport, sizeof(lport), (const char *)sk + RW_OFF_SOCK_NUM);
    bpf_probe_read_kernel(&rport, sizeof(rport), (const char *)sk + RW_OFF_SOCK_DPORT);
    r->sock_lport = lport;
    r->sock_rport = __builtin_bswap16(rport);
    if (family == 2 /* AF_INET */) {
        bpf_probe_read_kernel(r->sock_laddr, 4, (const char *)sk + RW_OFF_SOCK_RCV_SADDR);
        bpf_probe_read_kernel(r->sock_raddr, 4, (const char *)sk + RW_OFF_SOCK_DADDR);
    } else if (family == 10 /* AF_INET6 */) {
        bpf_probe_read_kernel(r->sock_laddr, 16, (const char *)sk + RW_OFF_SOCK_V6_RCV_SADDR);
        bpf_probe_read_kernel(r->sock_raddr, 16, (const char *)sk + RW_OFF_SOCK_V6_DADDR);
    }
    r->flags |= RW_SC_F_SOCKINFO;
}

static __always_inline void read_sockaddr(struct rw_syscall *r, const void *uaddr, u64 len)
{
    u16 family = 0;
    if (len < 2 || bpf_probe_read_user(&family, sizeof(family), uaddr) != 0) {
        r->flags |= RW_SC_F_ADDR_FAILED;
        count_drop(RW_DROP_ADDR_FAILED);
        return;
    }
    r->family = family;
    u16 port = 0;
    if (family == 2 /* AF_INET: family, port, addr */) {
        bpf_probe_read_user(&port, 2, (const char *)uaddr + 2);
        bpf_probe_read_user(r->addr, 4, (const char *)uaddr + 4);
    } else if (family == 10 /* AF_INET6: family, port, flowinfo, addr */) {
        bpf_probe_read_user(&port, 2, (const char *)uaddr + 2);
        bpf_probe_read_user(r->addr, 16, (const char *)uaddr + 8);
    } else if (family == 1 /* AF_UNIX: family, sun_path */) {
        bpf_probe_read_user_str(r->path, 108, (const char *)uaddr + 2);
    }
    r->port = __builtin_bswap16(port);
}

/* The path of a struct path (a dentry in a mount), absolute from the global root, in
 * w->buf: right-aligned, it ends with the NUL at buf[RW_PATH_LEN - 1] and starts at the
 * offset returned; -1 when it is deeper than RW_WALK_DEPTH or longer than RW_PATH_LEN - 1.
 * Names are taken from dentries up to the mount's root, then from the mount point in the
 * parent mount (as d_path does, and Tetragon), so a chroot, a bind mount, a symlink or
 * ".." cannot make a file look like it is elsewhere. A dentry that is its own parent
 * below a mount root is a pseudo file (memfd, pipe, anon inode): its name alone, after
 * "/", as d_path prints it. The one walk for cwd/dirfd bases, executables and opens. */
struct rw_walk {
    char buf[2 * RW_PATH_LEN]; /* names are copied at offsets < RW_PATH_LEN, < RW_PATH_LEN long */
};
BPF_PERCPU_ARRAY(walk_scratch, struct rw_walk, 1);

static __always_inline int walk_path(struct rw_walk *w, const void *path)
{
#ifdef RW_PATH_ONE_READ
    const void *pm[2] = {};
    bpf_probe_read_kernel(pm, sizeof(pm), (const char *)path + RW_OFF_PATH_MNT);
    const void *vfsmnt = pm[0], *dentry = pm[1];
#else
    const void *dentry = rd_ptr(path, RW_OFF_PATH_DENTRY);
    const void *vfsmnt = rd_ptr(path, RW_OFF_PATH_MNT);
#endif
    const void *mroot = rd_ptr(vfsmnt, RW_OFF_VFSMOUNT_ROOT);
#ifdef RW_OFF_MOUNT_MNT
    const void *mnt = (const char *)vfsmnt - RW_OFF_MOUNT_MNT;
#endif
    u32 pos = RW_PATH_LEN - 1;
    int i;

    w->buf[RW_PATH_LEN - 1] = 0;
    /* A real loop: the walk is inlined at every place that resolves a path (opens, bases,
     * executables, cwd, io_uring), and unrolled it was half of all the sensor's
     * instructions (38k -> 19k) and a fifth of its compile at every start. The verifier
     * (5.3+; the 6.1 guest too) bounds it by RW_WALK_DEPTH. */
    #pragma clang loop unroll(disable)
    for (i = 0; i < RW_WALK_DEPTH; i++) {
        if (dentry == mroot) {
#ifdef RW_OFF_MOUNT_MNT
            const void *mparent = rd_ptr(mnt, RW_OFF_MOUNT_PARENT);
            if (mparent == mnt || !mparent)
                goto done; /* the global root */
            dentry = rd_ptr(mnt, RW_OFF_MOUNT_MOUNTPOINT);
            mnt = mparent;
            vfsmnt = (const char *)mnt + RW_OFF_MOUNT_MNT;
            mroot = rd_ptr(vfsmnt, RW_OFF_VFSMOUNT_ROOT);
            continue;
#else
            if (rd_ptr(dentry, RW_OFF_DENTRY_D_PARENT) == dentry)
                goto done; /* no struct mount without BTF: a mount's root ends the walk */
            return -1;
#endif
        }
#ifdef RW_DH_ONE_READ
        u64 dh[(RW_DH_SPAN + 7) / 8] = {};
        bpf_probe_read_kernel(dh, sizeof(dh), (const char *)dentry + RW_OFF_DENTRY_D_PARENT);
        const void *parent = *(const void **)((const char *)dh);
        u32 len = *(const u32 *)((const char *)dh + RW_OFF_DENTRY_D_NAME + RW_OFF_QSTR_LEN - RW_OFF_DENTRY_D_PARENT);
        const void *name = *(const void **)((const char *)dh + RW_OFF_DENTRY_D_NAME + RW_OFF_QSTR_NAME - RW_OFF_DENTRY_D_PARENT);
#else
        const void *parent = rd_ptr(dentry, RW_OFF_DENTRY_D_PARENT);
        u32 len = rd_u32(dentry, RW_OFF_DENTRY_D_NAME + RW_OFF_QSTR_LEN);
        const void *name = rd_ptr(dentry, RW_OFF_DENTRY_D_NAME + RW_OFF_QSTR_NAME);
#endif
        if (len == 0 || len >= pos)
            return -1;
        /* clang knows len < pos <= 254 and drops masks that change nothing; the verifier
         * needs them to bound the accesses: the empty asm hides what clang knows. */
        pos -= len;
        asm volatile("" : "+r"(pos), "+r"(len));
        pos &= RW_PATH_LEN - 1;
        bpf_probe_read_kernel(&w->buf[pos], len & (RW_PATH_LEN - 1), name);
        pos -= 1;
        asm volatile("" : "+r"(pos));
        pos &= RW_PATH_LEN - 1;
        w->buf[pos] = '/';
        if (parent == dentry)
            goto done; /* pseudo file: no directory above it */
        dentry = parent;
    }
    return -1;
done:
    if (pos == RW_PATH_LEN - 1) {
        pos -= 1;
        w->buf[pos] = '/'; /* the root itself */
    }
    return (int)pos;
}

/* walk_path into dst (RW_PATH_LEN bytes); the path's length, or -1 with dst empty. */
static __always_inline int resolve_path(char *dst, const void *path)
{
    u32 zero = 0;
    struct rw_walk *w = walk_scratch.lookup(&zero);
    dst[0] = 0;
    if (!w)
        return -1;
    int pos = walk_path(w, path);
    if (pos < 0)
        return -1;
    bpf_probe_read_kernel_str(dst, RW_PATH_LEN, &w->buf[pos & (RW_PATH_LEN - 1)]);
    return RW_PATH_LEN - 1 - pos;
}

/* The directory a relative path is relative to: the cwd or the dirfd's file. */
static __always_inline void read_base(struct rw_syscall *r, const void *path)
{
    if (resolve_path(r->kpath, path) > 0) {
        r->flags |= RW_SC_F_BASE;
    } else {
        r->flags |= RW_SC_F_BASE_TRUNCATED;
        count_drop(RW_DROP_PATH_TRUNCATED);
    }
}

/* Whether the text alone says where a path is: absolute, no "//", no "/." component
 * start (so /./etc/x, /tmp/../etc/x and dotfiles are never judged by prefix).
 * Unrolled by macro, not by loop: clang keeps a 255-step loop rolled, and the 6.1
 * verifier rejects the fall-through back-edge of the loop it makes. */
#define RW_CANON_AT(i)                                              \
    if (p[i] == 0)                                                   \
        return 1;                                                    \
    if (p[i] == '/' && (p[(i) + 1] == '/' || p[(i) + 1] == '.'))     \
        return 0;
#define RW_CANON_4(i) RW_CANON_AT(i) RW_CANON_AT((i) + 1) RW_CANON_AT((i) + 2) RW_CANON_AT((i) + 3)
#define RW_CANON_16(i) RW_CANON_4(i) RW_CANON_4((i) + 4) RW_CANON_4((i) + 8) RW_CANON_4((i) + 12)
#define RW_CANON_64(i) RW_CANON_16(i) RW_CANON_16((i) + 16) RW_CANON_16((i) + 32) RW_CANON_16((i) + 48)

static __always_inline int canonical_absolute(const char *p)
{
    if (p[0] != '/')
        return 0;
    RW_CANON_64(0)
    RW_CANON_64(64)
    RW_CANON_64(128)
    RW_CANON_16(192)
    RW_CANON_16(208)
    RW_CANON_16(224)
    RW_CANON_4(240)
    RW_CANON_4(244)
    RW_CANON_4(248)
    RW_CANON_AT(252)
    RW_CANON_AT(253)
    RW_CANON_AT(254)
    return 0; /* no NUL within RW_PATH_LEN - 1 bytes: truncated, not judged */
}

/* A prefix's value: 1 = every open below it, 2 = only opens that can write (the exe
 * writers' record, monitor/events/writers.py, needs no reads). */
#define RW_PFX_WRITES_ONLY 2
static __always_inline int open_prefix_wanted(struct rw_pfx_key *pk, long len, int wr)
{
    pk->prefixlen = (u32)len * 8;
    u8 *v = open_prefixes.lookup(pk);
    return v != 0 && (*v != RW_PFX_WRITES_ONLY || wr);
}

/* "/proc/" digits "/mem" or "/maps", NUL-terminated. */
static __always_inline int proc_mem_path(const char *p)
{
    if (p[0] != '/' || p[1] != 'p' || p[2] != 'r' || p[3] != 'o' || p[4] != 'c' || p[5] != '/')
        return 0;
    u32 i = 6;
#pragma unroll
    for (int k = 0; k < 10; k++) {
        if (p[i] < '0' || p[i] > '9')
            break;
        i++;
    }
    if (i == 6 || p[i] != '/' || p[i + 1] != 'm')
        return 0;
    if (p[i + 2] == 'e' && p[i + 3] == 'm' && p[i + 4] == 0)
        return 1;
    return p[i + 2] == 'a' && p[i + 3] == 'p' && p[i + 4] == 's' && p[i + 5] == 0;
}

static __always_inline int proc_mem_kept(const char *given, const char *resolved, long res_n)
{
    u32 zero = 0;
    u32 *on = proc_mem_wanted.lookup(&zero);
    if (!on || !*on)
        return 0;
    return proc_mem_path(given) || (res_n > 0 && proc_mem_path(resolved));
}

/* 1 if the path an open was given is not one the rules ask for. The path is left in pk. */
static __always_inline int open_filtered(struct rw_pfx_key *pk, const char *upath, long *n, int wr)
{
    /* Zeroed first: the record copies all RW_PATH_LEN bytes, and coalescing compares
     * them; a previous, longer path's tail must not make equal paths differ. */
    __builtin_memset(pk->path, 0, RW_PATH_LEN);
    *n = bpf_probe_read_user_str(pk->path, RW_PATH_LEN, upath);
    u32 zero = 0;
    u32 *on = open_filter.lookup(&zero);
    if (!on || !*on || *n <= 1 || !canonical_absolute(pk->path))
        return 0;
    return !open_prefix_wanted(pk, *n - 1, wr);
}

static __always_inline void count_filtered_open(void)
{
    u32 zero = 0;
    u64 *f = filtered_opens.lookup(&zero);
    if (f)
        (*f)++;
}

/* ---- Coverage helpers (sockets' local ends, UDP, namespaces, signals) ------------ */

#define RW_NSFS_MAGIC 0x6e736673

/* The local end of a socket, from its sock: what bind/listen actually got (port 0
 * becomes the ephemeral port), whatever the caller passed. */
static __always_inline void socket_local(struct rw_syscall *r, const void *file)
{
    if (!file || !is_socket(file))
        return;
    const void *sk = rd_ptr(rd_ptr(file, RW_OFF_FILE_PRIVATE_DATA), RW_OFF_SOCKET_SK);
    u16 family = 0, port = 0;
    bpf_probe_read_kernel(&family, sizeof(family), (const char *)sk + RW_OFF_SOCK_FAMILY);
    bpf_probe_read_kernel(&port, sizeof(port), (const char *)sk + RW_OFF_SOCK_NUM);
    if (!r->family)
        r->family = family;
    r->lport = port; /* skc_num is in host byte order */
    if (family == 2 /* AF_INET */)
        bpf_probe_read_kernel(r->laddr, 4, (const char *)sk + RW_OFF_SOCK_RCV_SADDR);
    else if (family == 10 /* AF_INET6 */)
        bpf_probe_read_kernel(r->laddr, 16, (const char *)sk + RW_OFF_SOCK_V6_RCV_SADDR);
    r->flags |= RW_SC_F_LOCAL;
}

/* An IPv4/IPv6 UDP socket (sends are recorded only on those: volume). */
static __always_inline int is_udp(const void *file)
{
    if (!file || !is_socket(file))
        return 0;
    const void *sk = rd_ptr(rd_ptr(file, RW_OFF_FILE_PRIVATE_DATA), RW_OFF_SOCKET_SK);
    u16 family = 0, proto = 0;
    bpf_probe_read_kernel(&family, sizeof(family), (const char *)sk + RW_OFF_SOCK_FAMILY);
    bpf_probe_read_kernel(&proto, sizeof(proto), (const char *)sk + RW_OFF_SOCK_PROTOCOL);
    return (family == 2 || family == 10) && proto == 17 /* IPPROTO_UDP */;
}

/* setns: the namespace type the fd names, from the kernel (its nsfs inode's ns_common
 * operations: "net", "mnt", "pid_for_children", ...), not from the nstype argument,
 * which may be 0 ("any"). A pidfd or another file leaves aux empty. */
static __always_inline void nsfs_type(struct rw_syscall *r, const void *file)
{
    if (!file)
        return;
    const void *inode = rd_ptr(file, RW_OFF_FILE_F_INODE);
    if (rd_u64(rd_ptr(inode, RW_OFF_INODE_I_SB), RW_OFF_SB_MAGIC) != RW_NSFS_MAGIC)
        return;
    const void *ops = rd_ptr(rd_ptr(inode, RW_OFF_INODE_I_PRIVATE), RW_OFF_NS_COMMON_OPS);
    if (bpf_probe_read_kernel_str(r->aux, sizeof(r->aux), rd_ptr(ops, RW_OFF_PROC_NS_OPS_NAME)) > 0)
        r->flags |= RW_SC_F_NSFS;
}

/* Who a kill/tkill/tgkill signalled, as the kernel resolved the pid: signal_generate
 * runs in the sender's context during the syscall; sys_exit takes the entry. */
struct rw_kill_target {
    u32 tgid;
    u32 tid;
    u32 uid;
    u32 sig;
};
BPF_TABLE("lru_hash", u32, struct rw_kill_target, kill_targets, 1024);

/* ---- The syscall lane: coalescing, throttling, output ----------------------------
 * Accounting: every record that reaches emit_syscall counts as produced, then exactly
 * one of coalesced, throttled (flood_stats), lost (RW_DROP_SYSCALL_RINGBUF_FULL) or
 * sent to `syscalls` (counted as delivered by userspace). */

static __always_inline struct rw_syscall *syscall_record(void)
{
    u32 zero = 0;
    struct rw_syscall *r = syscall_scratch.lookup(&zero);
    const struct rw_syscall *blank = syscall_blank.lookup(&zero);
    if (!r || !blank)
        return 0;
    /* Too big for an inlined memset: copied from an entry nothing ever writes. */
    bpf_probe_read_kernel(r, sizeof(*r), blank);
    return r;
}

/* Argument slots holding a user pointer whose bytes the record carries (a path, a
 * sockaddr, the fstype): one bit per slot. */
static __always_inline u32 pointer_args(u32 nr)
{
    switch (nr) {
    case RW_NR_open:
    case RW_NR_unlink:
    case RW_NR_rmdir:
    case RW_NR_chmod:
    case RW_NR_memfd_create:
        return 1u << 0;
    case RW_NR_openat:
    case RW_NR_openat2:
    case RW_NR_unlinkat:
    case RW_NR_fchmodat:
    case RW_NR_connect:
        return 1u << 1;
    case RW_NR_rename:
    case RW_NR_link:
    case RW_NR_symlink:
        return (1u << 0) | (1u << 1);
    case RW_NR_mount:
        return (1u << 0) | (1u << 1) | (1u << 2) | (1u << 4);
    case RW_NR_renameat:
    case RW_NR_renameat2:
    case RW_NR_linkat:
        return (1u << 1) | (1u << 3);
    case RW_NR_symlinkat:
        return (1u << 0) | (1u << 2);
    }
    return 0;
}

/* The same for the coverage syscalls (xattr values, sockaddrs, timespecs, iovecs). */
static __always_inline u32 coverage_pointer_args(u32 nr)
{
    switch (nr) {
    case RW_NR_truncate:
    case RW_NR_chown:
    case RW_NR_lchown:
    case RW_NR_mkdir:
        return 1u << 0;
    case RW_NR_mkdirat:
    case RW_NR_fchownat:
    case RW_NR_fchmodat2:
    case RW_NR_fremovexattr:
    case RW_NR_bind:
    case RW_NR_sendmsg:
        return 1u << 1;
    case RW_NR_setxattr:
    case RW_NR_lsetxattr:
        return (1u << 0) | (1u << 1) | (1u << 2);
    case RW_NR_fsetxattr:
    case RW_NR_accept:
    case RW_NR_accept4:
    case RW_NR_utimensat:
        return (1u << 1) | (1u << 2);
    case RW_NR_removexattr:
    case RW_NR_lremovexattr:
        return (1u << 0) | (1u << 1);
    case RW_NR_setxattrat:
        return (1u << 1) | (1u << 3) | (1u << 4);
    case RW_NR_removexattrat:
        return (1u << 1) | (1u << 3);
    case RW_NR_sendto:
        return (1u << 1) | (1u << 4);
    case RW_NR_process_vm_writev:
        return (1u << 1) | (1u << 3);
    }
    return 0;
}

static __always_inline void coal_key_of(struct rw_coal_key *k, const struct rw_syscall *r)
{
    const void *task = (const void *)bpf_get_current_task();
    k->tgid = r->h.tgid;
    k->uid = r->h.uid;
    k->gid = r->h.gid;
    k->_pad = 0;
    k->cgroup_id = r->h.cgroup_id;
    k->exec_id = rd_u64(task, RW_OFF_TASK_SELF_EXEC_ID);
    __builtin_memcpy(k->comm, r->h.comm, sizeof(k->comm));
    bpf_probe_read_kernel(k->body, sizeof(k->body), &r->ret);
    u64 *args = (u64 *)(k->body + (__builtin_offsetof(struct rw_syscall, args) - RW_SC_BODY_OFF));
    u32 mask = pointer_args(r->nr) | coverage_pointer_args(r->nr);
    #pragma unroll
    for (int i = 0; i < 6; i++) {
        if (mask & (1u << i))
            args[i] = 0;
    }
}

/* Refill then take one token; 1 if there was one. Racing CPUs may both take the last
 * token: the budget is approximate, the counts of what was refused are not. */
static __always_inline int bucket_take(struct rw_bucket *b, u64 now, u64 rate, u64 burst)
{
    u64 cap = burst * 1000000000ULL;
    u64 dt = now - b->last_ns;
    if (b->last_ns == 0 || dt > 10000000000ULL) {
        b->tokens = cap;
    } else {
        b->tokens += dt * rate;
        if (b->tokens > cap)
            b->tokens = cap;
    }
    b->last_ns = now;
    if (b->tokens < 1000000000ULL)
        return 0;
    b->tokens -= 1000000000ULL;
    return 1;
}

/* Insert-if-absent then add: two CPUs making the same entry at once must not both
 * write "1" (the cgroup's entry is shared by all its processes). */
static __always_inline void count_throttled(u32 tgid, u64 cgroup_id, u32 scope)
{
    u64 zero = 0;
    u64 *n = throttled_pids.lookup(&tgid);
    if (!n) {
        throttled_pids.insert(&tgid, &zero);
        n = throttled_pids.lookup(&tgid);
    }
    if (n)
        __sync_fetch_and_add(n, 1);
    if (scope != RW_THROTTLE_CGROUP)
        return;
    n = throttled_cgroups.lookup(&cgroup_id);
    if (!n) {
        throttled_cgroups.insert(&cgroup_id, &zero);
        n = throttled_cgroups.lookup(&cgroup_id);
    }
    if (n)
        __sync_fetch_and_add(n, 1);
}

/* A refused record: counted, and now and then told to userspace on the process lane
 * (which the flood cannot fill), naming the process whose record it was. */
static __always_inline void throttled(const struct rw_syscall *r, struct rw_bucket *b, u32 scope,
                                      u32 rate, u32 burst)
{
    count_flood(scope == RW_THROTTLE_PROCESS ? RW_FLOOD_THROTTLED_PROCESS : RW_FLOOD_THROTTLED_CGROUP);
    count_throttled(r->h.tgid, r->h.cgroup_id, scope);
    __sync_fetch_and_add(&b->throttled, 1);
    u64 now = r->h.ktime_ns;
    if (b->notice_ns && now - b->notice_ns < RW_THROTTLE_NOTICE_NS)
        return;
    b->notice_ns = now;
    count_produced(RW_REC_THROTTLE);
    struct rw_throttle *t = events.ringbuf_reserve(sizeof(struct rw_throttle));
    if (!t) {
        count_drop(RW_DROP_RINGBUF_FULL);
        return;
    }
    __builtin_memcpy(&t->h, &r->h, sizeof(t->h));
    t->h.type = RW_REC_THROTTLE;
    t->scope = scope;
    t->nr = r->nr;
    t->throttled = b->throttled;
    t->rate = rate;
    t->burst = burst;
    events.ringbuf_submit(t, 0);
}

static __always_inline struct rw_bucket *proc_bucket(u32 tgid)
{
    struct rw_bucket *b = throttle_procs.lookup(&tgid);
    if (b)
        return b;
    struct rw_bucket nb = {};
    throttle_procs.insert(&tgid, &nb); /* another CPU may have made it meanwhile: keep that */
    return throttle_procs.lookup(&tgid);
}

static __always_inline struct rw_bucket *cgroup_bucket(u64 id)
{
    struct rw_bucket *b = throttle_cgroups.lookup(&id);
    if (b)
        return b;
    struct rw_bucket nb = {};
    throttle_cgroups.insert(&id, &nb);
    return throttle_cgroups.lookup(&id);
}

/* 1 if the record may go out. A record the cgroup refused is charged to its process in
 * throttled_pids as well, so "throttled by process" is complete. */
static __always_inline int throttle_pass(const struct rw_syscall *r)
{
#if RW_PROC_RATE > 0
    struct rw_bucket *pb = proc_bucket(r->h.tgid);
    if (pb && !bucket_take(pb, r->h.ktime_ns, RW_PROC_RATE, RW_PROC_BURST)) {
        throttled(r, pb, RW_THROTTLE_PROCESS, RW_PROC_RATE, RW_PROC_BURST);
        return 0;
    }
#endif
#if RW_CG_RATE > 0
    struct rw_bucket *cb = cgroup_bucket(r->h.cgroup_id);
    if (cb && !bucket_take(cb, r->h.ktime_ns, RW_CG_RATE, RW_CG_BURST)) {
        throttled(r, cb, RW_THROTTLE_CGROUP, RW_CG_RATE, RW_CG_BURST);
        return 0;
    }
#endif
    return 1;
}

/* Wake-ups: by default a ring buffer wakes its consumer for a record that finds it
 * caught up, so a consumer that keeps pace is woken for nearly every record, and each
 * wake-up costs the producer an irq_work and the consumer a sleep, a poll and cold caches
 * (measured at 5k opens/s: 38 us of monitor CPU per open, against 25 us woken once per
 * 256). Syscall records are sent without a wake-up; every RW_SYSCALL_WAKEUP_RECORDS-th on
 * a CPU forces one. Fewer than that wait for the consumer's poll timeout
 * (sensor.poll_timeout_ms), which bounds how late a record is read. Process records keep
 * the default: what is read from /proc when an exec or fork is decoded (the container of
 * the process, from /proc/PID/cgroup) must be read while a short-lived process lives. */
BPF_PERCPU_ARRAY(syscall_unwoken, u64, 1);

static __always_inline u64 syscall_wakeup(void)
{
#if RW_SYSCALL_WAKEUP_RECORDS > 1
    u32 zero = 0;
    u64 *n = syscall_unwoken.lookup(&zero);
    if (!n)
        return 0;
    if (++*n < RW_SYSCALL_WAKEUP_RECORDS)
        return BPF_RB_NO_WAKEUP;
    *n = 0;
    return BPF_RB_FORCE_WAKEUP;
#else
    return 0;
#endif
}

/* The ring gets the wire form (bpf/records.h): each string's bytes only. Built here
 * from the record, which stays whole for coalescing's key. */
BPF_PERCPU_ARRAY(syscall_wire, struct rw_syscall_wire, 1);

/* Copies string i up to its NUL (read_str stops there: no length to find first) to
 * strs at off; returns where the next one starts. */
static __always_inline u32 wire_string(struct rw_syscall_wire *w, u32 i, u32 off, const char *s)
{
    off &= RW_SC_STRINGS * RW_PATH_LEN - 1;
    long n = bpf_probe_read_kernel_str(&w->strs[off], RW_PATH_LEN, s);
    /* n counts the NUL; at most RW_PATH_LEN, so the mask only shows the verifier the bound. */
    u32 len = n > 1 ? (u32)(n - 1) & (RW_PATH_LEN - 1) : 0;
    w->len[i & (RW_SC_STRINGS - 1)] = len;
    return off + len;
}

static __always_inline long send_syscall(const struct rw_syscall *r)
{
    u32 zero = 0;
    struct rw_syscall_wire *w = syscall_wire.lookup(&zero);
    if (!w)
        return -1;
    bpf_probe_read_kernel(w->fixed, sizeof(w->fixed), r);
    u32 off = wire_string(w, 0, 0, r->path);
    off = wire_string(w, 1, off, r->path2);
    off = wire_string(w, 2, off, r->kpath);
    off = wire_string(w, 3, off, r->kpath2);
    if (off > RW_SC_STRINGS * RW_PATH_LEN)
        return -1;
    return syscalls.ringbuf_output(w, __builtin_offsetof(struct rw_syscall_wire, strs) + off,
                                   syscall_wakeup());
}

/* The first occurrence goes out at once (detection latency unchanged); identical ones
 * within the window only count; the next one after the window carries the count. An
 * entry is made or restarted only by a record that reached the ring: repeats of a
 * record that was throttled or lost are not folded into something nobody received. */
static __always_inline int emit_syscall(struct rw_syscall *r)
{
    u64 now = r->h.ktime_ns;
    count_produced(RW_REC_SYSCALL);
    r->count = 1;
    r->first_ns = now;
    struct rw_coal_key *k = 0;
    struct rw_coal_val *v = 0;
#if RW_COALESCE_WINDOW_NS > 0
    u32 zero = 0;
    k = coal_scratch.lookup(&zero);
    if (k) {
        coal_key_of(k, r);
        v = coalesce.lookup(k);
        if (v && now - v->window_ns < RW_COALESCE_WINDOW_NS) {
            /* No fetch: XADD's result needs BPF v3, which bcc does not target everywhere. */
            if (v->pending == 0)
                v->first_ns = now;
            __sync_fetch_and_add(&v->pending, 1);
            v->last_ns = now;
            v->tid = r->h.pid;
            v->ppid = r->h.ppid;
            v->start_ns = r->h.start_ns;
            v->cpu = r->h.cpu;
            count_flood(RW_FLOOD_COALESCED);
            return 0;
        }
        if (v && v->pending) {
            r->count = 1 + v->pending;
            r->first_ns = v->first_ns;
        }
    }
#endif
    if (!throttle_pass(r))
        return 0;
    if (send_syscall(r) != 0) {
        count_drop(RW_DROP_SYSCALL_RINGBUF_FULL);
        return 0;
    }
#if RW_COALESCE_WINDOW_NS > 0
    if (v) {
        v->window_ns = now;
        v->pending = 0;
        v->first_ns = now;
        v->last_ns = now;
    } else if (k) {
        struct rw_coal_val nv = {};
        nv.window_ns = now;
        nv.first_ns = now;
        nv.last_ns = now;
        coalesce.update(k, &nv);
    }
#endif
    return 0;
}

/* The directory a relative source path of rename/link was relative to (kpath2). */
static __always_inline void read_base2(struct rw_syscall *r, s64 dirfd)
{
    const void *base = 0;
    if (dirfd == -100) {
        const void *fs = rd_ptr((const void *)bpf_get_current_task(), RW_OFF_TASK_FS);
        base = fs ? (const char *)fs + RW_OFF_FS_PWD : 0;
    } else {
        const void *dir = fd_file((u64)dirfd);
        base = dir ? (const char *)dir + RW_OFF_FILE_F_PATH : 0;
    }
    if (base && resolve_path(r->kpath2, base) > 0)
        r->flags |= RW_SC_F_BASE2;
}

/* Kernel-side fields of the coverage syscalls, after the paths are in the record. */
static __always_inline void coverage_fields(struct rw_syscall *r, u32 nr, s64 ret, u64 a0, u64 a1,
                                            u64 a2, u64 a3, u64 a4, u64 a5, const void *udp_file,
                                            const struct rw_kill_target *kt)
{
    switch (nr) {
    case RW_NR_rename:
    case RW_NR_link:
        if (r->path[0] && r->path[0] != '/')
            read_base2(r, -100);
        break;
    case RW_NR_renameat:
    case RW_NR_renameat2:
    case RW_NR_linkat:
        if (r->path[0] && r->path[0] != '/')
            read_base2(r, (s32)a0);
        break;
    case RW_NR_bind:
        read_sockaddr(r, (const void *)a1, a2);
        if (ret == 0)
            socket_local(r, fd_file(a0));
        break;
    case RW_NR_listen:
        socket_local(r, fd_file(a0));
        break;
    case RW_NR_accept:
    case RW_NR_accept4:
        if (ret >= 0) {
            const void *f = fd_file((u64)ret);
            if (f && is_socket(f)) {
                socket_peer(r, f);
                socket_local(r, f);
            }
        }
        break;
    case RW_NR_sendto:
    case RW_NR_sendmsg: {
        /* The destination given, else the connected peer. */
        const void *name = (const void *)a4;
        u64 len = a5;
        if (nr == RW_NR_sendmsg) {
            struct { u64 name; u32 len; } hdr = {};
            bpf_probe_read_user(&hdr, sizeof(hdr), (const void *)a1);
            name = (const void *)hdr.name;
            len = hdr.len;
        }
        if (name)
            read_sockaddr(r, name, len);
        else
            socket_peer(r, udp_file);
        socket_local(r, udp_file);
        break;
    }
    case RW_NR_setns:
        nsfs_type(r, fd_file(a0));
        break;
    }
    if (kt) {
        r->target_pid = kt->tgid;
        r->target_tid = kt->tid;
        r->target_uid = kt->uid;
        r->flags |= RW_SC_F_TARGET;
    }
}

static __always_inline int on_syscall_exit(struct pt_regs *regs, u32 nr, s64 ret)
{
    /* The syscall entry saved its argument registers in pt_regs; they are still there,
     * in a row from r10 to di (r10, r9, r8, ax, cx, dx, si, di): one read for the six. */
    _Static_assert(offsetof(struct pt_regs, di) == offsetof(struct pt_regs, r10) + 7 * sizeof(long),
                   "x86-64 pt_regs: r10 .. di in a row");
    unsigned long rg[8] = {};
    bpf_probe_read_kernel(rg, sizeof(rg), &regs->r10);
    u64 a0 = rg[7], a1 = rg[6], a2 = rg[5], a3 = rg[0], a4 = rg[2], a5 = rg[1];

    /* Opens are most syscalls on a host: the path filter runs before anything else.
     * It judges the path as given and, for an open that returned a file, the path of that
     * file (resolved here from the fd, so a symlink or ".." cannot smuggle a wanted file
     * past the filter): the record is kept if either is wanted. */
    struct rw_pfx_key *pk = 0, *rk = 0;
    long open_n = 0, res_n = -1;
    if (nr == RW_NR_open || nr == RW_NR_openat || nr == RW_NR_openat2) {
        u32 zero = 0, one = 1;
        pk = pfx_scratch.lookup(&zero);
        rk = pfx_scratch.lookup(&one);
        if (!pk || !rk)
            return 0;
        /* Can write: O_WRONLY/O_RDWR, or O_CREAT/O_TRUNC (openat2's flags: open_how's first). */
        u64 oflags = nr == RW_NR_open ? a1 : a2;
        if (nr == RW_NR_openat2) {
            oflags = 0;
            bpf_probe_read_user(&oflags, sizeof(oflags), (const void *)a2);
        }
        int wr = (oflags & 3) != 0 || (oflags & (0100 | 01000)) != 0;
        int drop = open_filtered(pk, (const char *)(nr == RW_NR_open ? a0 : a1), &open_n, wr);
        const void *opened = ret >= 0 ? fd_file((u64)ret) : 0;
        if (opened)
            res_n = resolve_path(rk->path, (const char *)opened + RW_OFF_FILE_F_PATH);
        /* A resolved path that is not canonical names a dotfile (the kernel's paths have
         * no "//" or ".."): kept, as the path given would be (monitor/kernel/filters.py). */
        if (drop && (res_n <= 0 || (canonical_absolute(rk->path) && !open_prefix_wanted(rk, res_n, wr)))
            && !proc_mem_kept(pk->path, rk->path, res_n)) {
            count_filtered_open();
            return 0;
        }
    }

    if (nr == RW_NR_bpf && a0 < RW_BPF_CMD_MAX) {
        u32 on_idx = RW_BPF_CMD_MAX, cmd = (u32)a0;
        u8 *on = bpf_cmd_wanted.lookup(&on_idx);
        u8 *want = bpf_cmd_wanted.lookup(&cmd);
        if (on && *on && want && !*want)
            return 0;
    }

    const void *dup_file = 0;
    if (nr == RW_NR_dup2 || nr == RW_NR_dup3) {
        /* Only what a reverse shell does: a socket onto stdin, stdout or stderr. */
        if (ret < 0 || a1 > 2)
            return 0;
        dup_file = fd_file(a0);
        if (!dup_file || !is_socket(dup_file))
            return 0;
    }
    /* dup and fcntl(F_DUPFD, F_DUPFD_CLOEXEC) land on the lowest free fd: after
     * close(0) that is stdin, the same reverse shell without dup2. */
    if (nr == RW_NR_dup || nr == RW_NR_fcntl) {
        if (ret < 0 || ret > 2)
            return 0;
        if (nr == RW_NR_fcntl && a1 != 0 /* F_DUPFD */ && a1 != 1030 /* F_DUPFD_CLOEXEC */)
            return 0;
        dup_file = fd_file(a0);
        if (!dup_file || !is_socket(dup_file))
            return 0;
    }
    const void *udp_file = 0;
    if (nr == RW_NR_sendto || nr == RW_NR_sendmsg) {
        udp_file = fd_file(a0);
        if (!is_udp(udp_file))
            return 0;
    }
    /* kill: only what crosses users. A refusal (EPERM) is an attempt on another user's
     * process; a delivered signal counts when the task the kernel signalled has another
     * real uid than the sender. Same-user kills, and signals nobody received, stay here. */
    struct rw_kill_target kt = {};
    int kill_target = 0;
    if (nr == RW_NR_kill || nr == RW_NR_tkill || nr == RW_NR_tgkill) {
        u32 tid = (u32)bpf_get_current_pid_tgid();
        struct rw_kill_target *seen = kill_targets.lookup(&tid);
        if (seen) {
            kt = *seen;
            kill_targets.delete(&tid);
            s32 want = nr == RW_NR_tgkill ? (s32)a1 : (s32)a0;
            u32 got = nr == RW_NR_kill ? kt.tgid : kt.tid;
            /* A leftover from a signal this thread generated otherwise (an interrupt
             * runs on whatever thread) names another task: not this call's target. */
            kill_target = want <= 0 ? nr == RW_NR_kill : got == (u32)want;
        }
        if (ret == -1 /* -EPERM */)
            kill_target = 0; /* nothing was signalled: userspace names the target */
        else if (ret != 0 || !kill_target || kt.uid == (u32)bpf_get_current_uid_gid())
            return 0;
    }

    struct rw_syscall *r = syscall_record();
    if (!r)
        return 0;
    fill_header(&r->h, RW_REC_SYSCALL);
    r->ret = ret;
    r->nr = nr;
    r->flags = 0;
    r->family = 0;
    r->port = 0;
    r->_pad1 = 0;
    __builtin_memset(r->addr, 0, sizeof(r->addr));
    r->aux[0] = 0;
    r->path[0] = 0;
    r->path2[0] = 0;
    r->args[0] = a0;
    r->args[1] = a1;
    r->args[2] = a2;
    r->args[3] = a3;
    r->args[4] = a4;
    r->args[5] = a5;
    read_caps(&r->cap_effective, &r->cap_permitted, &r->cap_inheritable);

    r->kpath[0] = 0;
    const char *p1 = 0, *p2 = 0;
    /* Which path names the object (fd.name), and the dirfd it is relative to. */
    int base_for = 0;
    s64 base_dirfd = -100; /* AT_FDCWD */
    switch (nr) {
    case RW_NR_memfd_create:
        p1 = (const char *)a0;
        break;
    case RW_NR_open:
    case RW_NR_unlink:
    case RW_NR_rmdir:
    case RW_NR_chmod:
        p1 = (const char *)a0;
        base_for = 1;
        break;
    case RW_NR_openat:
    case RW_NR_openat2:
    case RW_NR_unlinkat:
    case RW_NR_fchmodat:
        p1 = (const char *)a1;
        base_for = 1;
        base_dirfd = (s32)a0;
        break;
    case RW_NR_rename:
    case RW_NR_link:
    case RW_NR_symlink:
    case RW_NR_mount:
        p1 = (const char *)a0;
        p2 = (const char *)a1;
        base_for = 2;
        break;
    case RW_NR_renameat:
    case RW_NR_renameat2:
    case RW_NR_linkat:
        p1 = (const char *)a1;
        p2 = (const char *)a3;
        base_for = 2;
        base_dirfd = (s32)a2;
        break;
    case RW_NR_symlinkat:
        p1 = (const char *)a0;
        p2 = (const char *)a2;
        base_for = 2;
        base_dirfd = (s32)a1;
        break;
    }
    /* Coverage syscalls: which path names the object, or which fd does. */
    s64 file_fd = -1;
    switch (nr) {
    case RW_NR_truncate:
    case RW_NR_chown:
    case RW_NR_lchown:
    case RW_NR_mkdir:
    case RW_NR_setxattr:
    case RW_NR_lsetxattr:
    case RW_NR_removexattr:
    case RW_NR_lremovexattr:
        p1 = (const char *)a0;
        base_for = 1;
        break;
    case RW_NR_mkdirat:
    case RW_NR_fchownat:
    case RW_NR_fchmodat2:
    case RW_NR_setxattrat:
    case RW_NR_removexattrat:
        p1 = (const char *)a1;
        base_for = 1;
        base_dirfd = (s32)a0;
        break;
    case RW_NR_utimensat:
        base_dirfd = (s32)a0;
        if (a1) {
            p1 = (const char *)a1;
            base_for = 1;
        } else {
            file_fd = (s32)a0; /* futimens(): utimensat(fd, NULL, ...) */
        }
        break;
    case RW_NR_ftruncate:
    case RW_NR_fchmod:
    case RW_NR_fchown:
    case RW_NR_fsetxattr:
    case RW_NR_fremovexattr:
        file_fd = (s32)a0;
        break;
    }
    if (nr == RW_NR_openat2) {
        u64 how[2] = {};
        bpf_probe_read_user(how, sizeof(how), (const void *)a2);
        r->args[2] = how[0];
        r->args[3] = how[1];
    }
    if (nr == RW_NR_mount && a2)
        bpf_probe_read_user_str(r->aux, sizeof(r->aux), (const char *)a2);
    /* The xattr name (security.capability, ...); cut at RW_AUX_LEN - 1. */
    if (nr == RW_NR_setxattr || nr == RW_NR_lsetxattr || nr == RW_NR_fsetxattr ||
        nr == RW_NR_removexattr || nr == RW_NR_lremovexattr || nr == RW_NR_fremovexattr)
        bpf_probe_read_user_str(r->aux, sizeof(r->aux), (const char *)a1);
    if (nr == RW_NR_setxattrat || nr == RW_NR_removexattrat)
        bpf_probe_read_user_str(r->aux, sizeof(r->aux), (const char *)a3);
    if (nr == RW_NR_utimensat && a2 && bpf_probe_read_user(r->aux, 32, (const void *)a2) == 0)
        r->flags |= RW_SC_F_TIMES;
    if (nr == RW_NR_io_uring_setup) {
        /* io_uring_params.flags (IORING_SETUP_SQPOLL, ...) in the pointer's slot: the
         * address is not part of the event. */
        u32 setup_flags = 0;
        bpf_probe_read_user(&setup_flags, sizeof(setup_flags), (const char *)a1 + 8);
        r->args[1] = 0;
        r->args[2] = setup_flags;
    }
    if (pk) {
        /* Read once, for the filter; the record gets the same bytes. */
        __builtin_memcpy(r->path, pk->path, RW_PATH_LEN);
        if (open_n <= 0) {
            r->path[0] = 0;
            r->flags |= RW_SC_F_PATH_FAILED;
            count_drop(RW_DROP_PATH_FAILED);
        } else if (open_n == RW_PATH_LEN) {
            char next = 0;
            bpf_probe_read_user(&next, 1, p1 + RW_PATH_LEN - 1);
            if (next) {
                r->flags |= RW_SC_F_PATH_TRUNCATED;
                count_drop(RW_DROP_PATH_TRUNCATED);
            }
        }
    } else if (p1) {
        read_user_path(r->path, p1, &r->flags, RW_SC_F_PATH_FAILED, RW_SC_F_PATH_TRUNCATED);
    }
    if (p2)
        read_user_path(r->path2, p2, &r->flags, RW_SC_F_PATH2_FAILED, RW_SC_F_PATH2_TRUNCATED);
    if (rk && res_n > 0) {
        /* The opened file's own path makes the cwd/dirfd base unnecessary. */
        __builtin_memcpy(r->kpath, rk->path, RW_PATH_LEN);
        r->flags |= RW_SC_F_RESOLVED;
    }
    char first = base_for == 1 ? r->path[0] : (base_for == 2 ? r->path2[0] : '/');
    /* "" with a dirfd (AT_EMPTY_PATH): the call is on the dirfd's own file. */
    if (base_for == 1 && !first && base_dirfd != -100 && !(r->flags & RW_SC_F_PATH_FAILED))
        file_fd = base_dirfd;
    if (file_fd >= 0) {
        /* A fd-based call: the file's own path, walked by the kernel. */
        const void *f = fd_file((u64)file_fd);
        if (f && resolve_path(r->kpath, (const char *)f + RW_OFF_FILE_F_PATH) > 0)
            r->flags |= RW_SC_F_RESOLVED;
    }
    if (first && first != '/' && !(r->flags & RW_SC_F_RESOLVED)) {
        /* Relative: capture the base directory now; by the time userspace looks, the
         * process may have changed directory or exited. */
        const void *base = 0;
        if (base_dirfd == -100) {
            const void *fs = rd_ptr((const void *)bpf_get_current_task(), RW_OFF_TASK_FS);
            base = fs ? (const char *)fs + RW_OFF_FS_PWD : 0;
        } else {
            const void *dir = fd_file((u64)base_dirfd);
            base = dir ? (const char *)dir + RW_OFF_FILE_F_PATH : 0;
        }
        if (base)
            read_base(r, base);
    }
    if (nr == RW_NR_connect) {
        read_sockaddr(r, (const void *)a1, a2);
        sock_info(r, fd_file(a0));
    }
    if (nr == RW_NR_socket && ret >= 0)
        sock_info(r, fd_file((u64)ret));
    if (dup_file) {
        socket_peer(r, dup_file);
        sock_info(r, dup_file);
    }
    coverage_fields(r, nr, ret, a0, a1, a2, a3, a4, a5, udp_file, kill_target ? &kt : 0);
    return emit_syscall(r);
}

RAW_TRACEPOINT_PROBE(sys_enter)
{
    u64 nr = ctx->args[1];
    if (nr != RW_NR_execve && nr != RW_NR_execveat)
        return 0;
    /* Not filtered here: lineage needs every exec's image, traced or not. */
    return on_exec_enter((struct pt_regs *)ctx->args[0], (u32)nr);
}

RAW_TRACEPOINT_PROBE(sys_exit)
{
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    long nr = 0;
    bpf_probe_read_kernel(&nr, sizeof(nr), &regs->orig_ax);
    if (nr != RW_NR_execve && nr != RW_NR_execveat) {
        if (nr < 0 || nr >= RW_NR_MAX)
            return 0;
        u32 idx = (u32)nr;
        u8 *wanted = syscall_wanted.lookup(&idx);
        if (!wanted || !*wanted || filtered())
            return 0;
        return on_syscall_exit(regs, idx, (s64)ctx->args[1]);
    }

    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rw_exec *e = pending_exec.lookup(&tid);
    if (!e) {
        if (!filtered()) {
            count_produced(RW_REC_EXEC);
            count_drop(RW_DROP_EXIT_NO_ENTER);
        }
        return 0;
    }
    /* Filled now, not at entry: after a successful exec the comm, credentials and
     * (for a non-leader thread) the pid are the new image's. */
    fill_header(&e->h, RW_REC_EXEC);
    read_caps(&e->cap_effective, &e->cap_permitted, &e->cap_inheritable);
    e->ret = (s64)ctx->args[1];
    if (e->ret == 0)
        lineage_exec(e);
    if (filtered()) {
        pending_exec.delete(&tid);
        return 0;
    }
    if (e->flags & RW_EXEC_F_ARGV_TRUNCATED)
        count_drop(RW_DROP_ARGV_TRUNCATED);
    if (e->flags & RW_EXEC_F_ARG_READ_FAILED)
        count_drop(RW_DROP_ARG_READ_FAILED);
    if (e->flags & RW_EXEC_F_FILENAME_FAILED)
        count_drop(RW_DROP_FILENAME_FAILED);
    if (e->flags & RW_EXEC_F_FILENAME_TRUNCATED)
        count_drop(RW_DROP_FILENAME_TRUNCATED);
    if (e->flags & RW_EXEC_F_EXEPATH_TRUNCATED)
        count_drop(RW_DROP_PATH_TRUNCATED); /* proc.exepath missing: too deep or long */
    count_produced(RW_REC_EXEC);
    if (events.ringbuf_output(e, sizeof(*e), 0) != 0)
        count_drop(RW_DROP_RINGBUF_FULL);
    pending_exec.delete(&tid);
    return 0;
}

/* proc.is_exe_upper_layer, as Falco's drivers compute it: on overlayfs, the file is in
 * the upper layer when its overlay inode has a positive upper dentry (struct ovl_inode:
 * __upperdentry right after the embedded VFS inode), else in a lower layer. A file of
 * the image that was written to (copied up) is upper; one only read or executed is lower. */
#define RW_OVERLAYFS_SUPER_MAGIC 0x794c7630
static __always_inline u32 exe_layer(const void *dentry)
{
    const void *sb = rd_ptr(dentry, RW_OFF_DENTRY_D_SB);
    if (!sb || rd_u64(sb, RW_OFF_SB_MAGIC) != RW_OVERLAYFS_SUPER_MAGIC)
        return 0;
    const void *inode = rd_ptr(dentry, RW_OFF_DENTRY_D_INODE);
    const void *upper = inode ? rd_ptr(inode, RW_OFF_OVL_UPPERDENTRY) : 0;
    const void *upper_inode = upper ? rd_ptr(upper, RW_OFF_DENTRY_D_INODE) : 0;
    if (upper_inode && rd_u64(upper_inode, RW_OFF_INODE_I_INO) != 0)
        return RW_EXEC_F_EXE_UPPER_LAYER;
    return RW_EXEC_F_EXE_LOWER_LAYER;
}

/* What the kernel executed: bprm->file, whatever string was passed (relative, a
 * symlink, "" with AT_EMPTY_PATH); for a script, its interpreter (the file that became
 * the image, as /proc/PID/exe shows). Its path, inode and whether it still has a name. */
static __always_inline void exe_truth(struct rw_exec *e, const void *file)
{
    const void *dentry = rd_ptr(file, RW_OFF_FILE_F_PATH + RW_OFF_PATH_DENTRY);
    const void *inode = rd_ptr(file, RW_OFF_FILE_F_INODE);
    if (resolve_path(e->exepath, (const char *)file + RW_OFF_FILE_F_PATH) > 0)
        e->flags |= RW_EXEC_F_EXEPATH;
    else
        e->flags |= RW_EXEC_F_EXEPATH_TRUNCATED;
    e->exe_ino = rd_u64(inode, RW_OFF_INODE_I_INO);
    /* Multigrain timestamps (6.13+) keep a flag in the top bit of i_ctime_nsec: ns fit
     * in 30 bits. Reading 4 bytes of 6.1's long tv_nsec is the same on little-endian. */
    e->exe_ctime_ns = rd_u64(inode, RW_OFF_INODE_CTIME_SEC) * 1000000000ull +
                      (rd_u32(inode, RW_OFF_INODE_CTIME_NSEC) & 0x3fffffff);
    e->exe_mtime_ns = rd_u64(inode, RW_OFF_INODE_MTIME_SEC) * 1000000000ull +
                      (rd_u32(inode, RW_OFF_INODE_MTIME_NSEC) & 0x3fffffff);
    e->exe_uid = rd_u32(inode, RW_OFF_INODE_I_UID);
    e->exe_gid = rd_u32(inode, RW_OFF_INODE_I_GID);
    e->exe_nlink = rd_u32(inode, RW_OFF_INODE_I_NLINK);
    u16 mode = 0;
    bpf_probe_read_kernel(&mode, sizeof(mode), (const char *)inode + RW_OFF_INODE_I_MODE);
    e->exe_mode = mode;
    e->_pad1 = 0;
    /* Fileless execution: the image came from a memfd, whose dentry is "memfd:NAME". */
    char name[6] = {};
    bpf_probe_read_kernel(name, sizeof(name), rd_ptr(dentry, RW_OFF_DENTRY_D_NAME + RW_OFF_QSTR_NAME));
    int memfd = name[0] == 'm' && name[1] == 'e' && name[2] == 'm' && name[3] == 'f' &&
                name[4] == 'd' && name[5] == ':';
    if (memfd)
        e->flags |= RW_EXEC_F_EXE_MEMFD;
    /* Deleted: no links left, or unhashed though not a root (d_unlinked()). A memfd
     * never had a name: it is reported as a memfd, not as deleted. */
    int unhashed = rd_ptr(dentry, RW_OFF_DENTRY_D_HASH_PPREV) == 0 &&
                   rd_ptr(dentry, RW_OFF_DENTRY_D_PARENT) != dentry;
    if (!memfd && (e->exe_nlink == 0 || unhashed))
        e->flags |= RW_EXEC_F_EXE_DELETED;
    e->flags |= exe_layer(dentry);
}

/* A pid as the process's own pid namespace numbers it: pid->numbers[pid->level].nr
 * (struct upid is an int and a pointer: 16 bytes). */
static __always_inline u32 rw_pid_vnr(const void *pid)
{
    if (!pid)
        return 0;
    u32 level = rd_u32(pid, RW_OFF_PID_LEVEL);
    return rd_u32(pid, RW_OFF_PID_NUMBERS + (level & 31) * 16);
}

#define RW_PIDTYPE_PGID 2
#define RW_PIDTYPE_SID 3

/* The exec'ing process's session, group, terminal, login uid, v1 cgroup and working directory. */
static __always_inline void exec_task_fields(struct rw_exec *e)
{
    const void *task = (const void *)bpf_get_current_task();
    const void *signal = rd_ptr(task, RW_OFF_TASK_SIGNAL);
    e->sid = rw_pid_vnr(rd_ptr(signal, RW_OFF_SIGNAL_PIDS + RW_PIDTYPE_SID * sizeof(void *)));
    e->vpgid = rw_pid_vnr(rd_ptr(signal, RW_OFF_SIGNAL_PIDS + RW_PIDTYPE_PGID * sizeof(void *)));
    e->loginuid = rd_u32(task, RW_OFF_TASK_LOGINUID);
    e->cgroup1_id = task_cgroup1_id(task);
    e->tty = 0;
    const void *tty = rd_ptr(signal, RW_OFF_SIGNAL_TTY);
    if (tty) {
        /* new_encode_dev(MKDEV(driver->major, driver->minor_start + index)) */
        const void *driver = rd_ptr(tty, RW_OFF_TTY_DRIVER);
        u32 major = rd_u32(driver, RW_OFF_TTY_DRIVER_MAJOR);
        u32 minor = rd_u32(driver, RW_OFF_TTY_DRIVER_MINOR_START) + rd_u32(tty, RW_OFF_TTY_INDEX);
        e->tty = (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
    }
    const void *fs = rd_ptr(task, RW_OFF_TASK_FS);
    if (fs && resolve_path(e->cwd, (const char *)fs + RW_OFF_FS_PWD) > 0)
        e->flags |= RW_EXEC_F_CWD;
}

/* Between sys_enter and sys_exit of a successful exec: the new image is known here.
 * A non-leader thread that execs takes over the leader's pid (de_thread): its in-flight
 * record moves so sys_exit, which runs under the new pid, finds it. */
RAW_TRACEPOINT_PROBE(sched_process_exec)
{
    u32 old_pid = (u32)ctx->args[1];
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rw_exec *e = pending_exec.lookup(&old_pid);
    if (!e)
        return 0;
    exe_truth(e, rd_ptr((const void *)ctx->args[2], RW_OFF_BINPRM_FILE));
    exec_task_fields(e);
    if (old_pid == tid)
        return 0;
    /* A non-leader thread that exec'd has taken over the leader's pid (de_thread). */
    pending_exec.update(&tid, e);
    pending_exec.delete(&old_pid);
    return 0;
}

/* A signal is being generated; for kill/tkill/tgkill the current task is the sender.
 * Remembered per thread for the syscall's exit (only while a rule wants those calls). */
RAW_TRACEPOINT_PROBE(signal_generate)
{
    u32 k0 = RW_NR_kill, k1 = RW_NR_tkill, k2 = RW_NR_tgkill;
    u8 *w0 = syscall_wanted.lookup(&k0);
    u8 *w1 = syscall_wanted.lookup(&k1);
    u8 *w2 = syscall_wanted.lookup(&k2);
    if (!((w0 && *w0) || (w1 && *w1) || (w2 && *w2)) || filtered())
        return 0;
    const void *task = (const void *)ctx->args[2];
    struct rw_kill_target t = {};
    t.sig = (u32)ctx->args[0];
    t.tgid = rd_u32(task, RW_OFF_TASK_TGID);
    t.tid = rd_u32(task, RW_OFF_TASK_PID);
    t.uid = rd_u32(rd_ptr(task, RW_OFF_TASK_REAL_CRED), RW_OFF_CRED_UID);
    u32 tid = (u32)bpf_get_current_pid_tgid();
    kill_targets.update(&tid, &t);
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    const void *child = (const void *)ctx->args[1];
    u32 cpid = rd_u32(child, RW_OFF_TASK_PID);
    u32 ctgid = rd_u32(child, RW_OFF_TASK_TGID);
    if (cpid != ctgid)
        return 0; /* a thread, not a process */
    lineage_fork(child);
    if (filtered())
        return 0;

    count_produced(RW_REC_FORK);
    struct rw_fork *f = events.ringbuf_reserve(sizeof(struct rw_fork));
    if (!f) {
        count_drop(RW_DROP_RINGBUF_FULL);
        return 0;
    }
    const void *task = (const void *)bpf_get_current_task();
    u64 id = bpf_get_current_pid_tgid();
    u64 ug = bpf_get_current_uid_gid();
    f->h.type = RW_REC_FORK;
    f->h.cpu = bpf_get_smp_processor_id();
    f->h.ktime_ns = bpf_ktime_get_ns();
    f->h.pid = cpid;
    f->h.tgid = ctgid;
    f->h.ppid = rd_u32(rd_ptr(child, RW_OFF_TASK_REAL_PARENT), RW_OFF_TASK_TGID);
    f->h.uid = (u32)ug;
    f->h.gid = ug >> 32;
    f->h._pad0 = 0;
    f->h.cgroup_id = task_cgroup_id(child);  /* the child's own */
    f->h.start_ns = rd_u64(child, RW_OFF_TASK_START_BOOTTIME);
    bpf_probe_read_kernel_str(f->h.comm, sizeof(f->h.comm), (const char *)child + RW_OFF_TASK_COMM);
    f->parent_pid = (u32)id;
    f->parent_tgid = id >> 32;
    f->parent_start_ns = rd_u64(rd_ptr(task, RW_OFF_TASK_GROUP_LEADER), RW_OFF_TASK_START_BOOTTIME);
    /* The child's own: copy_process has given it its css_set (cgroup_post_fork). */
    f->cgroup1_id = task_cgroup1_id(child);
    events.ringbuf_submit(f, 0);
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_process_exit)
{
    const void *task = (const void *)ctx->args[0];
    u32 tid = (u32)bpf_get_current_pid_tgid();
    pending_exec.delete(&tid);

    /* signal->live was decremented before this tracepoint: 0 means the last thread. */
    if (rd_u32(rd_ptr(task, RW_OFF_TASK_SIGNAL), RW_OFF_SIGNAL_LIVE) != 0)
        return 0;
    lineage_exit(task);
    if (filtered())
        return 0;

    count_produced(RW_REC_EXIT);
    struct rw_exit *x = events.ringbuf_reserve(sizeof(struct rw_exit));
    if (!x) {
        count_drop(RW_DROP_RINGBUF_FULL);
        return 0;
    }
    fill_header(&x->h, RW_REC_EXIT);
    x->exit_status = rd_u32(task, RW_OFF_TASK_EXIT_CODE);
    x->_pad1 = 0;
    events.ringbuf_submit(x, 0);
    return 0;
}

/* ---- Environment at exec ---------------------------------------------------------
 * The new image's environment is in its own memory, env_start..env_end of the mm that
 * exec just installed: what execve's envp said, whatever the caller's environment was.
 * Only variables that change how a program loads or where it connects are kept. Each
 * string is read in chunks of RW_ENV_CHUNK bytes so that a long one cannot hide the
 * strings after it; RW_ENV_SCAN reads at most (RW_EXEC_F_ENV_SCAN_TRUNCATED past that). */
/* The scan's state lives here, not in registers: the verifier then sees the same state
 * at the top of every iteration, whichever branches the one before took, and walks the
 * loop in time linear in RW_ENV_SCAN instead of in the number of paths through it. */
struct rw_env_scan {
    char buf[RW_ENV_CHUNK];
    u64 p;          /* the next byte to read */
    u64 end;        /* env_end */
    u64 cut;
    u32 off;        /* bytes of e->env used */
    u32 count;      /* entries in e->env */
    u32 at_start;   /* p is the start of a string */
    u32 done;
};
BPF_PERCPU_ARRAY(env_scratch, struct rw_env_scan, 1);

static __always_inline u64 rw_word(const char *b)
{
    u64 w = 0;
    __builtin_memcpy(&w, b, 8);
    return w;
}

/* Little-endian 8-byte word of 8 characters, for one compare per word. */
#define RW_W(a, b, c, d, e, f, g, h)                                                     \
    ((u64)(a) | (u64)(b) << 8 | (u64)(c) << 16 | (u64)(d) << 24 | (u64)(e) << 32 |         \
     (u64)(f) << 40 | (u64)(g) << 48 | (u64)(h) << 56)
#define RW_LOWER 0x2020202020202020ull

/* 1 if the string in b starts with the name of a variable worth keeping and "=". */
static __always_inline int env_wanted(const char *b)
{
    u64 w0 = rw_word(b), w1 = rw_word(b + 8);
    if (w0 == RW_W('L', 'D', '_', 'P', 'R', 'E', 'L', 'O'))
        return b[8] == 'A' && b[9] == 'D' && b[10] == '=';
    if (w0 == RW_W('L', 'D', '_', 'A', 'U', 'D', 'I', 'T'))
        return b[8] == '=';
    if (w0 == RW_W('L', 'D', '_', 'L', 'I', 'B', 'R', 'A'))
        return w1 == RW_W('R', 'Y', '_', 'P', 'A', 'T', 'H', '=');
    if (w0 == RW_W('G', 'L', 'I', 'B', 'C', '_', 'T', 'U'))
        return (w1 & 0xffffffffffffffull) == RW_W('N', 'A', 'B', 'L', 'E', 'S', '=', 0);
    /* Proxy variables, either case (curl and most tools honour both). */
    u64 l0 = w0 | RW_LOWER;
    if (l0 == (RW_W('h', 't', 't', 'p', '_', 'p', 'r', 'o') | RW_LOWER))
        return (b[8] | 0x20) == 'x' && (b[9] | 0x20) == 'y' && b[10] == '=';
    if (l0 == (RW_W('h', 't', 't', 'p', 's', '_', 'p', 'r') | RW_LOWER))
        return (b[8] | 0x20) == 'o' && (b[9] | 0x20) == 'x' && (b[10] | 0x20) == 'y' && b[11] == '=';
    if (l0 == (RW_W('a', 'l', 'l', '_', 'p', 'r', 'o', 'x') | RW_LOWER))
        return (b[8] | 0x20) == 'y' && b[9] == '=';
    if (l0 == (RW_W('n', 'o', '_', 'p', 'r', 'o', 'x', 'y') | RW_LOWER))
        return b[8] == '=';
    return 0;
}

static __always_inline void exec_env(struct rw_exec *e);
static __always_inline void exec_args_again(struct rw_exec *e, const void *bprm);

/* A program of its own on sched_process_exec (attached by monitor/kernel/sensor.py):
 * inside raw_tracepoint__sched_process_exec the scan would push that program past the
 * kernel's size limit. Whichever runs first, the in-flight record is under the old pid
 * or, once moved for a non-leader thread's exec, under the new one. */
int rw_exec_env(struct bpf_raw_tracepoint_args *ctx)
{
    u32 old_pid = (u32)ctx->args[1];
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct rw_exec *e = pending_exec.lookup(&old_pid);
    if (!e)
        e = pending_exec.lookup(&tid);
    if (e) {
        exec_args_again(e, (const void *)ctx->args[2]);
        exec_env(e);
    }
    return 0;
}

/* argv and the filename are read at sys_enter from the caller's memory, and a page that
 * is not resident cannot be read there (BPF does not fault pages in): a caller passing
 * its argv from an untouched mapping would hide its command line from every rule. Here,
 * after exec, the kernel's own copies are readable: the new image's argument area
 * (mm->arg_start..arg_end, which exec just wrote) and bprm->filename. */
static __always_inline void exec_args_again(struct rw_exec *e, const void *bprm)
{
    if (e->flags & RW_EXEC_F_FILENAME_FAILED) {
        const char *name = rd_ptr(bprm, RW_OFF_BINPRM_FILENAME);
        if (name && bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), name) > 0) {
            e->flags &= ~RW_EXEC_F_FILENAME_FAILED;
            e->flags |= RW_EXEC_F_ARGS_FROM_KERNEL;
        }
    }
    if (!(e->flags & RW_EXEC_F_ARG_READ_FAILED))
        return;
    const void *mm = rd_ptr((const void *)bpf_get_current_task(), RW_OFF_TASK_MM);
    u64 start = rd_u64(mm, RW_OFF_MM_ARG_START), end = rd_u64(mm, RW_OFF_MM_ARG_END);
    if (!start || end <= start)
        return;
    u64 len = end - start;
    if (len > RW_ARGS_LEN) {
        len = RW_ARGS_LEN;
        e->flags |= RW_EXEC_F_ARGV_TRUNCATED;
    }
    if (bpf_probe_read_user(e->args, len, (const void *)start) != 0)
        return;
    e->argc = 0;
    e->args_len = (u32)len;
    e->flags &= ~RW_EXEC_F_ARG_READ_FAILED;
    e->flags |= RW_EXEC_F_ARGS_FROM_KERNEL;
}

static __always_inline void exec_env(struct rw_exec *e)
{
    u32 zero = 0;
    struct rw_env_scan *s = env_scratch.lookup(&zero);
    if (!s)
        return;
    const void *mm = rd_ptr((const void *)bpf_get_current_task(), RW_OFF_TASK_MM);
    s->p = rd_u64(mm, RW_OFF_MM_ENV_START);
    s->end = rd_u64(mm, RW_OFF_MM_ENV_END);
    s->cut = 0;
    s->off = 0;
    s->count = 0;
    s->at_start = 1;
    s->done = 0;
    e->flags |= RW_EXEC_F_ENV;
    /* A real loop, not unrolled: 128 copies of the body would overflow the program's
     * jump range. The verifier bounds it (kernels 5.3+). */
    #pragma clang loop unroll(disable)
    for (int i = 0; i < RW_ENV_SCAN; i++) {
        if (s->done || s->p >= s->end) {
            s->done = 1;
            continue;
        }
        __builtin_memset(s->buf, 0, 16);
        long n = bpf_probe_read_user_str(s->buf, RW_ENV_CHUNK, (const void *)s->p);
        if (n <= 0) {
            e->flags |= RW_EXEC_F_ENV_READ_FAILED;
            s->done = 1;
            continue;
        }
        if (s->at_start && env_wanted(s->buf)) {
            u32 off = s->off;
            if (off >= RW_ENV_LEN) {
                e->flags |= RW_EXEC_F_ENV_FULL;
            } else {
                long m = bpf_probe_read_user_str(&e->env[off & (RW_ENV_LEN - 1)], RW_ENV_VAR_LEN,
                                                 (const void *)s->p);
                if (m > 0) {
                    u32 c = s->count;
                    if (m == RW_ENV_VAR_LEN && c < 64)
                        s->cut |= 1ull << c; /* 255 bytes or more: cut */
                    s->off = off + (u32)m;
                    s->count = c + 1;
                }
            }
        }
        if (n == RW_ENV_CHUNK) {
            /* No NUL in this chunk: the same string goes on. */
            s->p += RW_ENV_CHUNK - 1;
            s->at_start = 0;
        } else {
            s->p += n;
            s->at_start = 1;
        }
    }
    if (!s->done && s->p < s->end)
        e->flags |= RW_EXEC_F_ENV_SCAN_TRUNCATED;
    e->env_count = s->count;
    e->env_len = s->off;
    e->env_cut = s->cut;
}

/* ---- io_uring: opens and connects that never enter a syscall of their own --------
 * A program can open files and connect sockets through an io_uring ring (IORING_OP_OPENAT,
 * _OPENAT2, _CONNECT) with no openat or connect syscall at all ("curing", ARMO 2025).
 * Two tracepoints see every request on any kernel with io_uring, whoever runs it (the
 * submitting task, an SQPOLL thread, an io-wq worker):
 *   io_uring_submit_req (io_uring_submit_sqe before 6.4), right after the request was
 *     prepared: the open's path and open_how are kernel copies by then (struct filename),
 *     so what is recorded is what will run; the connect's address is read from the
 *     submitter's memory;
 *   io_uring_complete, when its result is posted: the return value and, for an open that
 *     returned an fd, the path of the file actually opened (as for openat); for a connect
 *     that succeeded, the socket's peer.
 * The record waits in uring_pending between the two, keyed by the request. A request
 * with IOSQE_CQE_SKIP_SUCCESS posts nothing on success: it is recorded at submission
 * (RW_SC_F_URING_NO_RESULT). Records are the syscall the operation stands for, under the
 * same kernel filters (syscall_wanted, the open path filter, coalescing, throttling).
 * Attached by monitor/kernel/iouring.py when the kernel's BTF has the request layout. */
#ifdef RW_OFF_IO_KIOCB_OPCODE
#define RW_IORING_OP_CONNECT 16
#define RW_IORING_OP_OPENAT 18
#define RW_IORING_OP_OPENAT2 28
#define RW_REQ_F_FIXED_FILE (1u << 0)
#define RW_REQ_F_CQE_SKIP (1u << 6)

struct rw_uring_pending {
    struct rw_syscall r;
    u32 given_unwanted;   /* the path filter refused the path as given */
    u32 _pad;
};
BPF_PERCPU_ARRAY(uring_scratch, struct rw_uring_pending, 1);
BPF_TABLE("lru_hash", u64, struct rw_uring_pending, uring_pending, 1024);

/* A sockaddr from kernel memory or from the submitter's memory. */
static __always_inline void uring_sockaddr(struct rw_syscall *r, const char *sa, u32 len, int kernel)
{
    u8 buf[28] = {};
    long err = kernel ? bpf_probe_read_kernel(buf, sizeof(buf), sa)
                      : bpf_probe_read_user(buf, sizeof(buf), sa);
    if (len < 2 || err != 0) {
        r->flags |= RW_SC_F_ADDR_FAILED;
        count_drop(RW_DROP_ADDR_FAILED);
        return;
    }
    u16 family = buf[0] | (u16)buf[1] << 8;
    r->family = family;
    if (family == 2 /* AF_INET */) {
        r->port = (u16)buf[2] << 8 | buf[3];
        __builtin_memcpy(r->addr, &buf[4], 4);
    } else if (family == 10 /* AF_INET6 */) {
        r->port = (u16)buf[2] << 8 | buf[3];
        __builtin_memcpy(r->addr, &buf[8], 16);
    } else if (family == 1 /* AF_UNIX */) {
        if (kernel)
            bpf_probe_read_kernel_str(r->path, 108, sa + 2);
        else
            bpf_probe_read_user_str(r->path, 108, sa + 2);
    }
}

/* 1 if the open path filter is on and refuses this canonical absolute path. */
static __always_inline int uring_path_unwanted(struct rw_pfx_key *pk, const char *path, long n)
{
    u32 zero = 0;
    u32 *on = open_filter.lookup(&zero);
    if (!on || !*on || n <= 1)
        return 0;
    __builtin_memset(pk->path, 0, RW_PATH_LEN);
    bpf_probe_read_kernel_str(pk->path, RW_PATH_LEN, path);
    if (!canonical_absolute(pk->path))
        return 0;
    /* wr = 1: judged as an open that may write, so a writes-only entry keeps it too (the
     * submission's flags are not read here; keeping more is the safe side). */
    return !open_prefix_wanted(pk, n - 1, 1);
}

int rw_uring_submit(struct bpf_raw_tracepoint_args *ctx)
{
    const char *req = (const char *)ctx->args[0];
    u8 op = 0;
    bpf_probe_read_kernel(&op, sizeof(op), req + RW_OFF_IO_KIOCB_OPCODE);
    u32 nr;
    if (op == RW_IORING_OP_OPENAT)
        nr = RW_NR_openat;
    else if (op == RW_IORING_OP_OPENAT2)
        nr = RW_NR_openat2;
    else if (op == RW_IORING_OP_CONNECT)
        nr = RW_NR_connect;
    else
        return 0;
    u8 *wanted = syscall_wanted.lookup(&nr);
    if (!wanted || !*wanted || filtered())
        return 0;

    u32 zero = 0;
    struct rw_uring_pending *w = uring_scratch.lookup(&zero);
    const struct rw_syscall *blank = syscall_blank.lookup(&zero);
    if (!w || !blank)
        return 0;
    bpf_probe_read_kernel(&w->r, sizeof(w->r), blank);
    w->given_unwanted = 0;
    w->_pad = 0;
    struct rw_syscall *r = &w->r;
    fill_header(&r->h, RW_REC_SYSCALL);
    r->nr = nr;
    r->flags = RW_SC_F_IO_URING;
    r->args[4] = op;
    u32 req_flags = rd_u32(req, RW_OFF_IO_KIOCB_FLAGS);
    const char *cmd = req + RW_OFF_IO_KIOCB_CMD;
    if (op == RW_IORING_OP_CONNECT) {
        r->args[0] = (u64)(s64)(s32)rd_u32(req, RW_OFF_IO_KIOCB_CQE_FD);
        u32 len = rd_u32(cmd, RW_OFF_IO_CONNECT_ADDR_LEN);
        r->args[2] = len;
        /* The address asked for, from the submitter's memory: prep copied it into the
         * request a moment ago, but where it keeps the copy changed within stable
         * releases (io_async_msghdr.addr, then a bare sockaddr) and BTF cannot say which.
         * A connect that succeeds is then described by the socket's own peer. */
        uring_sockaddr(r, rd_ptr(cmd, RW_OFF_IO_CONNECT_ADDR), len, 0);
    } else {
        s32 dfd = (s32)rd_u32(cmd, RW_OFF_IO_OPEN_DFD);
        r->args[0] = (u64)(s64)dfd;
        r->args[2] = rd_u64(cmd, RW_OFF_IO_OPEN_HOW + RW_OFF_OPEN_HOW_FLAGS);
        r->args[3] = rd_u64(cmd, RW_OFF_IO_OPEN_HOW + RW_OFF_OPEN_HOW_MODE);
        r->args[5] = rd_u32(cmd, RW_OFF_IO_OPEN_FILE_SLOT);
        /* The kernel's copy of the path (getname at prep): what the open will use. */
        const char *name = rd_ptr(rd_ptr(cmd, RW_OFF_IO_OPEN_FILENAME), RW_OFF_FILENAME_NAME);
        long n = bpf_probe_read_kernel_str(r->path, RW_PATH_LEN, name);
        if (n <= 0) {
            r->path[0] = 0;
            r->flags |= RW_SC_F_PATH_FAILED;
            count_drop(RW_DROP_PATH_FAILED);
        } else if (n == RW_PATH_LEN) {
            char next = 0;
            bpf_probe_read_kernel(&next, 1, name + RW_PATH_LEN - 1);
            if (next) {
                r->flags |= RW_SC_F_PATH_TRUNCATED;
                count_drop(RW_DROP_PATH_TRUNCATED);
            }
        }
        struct rw_pfx_key *pk = pfx_scratch.lookup(&zero);
        if (!pk)
            return 0;
        w->given_unwanted = uring_path_unwanted(pk, name, n);
        if (r->path[0] && r->path[0] != '/') {
            /* Relative: the base directory now, as for openat (the completion replaces
             * it with the opened file's own path when there is one). */
            const void *base = 0;
            if (dfd == -100) {
                const void *fs = rd_ptr((const void *)bpf_get_current_task(), RW_OFF_TASK_FS);
                base = fs ? (const char *)fs + RW_OFF_FS_PWD : 0;
            } else {
                const void *dir = fd_file((u64)(s64)dfd);
                base = dir ? (const char *)dir + RW_OFF_FILE_F_PATH : 0;
            }
            if (base)
                read_base(r, base);
        }
    }
    if (req_flags & RW_REQ_F_CQE_SKIP) {
        /* No completion will be posted if it succeeds: now or never. */
        if (w->given_unwanted) {
            count_filtered_open();
            return 0;
        }
        r->flags |= RW_SC_F_URING_NO_RESULT;
        return emit_syscall(r);
    }
    u64 key = (u64)req;
    uring_pending.update(&key, w);
    return 0;
}

int rw_uring_complete(struct bpf_raw_tracepoint_args *ctx)
{
    u64 key = ctx->args[1];
    if (!key)
        return 0;
    struct rw_uring_pending *w = uring_pending.lookup(&key);
    if (!w)
        return 0;
    struct rw_syscall *r = &w->r;
    r->ret = (s64)(s32)rd_u32((const void *)key, RW_OFF_IO_KIOCB_CQE_RES);
    long res_n = -1;
    u32 same_process = (u32)(bpf_get_current_pid_tgid() >> 32) == r->h.tgid;
    if (r->nr == RW_NR_connect && r->ret == 0 && same_process &&
        !(rd_u32((const void *)key, RW_OFF_IO_KIOCB_FLAGS) & RW_REQ_F_FIXED_FILE)) {
        /* Connected: where the socket leads, as the kernel has it. */
        const void *sock_file = fd_file(r->args[0]);
        if (sock_file && is_socket(sock_file)) {
            socket_peer(r, sock_file);
            r->flags &= ~RW_SC_F_SOCKET;
        }
    }
    /* An fd in the submitter's table (not a fixed-file slot), seen from a task of the same
     * process (the submitter, its SQPOLL thread or an io-wq worker share its files). */
    if (r->nr != RW_NR_connect && r->ret >= 0 && r->args[5] == 0 && same_process) {
        const void *opened = fd_file((u64)r->ret);
        if (opened) {
            res_n = resolve_path(r->kpath, (const char *)opened + RW_OFF_FILE_F_PATH);
            if (res_n > 0) {
                r->flags &= ~(RW_SC_F_BASE | RW_SC_F_BASE_TRUNCATED);
                r->flags |= RW_SC_F_RESOLVED;
            } else {
                r->kpath[0] = 0;
            }
        }
    }
    if (w->given_unwanted) {
        u32 one = 1;
        struct rw_pfx_key *rk = pfx_scratch.lookup(&one);
        if (!rk || res_n <= 0) {
            count_filtered_open();
            uring_pending.delete(&key);
            return 0;
        }
        bpf_probe_read_kernel_str(rk->path, RW_PATH_LEN, r->kpath);
        if (!open_prefix_wanted(rk, res_n, 1)) {
            count_filtered_open();
            uring_pending.delete(&key);
            return 0;
        }
    }
    emit_syscall(r);
    uring_pending.delete(&key);
    return 0;
}
#endif
