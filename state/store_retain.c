/* Retention: ended jobs removed oldest first, by age and by count, in
 * bounded transactions. */
#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <string.h>

#include "store.h"

/* One round of retention, in one transaction: ended jobs removed oldest
 * first from two streams merged by end time, the ended index (jobs that
 * did not succeed, and succeeded ones below trim_floor) and the scan of
 * the jobs table from trim_floor (succeeded ones). */
struct trim {
	struct dd_store_wcur w;
	MDB_cursor *scan;
	MDB_val ek;        /* the ended index's current key, while ra == 0 */
	int ra, rb;        /* 0: the ended index, the scan has a job */
	uint64_t floor;    /* trim_floor, moved up by the scan */
	uint64_t sid, sat; /* the scan's job: id, end time */
	unsigned skipped;  /* jobs not succeeded the scan passed over */
	size_t count;      /* ended jobs in the store */
	/* the process jobs removed, for the caller (at most budget) */
	uint64_t *exec_ids;
	uint32_t *exec_att;
	size_t nx;
	unsigned budget;
};

/* One job's parts besides its record: its idempotency key (if it still
 * names this job) and, for a process job, its id for the caller to remove
 * the output files. @jd: its record, read before the delete. */
static int drop_extras(struct trim *tr, uint64_t id, const MDB_val *jd, uint8_t *state)
{
	struct dd_state_job job;
	unsigned char keybuf[IDEM_KEY_BYTES];
	size_t klen = 0;
	*state = 0;
	if (dd_store_job_decode(id, jd, &job) == 0) {
		*state = job.state;
		klen = idem_key(keybuf, sizeof(keybuf), job.spec.uid, job.spec.key, job.spec.key_len);
		if (tr->exec_ids && (job.spec.flags & DD_LOGREC_F_EXEC) && tr->nx < tr->budget) {
			if (tr->exec_att)
				tr->exec_att[tr->nx] = job.attempt;
			tr->exec_ids[tr->nx++] = id;
		}
	}
	if (!klen)
		return 0;
	MDB_val ik = {klen, keybuf}, iv;
	if (mdb_cursor_get(tr->w.idem, &ik, &iv, MDB_SET) == 0 && iv.mv_size == 8 &&
	    unbe64(iv.mv_data) == id)
		return mdb_cursor_del(tr->w.idem, 0);
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

/* Opens the round's cursors and puts both streams on their first job. */
static int trim_start(struct dd_state_store *st, MDB_txn *t, struct trim *tr)
{
	MDB_stat ms;
	int rc;
	if ((rc = mdb_stat(t, st->jobs, &ms)) || (rc = dd_store_wcur_open(st, t, &tr->w)) ||
	    (rc = mdb_cursor_open(t, st->jobs, &tr->scan)))
		return rc;
	/* ended jobs in the store: all but the live ones */
	tr->count = ms.ms_entries > st->live ? ms.ms_entries - st->live : 0;
	unsigned char fk[8];
	be64(fk, tr->floor);
	MDB_val key = {8, fk}, d;
	tr->rb = scan_next(tr->scan, mdb_cursor_get(tr->scan, &key, &d, MDB_SET_RANGE), &tr->floor,
			   &tr->sid, &tr->sat, &tr->skipped);
	tr->ra = mdb_cursor_get(tr->w.ended, &tr->ek, &d, MDB_FIRST);
	return 0;
}

static void trim_close(struct trim *tr)
{
	if (tr->scan)
		mdb_cursor_close(tr->scan);
	tr->scan = NULL;
	dd_store_wcur_close(&tr->w);
}

/* Removes the job at the head of the ended index, and its entry. */
static int take_ended(struct trim *tr)
{
	uint64_t id = unbe64((unsigned char *)tr->ek.mv_data + 8);
	unsigned char k[8];
	be64(k, id);
	MDB_val jk = {8, k}, jd, d;
	uint8_t state = 0;
	int rc;
	if (mdb_cursor_get(tr->w.jobs, &jk, &jd, MDB_SET) == 0) {
		if ((rc = drop_extras(tr, id, &jd, &state)) || (rc = mdb_cursor_del(tr->w.jobs, 0)) ||
		    (state && (rc = dd_store_state_key(tr->w.bystate, state, id, false))))
			return rc;
		tr->count--; /* else an entry left over from schema 3 */
	}
	if ((rc = mdb_cursor_del(tr->w.ended, 0)))
		return rc;
	tr->ra = mdb_cursor_get(tr->w.ended, &tr->ek, &d, MDB_NEXT);
	/* the deletions may have moved the scan's page under it */
	unsigned char fk[8];
	be64(fk, tr->sid);
	MDB_val sk = {8, fk};
	if (tr->rb == 0)
		tr->rb = scan_next(tr->scan, mdb_cursor_get(tr->scan, &sk, &d, MDB_SET_RANGE),
				   &tr->floor, &tr->sid, &tr->sat, &tr->skipped);
	return 0;
}

/* Removes the succeeded job the scan is on, and moves the floor past it. */
static int take_scanned(struct trim *tr)
{
	MDB_val sk, jd;
	uint8_t state;
	int rc;
	if ((rc = mdb_cursor_get(tr->scan, &sk, &jd, MDB_GET_CURRENT)) ||
	    (rc = drop_extras(tr, tr->sid, &jd, &state)) || (rc = mdb_cursor_del(tr->scan, 0)))
		return rc;
	tr->count--;
	tr->floor = tr->sid + 1;
	/* after a delete the cursor is on the job that followed */
	tr->rb = scan_next(tr->scan, mdb_cursor_get(tr->scan, &sk, &jd, MDB_GET_CURRENT), &tr->floor,
			   &tr->sid, &tr->sat, &tr->skipped);
	return 0;
}

/* Ends the round's transaction: aborted after an error (@rc) or when it
 * changed nothing, else committed with the floor where the scan left it. */
static long trim_end(struct dd_state_store *st, MDB_txn *t, const struct trim *tr, int rc,
		     long gone, size_t *nexec, bool *map_full)
{
	if (rc && rc != MDB_NOTFOUND) {
		mdb_txn_abort(t);
		*map_full = rc == MDB_MAP_FULL;
		return err_of(rc);
	}
	if (gone == 0 && tr->floor == st->trim_floor) {
		mdb_txn_abort(t);
		return 0;
	}
	if ((rc = meta_put(t, st->meta, "trim_floor", tr->floor))) {
		mdb_txn_abort(t);
		*map_full = rc == MDB_MAP_FULL;
		return err_of(rc);
	}
	if ((rc = mdb_txn_commit(t))) {
		*map_full = rc == MDB_MAP_FULL;
		return dd_store_write_err(st, rc);
	}
	st->trim_floor = tr->floor;
	if (nexec)
		*nexec = tr->nx;
	return gone;
}

/* Removes up to @budget ended jobs, oldest first, while they are older
 * than @max_age_ns or more than @max_count. */
static long trim_once(struct dd_state_store *st, uint64_t now_rt, uint64_t max_age_ns,
		      size_t max_count, unsigned budget, uint64_t *exec_ids, uint32_t *exec_att,
		      size_t *nexec, bool *map_full)
{
	MDB_txn *t;
	if (nexec)
		*nexec = 0;
	int rc = mdb_txn_begin(st->env, NULL, 0, &t);
	if (rc)
		return err_of(rc);
	struct trim tr = {.floor = st->trim_floor, .exec_ids = exec_ids, .exec_att = exec_att,
			  .budget = budget};
	if ((rc = trim_start(st, t, &tr))) {
		trim_close(&tr);
		mdb_txn_abort(t);
		return err_of(rc);
	}
	long gone = 0;
	while (gone < (long)budget && (tr.ra == 0 || tr.rb == 0)) {
		uint64_t eat = tr.ra == 0 ? unbe64(tr.ek.mv_data) : 0;
		bool from_ended = tr.ra == 0 && (tr.rb != 0 || eat <= tr.sat);
		uint64_t at = from_ended ? eat : tr.sat;
		bool old = max_age_ns && now_rt > at && now_rt - at > max_age_ns;
		if (!old && tr.count <= max_count)
			break;
		if ((rc = from_ended ? take_ended(&tr) : take_scanned(&tr)))
			break;
		gone++;
		MDB_val d;
		if (tr.ra == 0 && (rc = mdb_cursor_get(tr.w.ended, &tr.ek, &d, MDB_GET_CURRENT)))
			break;
	}
	trim_close(&tr);
	return trim_end(st, t, &tr, rc, gone, nexec, map_full);
}

long dd_state_store_trim(struct dd_state_store *st, uint64_t now_rt, uint64_t max_age_ns,
			 size_t max_count, unsigned budget, uint64_t *exec_ids, size_t *nexec)
{
	return dd_state_store_trim_exec(st, now_rt, max_age_ns, max_count, budget, exec_ids, NULL,
					nexec);
}

/* Deleting copies the pages it changes, so a full map can refuse even
 * that: then the map grows (up to map_max) and the transaction is tried
 * again, as an apply would be; else retention could never make room. */
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
