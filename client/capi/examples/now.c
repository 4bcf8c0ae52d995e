/* The README's example: read tsod's bounded clock, then commit-wait. */
#include <inttypes.h>
#include <stdio.h>
#include <tsod.h>

int main(void) {
    tsod_clock *clock;
    tsod_now now;
    tsod_commit_wait wait;
    if (tsod_clock_open(NULL, &clock) != TSOD_OK) { /* $TSOD_SHM or /run/tsod/segment */
        char why[256];
        tsod_last_error_message(why, sizeof why);
        fprintf(stderr, "tsod: %s\n", why);
        return 1;
    }
    if (tsod_clock_now(clock, &now) == TSOD_OK) {
        printf("true time is in [%" PRIu64 ", %" PRIu64 "] ns\n", now.interval.earliest_ns, now.interval.latest_ns);
        tsod_clock_commit_wait(clock, now.interval.latest_ns, &wait); /* now surely in the past everywhere */
    }
    tsod_clock_close(clock);
    return 0;
}
