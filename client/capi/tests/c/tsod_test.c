/*
 * Every function of libtsod's C API against live daemons, from C, linked
 * through pkg-config (client/capi/tests/c_program.rs builds and runs it).
 *
 *   tsod_test SEGMENT CLUSTER_FILE BOGUS_CLUSTER_FILE CLIENT_CERT CLIENT_KEY
 *
 * SEGMENT is a synchronized site's shared-memory segment, also given as
 * $TSOD_SHM (to check that a NULL path means it). CLUSTER_FILE names three
 * sites with a TSO. BOGUS_CLUSTER_FILE is not a cluster file. CLIENT_CERT
 * and CLIENT_KEY are a client certificate from the cluster's CA (`tsod
 * cluster add-client`). The host clock is true time (the daemons' GPS
 * receivers are simulated from it).
 *
 * Prints one line per check; exits 1 if any failed, 0 otherwise.
 */

#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tsod.h>

static int failures = 0;
static int passes = 0;

static void check(int ok, const char *what) {
    if (ok) {
        passes++;
    } else {
        failures++;
        char message[512];
        tsod_last_error_message(message, sizeof message);
        printf("FAIL %s (last error: %s)\n", what, message);
        return;
    }
    printf("ok   %s\n", what);
}

/* A call that must succeed; on failure says the code and message. */
static void expect_ok(tsod_error code, const char *what) {
    if (code != TSOD_OK) {
        char line[256];
        snprintf(line, sizeof line, "%s returned %s", what, tsod_error_name(code));
        check(0, line);
    } else {
        check(1, what);
    }
}

/* A call that must fail with `expected`. */
static void expect_code(tsod_error code, tsod_error expected, const char *what) {
    char line[256];
    snprintf(line, sizeof line, "%s -> %s (got %s)", what, tsod_error_name(expected), tsod_error_name(code));
    check(code == expected, line);
}

static uint64_t realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void check_errors_and_messages(void) {
    char buf[256];
    check(tsod_last_error_length() == 1, "no failure yet: the last error is empty");
    expect_ok(tsod_last_error_message(buf, sizeof buf), "tsod_last_error_message before any failure");
    check(buf[0] == '\0', "... gives the empty string");
    check(strcmp(tsod_error_name(TSOD_ERR_STALE), "TSOD_ERR_STALE") == 0, "tsod_error_name names a code");
    check(strcmp(tsod_error_name(-999), "TSOD_ERR_UNKNOWN") == 0, "tsod_error_name of a non-code");
    check(strcmp(tsod_error_name(TSOD_OK), "TSOD_OK") == 0, "tsod_error_name(TSOD_OK)");
}

static void check_open(const char *segment, tsod_clock **clock) {
    tsod_clock *other = NULL;
    expect_code(tsod_clock_open(segment, NULL), TSOD_ERR_NULL_POINTER, "tsod_clock_open(path, NULL)");
    expect_code(tsod_clock_open("/nonexistent/tsod/segment", &other), TSOD_ERR_OPEN, "tsod_clock_open(missing file)");
    check(other == NULL, "a failed open leaves *out alone");

    /* The failure above left a message; too small a buffer is an error. */
    size_t needed = tsod_last_error_length();
    check(needed > 20, "the failed open left a message");
    char small[8];
    memset(small, 'x', sizeof small);
    expect_code(tsod_last_error_message(small, sizeof small), TSOD_ERR_BUFFER_TOO_SMALL,
                "tsod_last_error_message(8-byte buffer)");
    check(small[7] == '\0' && strlen(small) == 7, "... writes a truncated, terminated message");
    expect_code(tsod_last_error_message(NULL, 64), TSOD_ERR_NULL_POINTER, "tsod_last_error_message(NULL)");
    char *full = malloc(needed);
    expect_ok(tsod_last_error_message(full, needed), "tsod_last_error_message(exact size)");
    check(strstr(full, "/nonexistent/tsod/segment") != NULL, "... names the path");
    printf("     (the message: %s)\n", full);
    free(full);

    expect_ok(tsod_clock_open(NULL, &other), "tsod_clock_open(NULL) opens $TSOD_SHM");
    tsod_clock_close(other);
    tsod_clock_close(NULL);
    expect_ok(tsod_clock_open(segment, clock), "tsod_clock_open(segment)");
}

