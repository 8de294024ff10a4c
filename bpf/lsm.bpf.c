/* ringwatch enforcement: BPF LSM programs that deny (or audit) exec, open and connect.
 *
 * Not compiled on its own: monitor/kernel/sensor.py appends this file to sensor.bpf.c when
 * enforcement is enabled, so the programs share the sensor's ring buffer (`events`),
 * its counters and helpers (fill_header, rd_ptr, rd_u32, count_drop, count_produced),
 * and cost one compile. Userspace (monitor/enforce/) fills the maps below from deny
 * rules and refills them on reload; with empty maps every hook returns at once.
 *
 * Paths are matched as the kernel resolves them (bpf_d_path on the opened file), in an
 * LPM trie over the path's bytes: an exact path is stored with its terminating NUL, a
 * prefix without, and the longest stored match wins. Userspace stores in every key the
 * ids of all rules that cover it (a shorter prefix covers every longer key under it),
 * so the longest match alone is enough to find every applicable rule.
 *
 * Kernel struct fields are read at RW_OFF_* offsets from the running kernel's BTF, as in
 * the sensor. Pointers that bpf_d_path receives must be BTF pointers the verifier can
 * type, so they are loaded directly (not with bpf_probe_read) from the hook arguments.
 */

/* Only pointers to these are used (fields are read at BTF offsets): declarations are enough. */
struct file;
struct path;
struct socket;
struct sockaddr;
struct linux_binprm;

#define RW_DENY_SLOTS 8
#define RW_DENY_RULES_MAX 256
#define RW_DENY_KEYS_MAX 4096
#define RW_EPERM 1
#define RW_AF_INET 2
#define RW_AF_INET6 10

/* Counters in the per-CPU array `enforce_stats`. */
enum rw_enforce_stat {
    RW_ENF_CHECKED = 0,       /* hook invocations that consulted a non-empty map */
    RW_ENF_DENIED = 1,
    RW_ENF_AUDITED = 2,
    RW_ENF_PATH_FAILED = 3,   /* path unresolvable (too long, ...): not matched */
    RW_ENF_EXE_FAILED = 4,    /* exe of an opener unresolvable: exception not applied */
    RW_ENF_STAT_MAX = 5,
};

/* Which maps hold entries: lets every hook skip its work when it has nothing to check. */
enum rw_enforce_cfg {
    RW_CFG_EXEC = 0,
    RW_CFG_OPEN = 1,
    RW_CFG_CONNECT = 2,
    RW_CFG_MAX = 3,
};

struct rw_path_key {
    u32 prefixlen;            /* in bits */
    char path[RW_PATH_LEN];
};

struct rw_v4_key {
    u32 prefixlen;
    u8 addr[4];
};

struct rw_v6_key {
    u32 prefixlen;
    u8 addr[16];
};

/* Rule ids that cover one key. */
struct rw_slots {
    u32 n;
    u32 ids[RW_DENY_SLOTS];
};

#define RW_UID_ANY 0
#define RW_UID_EQ 1
#define RW_UID_NE 2

/* One deny rule's conditions beyond the key that found it. */
struct rw_rule {
    u32 audit;                /* 1: report only */
    u32 uid_op;               /* RW_UID_* */
    u32 uid;
    u32 port;                 /* connect: 0 = any, else host byte order */
    u64 cgroup_id;            /* 0 = any */
    u32 has_except;           /* open: consult deny_except for the opener's exe */
    u32 _pad;
};

/* (rule, exe path) pairs exempt from an open rule. */
struct rw_except_key {
    u32 rule_id;
    char path[RW_PATH_LEN];
};

BPF_LPM_TRIE(deny_exec, struct rw_path_key, struct rw_slots, RW_DENY_KEYS_MAX);
BPF_LPM_TRIE(deny_open, struct rw_path_key, struct rw_slots, RW_DENY_KEYS_MAX);
BPF_LPM_TRIE(deny_v4, struct rw_v4_key, struct rw_slots, RW_DENY_KEYS_MAX);
BPF_LPM_TRIE(deny_v6, struct rw_v6_key, struct rw_slots, RW_DENY_KEYS_MAX);
BPF_HASH(deny_rules, u32, struct rw_rule, RW_DENY_RULES_MAX);
BPF_HASH(deny_except, struct rw_except_key, u8, RW_DENY_KEYS_MAX);
BPF_ARRAY(enforce_cfg, u32, RW_CFG_MAX);
BPF_PERCPU_ARRAY(enforce_stats, u64, RW_ENF_STAT_MAX);

/* Path buffers are too big for the 512-byte stack. */
struct rw_lsm_scratch {
    struct rw_path_key key;
    struct rw_except_key exe;
    char raw[RW_PATH_LEN];
};
BPF_PERCPU_ARRAY(lsm_scratch, struct rw_lsm_scratch, 1);

static __always_inline void enf_count(u32 stat)
{
    u64 *v = enforce_stats.lookup(&stat);
    if (v)
        (*v)++;
}

