/* The eBPF jitter probe on a known workload: a thread that sleeps 1 ms,
 * 300 times, is woken 300 times, and each wake-up's run-queue wait lands in
 * its role's histogram. Skipped (exit 77) when BPF is not permitted or the
 * probe was not built, with the probe's own reason. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

static void *sleeper(void *arg)
{
	struct dd_tel_probe *p = arg;
	cr_assert_eq(dd_tel_probe_role(p, (int)syscall(SYS_gettid), DD_JIT_WORKER), 0);
	for (int i = 0; i < 300; i++) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void known_workload(bool raw)
{
	struct dd_tel_probe *p;
	char why[256];
	int r = dd_tel_probe_open(getpid(), NULL, NULL, &p, why, sizeof(why));
	if (r < 0)
		cr_skip_test("probe unavailable: %s", why);
	cr_assert_eq(dd_tel_probe_raw(p), raw);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, sleeper, p), 0);
	pthread_join(t, NULL);
	struct dd_jit_hist h;
	cr_assert_eq(dd_tel_probe_read(p, DD_JIT_WORKER, &h), 0);
	/* Every sleep ends in a wake-up, and a few more (the start) may
	 * count. Except one kind: when the sleeper is stalled for more than
	 * the 1 ms between computing its expiry and blocking (hypervisor
	 * steal here reaches milliseconds, under a loaded test run too), the
	 * timer fires while it still runs, and it never leaves the CPU: there
	 * is no run-queue wait to count. Seen: 293 of 300 in a parallel test
	 * run on this 2-vCPU VM; allowed: 5 %. */
	cr_assert_geq(h.count, 285, "wake-ups seen: %llu", h.count);
	cr_assert_leq(h.count, 400, "wake-ups seen: %llu", h.count);
	uint64_t slots = 0;
	for (unsigned i = 0; i < DD_JIT_SLOTS; i++)
		slots += h.slot[i];
	cr_assert_eq(slots, h.count);
	uint64_t p50 = dd_tel_jit_quantile(&h, 0.5), p99 = dd_tel_jit_quantile(&h, 0.99);
	/* a run-queue wait on an idle-ish machine: above 100 ns, below 100 ms */
	cr_assert(p50 > 100 && p50 < 100000000, "p50 %llu ns", (unsigned long long)p50);
	cr_assert(p50 <= p99 && p99 <= h.max, "p50 %llu p99 %llu max %llu",
		  (unsigned long long)p50, (unsigned long long)p99, h.max);
	struct dd_jit_hist reactor;
	cr_assert_eq(dd_tel_probe_read(p, DD_JIT_REACTOR, &reactor), 0);
	cr_assert_eq(reactor.count, 0, "no thread has that role");
	cr_assert_eq(dd_tel_probe_read(p, DD_JIT_ROLES, &reactor), -EINVAL);
	dd_tel_probe_close(p);
}

Test(probe, counts_every_wakeup_of_a_known_thread)
{
	known_workload(false);
}

/* The fallback for kernels without BTF-typed tracepoints, forced. */
Test(probe, raw_tracepoints_count_the_same)
{
	setenv("DD_PROBE_RAW", "1", 1); /* this test's own process */
	known_workload(true);
}
