/* Overhead loops for `make bench`: the syscall cost a monitor adds, timed inside the
 * process so that process start-up and the harness are not in the number.
 *
 *   rw-bench-loop open N PATH       openat(PATH, O_RDONLY) + close, N times
 *   rw-bench-loop getppid N         getppid(), N times (a syscall no rule wants)
 *   rw-bench-loop forkexec N PATH   fork, execve(PATH) in the child, wait, N times
 *
 * Prints one JSON line: {"op": ..., "iterations": N, "elapsed_ns": T}.
 * Exits 1 with a message on stderr if any iteration fails: a failing loop would
 * measure an error path, not the workload.
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

static int usage(void)
{
    fprintf(stderr, "usage: rw-bench-loop open N PATH | getppid N | forkexec N PATH\n");
    return 2;
}

static int loop_open(long n, const char *path)
{
    for (long i = 0; i < n; i++) {
        /* The raw syscall: glibc's open() is openat too, but this says so. */
        int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "rw-bench-loop: openat %s: %s\n", path, strerror(errno));
            return 1;
        }
        close(fd);
    }
    return 0;
}

static int loop_getppid(long n)
{
    /* syscall() rather than getppid(): no libc may ever cache it. */
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    return 0;
}

static int loop_forkexec(long n, const char *path)
{
    char *const argv[] = {(char *)path, NULL};
    char *const envp[] = {NULL};
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "rw-bench-loop: fork: %s\n", strerror(errno));
            return 1;
        }
        if (pid == 0) {
            execve(path, argv, envp);
            _exit(127);
        }
        int status = 0;
        if (waitpid(pid, &status, 0) < 0) {
            fprintf(stderr, "rw-bench-loop: waitpid: %s\n", strerror(errno));
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "rw-bench-loop: %s exited with status 0x%x\n", path, status);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *op = argv[1];
    char *end = NULL;
    long n = strtol(argv[2], &end, 10);
    if (*end || n <= 0) {
        fprintf(stderr, "rw-bench-loop: iterations must be a positive integer, got '%s'\n", argv[2]);
        return 2;
    }
    int rc;
    uint64_t t0 = now_ns();
    if (!strcmp(op, "open") && argc == 4)
        rc = loop_open(n, argv[3]);
    else if (!strcmp(op, "getppid") && argc == 3)
        rc = loop_getppid(n);
    else if (!strcmp(op, "forkexec") && argc == 4)
        rc = loop_forkexec(n, argv[3]);
    else
        return usage();
    uint64_t t1 = now_ns();
    if (rc)
        return rc;
    printf("{\"op\": \"%s\", \"iterations\": %ld, \"elapsed_ns\": %llu}\n", op, n,
           (unsigned long long)(t1 - t0));
    return 0;
}
