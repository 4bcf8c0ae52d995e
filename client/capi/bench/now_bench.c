/*
 * The cost of tsod_clock_now() through the C API, against
 * clock_gettime(CLOCK_REALTIME), in the same process and run.
 *
 *   now_bench SEGMENT [ROUNDS [CALLS]]
 *
 * Runs ROUNDS (default 15) rounds; each times CALLS (default 1000000)
 * back-to-back calls of each, alternating which goes first, with
 * CLOCK_MONOTONIC around the loop. Prints each round's ns per call, then
 * one line with the medians and their ratio:
 *   median: tsod_clock_now N ns, clock_gettime(CLOCK_REALTIME) M ns, ratio R
 * (client/capi/tests/now_bench.rs builds and runs it; see there.)
 */

#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <tsod.h>

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static volatile uint64_t sink;

static double time_tsod(const tsod_clock *clock, long calls, long *errors) {
    tsod_now now;
    uint64_t start = mono_ns();
    for (long i = 0; i < calls; i++) {
        if (tsod_clock_now(clock, &now) != TSOD_OK) {
            (*errors)++;
        }
        sink += now.interval.earliest_ns;
    }
    return (double)(mono_ns() - start) / (double)calls;
}

static double time_realtime(long calls) {
    struct timespec ts;
    uint64_t start = mono_ns();
    for (long i = 0; i < calls; i++) {
        clock_gettime(CLOCK_REALTIME, &ts);
        sink += (uint64_t)ts.tv_nsec;
    }
    return (double)(mono_ns() - start) / (double)calls;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SEGMENT [ROUNDS [CALLS]]\n", argv[0]);
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 15;
    long calls = argc > 3 ? atol(argv[3]) : 1000000;
    if (rounds < 1 || rounds > 1000 || calls < 1) {
        fprintf(stderr, "rounds 1..1000, calls >= 1\n");
        return 2;
    }
    tsod_clock *clock = NULL;
    tsod_error code = tsod_clock_open(argv[1], &clock);
    if (code != TSOD_OK) {
        char message[512];
        tsod_last_error_message(message, sizeof message);
        fprintf(stderr, "tsod_clock_open: %s: %s\n", tsod_error_name(code), message);
        return 1;
    }
    double *tsod = calloc((size_t)rounds, sizeof *tsod);
    double *realtime = calloc((size_t)rounds, sizeof *realtime);
    long errors = 0;
    time_tsod(clock, calls / 10 + 1, &errors); /* warm up */
    time_realtime(calls / 10 + 1);
    errors = 0;
    for (int r = 0; r < rounds; r++) {
        if (r % 2 == 0) {
            tsod[r] = time_tsod(clock, calls, &errors);
            realtime[r] = time_realtime(calls);
        } else {
            realtime[r] = time_realtime(calls);
            tsod[r] = time_tsod(clock, calls, &errors);
        }
        printf("round %2d: tsod_clock_now %6.1f ns, clock_gettime(CLOCK_REALTIME) %6.1f ns\n", r, tsod[r], realtime[r]);
    }
    qsort(tsod, (size_t)rounds, sizeof *tsod, compare_double);
    qsort(realtime, (size_t)rounds, sizeof *realtime, compare_double);
    double t = tsod[rounds / 2], c = realtime[rounds / 2];
    printf("median: tsod_clock_now %.1f ns, clock_gettime(CLOCK_REALTIME) %.1f ns, ratio %.2f\n", t, c, t / c);
    tsod_clock_close(clock);
    free(tsod);
    free(realtime);
    if (errors != 0) {
        fprintf(stderr, "%ld calls of tsod_clock_now failed\n", errors);
        return 1;
    }
    return 0;
}
