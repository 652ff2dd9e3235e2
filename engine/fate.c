/* The fate of every sequence number of a shard: not seen yet, live, ended
 * well, ended badly. It answers for jobs that have left memory (a
 * dependency on one, a command naming one) and tells "not arrived yet"
 * apart from "gone". Reactor-only.
 *
 * A page holds 65,536 sequence numbers, a byte each, while any of them may
 * still change. Every id handed out reaches the reactor (submit.c numbers
 * only claimed cells), so a page's numbers all end in time; the page is
 * then compacted to the list of its failures — most pages to nothing but
 * a shared marker. A byte per job kept for ever would grow a shard by 1 MB
 * per million jobs (10 GB an hour at 3 M jobs/s); compacted, it keeps 8 bytes
 * per 65,536 jobs plus 2 per failed one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "durable/durable.h"
#include "fate.h"
#include "state.h"
#include "stats.h"

#define PAGE_BITS 16
#define PAGE (1u << PAGE_BITS)

struct dd_fatepage {
	uint32_t settled; /* numbers whose fate is final (ended) */
	uint32_t nbad;    /* numbers that ended badly (compact: listed in bad[]) */
	uint8_t *fate;    /* a byte per number; NULL once compact */
	uint16_t bad[];   /* compact: the failed numbers' low bits, ascending */
};

/* Every number ended well: one page stands for all such pages. */
static struct dd_fatepage all_ok = {.settled = PAGE};

static bool settled(uint8_t f)
{
	return f == SEQ_ENDED_OK || f == SEQ_ENDED_BAD;
}

static size_t page_bytes(const struct dd_fatepage *pg)
{
	if (pg == &all_ok)
		return 0;
	return sizeof(*pg) + (pg->fate ? PAGE : pg->nbad * sizeof(uint16_t));
}

static void account(struct dd_shard *s, const struct dd_fatepage *old, const struct dd_fatepage *now)
{
	int64_t d = (int64_t)page_bytes(now) - (int64_t)(old ? page_bytes(old) : 0);
	dd_st_add(s, ST_FATE_BYTES, d);
}

/* Every number of page @p has ended: keep only which failed. On no memory
 * the page simply stays as it is. The reactor does this once per 65,536
 * jobs; a page without failures (counted as they came) costs no scan. */
static void compact(struct dd_shard *s, size_t p)
{
	struct dd_fatepage *pg = s->seqmap.page[p];
	uint32_t nbad = pg->nbad;
	struct dd_fatepage *c = &all_ok;
	if (nbad) {
		if (!(c = malloc(sizeof(*c) + nbad * sizeof(uint16_t))))
			return;
		*c = (struct dd_fatepage){.settled = PAGE, .nbad = nbad};
		for (uint32_t i = 0, k = 0; i < PAGE; i++)
			if (pg->fate[i] == SEQ_ENDED_BAD)
				c->bad[k++] = (uint16_t)i;
	}
	account(s, pg, c);
	free(pg->fate);
	free(pg);
	s->seqmap.page[p] = c;
}

static bool listed_bad(const struct dd_fatepage *pg, uint16_t low)
{
	size_t lo = 0, hi = pg->nbad;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (pg->bad[mid] < low)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < pg->nbad && pg->bad[lo] == low;
}

uint8_t dd_seq_get(const struct dd_shard *s, uint64_t id)
{
	uint64_t seq = id & DD_ID_SEQ_MASK;
	size_t p = (size_t)(seq >> PAGE_BITS);
	const struct dd_fatepage *pg = p < s->seqmap.npages ? s->seqmap.page[p] : NULL;
	if (!pg)
		return SEQ_UNSEEN;
	uint16_t low = (uint16_t)(seq & (PAGE - 1));
	if (pg->fate)
		return pg->fate[low];
	return listed_bad(pg, low) ? SEQ_ENDED_BAD : SEQ_ENDED_OK;
}

static int grow_dir(struct dd_shard *s, size_t p)
{
	size_t n = s->seqmap.npages ? s->seqmap.npages : 16;
	while (n <= p)
		n *= 2;
	struct dd_fatepage **pg = realloc(s->seqmap.page, n * sizeof(*pg));
	if (!pg)
		return -ENOMEM;
	memset(pg + s->seqmap.npages, 0, (n - s->seqmap.npages) * sizeof(*pg));
	s->seqmap.page = pg;
	s->seqmap.npages = n;
	return 0;
}

int dd_seq_set(struct dd_shard *s, uint64_t id, uint8_t fate)
{
	uint64_t seq = id & DD_ID_SEQ_MASK;
	size_t p = (size_t)(seq >> PAGE_BITS);
	if (p >= s->seqmap.npages && grow_dir(s, p) < 0)
		return -ENOMEM;
	struct dd_fatepage *pg = s->seqmap.page[p];
	if (!pg) {
		if (!(pg = calloc(1, sizeof(*pg))) || !(pg->fate = calloc(PAGE, 1))) {
			free(pg);
			return -ENOMEM;
		}
		s->seqmap.page[p] = pg;
		account(s, NULL, pg);
	}
	if (!pg->fate)
		return 0; /* compact: every fate in it is final */
	uint8_t *f = &pg->fate[seq & (PAGE - 1)];
	if (settled(fate) && !settled(*f))
		pg->settled++;
	else if (!settled(fate) && settled(*f))
		pg->settled--;
	if (fate == SEQ_ENDED_BAD && *f != SEQ_ENDED_BAD)
		pg->nbad++;
	else if (fate != SEQ_ENDED_BAD && *f == SEQ_ENDED_BAD)
		pg->nbad--;
	*f = fate;
	if (pg->settled == PAGE)
		compact(s, p);
	return 0;
}

uint8_t dd_seq_fate(struct dd_shard *s, uint64_t id)
{
	uint8_t f = dd_seq_get(s, id);
	struct dd_state_store *st = dd_durable_store(s);
	if (f != SEQ_UNSEEN || !st || (id & DD_ID_SEQ_MASK) >= s->first_seq)
		return f;
	/* From an earlier run and not in memory: it ended (recovery loaded
	 * every live job). The store says how, unless retention took it. */
	struct dd_state_job job;
	void *buf = NULL;
	f = SEQ_ENDED_BAD;
	if (dd_state_store_get(st, id, &job, &buf) == 0 && job.state == DD_SUCCEEDED)
		f = SEQ_ENDED_OK;
	free(buf);
	dd_seq_set(s, id, f);
	return f;
}

void dd_fate_destroy(struct dd_shard *s)
{
	for (size_t i = 0; i < s->seqmap.npages; i++) {
		struct dd_fatepage *pg = s->seqmap.page[i];
		if (pg && pg != &all_ok) {
			free(pg->fate);
			free(pg);
		}
	}
	free(s->seqmap.page);
	s->seqmap.page = NULL;
	s->seqmap.npages = 0;
}
