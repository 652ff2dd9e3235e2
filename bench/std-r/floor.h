/* The machine's own latency floor for an open-loop benchmark: how long the
 * CPUs we run on are taken away from us (hypervisor steal, interrupts, other
 * tasks). See floor.c. */
#ifndef STD_R_FLOOR_H
#define STD_R_FLOOR_H

#include <stdint.h>

struct stall_floor {
	unsigned ncpus;
	double seconds;     /* measured per CPU */
	double lost_frac;   /* share of CPU time lost to stalls, mean over CPUs */
	uint64_t stalls;    /* stalls of 10 µs or more, all CPUs */
	uint64_t max_ns;    /* longest stall */
	uint64_t p99_ns;    /* open-loop delay floor at P99 (see floor.c) */
	uint64_t p999_ns;
};

/* Spins one pinned thread per CPU of the process's affinity set for
 * @seconds, all at once, and fills @out. Returns 0 or -errno. */
int stall_floor_measure(double seconds, struct stall_floor *out);


struct fsync_floor {
	uint64_t count;
	uint64_t p50_ns, p99_ns, max_ns;
};

/* 4 KiB pwrite + fdatasync in a loop for @seconds in @dir. 0 or -errno. */
int fsync_floor_measure(const char *dir, double seconds, struct fsync_floor *out);

#endif