static void check_now(const tsod_clock *clock) {
    tsod_interval synced;
    expect_ok(tsod_clock_wait_synchronized(clock, 20000, &synced), "tsod_clock_wait_synchronized");
    check(synced.earliest_ns <= synced.latest_ns, "... gives an interval");
    expect_code(tsod_clock_wait_synchronized(clock, 10, NULL), TSOD_ERR_NULL_POINTER,
                "tsod_clock_wait_synchronized(out NULL)");

    tsod_now now;
    expect_code(tsod_clock_now(NULL, &now), TSOD_ERR_NULL_POINTER, "tsod_clock_now(NULL clock)");
    expect_code(tsod_clock_now(clock, NULL), TSOD_ERR_NULL_POINTER, "tsod_clock_now(out NULL)");

    /* The interval contains the host clock (true time) read around it. */
    int reads = 2000, contained = 0, synchronized = 0, ok = 0;
    uint64_t widest = 0;
    for (int i = 0; i < reads; i++) {
        uint64_t before = realtime_ns();
        tsod_error code = tsod_clock_now(clock, &now);
        uint64_t after = realtime_ns();
        if (code != TSOD_OK) {
            printf("     read %d: %s\n", i, tsod_error_name(code));
            continue;
        }
        ok++;
        if (now.interval.earliest_ns <= after && before <= now.interval.latest_ns) {
            contained++;
        } else {
            printf("     [%" PRIu64 ", %" PRIu64 "] excludes the host clock [%" PRIu64 ", %" PRIu64 "]\n",
                   now.interval.earliest_ns, now.interval.latest_ns, before, after);
        }
        if (now.status == TSOD_CLOCK_SYNCHRONIZED) {
            synchronized++;
        }
        uint64_t width = now.interval.latest_ns - now.interval.earliest_ns;
        widest = width > widest ? width : widest;
    }
    printf("     %d reads, widest interval %" PRIu64 " ns\n", reads, widest);
    check(ok == reads, "tsod_clock_now always gives an interval");
    check(contained == ok, "every interval contains CLOCK_REALTIME read around it");
    check(synchronized == ok, "the status is TSOD_CLOCK_SYNCHRONIZED");
}

static void check_commit_wait(const tsod_clock *clock) {
    tsod_now now;
    expect_ok(tsod_clock_now(clock, &now), "tsod_clock_now before commit-wait");
    uint64_t commit = now.interval.latest_ns;
    tsod_commit_wait wait;
    expect_ok(tsod_clock_commit_wait(clock, commit, &wait), "tsod_clock_commit_wait(latest)");
    uint64_t after = realtime_ns();
    check(wait.interval.earliest_ns > commit, "... ended with earliest past the commit time");
    check(after > commit, "... returned after true time passed the commit time");
    check(wait.reads >= 1, "... read the clock");
    printf("     waited %" PRIu64 " ns for an interval %" PRIu64 " ns wide, %u reads\n", wait.waited_ns,
           commit - now.interval.earliest_ns, wait.reads);
    expect_ok(tsod_clock_now(clock, &now), "tsod_clock_now after commit-wait");
    check(now.interval.earliest_ns > commit, "... every later interval starts after the commit time");

    expect_ok(tsod_clock_commit_wait(clock, commit - 1000000000u, &wait), "tsod_clock_commit_wait(a past time)");
    check(wait.reads == 1, "... returns at the first read");
    expect_code(tsod_clock_commit_wait(clock, commit + 10000000000u, &wait), TSOD_ERR_TOO_FAR_AHEAD,
                "tsod_clock_commit_wait(10 s ahead)");
    expect_code(tsod_clock_commit_wait(clock, commit, NULL), TSOD_ERR_NULL_POINTER, "tsod_clock_commit_wait(out NULL)");
    expect_code(tsod_clock_commit_wait(NULL, commit, &wait), TSOD_ERR_NULL_POINTER,
                "tsod_clock_commit_wait(NULL clock)");
}

