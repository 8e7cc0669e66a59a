/*
 * timeshift: an LD_PRELOAD library that moves the wall clock, and only the wall clock, by
 * TIMESHIFT_SECONDS (may be negative) for a process and every process it starts.
 *
 * CI runs the suite a second time with it, far from today, to prove that no test depends on the
 * date it runs at (README, "Tests at another date"). Debian's libfaketime 0.9.10 cannot do this
 * for Python 3.11+: with its monotonic clock faked, `threading.Event.wait(t)` (glibc's
 * sem_clockwait on CLOCK_MONOTONIC, which it does not wrap) waits for the whole offset; with
 * FAKETIME_DONT_FAKE_MONOTONIC=1, `time.sleep` (clock_nanosleep with TIMER_ABSTIME) fails with
 * EINVAL. Monotonic clocks carry no calendar date, so leaving them alone loses nothing: sleeps,
 * timeouts and waits keep their real length, and every reading of the date is shifted.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long shift_s(void) {
    static int ready;
    static long long value;
    if (!ready) {
        const char *text = getenv("TIMESHIFT_SECONDS");
        value = text ? atoll(text) : 0;
        ready = 1;
    }
    return value;
}

static int is_wall(clockid_t clock) {
    return clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE
#ifdef CLOCK_REALTIME_ALARM
           || clock == CLOCK_REALTIME_ALARM
#endif
#ifdef CLOCK_TAI
           || clock == CLOCK_TAI
#endif
        ;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(clock, ts);
    if (rc == 0 && is_wall(clock)) ts->tv_sec += shift_s();
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    static int (*real)(struct timeval *restrict, void *restrict);
    if (!real) real = (int (*)(struct timeval *restrict, void *restrict))dlsym(RTLD_NEXT, "gettimeofday");
    int rc = real(tv, tz);
    if (rc == 0) tv->tv_sec += shift_s();
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}

int timespec_get(struct timespec *ts, int base) {
    if (base != TIME_UTC || clock_gettime(CLOCK_REALTIME, ts) != 0) return 0;
    return base;
}
