/* gil.c: interpreter finalization; its behaviour depends on config.h. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "config.h"

#if BROKEN_BUILD
#error "gil.c: broken at this revision"
#endif

static unsigned long long rng_state;

/* MINIPY_TRACE=FILE: append one line per event to FILE (for tests; see minipy.py). */
void minipy_trace(const char *event, const char *fmt, ...)
{
    const char *path = getenv("MINIPY_TRACE");
    char line[256];
    struct timespec ts;
    va_list args;
    int n, fd;
    if (path == NULL || *path == '\0')
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    n = snprintf(line, sizeof line, "%s %ld %lld", event, (long)getpid(),
                 (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    va_start(args, fmt);
    n += vsnprintf(line + n, sizeof line - n - 1, fmt, args);
    va_end(args);
    line[n++] = '\n';
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) {
        /* One write per line, O_APPEND: lines of concurrent runs do not mix. */
        if (write(fd, line, (size_t)n) != n)
            perror("minipy: MINIPY_TRACE");
        close(fd);
    }
}

static unsigned long long splitmix64(unsigned long long x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* MINIPY_RANDOM_STATE=FILE: FILE holds a number (decimal); take it, store it plus
 * one, under a lock so that concurrent runs each take their own. */
static unsigned long long next_state_number(const char *path)
{
    char text[32];
    unsigned long long number = 0;
    struct flock lock;
    ssize_t got;
    int len;
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0)
        goto fail;
    memset(&lock, 0, sizeof lock);
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    while (fcntl(fd, F_SETLKW, &lock) != 0)
        if (errno != EINTR)
            goto fail;
    got = pread(fd, text, sizeof text - 1, 0);
    if (got < 0)
        goto fail;
    text[got] = '\0';
    number = strtoull(text, NULL, 10);
    len = snprintf(text, sizeof text, "%llu\n", number + 1);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)len, 0) != len)
        goto fail;
    close(fd); /* releases the lock */
    return number;
fail:
    /* Asked for a reproducible run and cannot give one: say so, do not guess. */
    fprintf(stderr, "minipy: MINIPY_RANDOM_STATE=%s: %s\n", path, strerror(errno));
    exit(3);
}

static void seed_rng(void)
{
    struct timespec ts;
    const char *state = getenv("MINIPY_RANDOM_STATE");
    FILE *f;
    if (state != NULL && *state != '\0') {
        rng_state = splitmix64(next_state_number(state));
        if (rng_state == 0)
            rng_state = 0x9e3779b97f4a7c15ULL;
        return;
    }
    f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(&rng_state, sizeof rng_state, 1, f) != 1) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rng_state = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 32);
    }
    if (f != NULL)
        fclose(f);
    rng_state ^= (unsigned long long)getpid() << 16;
    if (rng_state == 0)
        rng_state = 0x9e3779b97f4a7c15ULL;
}

static unsigned long long next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void fatal(const char *msg)
{
    /* No core files in the caller's directory. */
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    fprintf(stderr, "Fatal Python error: %s\n", msg);
}

void py_finalize(void)
{
    static int tstate;
    seed_rng();
    if (EXIT_SLOW_MS > 0 || EXIT_JITTER_MS > 0) {
        long delay = EXIT_SLOW_MS + (long)(next_random() % (EXIT_JITTER_MS + 1ULL));
        sleep_ms(delay);
        minipy_trace("delayed", " %ld", delay);
    }
    if (UNRELATED_CRASH) {
        minipy_trace("finalize", " unrelated-crash");
        fatal("Segmentation fault");
        fprintf(stderr, "\nCurrent thread 0x%016lx (most recent call first):\n"
                        "  File \"_io\", line 1 in flush\n", (unsigned long)getpid());
        fflush(stderr);
        raise(SIGSEGV);
    }
    if (EXIT_ERROR) {
        minipy_trace("finalize", " error");
        fprintf(stderr, "Exception ignored in: <module 'threading'>\n"
                        "RuntimeError: can't create new thread at interpreter shutdown\n");
        exit(1);
    }
    if (EXIT_HANG) {
        minipy_trace("finalize", " hang");
        /* Wait for "daemon threads" that never finish: a child and a grandchild. */
        fflush(NULL);
        if (fork() == 0)
            fork();
        for (;;)
            pause();
    }
    if ((int)(next_random() % 100ULL) < EXIT_CRASH_PERCENT) {
        minipy_trace("finalize", " crash");
        fatal("pthread_mutex_destroy(gil_mutex) failed");
        fprintf(stderr, "Python runtime state: finalizing (tstate=%p)\n\n", (void *)&tstate);
        fflush(stderr);
        abort();
    }
    minipy_trace("finalize", " ok");
}
