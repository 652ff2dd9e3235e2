/* Clocks in nanoseconds. The monotonic one is the clock of the engine's
 * times (job info, events, intended submit times), so that a program may
 * subtract one from the other. Header-only: the engine's workers and the
 * benchmarks read it on their hot paths. */
#ifndef DD_UTIL_CLOCK_H
#define DD_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t dd_clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t dd_mono_ns(void)
{
	return dd_clock_ns(CLOCK_MONOTONIC);
}

#endif