#define HLC_THREADS 4
#define HLC_PER_THREAD 5000

struct hlc_worker {
    const tsod_hlc *hlc;
    tsod_hts got[HLC_PER_THREAD];
    int failed;
};

static void *hlc_worker(void *arg) {
    struct hlc_worker *w = arg;
    for (int i = 0; i < HLC_PER_THREAD; i++) {
        if (tsod_hlc_now(w->hlc, &w->got[i]) != TSOD_OK) {
            w->failed++;
        }
    }
    return NULL;
}

static int compare_hts(const void *a, const void *b) {
    tsod_hts x = *(const tsod_hts *)a, y = *(const tsod_hts *)b;
    return x < y ? -1 : x > y;
}

static void check_hts_encoding(void) {
    tsod_hts ts;
    expect_ok(tsod_hts_from_parts(1700000000123456u, 7, &ts), "tsod_hts_from_parts");
    check(ts == ((uint64_t)1700000000123456u << TSOD_HTS_LOGICAL_BITS | 7), "... is 52 bits of µs above 12 of logical");
    check(tsod_hts_physical_us(ts) == 1700000000123456u && tsod_hts_logical(ts) == 7, "tsod_hts_physical_us/logical");
    tsod_interval range = tsod_hts_time_range(ts);
    check(range.earliest_ns == 1700000000123456000u && range.latest_ns == 1700000000123456999u, "tsod_hts_time_range");
    expect_code(tsod_hts_from_parts((uint64_t)1 << 52, 0, &ts), TSOD_ERR_OUT_OF_RANGE, "tsod_hts_from_parts(2^52 µs)");
    expect_code(tsod_hts_from_parts(1, 4096, &ts), TSOD_ERR_OUT_OF_RANGE, "tsod_hts_from_parts(logical 4096)");
    expect_code(tsod_hts_from_parts(1, 1, NULL), TSOD_ERR_NULL_POINTER, "tsod_hts_from_parts(out NULL)");
}

