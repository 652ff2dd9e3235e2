/* Retention: ended jobs removed oldest first, by age and by count, in
 * bounded transactions. */
#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <string.h>

#include "store.h"

static long trim_once(struct dd_state_store *st, uint64_t now_rt, uint64_t max_age_ns,
		      size_t max_count, unsigned budget, uint64_t *exec_ids, uint32_t *exec_att,
		      size_t *nexec, bool *map_full);

/* Deleting copies the pages it changes, so a full map can refuse even
 * that: then the map grows (up to map_max) and the transaction is tried
 * again, as an apply would be; else retention could never make room. */
long dd_state_store_trim(struct dd_state_store *st, uint64_t now_rt, uint64_t max_age_ns,
			 size_t max_count, unsigned budget, uint64_t *exec_ids, size_t *nexec)
{
	return dd_state_store_trim_exec(st, now_rt, max_age_ns, max_count, budget, exec_ids, NULL,
					nexec);
}

long dd_state_store_trim_exec(struct dd_state_store *st, uint64_t now_rt, uint64_t max_age_ns,
			      size_t max_count, unsigned budget, uint64_t *exec_ids,
			      uint32_t *exec_att, size_t *nexec)
{
	for (;;) {
		bool full = false;
		long r = trim_once(st, now_rt, max_age_ns, max_count, budget, exec_ids, exec_att,
				   nexec, &full);
		if (!full)
			return r;
		int g = dd_store_grow(st);
		if (g < 0)
			return r;
	}
}

/* One job's parts besides its record: its idempotency key (if it still
 * names this job) and, for a process job, its id for the caller to remove
 * the output files. @jd: its record, read before the delete. */
static int drop_extras(struct dd_store_wcur *w, uint64_t id, const MDB_val *jd, uint64_t *exec_ids,
		       uint32_t *exec_att, size_t *nx, unsigned budget, uint8_t *state)
{
	struct dd_state_job job;
	unsigned char keybuf[IDEM_KEY_BYTES];
	size_t klen = 0;
	*state = 0;
	if (dd_store_job_decode(id, jd, &job) == 0) {
		*state = job.state;
		klen = idem_key(keybuf, sizeof(keybuf), job.spec.uid, job.spec.key, job.spec.key_len);
		if (exec_ids && (job.spec.flags & DD_LOGREC_F_EXEC) && *nx < budget) {
			if (exec_att)
				exec_att[*nx] = job.attempt;
			exec_ids[(*nx)++] = id;
		}
	}
	if (!klen)
		return 0;
	MDB_val ik = {klen, keybuf}, iv;
	if (mdb_cursor_get(w->idem, &ik, &iv, MDB_SET) == 0 && iv.mv_size == 8 &&
	    unbe64(iv.mv_data) == id)
		return mdb_cursor_del(w->idem, 0);
	return 0;
}

#define SCAN_SKIP 65536 /* jobs not succeeded passed over per trim */

/* The next succeeded job of the jobs table from where @c is (@rc: that
 * positioning's result), passing the floor over every other one: those
 * that ended otherwise are in ended, and those still live get an entry
 * there when they end, being below the floor by then. */
static int scan_next(MDB_cursor *c, int rc, uint64_t *floor, uint64_t *id, uint64_t *at,
		     unsigned *skipped)
{
	MDB_val k, d;
	for (; rc == 0; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		if ((rc = mdb_cursor_get(c, &k, &d, MDB_GET_CURRENT)))
			break;
		if (k.mv_size != 8 || d.mv_size < sizeof(struct job_hdr))
			continue;
		struct job_hdr h;
		memcpy(&h, d.mv_data, sizeof(h));
		*id = unbe64(k.mv_data);
		if (h.state == DD_STATE_SUCCEEDED) {
			*at = h.ended_rt;
			return 0;
		}
		if (++*skipped > SCAN_SKIP)
			return MDB_NOTFOUND; /* the next trim goes on from here */
		*floor = *id + 1;
	}
	return rc;
}

/* Removes ended jobs oldest first from two streams merged by end time:
 * the ended index (jobs that did not succeed, and succeeded ones below
 * trim_floor) and the jobs table from trim_floor (succeeded ones). */