static __always_inline int cfg_enabled(u32 which)
{
    u32 *v = enforce_cfg.lookup(&which);
    return v && *v;
}

/* Direct load of a pointer member: keeps the verifier's BTF type, which bpf_d_path needs
 * (bpf_probe_read would turn it into a plain number). */
static __always_inline const void *btf_ptr(const void *base, u32 off)
{
    return *(const void *const *)((const char *)base + off);
}

static __always_inline int rule_applies(const struct rw_rule *r, u32 port)
{
    u32 uid = (u32)bpf_get_current_uid_gid();
    if (r->uid_op == RW_UID_EQ && uid != r->uid)
        return 0;
    if (r->uid_op == RW_UID_NE && uid == r->uid)
        return 0;
    if (r->cgroup_id && bpf_get_current_cgroup_id() != r->cgroup_id)
        return 0;
    if (r->port && port != r->port)
        return 0;
    return 1;
}

/* The exe of the current process, resolved into sc->exe.path; 0 on success. */
static __always_inline int current_exe(struct rw_lsm_scratch *sc)
{
    const void *task = (const void *)bpf_get_current_task_btf();
    const void *mm = btf_ptr(task, RW_OFF_TASK_MM);
    if (!mm)
        return -1;
    const void *exe = btf_ptr(mm, RW_OFF_MM_EXE_FILE);
    if (!exe)
        return -1;
    long n = bpf_d_path((struct path *)((const char *)exe + RW_OFF_FILE_F_PATH),
                        sc->raw, sizeof(sc->raw));
    if (n <= 0)
        return -1;
    /* deny_except is a hash over the whole key, but bpf_d_path leaves bytes of its work
     * after the NUL: copy the string alone into a zeroed key. */
    __builtin_memset(sc->exe.path, 0, sizeof(sc->exe.path));
    bpf_probe_read_kernel_str(sc->exe.path, sizeof(sc->exe.path), sc->raw);
    return 0;
}

/* Decide among the rules of one key: the first applicable enforcing rule wins, else the
 * first applicable audit rule. Returns the rule id and sets *audit, or 0 for none. */
static __always_inline u32 decide(const struct rw_slots *slots, u32 port, int check_except,
                                  struct rw_lsm_scratch *sc, u32 *audit)
{
    u32 audit_id = 0;
    int exe_state = 0; /* 0 unknown, 1 resolved, -1 failed */

    #pragma unroll
    for (int i = 0; i < RW_DENY_SLOTS; i++) {
        if (i >= slots->n)
            break;
        u32 id = slots->ids[i];
        struct rw_rule *r = deny_rules.lookup(&id);
        if (!r || !rule_applies(r, port))
            continue;
        if (check_except && r->has_except) {
            if (exe_state == 0) {
                exe_state = current_exe(sc) == 0 ? 1 : -1;
                if (exe_state < 0)
                    enf_count(RW_ENF_EXE_FAILED);
            }
            if (exe_state > 0) {
                sc->exe.rule_id = id;
                if (deny_except.lookup(&sc->exe))
                    continue;
            }
        }
        if (!r->audit) {
            *audit = 0;
            return id;
        }
        if (!audit_id)
            audit_id = id;
    }
    *audit = 1;
    return audit_id;
}

static __always_inline void fill_ancestors(struct rw_deny *d)
{
    const void *t = (const void *)bpf_get_current_task();

    #pragma unroll
    for (int i = 0; i < RW_DENY_ANCESTORS; i++) {
        t = rd_ptr(t, RW_OFF_TASK_REAL_PARENT);
        d->anc_pid[i] = t ? rd_u32(t, RW_OFF_TASK_TGID) : 0;
        if (t)
            bpf_probe_read_kernel_str(d->anc_comm[i], RW_COMM_LEN,
                                      (const char *)t + RW_OFF_TASK_COMM);
        else
            d->anc_comm[i][0] = 0;
    }
}

/* Reports the decision and returns what the hook must return. */
static __always_inline int report(u32 hook, u32 rule_id, u32 audit, const char *path,
                                  u16 family, u16 port, const u8 *addr, u32 addr_len)
{
    int ret = audit ? 0 : -RW_EPERM;
    enf_count(audit ? RW_ENF_AUDITED : RW_ENF_DENIED);
    count_produced(RW_REC_DENY);
    struct rw_deny *d = events.ringbuf_reserve(sizeof(struct rw_deny));
    if (!d) {
        count_drop(RW_DROP_RINGBUF_FULL);
        return ret;
    }
    fill_header(&d->h, RW_REC_DENY);
    d->hook = hook;
    d->rule_id = rule_id;
    d->ret = ret;
    d->flags = audit ? RW_DENY_F_AUDIT : 0;
    d->family = family;
    d->port = port;
    d->_pad1 = 0;
    __builtin_memset(d->addr, 0, sizeof(d->addr));
    if (addr && addr_len == 16)
        __builtin_memcpy(d->addr, addr, 16);
    else if (addr && addr_len == 4)
        __builtin_memcpy(d->addr, addr, 4);
    fill_ancestors(d);
    d->path[0] = 0;
    if (path)
        bpf_probe_read_kernel_str(d->path, sizeof(d->path), path);
    events.ringbuf_submit(d, 0);
    return ret;
}

