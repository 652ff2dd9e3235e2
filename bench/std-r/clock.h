/* The one clock std-r reads: CLOCK_MONOTONIC in ns, the engine's too. */
#ifndef STD_R_CLOCK_H
#define STD_R_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
