#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "durable_acct.h"

#define SHARD_SHIFT 56 /* ids carry their shard in the high bits */

static _Atomic uint64_t **intended; /* [shard][seq] */
static unsigned nshards;
static uint64_t cap, from, to;
static struct dd_tel_hist hist; /* written by reactors: one shard, or a lock */

void acct_window(uint64_t from_ns, uint64_t to_ns)
{
	from = from_ns;
	to = to_ns;
}

int acct_init(unsigned shards, uint64_t per_shard)
{
	intended = calloc(shards, sizeof(*intended));
	if (!intended)
		return -ENOMEM;
	nshards = shards;
	cap = per_shard;
	for (unsigned i = 0; i < shards; i++)
		if (!(intended[i] = calloc(per_shard, sizeof(uint64_t))))
			return -ENOMEM;
	return 0;
}

void acct_free(void)
{
	for (unsigned i = 0; intended && i < nshards; i++)
		free((void *)intended[i]);
	free(intended);
	intended = NULL;
}

void acct_submitted(uint64_t id, uint64_t intended_ns)
{
	unsigned sh = (unsigned)(id >> SHARD_SHIFT);
	uint64_t seq = id & ((1ull << SHARD_SHIFT) - 1);
	if (sh < nshards && seq < cap)
		atomic_store_explicit(&intended[sh][seq], intended_ns, memory_order_release);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static _Atomic int lock; /* shards > 1: their reactors share the histogram */

void acct_on_durable(const uint64_t *ids, size_t n, void *arg)
{
	(void)arg;
	uint64_t now = now_ns();
	while (atomic_exchange_explicit(&lock, 1, memory_order_acquire))
		;
	for (size_t i = 0; i < n; i++) {
		unsigned sh = (unsigned)(ids[i] >> SHARD_SHIFT);
		uint64_t seq = ids[i] & ((1ull << SHARD_SHIFT) - 1);
		if (sh >= nshards || seq >= cap)
			continue;
		uint64_t t = atomic_load_explicit(&intended[sh][seq], memory_order_acquire);
		if (t && t >= from && t < to && now >= t)
			dd_tel_hist_record(&hist, now - t);
	}
	atomic_store_explicit(&lock, 0, memory_order_release);
}

const struct dd_tel_hist *acct_hist(void)
{
	return &hist;
}
