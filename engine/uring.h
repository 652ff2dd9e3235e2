/* engine/ — the shard's io_uring, shared by the log (durable/durable.c)
 * and the process executor (exec.c). The reactor also parks in it, so
 * that an I/O completion or a process exit wakes it as a submission does.
 * Private. */
#ifndef DD_ENGINE_URING_H
#define DD_ENGINE_URING_H

#include <liburing.h>

#include "engine.h"

#define DD_URING_TAG_FUTEX 0x4655545800000000ull
/* the shard's events connection to the process supervisor
 * (supervise_events.c), with the poll's generation in the low 32 bits */
#define DD_URING_TAG_SUP 0x5355505600000000ull
#define DD_URING_TAG_SUP_MASK 0xffffffff00000000ull
/* A process job's exit: the top bit, and its struct dd_exec_run * below;
 * with the low bit (the pointer's alignment leaves it free) a change of
 * its cgroup's cgroup.events instead. */
#define DD_URING_TAG_PROC (1ull << 63)
#define DD_URING_TAG_TREE 1ull

struct dd_uring {
	struct io_uring ring;
	bool futex_op;    /* the kernel can wait on a futex inside the ring (6.7) */
	bool futex_armed; /* such a wait is queued */
	bool waitid_op;   /* IORING_OP_WAITID (6.7): else poll the pidfd */
};

/* Creates s->uring and makes the reactor park in it. Returns 0 or -errno. */
int dd_uring_open(struct dd_shard *s);
void dd_uring_close(struct dd_shard *s);
/* An SQE, submitting queued ones first if the ring is full; NULL only if
 * even that fails. */
struct io_uring_sqe *dd_uring_sqe(struct dd_shard *s);
/* Reaps every completion and hands it to its owner. Returns how many. */
size_t dd_uring_reap(struct dd_shard *s);
/* A completion waits to be reaped. */
bool dd_uring_ready(const struct dd_shard *s);

#endif