static void check_hlc(tsod_clock *clock) {
    tsod_hlc *hlc = NULL;
    expect_code(tsod_hlc_new(NULL, 0, &hlc), TSOD_ERR_NULL_POINTER, "tsod_hlc_new(NULL clock)");
    expect_code(tsod_hlc_new(clock, 0, NULL), TSOD_ERR_NULL_POINTER, "tsod_hlc_new(out NULL)");
    expect_ok(tsod_hlc_new(clock, 0, &hlc), "tsod_hlc_new");

    tsod_hts last = 0, ts = 0;
    expect_ok(tsod_hlc_last_issued(hlc, &last), "tsod_hlc_last_issued before any");
    check(last == 0, "... is 0");

    /* Monotone, and never behind the bounded clock's earliest. */
    int increasing = 1, above_floor = 1;
    for (int i = 0; i < 1000; i++) {
        tsod_now now;
        if (tsod_clock_now(clock, &now) != TSOD_OK || tsod_hlc_now(hlc, &ts) != TSOD_OK) {
            increasing = 0;
            break;
        }
        increasing &= ts > last;
        above_floor &= tsod_hts_physical_us(ts) >= now.interval.earliest_ns / 1000;
        last = ts;
    }
    check(increasing, "tsod_hlc_now is strictly increasing");
    check(above_floor, "... and never behind earliest of an interval read before it");
    expect_code(tsod_hlc_now(hlc, NULL), TSOD_ERR_NULL_POINTER, "tsod_hlc_now(out NULL)");
    expect_code(tsod_hlc_now(NULL, &ts), TSOD_ERR_NULL_POINTER, "tsod_hlc_now(NULL hlc)");

    /* update: above what was received, refuses a clock seconds ahead. */
    tsod_hts received = last + 5000;
    expect_ok(tsod_hlc_update(hlc, received, &ts), "tsod_hlc_update(slightly ahead)");
    check(ts > received, "... returns above the received timestamp");
    last = ts;
    tsod_hts far = ((tsod_hts_physical_us(last) + 10000000u) << TSOD_HTS_LOGICAL_BITS);
    expect_code(tsod_hlc_update(hlc, far, &ts), TSOD_ERR_TOO_FAR_AHEAD, "tsod_hlc_update(10 s ahead)");
    tsod_hts after_refusal;
    expect_ok(tsod_hlc_last_issued(hlc, &after_refusal), "tsod_hlc_last_issued");
    check(after_refusal == last, "... the refused update changed nothing");
    expect_code(tsod_hlc_update(hlc, received, NULL), TSOD_ERR_NULL_POINTER, "tsod_hlc_update(out NULL)");

    /* commit timestamp and commit-wait. */
    tsod_now before;
    expect_ok(tsod_clock_now(clock, &before), "tsod_clock_now before a commit timestamp");
    tsod_hts commit;
    expect_ok(tsod_hlc_commit_timestamp(hlc, &commit), "tsod_hlc_commit_timestamp");
    check(commit > last, "... above every timestamp issued before");
    check(tsod_hts_time_range(commit).earliest_ns >= before.interval.latest_ns, "... at or after latest");
    tsod_commit_wait wait;
    expect_ok(tsod_hlc_commit_wait(hlc, commit, &wait), "tsod_hlc_commit_wait");
    check(wait.interval.earliest_ns > tsod_hts_time_range(commit).latest_ns, "... ends with earliest past its µs");
    check(realtime_ns() > tsod_hts_time_range(commit).latest_ns, "... after true time passed it");
    expect_code(tsod_hlc_commit_wait(hlc, far, &wait), TSOD_ERR_TOO_FAR_AHEAD, "tsod_hlc_commit_wait(10 s ahead)");
    expect_code(tsod_hlc_commit_wait(hlc, commit, NULL), TSOD_ERR_NULL_POINTER, "tsod_hlc_commit_wait(out NULL)");
    expect_code(tsod_hlc_commit_timestamp(hlc, NULL), TSOD_ERR_NULL_POINTER, "tsod_hlc_commit_timestamp(out NULL)");
    expect_code(tsod_hlc_last_issued(NULL, &ts), TSOD_ERR_NULL_POINTER, "tsod_hlc_last_issued(NULL hlc)");

    /* The HLC shares the clock: closing the clock handle leaves it working. */
    tsod_clock_close(clock);

    /* One HLC, many threads: one total order, no duplicate. */
    static struct hlc_worker workers[HLC_THREADS];
    pthread_t threads[HLC_THREADS];
    for (int t = 0; t < HLC_THREADS; t++) {
        workers[t].hlc = hlc;
        workers[t].failed = 0;
        pthread_create(&threads[t], NULL, hlc_worker, &workers[t]);
    }
    static tsod_hts all[HLC_THREADS * HLC_PER_THREAD];
    int failed = 0, per_thread_increasing = 1, n = 0;
    for (int t = 0; t < HLC_THREADS; t++) {
        pthread_join(threads[t], NULL);
        failed += workers[t].failed;
        for (int i = 0; i < HLC_PER_THREAD; i++) {
            per_thread_increasing &= i == 0 || workers[t].got[i] > workers[t].got[i - 1];
            per_thread_increasing &= workers[t].got[i] > commit;
            all[n++] = workers[t].got[i];
        }
    }
    qsort(all, n, sizeof all[0], compare_hts);
    int unique = 1;
    for (int i = 1; i < n; i++) {
        unique &= all[i] != all[i - 1];
    }
    check(failed == 0, "4 threads on one HLC, after its clock handle was closed: every call succeeded");
    check(per_thread_increasing, "... each thread's timestamps increase");
    check(unique, "... no timestamp was issued twice");
    tsod_hlc_free(hlc);
    tsod_hlc_free(NULL);
}

