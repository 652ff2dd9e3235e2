/* The shard's io_uring: one per shard, owned by its reactor. */
#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "durable/durable.h"
#include "exec.h"
#include "state.h"
#include "supervise.h"
#include "uring.h"

#define RING_ENTRIES 256
#define OP_FUTEX_WAIT 51 /* IORING_OP_FUTEX_WAIT, Linux 6.7; newer than our liburing */
#define OP_WAITID 50     /* IORING_OP_WAITID, Linux 6.7 */
#define FUTEX2_U32_PRIVATE (0x02 | 128)

static void ring_park(void *ctx, _Atomic uint32_t *word, uint32_t expected,
		      const struct timespec *ts)
{
	struct dd_shard *s = ctx;
	struct dd_uring *r = s->uring;
	if (!r->futex_op) {
		/* no futex op in this kernel: sleep on the futex, but only briefly
		 * while I/O or a process is outstanding, since its completion
		 * cannot wake us */
		struct timespec brief = {0, 200000};
		if ((dd_durable_inflight(s) || s->nprocs) &&
		    (!ts || ts->tv_sec > 0 || ts->tv_nsec > brief.tv_nsec))
			ts = &brief;
		syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, ts, NULL, 0);
		return;
	}
	if (!r->futex_armed) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
		if (sqe) {
			io_uring_prep_rw(OP_FUTEX_WAIT, sqe, FUTEX2_U32_PRIVATE, (void *)word, 0,
					 expected);
			sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
			sqe->rw_flags = 0;
			sqe->user_data = DD_URING_TAG_FUTEX;
			r->futex_armed = true;
		}
	}
	struct io_uring_cqe *cqe;
	struct __kernel_timespec kts;
	if (ts) {
		kts.tv_sec = ts->tv_sec;
		kts.tv_nsec = ts->tv_nsec;
	}
	io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, ts ? &kts : NULL, NULL);
}

int dd_uring_open(struct dd_shard *s)
{
	struct dd_uring *r = calloc(1, sizeof(*r));
	int rc;
	if (!r)
		return -ENOMEM;
	if ((rc = io_uring_queue_init(RING_ENTRIES, &r->ring, 0)) < 0) {
		free(r);
		return rc;
	}
	struct io_uring_probe *p = io_uring_get_probe_ring(&r->ring);
	r->futex_op = p && io_uring_opcode_supported(p, OP_FUTEX_WAIT);
	/* DD_NO_WAITID=1: use the pidfd poll of older kernels (for its tests) */
	r->waitid_op = p && io_uring_opcode_supported(p, OP_WAITID) && !getenv("DD_NO_WAITID");
	io_uring_free_probe(p);
	s->uring = r;
	s->wake.park = ring_park;
	s->wake.park_ctx = s;
	return 0;
}

void dd_uring_close(struct dd_shard *s)
{
	if (!s->uring)
		return;
	io_uring_queue_exit(&s->uring->ring);
	free(s->uring);
	s->uring = NULL;
	s->wake.park = NULL;
}

struct io_uring_sqe *dd_uring_sqe(struct dd_shard *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->uring->ring);
	if (!sqe && io_uring_submit(&s->uring->ring) >= 0)
		sqe = io_uring_get_sqe(&s->uring->ring);
	return sqe;
}

size_t dd_uring_reap(struct dd_shard *s)
{
	struct dd_uring *r = s->uring;
	if (!r)
		return 0;
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&r->ring, head, cqe)
	{
		uint64_t ud = cqe->user_data;
		if (ud & DD_URING_TAG_PROC) {
			struct dd_exec_run *p = (struct dd_exec_run *)(uintptr_t)(
				ud & ~(DD_URING_TAG_PROC | DD_URING_TAG_TREE));
			if (ud & DD_URING_TAG_TREE)
				dd_exec_tree_event(s, p, cqe->res);
			else
				dd_exec_reaped(s, p, cqe->res);
		}
		else if ((ud & DD_WAL_TAG_MASK) == DD_WAL_TAG)
			dd_durable_complete(s, ud, cqe->res);
		else if (ud == DD_URING_TAG_FUTEX)
			r->futex_armed = false;
		else if ((ud & DD_URING_TAG_SUP_MASK) == DD_URING_TAG_SUP)
			dd_sup_readable(s, ud, cqe->res, cqe->flags & IORING_CQE_F_MORE);
		n++;
	}
	io_uring_cq_advance(&r->ring, n);
	return n;
}

bool dd_uring_ready(const struct dd_shard *s)
{
	return s->uring && io_uring_cq_ready(&s->uring->ring);
}
