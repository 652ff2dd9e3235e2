/* The machine's own limits, measured in the same run as the benchmark so
 * that every figure can be read as a ratio to what the hardware allows.
 * Each floor has its own file; floors.c runs them all. */
#ifndef STD_R_FLOOR_H
#define STD_R_FLOOR_H

#include <stdbool.h>
#include <stdint.h>

/* stall_floor.c: how long the CPUs we run on are taken away from us
 * (hypervisor steal, interrupts, other tasks). */
struct stall_floor {
	unsigned ncpus;
	double seconds;     /* measured per CPU */
	double lost_frac;   /* share of CPU time lost to stalls, mean over CPUs */
	uint64_t stalls;    /* stalls of 10 µs or more, all CPUs */
	uint64_t max_ns;    /* longest stall */
	uint64_t p99_ns;    /* open-loop delay floor at P99 (see stall_floor.c) */
	uint64_t p999_ns;
};
/* Spins one pinned thread per CPU of the process's affinity set for
 * @seconds, all at once, and fills @out. Returns 0 or -errno. */
int stall_floor_measure(double seconds, struct stall_floor *out);

/* fsync_floor.c: the device's floor for a durable acknowledgement. */
struct fsync_floor {
	uint64_t count;
	uint64_t p50_ns, p99_ns, max_ns;
};
/* 4 KiB pwrite + fdatasync in a loop for @seconds in @dir. 0 or -errno. */
int fsync_floor_measure(const char *dir, double seconds, struct fsync_floor *out);

/* cyclictest.c: timer wake-up latency of a sleeping thread (rt-tests'
 * cyclictest), one thread per CPU of ours, at the engine threads'
 * scheduling policy (SCHED_OTHER): the floor for a parked thread's wake-up. */
struct cyclictest_floor {
	bool ran;
	char status[160];   /* why not, when !ran */
	unsigned threads;
	uint64_t cycles;
	uint64_t p50_ns, p99_ns, p999_ns, max_ns; /* µs resolution */
};
int cyclictest_floor_measure(double seconds, struct cyclictest_floor *out);
/* Reads cyclictest's --json output (a whole file's text). 0, or -EINVAL
 * with out->status saying what was wrong. Fuzzed: test/fuzz. */
int cyclictest_parse(const char *text, size_t len, struct cyclictest_floor *out);

/* spawn_floor.c: a bare posix_spawn + waitpid loop on @threads threads. */
struct spawn_floor {
	unsigned threads;
	double per_sec;
	uint64_t count, p50_ns, p99_ns, max_ns; /* one spawn + wait */
};
int spawn_floor_measure(const char *program, unsigned threads, double seconds,
			struct spawn_floor *out);

/* handoff.c: one cache line bounced between two CPUs: the least a hand-over
 * between two threads on them (generator -> reactor -> worker) can cost. */
struct handoff_floor {
	int cpu_a, cpu_b;   /* -1: fewer than two CPUs */
	uint64_t count;     /* round trips */
	/* one way (half a round trip), each sample the mean of 64 trips */
	uint64_t p50_ns, p99_ns, max_ns;
};
int handoff_floor_measure(double seconds, struct handoff_floor *out);

/* floors.c: all of them, as a run needs. */
struct floors {
	bool stall_ok, fsync_ok, spawn_ok, handoff_ok;
	struct stall_floor stall;
	struct cyclictest_floor cyclictest;
	struct fsync_floor fsync;
	struct spawn_floor spawn;
	struct handoff_floor handoff;
};
/* Measures each floor for @seconds: fsync only with a @state_dir, spawn
 * only with a @program (exec jobs), on @spawn_threads loops. Says on
 * stderr what it could not measure; never fails. */
void floors_measure(double seconds, const char *state_dir, const char *program,
		    unsigned spawn_threads, struct floors *f);

#endif