#define TSO_THREADS 4
#define TSO_PER_THREAD 200

struct tso_worker {
    const tsod_tso *tso;
    tsod_hts got[TSO_PER_THREAD];
    int failed;
};

static void *tso_worker(void *arg) {
    struct tso_worker *w = arg;
    for (int i = 0; i < TSO_PER_THREAD; i++) {
        if (tsod_tso_next(w->tso, &w->got[i]) != TSOD_OK) {
            w->failed++;
        }
    }
    return NULL;
}

static void check_tso(const char *cluster_file, const char *bogus_file, const char *cert, const char *key) {
    tsod_tso *tso = NULL;
    expect_code(tsod_tso_connect(NULL, NULL, NULL, 0, &tso), TSOD_ERR_NULL_POINTER, "tsod_tso_connect(NULL file)");
    expect_code(tsod_tso_connect(cluster_file, NULL, NULL, 0, NULL), TSOD_ERR_NULL_POINTER,
                "tsod_tso_connect(out NULL)");
    expect_code(tsod_tso_connect(bogus_file, NULL, NULL, 1000, &tso), TSOD_ERR_CLUSTER_FILE,
                "tsod_tso_connect(a file that is not a cluster file)");
    expect_code(tsod_tso_connect("/nonexistent/cluster.json", NULL, NULL, 1000, &tso), TSOD_ERR_CLUSTER_FILE,
                "tsod_tso_connect(a missing file)");
    expect_code(tsod_tso_connect(cluster_file, "client.crt", NULL, 1000, &tso), TSOD_ERR_INVALID_ARGUMENT,
                "tsod_tso_connect(a certificate without its key)");
    expect_code(tsod_tso_connect(cluster_file, "/nonexistent.crt", "/nonexistent.key", 1000, &tso), TSOD_ERR_CONNECT,
                "tsod_tso_connect(missing certificate files)");
    check(tso == NULL, "failed connects leave *out alone");

    /* With a client certificate (mutual TLS). */
    expect_ok(tsod_tso_connect(cluster_file, cert, key, 20000, &tso), "tsod_tso_connect(with a client certificate)");
    if (tso != NULL) {
        tsod_hts first;
        expect_ok(tsod_tso_next(tso, &first), "... tsod_tso_next over it");
        tsod_tso_close(tso);
        tso = NULL;
    }

    expect_ok(tsod_tso_connect(cluster_file, NULL, NULL, 20000, &tso), "tsod_tso_connect(cluster file)");
    if (tso == NULL) {
        return;
    }

    char site[64];
    expect_ok(tsod_tso_site(tso, site, sizeof site), "tsod_tso_site");
    check(strcmp(site, "bj-a") == 0 || strcmp(site, "bj-b") == 0 || strcmp(site, "xa") == 0, "... names a site");
    printf("     asking site %s\n", site);
    char tiny[2];
    expect_code(tsod_tso_site(tso, tiny, sizeof tiny), TSOD_ERR_BUFFER_TOO_SMALL, "tsod_tso_site(2-byte buffer)");
    check(tiny[0] == site[0] && tiny[1] == '\0', "... writes what fits, terminated");
    expect_code(tsod_tso_site(tso, NULL, 64), TSOD_ERR_NULL_POINTER, "tsod_tso_site(NULL buffer)");

    tsod_hts last = 0, ts;
    int increasing = 1, honest = 1;
    for (int i = 0; i < 200; i++) {
        uint64_t before = realtime_ns();
        tsod_error code = tsod_tso_next(tso, &ts);
        uint64_t after = realtime_ns();
        if (code != TSOD_OK) {
            expect_ok(code, "tsod_tso_next");
            increasing = 0;
            break;
        }
        increasing &= ts > last;
        /* Issued within the leader's bound, which holds true time: near the host clock. */
        uint64_t us = tsod_hts_physical_us(ts);
        honest &= us + 1000000u >= before / 1000 && us <= after / 1000 + 1000000u;
        last = ts;
    }
    check(increasing, "tsod_tso_next is strictly increasing");
    check(honest, "... and within 1 s of true time");

    tsod_tso_range range;
    expect_ok(tsod_tso_reserve(tso, 1000, &range), "tsod_tso_reserve(1000)");
    check(range.count == 1000 && range.last == range.first + 999, "... gives 1000 consecutive timestamps");
    check(range.first > last, "... above every timestamp received before");
    expect_ok(tsod_tso_next(tso, &ts), "tsod_tso_next after a reserve");
    check(ts > range.last, "... is above the reserved range");
    last = ts;
    expect_ok(tsod_tso_reserve(tso, TSOD_TSO_MAX_COUNT, &range), "tsod_tso_reserve(TSOD_TSO_MAX_COUNT)");
    check(range.count == TSOD_TSO_MAX_COUNT && range.last - range.first == TSOD_TSO_MAX_COUNT - 1 && range.first > last,
          "... all of them, consecutive, above the last");
    expect_code(tsod_tso_reserve(tso, 0, &range), TSOD_ERR_INVALID_ARGUMENT, "tsod_tso_reserve(0)");
    expect_code(tsod_tso_reserve(tso, TSOD_TSO_MAX_COUNT + 1, &range), TSOD_ERR_INVALID_ARGUMENT,
                "tsod_tso_reserve(TSOD_TSO_MAX_COUNT + 1)");
    expect_code(tsod_tso_reserve(tso, 1, NULL), TSOD_ERR_NULL_POINTER, "tsod_tso_reserve(out NULL)");
    expect_code(tsod_tso_reserve(NULL, 1, &range), TSOD_ERR_NULL_POINTER, "tsod_tso_reserve(NULL tso)");
    expect_code(tsod_tso_next(tso, NULL), TSOD_ERR_NULL_POINTER, "tsod_tso_next(out NULL)");
    expect_code(tsod_tso_next(NULL, &ts), TSOD_ERR_NULL_POINTER, "tsod_tso_next(NULL tso)");

    /* One handle, many threads: their calls share batches; no duplicate. */
    static struct tso_worker workers[TSO_THREADS];
    pthread_t threads[TSO_THREADS];
    for (int t = 0; t < TSO_THREADS; t++) {
        workers[t].tso = tso;
        workers[t].failed = 0;
        pthread_create(&threads[t], NULL, tso_worker, &workers[t]);
    }
    static tsod_hts all[TSO_THREADS * TSO_PER_THREAD];
    int failed = 0, per_thread_increasing = 1, n = 0;
    for (int t = 0; t < TSO_THREADS; t++) {
        pthread_join(threads[t], NULL);
        failed += workers[t].failed;
        for (int i = 0; i < TSO_PER_THREAD; i++) {
            per_thread_increasing &= i == 0 || workers[t].got[i] > workers[t].got[i - 1];
            per_thread_increasing &= workers[t].got[i] > range.last;
            all[n++] = workers[t].got[i];
        }
    }
    qsort(all, n, sizeof all[0], compare_hts);
    int unique = 1;
    for (int i = 1; i < n; i++) {
        unique &= all[i] != all[i - 1];
    }
    check(failed == 0, "4 threads on one TSO handle: every call succeeded");
    check(per_thread_increasing, "... each thread's timestamps increase, above the last range");
    check(unique, "... no timestamp was handed out twice");

    tsod_tso_close(tso);
    tsod_tso_close(NULL);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s SEGMENT CLUSTER_FILE BOGUS_CLUSTER_FILE CLIENT_CERT CLIENT_KEY\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    check_errors_and_messages();
    tsod_clock *clock = NULL;
    check_open(argv[1], &clock);
    if (clock != NULL) {
        check_now(clock);
        check_commit_wait(clock);
        check_hlc(clock); /* closes the clock */
    }
    check_hts_encoding();
    check_tso(argv[2], argv[3], argv[4], argv[5]);
    printf("c checks: %d ok, %d failed\n", passes, failures);
    return failures == 0 ? 0 : 1;
}