static __always_inline int check_file(u32 hook, const void *file, int check_except)
{
    if ((bpf_get_current_pid_tgid() >> 32) == RW_SELF_TGID)
        return 0;
    u32 zero = 0;
    struct rw_lsm_scratch *sc = lsm_scratch.lookup(&zero);
    if (!sc || !file)
        return 0;
    enf_count(RW_ENF_CHECKED);
    long n = bpf_d_path((struct path *)((const char *)file + RW_OFF_FILE_F_PATH),
                        sc->key.path, sizeof(sc->key.path));
    if (n <= 0) {
        enf_count(RW_ENF_PATH_FAILED);
        return 0;
    }
    sc->key.prefixlen = RW_PATH_LEN * 8;
    /* bcc resolves a map only where it is named, so no map pointer parameter. */
    struct rw_slots *slots = hook == RW_HOOK_EXEC ? deny_exec.lookup(&sc->key)
                                                  : deny_open.lookup(&sc->key);
    if (!slots)
        return 0;
    u32 audit = 0;
    u32 id = decide(slots, 0, check_except, sc, &audit);
    if (!id)
        return 0;
    return report(hook, id, audit, sc->key.path, 0, 0, 0, 0);
}

/* RW_LSM_MAPS_ONLY: the maps without the programs, so that the map code can be tested on
 * a kernel that refuses BPF LSM (tests/test_enforce_maps.py). */
#ifndef RW_LSM_MAPS_ONLY
/* ctx[nargs] is what earlier BPF LSM programs on the hook decided: keep a denial. */
LSM_PROBE(bprm_check_security, struct linux_binprm *bprm)
{
    if ((int)ctx[1])
        return (int)ctx[1];
    if (!cfg_enabled(RW_CFG_EXEC))
        return 0;
    return check_file(RW_HOOK_EXEC, btf_ptr(bprm, RW_OFF_BINPRM_FILE), 0);
}

LSM_PROBE(file_open, struct file *file)
{
    if ((int)ctx[1])
        return (int)ctx[1];
    if (!cfg_enabled(RW_CFG_OPEN))
        return 0;
    return check_file(RW_HOOK_OPEN, file, 1);
}

/* The parts of sockaddr_in / sockaddr_in6 used here: uapi, so fixed on every kernel. */
struct rw_sockaddr {
    u16 family;
    u16 port;                 /* network byte order */
    u8 v4[4];                 /* sockaddr_in.sin_addr; sockaddr_in6.sin6_flowinfo */
    u8 v6[16];                /* sockaddr_in6.sin6_addr */
};

LSM_PROBE(socket_connect, struct socket *sock, struct sockaddr *address, int addrlen)
{
    if ((int)ctx[3])
        return (int)ctx[3];
    if (!cfg_enabled(RW_CFG_CONNECT))
        return 0;
    if ((bpf_get_current_pid_tgid() >> 32) == RW_SELF_TGID)
        return 0;
    struct rw_sockaddr sa = {};
    if (addrlen < 8)
        return 0;
    bpf_probe_read_kernel(&sa, addrlen < (int)sizeof(sa) ? 8 : sizeof(sa), address);
    u16 port = bpf_ntohs(sa.port);
    struct rw_slots *slots = 0;
    u16 family = sa.family;
    const u8 *addr = 0;
    u32 addr_len = 0;
    struct rw_v4_key k4 = {.prefixlen = 32};

    if (sa.family == RW_AF_INET) {
        __builtin_memcpy(k4.addr, sa.v4, 4);
    } else if (sa.family == RW_AF_INET6 && addrlen >= 24) {
        /* An IPv4-mapped address (::ffff:a.b.c.d) reaches an IPv4 host: check it as one. */
        u64 hi = *(u64 *)&sa.v6[0];
        u32 mid = *(u32 *)&sa.v6[8];
        if (hi == 0 && mid == bpf_htonl(0xffff)) {
            __builtin_memcpy(k4.addr, &sa.v6[12], 4);
            family = RW_AF_INET;
        } else {
            struct rw_v6_key k6 = {.prefixlen = 128};
            __builtin_memcpy(k6.addr, sa.v6, 16);
            enf_count(RW_ENF_CHECKED);
            slots = deny_v6.lookup(&k6);
            addr = sa.v6;
            addr_len = 16;
        }
    } else {
        return 0;
    }
    if (family == RW_AF_INET) {
        enf_count(RW_ENF_CHECKED);
        slots = deny_v4.lookup(&k4);
        addr = k4.addr;
        addr_len = 4;
    }
    if (!slots)
        return 0;
    u32 audit = 0;
    u32 id = decide(slots, port, 0, 0, &audit);
    if (!id)
        return 0;
    return report(RW_HOOK_CONNECT, id, audit, 0, family, port, addr, addr_len);
}
#endif /* RW_LSM_MAPS_ONLY */
