/* Flood generator for the flood trial: open() as fast as one process can, for a time.
 *
 *   rw-bench-flood same SECONDS PATH       open(PATH) + close, again and again
 *   rw-bench-flood distinct SECONDS PREFIX open(PREFIX<n>) for n = 0, 1, ... (ENOENT):
 *                                          every record distinct, nothing to coalesce
 *
 * Prints one JSON line: {"mode", "ops", "elapsed_ns", "pid"}.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "same") != 0 && strcmp(argv[1], "distinct") != 0)) {
        fprintf(stderr, "usage: %s same|distinct SECONDS PATH\n", argv[0]);
        return 2;
    }
    int distinct = strcmp(argv[1], "distinct") == 0;
    long long end_ns = now_ns() + (long long)(atof(argv[2]) * 1e9);
    long long t0 = now_ns();
    long ops = 0;
    char path[4096];
    for (;;) {
        for (int i = 0; i < 1000; i++) {
            const char *p = argv[3];
            if (distinct) {
                snprintf(path, sizeof(path), "%s%ld", argv[3], ops);
                p = path;
            }
            int fd = open(p, O_RDONLY);
            if (fd >= 0)
                close(fd);
            ops++;
        }
        if (now_ns() >= end_ns)
            break;
    }
    printf("{\"mode\": \"%s\", \"ops\": %ld, \"elapsed_ns\": %lld, \"pid\": %d}\n", argv[1], ops,
           now_ns() - t0, (int)getpid());
    return 0;
}
