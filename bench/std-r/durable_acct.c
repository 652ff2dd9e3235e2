#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "dd_clock.h"
#include "durable_acct.h"

#define SHARD_SHIFT 56 /* ids carry their shard in the high bits */

static _Atomic uint64_t **intended; /* [shard][seq - base[shard]] */
static _Atomic uint64_t *base;        /* first seq seen per shard, +1 */
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
	base = calloc(shards, sizeof(*base));
	if (!intended || !base)
		return -ENOMEM;
	nshards = shards;
	cap = per_shard;
	dd_tel_hist_reset(&hist); /* a sweep's runs each start afresh */
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
	free((void *)base);
	intended = NULL;
	base = NULL;
}

/* Index of @id in its shard's array, or cap if out of range. A state dir
 * that was used before numbers on from where it stopped: index from the
 * first id the generator saw. */
static uint64_t slot(unsigned sh, uint64_t id)
{
	uint64_t seq = id & ((1ull << SHARD_SHIFT) - 1);
	uint64_t b = atomic_load_explicit(&base[sh], memory_order_acquire);
	if (!b)
		return cap;
	return seq + 1 >= b && seq + 1 - b < cap ? seq + 1 - b : cap;
}

void acct_submitted(uint64_t id, uint64_t intended_ns)
{
	unsigned sh = (unsigned)(id >> SHARD_SHIFT);
	if (sh >= nshards)
		return;
	uint64_t zero = 0, seq = id & ((1ull << SHARD_SHIFT) - 1);
	atomic_compare_exchange_strong(&base[sh], &zero, seq + 1); /* the first one */
	seq = slot(sh, id);
	if (seq < cap)
		atomic_store_explicit(&intended[sh][seq], intended_ns, memory_order_release);
}

static _Atomic int lock; /* shards > 1: their reactors share the histogram */

void acct_on_durable(const uint64_t *ids, size_t n, void *arg)
{
	(void)arg;
	uint64_t now = dd_mono_ns();
	while (atomic_exchange_explicit(&lock, 1, memory_order_acquire))
		;
	for (size_t i = 0; i < n; i++) {
		unsigned sh = (unsigned)(ids[i] >> SHARD_SHIFT);
		if (sh >= nshards)
			continue;
		uint64_t seq = slot(sh, ids[i]);
		if (seq >= cap)
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