static long trim_once(struct dd_state_store *st, uint64_t now_rt, uint64_t max_age_ns,
		      size_t max_count, unsigned budget, uint64_t *exec_ids, uint32_t *exec_att,
		      size_t *nexec, bool *map_full)
{
	MDB_txn *t;
	size_t nx = 0;
	if (nexec)
		*nexec = 0;
	MDB_stat ms;
	MDB_cursor *scan = NULL;
	long gone = 0;
	int rc = mdb_txn_begin(st->env, NULL, 0, &t);
	if (rc)
		return err_of(rc);
	struct dd_store_wcur w = {0};
	if ((rc = mdb_stat(t, st->jobs, &ms)) || (rc = dd_store_wcur_open(st, t, &w)) ||
	    (rc = mdb_cursor_open(t, st->jobs, &scan))) {
		if (scan)
			mdb_cursor_close(scan);
		dd_store_wcur_close(&w);
		mdb_txn_abort(t);
		return err_of(rc);
	}
	/* ended jobs in the store: all but the live ones */
	size_t count = ms.ms_entries > st->live ? ms.ms_entries - st->live : 0;
	uint64_t floor = st->trim_floor, bid = 0, bat = 0;
	unsigned skipped = 0;
	unsigned char fk[8];
	be64(fk, floor);
	MDB_val key = {8, fk}, d;
	int rb = scan_next(scan, mdb_cursor_get(scan, &key, &d, MDB_SET_RANGE), &floor, &bid,
			   &bat, &skipped);
	int ra = mdb_cursor_get(w.ended, &key, &d, MDB_FIRST);
	while (gone < (long)budget && (ra == 0 || rb == 0)) {
		uint64_t aat = ra == 0 ? unbe64(key.mv_data) : 0;
		bool take_a = ra == 0 && (rb != 0 || aat <= bat);
		uint64_t at = take_a ? aat : bat;
		bool old = max_age_ns && now_rt > at && now_rt - at > max_age_ns;
		if (!old && count <= max_count)
			break;
		uint8_t state = 0;
		if (take_a) {
			uint64_t id = unbe64((unsigned char *)key.mv_data + 8);
			unsigned char k[8];
			be64(k, id);
			MDB_val jk = {8, k}, jd;
			if (mdb_cursor_get(w.jobs, &jk, &jd, MDB_SET) == 0) {
				if ((rc = drop_extras(&w, id, &jd, exec_ids, exec_att, &nx, budget, &state)) ||
				    (rc = mdb_cursor_del(w.jobs, 0)) ||
				    (state && (rc = dd_store_state_key(w.bystate, state, id, false))))
					break;
				count--; /* else an entry left over from schema 3 */
			}
			if ((rc = mdb_cursor_del(w.ended, 0)))
				break;
			ra = mdb_cursor_get(w.ended, &key, &d, MDB_NEXT);
			/* the deletions may have moved the scan's page under it */
			be64(fk, bid);
			MDB_val sk = {8, fk};
			if (rb == 0)
				rb = scan_next(scan, mdb_cursor_get(scan, &sk, &d, MDB_SET_RANGE), &floor,
					       &bid, &bat, &skipped);
		} else {
			MDB_val sk, jd;
			if ((rc = mdb_cursor_get(scan, &sk, &jd, MDB_GET_CURRENT)) ||
			    (rc = drop_extras(&w, bid, &jd, exec_ids, exec_att, &nx, budget, &state)) ||
			    (rc = mdb_cursor_del(scan, 0)))
				break;
			count--;
			floor = bid + 1;
			/* after a delete the cursor is on the job that followed */
			rb = scan_next(scan, mdb_cursor_get(scan, &sk, &jd, MDB_GET_CURRENT),
				       &floor, &bid, &bat, &skipped);
		}
		gone++;
		if (ra == 0 && (rc = mdb_cursor_get(w.ended, &key, &d, MDB_GET_CURRENT)))
			break;
	}
	mdb_cursor_close(scan);
	dd_store_wcur_close(&w);
	if (rc && rc != MDB_NOTFOUND) {
		mdb_txn_abort(t);
		*map_full = rc == MDB_MAP_FULL;
		return err_of(rc);
	}
	if (gone == 0 && floor == st->trim_floor) {
		mdb_txn_abort(t);
		return 0;
	}
	if ((rc = meta_put(t, st->meta, "trim_floor", floor))) {
		mdb_txn_abort(t);
		*map_full = rc == MDB_MAP_FULL;
		return err_of(rc);
	}
	if ((rc = mdb_txn_commit(t))) {
		*map_full = rc == MDB_MAP_FULL;
		return dd_store_write_err(st, rc);
	}
	st->trim_floor = floor;
	if (nexec)
		*nexec = nx;
	return gone;
}
