/* engine/ — worker threads (worker.c): run in-process handlers for the
 * jobs their reactor hands them; and how many the reactor hands over. */
#ifndef DD_ENGINE_WORKER_H
#define DD_ENGINE_WORKER_H

#include "engine.h"

#define DD_WORKER_INFLIGHT 256 /* per worker, at most: see DD_HAND_AHEAD_NS */
/* How much handler time the reactor hands a worker ahead of its
 * completions, by the worker's recent mean time per job. The bound is what
 * keeps priorities meaningful: an urgent job waits behind at most this much
 * work already handed over. Short jobs go over in large batches, which is
 * what makes the hand-over cheap: a worker wakes once per batch, not once
 * per few jobs (measured: docs/BENCHMARKS.md, "Measured choices:
 * hand-ahead"). */
#define DD_HAND_AHEAD_NS 50000
#define DD_HAND_AHEAD_MIN 2 /* one running, one waiting: no idle round trip */

void *dd_worker_main(void *arg);
/* Runs j's handler on the calling thread, starting at now (the caller's
 * clock reading); fills w_start_ns and w_result. */
void dd_run_handler(struct dd_shard *s, struct dd_jobrec *j, unsigned worker, uint64_t now);
/* How many more jobs the reactor may hand w now. */
unsigned dd_worker_room(const struct dd_shard *s, const struct dd_worker *w);

#endif
