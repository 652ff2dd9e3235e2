/* engine/durable/ — what durable.c (the reactor's side of durable state)
 * and applier.c (the shard's io thread) share. Private to this folder. */
#ifndef DD_ENGINE_DURABLE_INTERNAL_H
#define DD_ENGINE_DURABLE_INTERNAL_H

#include <pthread.h>

#include "durable.h"

struct dd_ack {
	uint64_t lsn;
	uint64_t id;
	uint64_t at; /* when it was logged (reactor clock), for DD_HIST_DURABLE_ACK */
	uint8_t level;
	uint8_t held;
};

struct dd_pstart {
	struct dd_jobrec *j;
	uint64_t id;
};

struct dd_durable {
	uint8_t level;    /* the engine's */
	char dir[4096];
	struct dd_state_wal *wal;
	struct dd_state_store *store;
	struct dd_ack *acks; /* owed, in LSN order; ring buffer */
	size_t ahead, acount, acap;
	uint64_t *cb_ids;
	size_t cb_cap;
	struct dd_cmd *waiters; /* CMD_WAIT_DURABLE not yet answered */
	uint64_t seen_written, seen_synced;
	uint64_t reserve_lsn, reserve_to; /* a RESERVE on its way, 0 none */
	struct dd_pstart *pstart; /* jobs whose START record waits (see dd_log_start) */
	size_t npstart, cappstart;
	/* shared with the applier and with submitters */
	_Alignas(DD_CACHELINE) _Atomic uint64_t durable_lsn;
	_Atomic uint64_t applied_lsn;
	_Atomic uint64_t appended_lsn; /* last record put in the log's buffer */
	_Atomic int wal_err, store_err;
	_Atomic bool stop;
	_Atomic uint64_t records, batches, store_jobs, store_map;
	pthread_t applier;
	bool applier_started;
};

/* applier.c: the applier thread's body (@arg: the shard) */
void *dd_applier_main(void *arg);

#endif
