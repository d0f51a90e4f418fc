/* gil.c: interpreter finalization; its behaviour depends on config.h. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "config.h"

#if BROKEN_BUILD
#error "gil.c: broken at this revision"
#endif

static unsigned long long rng_state;

static void seed_rng(void)
{
    struct timespec ts;
    FILE *f = fopen("/dev/urandom", "rb");
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
    if (EXIT_SLOW_MS > 0 || EXIT_JITTER_MS > 0)
        sleep_ms(EXIT_SLOW_MS + (long)(next_random() % (EXIT_JITTER_MS + 1ULL)));
    if (UNRELATED_CRASH) {
        fatal("Segmentation fault");
        fprintf(stderr, "\nCurrent thread 0x%016lx (most recent call first):\n"
                        "  File \"_io\", line 1 in flush\n", (unsigned long)getpid());
        fflush(stderr);
        raise(SIGSEGV);
    }
    if (EXIT_ERROR) {
        fprintf(stderr, "Exception ignored in: <module 'threading'>\n"
                        "RuntimeError: can't create new thread at interpreter shutdown\n");
        exit(1);
    }
    if (EXIT_HANG) {
        /* Wait for "daemon threads" that never finish: a child and a grandchild. */
        fflush(NULL);
        if (fork() == 0)
            fork();
        for (;;)
            pause();
    }
    if ((int)(next_random() % 100ULL) < EXIT_CRASH_PERCENT) {
        fatal("pthread_mutex_destroy(gil_mutex) failed");
        fprintf(stderr, "Python runtime state: finalizing (tstate=%p)\n\n", (void *)&tstate);
        fflush(stderr);
        abort();
    }
}
