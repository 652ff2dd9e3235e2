/* engine/durable/ — the shard's durable side as the rest of the engine
 * sees it: the log the reactor appends to (durable.c), recovery of jobs
 * into memory (recovery.c) and the applier thread that follows the log
 * into the store (applier.c). Each call names the thread it runs on. */
#ifndef DD_ENGINE_DURABLE_DURABLE_H
#define DD_ENGINE_DURABLE_DURABLE_H

#include "engine.h"

struct dd_cmd;
struct dd_state_recovery;
struct dd_state_store;

/* durable.c: the log, the store and the shard's io_uring (reactor side) */
int dd_durable_open(struct dd_shard *s, struct dd_state_recovery *rec);
void dd_durable_close(struct dd_shard *s);
/* recovery.c: recovered jobs back in memory, before any thread starts */
struct dd_rwait { /* a recovered WAITING job and its dependencies */
	uint64_t id;
	uint32_t ndeps;
	uint64_t *deps;
	uint8_t *kinds; /* [ndeps], or NULL: all afterok */
};
struct dd_rwaits {
	struct dd_rwait *v;
	size_t n, cap;
};
int dd_durable_load(struct dd_shard *s, struct dd_recovery *out, struct dd_rwaits *w);
/* After every shard is loaded: subscribes the waiting jobs again; frees w. */
void dd_durable_resubscribe(struct dd_shard *s, struct dd_rwaits *w);
/* @kinds: [ndeps] enum dd_dep_kind, or NULL (all afterok). */
void dd_log_submit(struct dd_shard *s, struct dd_jobrec *j, const uint64_t *deps,
		   const uint8_t *kinds, uint32_t ndeps, bool strict);
void dd_log_start(struct dd_shard *s, struct dd_jobrec *j);
void dd_log_retry(struct dd_shard *s, struct dd_jobrec *j);
void dd_log_end(struct dd_shard *s, struct dd_jobrec *j);
size_t dd_durable_poll(struct dd_shard *s);
void dd_durable_complete(struct dd_shard *s, uint64_t user_data, int res);
bool dd_durable_inflight(const struct dd_shard *s);
uint64_t dd_durable_timeout(struct dd_shard *s, uint64_t timeout);
void dd_durable_flush(struct dd_shard *s); /* at reactor exit */
bool dd_durable_evictable(struct dd_shard *s, const struct dd_jobrec *j);
void dd_durable_wait_cmd(struct dd_shard *s, struct dd_jobrec *j, struct dd_cmd *c);
void dd_durable_fail_waiters(struct dd_shard *s, int rc);
bool dd_durable_unwait(struct dd_shard *s, struct dd_cmd *c); /* took it out */
int dd_durable_error(const struct dd_shard *s); /* for submitters, any thread */
/* The store is more than @max records behind the log (any thread). */
bool dd_durable_behind(const struct dd_shard *s, size_t max);
struct dd_state_store *dd_durable_store(struct dd_shard *s);
/* Any thread: waits (up to @timeout_ns) until the store holds everything
 * logged when called. Returns whether it does. */
bool dd_durable_catch_up(struct dd_shard *s, uint64_t timeout_ns);
void dd_durable_stats(struct dd_shard *s, struct dd_shard_stats *o);
uint8_t dd_durable_level(const struct dd_shard *s);
/* Reactor: the last record appended, and the last one durable (as the
 * durability level counts it); 0 without a log. */
uint64_t dd_durable_appended(const struct dd_shard *s);
uint64_t dd_durable_lsn(const struct dd_shard *s);
/* applier.c: the shard's io thread, log -> store, retention, pruning */
int dd_applier_start(struct dd_shard *s);
void dd_applier_stop(struct dd_shard *s);

#endif
