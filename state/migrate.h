/* Upgrades of the LMDB store's schema (store.c's private helper). */
#ifndef DD_STATE_MIGRATE_H
#define DD_STATE_MIGRATE_H

#include <lmdb.h>
#include <stdint.h>

/* The tables a migration touches, and how to read a job's owner from its
 * record in jobs (store.c's format): 0, or an error for a record that
 * cannot be read. */
struct dd_store_dbis {
	MDB_dbi jobs, bystate;
	MDB_dbi idem_old; /* schema 4's key table, opened when from < 5 */
	MDB_dbi idem;     /* keys by owner (schema 5) */
	int (*owner)(uint64_t id, const MDB_val *job, uint32_t *uid);
};

/* Brings the tables of a store written at schema @from up to date, in
 * transactions of its own. Returns 0 or an LMDB error; the caller then
 * records the new schema number. */
int dd_store_migrate(MDB_env *env, const struct dd_store_dbis *d, uint64_t from);
/* 3 -> 4, in @t: *live = the jobs not ended (bystate's states below
 * SUCCEEDED), *floor = one above the highest id in @jobs. */
int dd_store_retention_start(MDB_txn *t, MDB_dbi jobs, MDB_dbi bystate, uint64_t *live,
			     uint64_t *floor);

#endif
