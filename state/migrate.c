/* Store schema upgrades, run when a store written by an older version is
 * opened. Each step can be run twice: it commits in chunks, so a crash
 * part way leaves the old schema number and the next open finishes it.
 *
 *   2 -> 3: succeeded jobs leave the bystate index. They are most of
 *           it, and writing and trimming their entries is a sixth of the
 *           store's work; the jobs table lists them instead.
 *   3 -> 4: succeeded jobs written from then on have no entry in ended
 *           (retention finds them in the jobs table, from a floor up).
 *           Every job already there keeps its entry, so the floor starts
 *           above them all; and the jobs not ended are counted.
 *   4 -> 5: idempotency keys belong to their owner. Each key of the old
 *           table ("idem", the key alone) moves to "idem_uid" under the
 *           uid of the job it names, read from that job's record; a key
 *           whose job is gone goes. Each chunk moves and deletes in one
 *           transaction, so a second run finds only what is left; the
 *           emptied old table is dropped. */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "store.h"

#define CHUNK 65536 /* deletions per transaction */

/* Deletes up to CHUNK bystate entries of @state; *left: some remain. */
static int drop_state_chunk(MDB_env *env, MDB_dbi bystate, unsigned char state, bool *left)
{
	MDB_txn *t;
	MDB_cursor *c;
	int rc = mdb_txn_begin(env, NULL, 0, &t);
	if (rc)
		return rc;
	if ((rc = mdb_cursor_open(t, bystate, &c))) {
		mdb_txn_abort(t);
		return rc;
	}
	unsigned char k[1] = {state};
	MDB_val key = {1, k}, d;
	unsigned n = 0;
	rc = mdb_cursor_get(c, &key, &d, MDB_SET_RANGE);
	while (rc == 0 && n < CHUNK && key.mv_size > 0 && *(unsigned char *)key.mv_data == state) {
		if ((rc = mdb_cursor_del(c, 0)))
			break;
		n++;
		rc = mdb_cursor_get(c, &key, &d, MDB_NEXT); /* after a delete: the one that followed */
	}
	*left = n == CHUNK;
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND) {
		mdb_txn_abort(t);
		return rc;
	}
	return mdb_txn_commit(t);
}

int dd_store_retention_start(struct dd_state_store *st, MDB_txn *t, uint64_t *live,
			     uint64_t *floor)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(t, st->bystate, &c);
	if (rc)
		return rc;
	*live = 0;
	unsigned char k[1] = {DD_STATE_WAITING}; /* the states below SUCCEEDED */
	MDB_val key = {1, k}, d;
	for (rc = mdb_cursor_get(c, &key, &d, MDB_SET_RANGE);
	     rc == 0 && key.mv_size > 0 && *(unsigned char *)key.mv_data < DD_STATE_SUCCEEDED;
	     rc = mdb_cursor_get(c, &key, &d, MDB_NEXT))
		++*live;
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	if ((rc = mdb_cursor_open(t, st->jobs, &c)))
		return rc;
	*floor = 0;
	rc = mdb_cursor_get(c, &key, &d, MDB_LAST);
	if (rc == 0 && key.mv_size == 8)
		*floor = unbe64(key.mv_data) + 1;
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Moves up to CHUNK keys from idem_old to idem under their job's owner;
 * *left: some remain. With none left, drops idem_old. */
static int move_keys_chunk(struct dd_state_store *st, bool *left)
{
	MDB_txn *t;
	MDB_cursor *c;
	int rc = mdb_txn_begin(st->env, NULL, 0, &t);
	if (rc)
		return rc;
	if ((rc = mdb_cursor_open(t, st->idem_old, &c))) {
		mdb_txn_abort(t);
		return rc;
	}
	MDB_val key, v;
	unsigned n = 0;
	rc = mdb_cursor_get(c, &key, &v, MDB_FIRST);
	while (rc == 0 && n < CHUNK) {
		uint64_t id = v.mv_size == 8 ? unbe64(v.mv_data) : 0;
		unsigned char jk[8];
		be64(jk, id);
		MDB_val jkey = {8, jk}, jv;
		struct dd_state_job job;
		unsigned char nk[512];
		size_t nlen = 0;
		if (key.mv_size > 0 && mdb_get(t, st->jobs, &jkey, &jv) == 0 &&
		    dd_store_job_decode(id, &jv, &job) == 0)
			nlen = idem_key(nk, sizeof(nk), job.spec.uid, key.mv_data, key.mv_size);
		if (nlen) {
			MDB_val nkey = {nlen, nk}, nv = {8, jk};
			rc = mdb_put(t, st->idem, &nkey, &nv, MDB_NOOVERWRITE);
			if (rc && rc != MDB_KEYEXIST)
				break;
		}
		if ((rc = mdb_cursor_del(c, 0)))
			break;
		n++;
		rc = mdb_cursor_get(c, &key, &v, MDB_NEXT); /* after a delete: the one that followed */
	}
	*left = n == CHUNK;
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND) {
		mdb_txn_abort(t);
		return rc;
	}
	if (!*left && (rc = mdb_drop(t, st->idem_old, 1))) {
		mdb_txn_abort(t);
		return rc;
	}
	return mdb_txn_commit(t);
}

int dd_store_migrate(struct dd_state_store *st, uint64_t from)
{
	int rc = 0;
	if (from < DD_STORE_SCHEMA_LEAN_BYSTATE) {
		bool left = true;
		while (left && rc == 0)
			rc = drop_state_chunk(st->env, st->bystate, DD_STATE_SUCCEEDED, &left);
	}
	if (from < DD_STORE_SCHEMA_IDEM_UID) {
		bool left = true;
		while (left && rc == 0)
			rc = move_keys_chunk(st, &left);
	}
	return rc;
}
