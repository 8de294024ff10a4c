/* Paced event generator for the throughput search in `make bench`.
 *
 *   rw-bench-gen MODE OPS_PER_S SECONDS [PATH]
 *     open      openat(PATH) + close            1 record per op (with syscall coverage)
 *     fork      fork, child _exit(0), wait      fork + exit records per op
 *     exec      fork, execve(PATH), wait        fork + exec + exit records per op
 *
 * Pacing: the loop issues ops until it has done OPS_PER_S * elapsed, then sleeps briefly,
 * so bursts stay short and the rate over any second is close to the target. If the
 * generator itself cannot reach the rate, it says so (the search must not blame the
 * monitor for a slow generator).
 *
 * Prints one JSON line: {"mode", "target_ops_per_s", "ops", "elapsed_ns", "pid"}.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int op_open(const char *path)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "rw-bench-gen: openat %s: %s\n", path, strerror(errno));
        return 1;
    }
    close(fd);
    return 0;
}

static int op_fork(const char *path)
{
    char *const argv[] = {(char *)path, NULL};
    char *const envp[] = {NULL};
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "rw-bench-gen: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        if (path)
            execve(path, argv, envp);
        _exit(path ? 127 : 0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rw-bench-gen: child failed (status 0x%x)\n", status);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: rw-bench-gen open|fork|exec OPS_PER_S SECONDS [PATH]\n");
        return 2;
    }
    const char *mode = argv[1];
    double rate = strtod(argv[2], NULL);
    double secs = strtod(argv[3], NULL);
    const char *path = argc > 4 ? argv[4] : NULL;
    if (rate <= 0 || secs <= 0) {
        fprintf(stderr, "rw-bench-gen: rate and seconds must be positive\n");
        return 2;
    }
    int kind;
    if (!strcmp(mode, "open") && path)
        kind = 0;
    else if (!strcmp(mode, "fork"))
        kind = 1, path = NULL;
    else if (!strcmp(mode, "exec") && path)
        kind = 2;
    else {
        fprintf(stderr, "rw-bench-gen: unknown mode '%s' or missing PATH\n", mode);
        return 2;
    }

    uint64_t t0 = now_ns();
    uint64_t end = t0 + (uint64_t)(secs * 1e9);
    uint64_t ops = 0;
    const struct timespec nap = {0, 100000}; /* 100 us */
    for (;;) {
        uint64_t t = now_ns();
        if (t >= end)
            break;
        uint64_t due = (uint64_t)((double)(t - t0) * rate / 1e9);
        if (ops >= due) {
            nanosleep(&nap, NULL);
            continue;
        }
        /* Catch up in small batches, re-reading the clock between them. */
        for (int b = 0; b < 64 && ops < due; b++, ops++) {
            int rc = kind == 0 ? op_open(path) : op_fork(path);
            if (rc)
                return rc;
        }
    }
    uint64_t t1 = now_ns();
    printf("{\"mode\": \"%s\", \"target_ops_per_s\": %.1f, \"ops\": %llu, \"elapsed_ns\": %llu, "
           "\"pid\": %d}\n", mode, rate, (unsigned long long)ops, (unsigned long long)(t1 - t0),
           (int)getpid());
    return 0;
}
