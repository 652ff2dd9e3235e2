/* Reading the store, from any thread: a job, an idempotency key, the
 * ids in a state, the jobs not ended. */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* A read transaction; it holds the resize lock shared until read_end(). */
static int read_begin(struct dd_state_store *st, MDB_txn **t)
{
	pthread_rwlock_rdlock(&st->resize);
	int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, t);
	if (rc == MDB_MAP_RESIZED) /* another process grew it: adopt */
		rc = mdb_env_set_mapsize(st->env, 0) ?: mdb_txn_begin(st->env, NULL, MDB_RDONLY, t);
	if (rc)
		pthread_rwlock_unlock(&st->resize);
	return rc;
}

static void read_end(struct dd_state_store *st, MDB_txn *t)
{
	mdb_txn_abort(t);
	pthread_rwlock_unlock(&st->resize);
}

int dd_store_job_decode(uint64_t id, const MDB_val *d, struct dd_state_job *job)
{
	struct job_hdr h;
	if (d->mv_size < sizeof(h))
		return -EIO;
	memcpy(&h, d->mv_data, sizeof(h));
	if (sizeof(h) + h.reason_len + (size_t)h.body_len + tail_len(&h) != d->mv_size ||
	    h.reason_len >= DD_STATE_REASON_MAX)
		return -EIO;
	memset(job, 0, sizeof(*job));
	job->state = h.state;
	job->attempt = h.attempt;
	job->result = h.result;
	job->worker = h.worker;
	job->started_rt = h.started_rt;
	job->ended_rt = h.ended_rt;
	memcpy(job->reason, (const char *)d->mv_data + sizeof(h), h.reason_len);
	job->reason[h.reason_len] = 0;
	const unsigned char *body = (const unsigned char *)d->mv_data + sizeof(h) + h.reason_len;
	if (dd_logrec_decode_body(DD_LOGREC_SUBMIT, body, h.body_len, &job->spec) < 0 ||
	    job->spec.id != id)
		return -EIO;
	job->spec.not_before_rt = h.not_before_rt;
	uint64_t tail[TAIL_N] = {0};
	tail_copy((unsigned char *)(uintptr_t)(body + h.body_len), &h, tail, false);
	job->output_cut[0] = tail[TAIL_CUT0];
	job->output_cut[1] = tail[TAIL_CUT1];
	job->use = (uint8_t)((h.flags & HDR_F_CPU ? DD_LOGREC_USE_CPU : 0) |
			     (h.flags & HDR_F_MEM ? DD_LOGREC_USE_MEM : 0));
	job->cpu_ns = tail[TAIL_CPU];
	job->mem_peak = tail[TAIL_MEM];
	return 0;
}

/* Copies the value so the job outlives the read transaction. */
static int job_copy(uint64_t id, const MDB_val *d, struct dd_state_job *job, void **buf)
{
	void *copy = malloc(d->mv_size);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, d->mv_data, d->mv_size);
	MDB_val c = {d->mv_size, copy};
	int r = dd_store_job_decode(id, &c, job);
	if (r < 0) {
		free(copy);
		return r;
	}
	*buf = copy;
	return 0;
}

int dd_state_store_get(struct dd_state_store *st, uint64_t id, struct dd_state_job *job,
		       void **buf)
{
	MDB_txn *t;
	unsigned char k[8];
	be64(k, id);
	MDB_val key = {8, k}, d;
	int rc = read_begin(st, &t);
	if (rc)
		return err_of(rc);
	rc = mdb_get(t, st->jobs, &key, &d);
	int r = rc ? err_of(rc) : job_copy(id, &d, job, buf);
	read_end(st, t);
	return r;
}

int dd_state_store_idem_find(struct dd_state_store *st, uint32_t owner, const char *key,
			     uint64_t *id)
{
	MDB_txn *t;
	unsigned char kb[IDEM_KEY_BYTES];
	MDB_val k = {idem_key(kb, sizeof(kb), owner, key, strlen(key)), kb}, d;
	if (!k.mv_size)
		return -ENOENT;
	int rc = read_begin(st, &t);
	if (rc)
		return err_of(rc);
	rc = mdb_get(t, st->idem, &k, &d);
	if (rc == 0 && d.mv_size == 8)
		*id = unbe64(d.mv_data);
	read_end(st, t);
	return err_of(rc);
}

/* Succeeded jobs, from the jobs table: the ids in order, each value's
 * header says its state. Most stored jobs have succeeded, so a page of
 * them costs a few more records read than it returns. */
static int list_succeeded(MDB_txn *t, MDB_dbi jobs, uint64_t after, uint64_t *ids, size_t max,
			  size_t *n)
{
	MDB_cursor *c;
	unsigned char k[8];
	be64(k, after + 1);
	MDB_val key = {8, k}, d;
	int rc = mdb_cursor_open(t, jobs, &c);
	if (rc)
		return rc;
	rc = mdb_cursor_get(c, &key, &d, MDB_SET_RANGE);
	while (rc == 0 && *n < max) {
		struct job_hdr h;
		if (key.mv_size == 8 && d.mv_size >= sizeof(h)) {
			memcpy(&h, d.mv_data, sizeof(h));
			if (h.state == DD_STATE_SUCCEEDED)
				ids[(*n)++] = unbe64(key.mv_data);
		}
		rc = mdb_cursor_get(c, &key, &d, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc;
}

/* Any other state, from its range of bystate. */
static int list_indexed(MDB_txn *t, MDB_dbi bystate, uint8_t state, uint64_t after,
			uint64_t *ids, size_t max, size_t *n)
{
	MDB_cursor *c;
	unsigned char k[9];
	k[0] = state;
	be64(k + 1, after + 1);
	MDB_val key = {9, k}, d;
	int rc = mdb_cursor_open(t, bystate, &c);
	if (rc)
		return rc;
	rc = mdb_cursor_get(c, &key, &d, MDB_SET_RANGE);
	while (rc == 0 && *n < max && key.mv_size == 9 &&
	       ((unsigned char *)key.mv_data)[0] == state) {
		ids[(*n)++] = unbe64((unsigned char *)key.mv_data + 1);
		rc = mdb_cursor_get(c, &key, &d, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc;
}

int dd_state_store_list(struct dd_state_store *st, uint8_t state, uint64_t after, uint64_t *ids,
			size_t max, size_t *n)
{
	MDB_txn *t;
	*n = 0;
	if (after == UINT64_MAX)
		return 0;
	int rc = read_begin(st, &t);
	if (rc)
		return err_of(rc);
	rc = state == DD_STATE_SUCCEEDED ? list_succeeded(t, st->jobs, after, ids, max, n)
				: list_indexed(t, st->bystate, state, after, ids, max, n);
	read_end(st, t);
	return err_of(rc == MDB_NOTFOUND ? 0 : rc);
}

/* Walks @dbi from @start (NULL: its first key) on, one read transaction,
 * calling @step for each entry until it returns non-zero: 1 stops the
 * walk, a negative code stops it and is returned. */
struct walk {
	struct dd_state_store *st;
	MDB_txn *t;
	int (*fn)(const struct dd_state_job *job, void *arg);
	void *arg;
	uint64_t hi; /* scan_range's last id */
};

static int walk(struct walk *w, MDB_dbi dbi, MDB_val *start,
		int (*step)(struct walk *w, MDB_val *key, MDB_val *d))
{
	MDB_cursor *c;
	int rc = read_begin(w->st, &w->t), r = 0;
	if (rc)
		return err_of(rc);
	if ((rc = mdb_cursor_open(w->t, dbi, &c)) == 0) {
		MDB_val key = start ? *start : (MDB_val){0, NULL}, d;
		rc = mdb_cursor_get(c, &key, &d, start ? MDB_SET_RANGE : MDB_FIRST);
		while (rc == 0 && (r = step(w, &key, &d)) == 0)
			rc = mdb_cursor_get(c, &key, &d, MDB_NEXT);
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND || r == 1)
			rc = r = 0;
	}
	read_end(w->st, w->t);
	return r ? r : err_of(rc);
}

/* scan_live: the state index's live entries, each job from the table */
static int live_step(struct walk *w, MDB_val *key, MDB_val *d)
{
	(void)d;
	if (key->mv_size < 9 || ((unsigned char *)key->mv_data)[0] >= DD_STATE_SUCCEEDED)
		return 1;
	uint64_t id = unbe64((unsigned char *)key->mv_data + 1);
	unsigned char k[8];
	be64(k, id);
	MDB_val jk = {8, k}, jd;
	struct dd_state_job job;
	int rc = mdb_get(w->t, w->st->jobs, &jk, &jd);
	if (rc)
		return rc == MDB_NOTFOUND ? 1 : err_of(rc);
	int r = dd_store_job_decode(id, &jd, &job);
	return r ? r : w->fn(&job, w->arg);
}

int dd_state_store_scan_live(struct dd_state_store *st,
			     int (*fn)(const struct dd_state_job *job, void *arg), void *arg)
{
	struct walk w = {.st = st, .fn = fn, .arg = arg};
	return walk(&w, st->bystate, NULL, live_step);
}

/* scan_range: the table's jobs up to w->hi */
static int range_step(struct walk *w, MDB_val *key, MDB_val *d)
{
	if (key->mv_size != 8 || unbe64(key->mv_data) > w->hi)
		return 1;
	struct dd_state_job job;
	int r = dd_store_job_decode(unbe64(key->mv_data), d, &job);
	return r ? r : w->fn(&job, w->arg);
}

int dd_state_store_scan_range(struct dd_state_store *st, uint64_t lo, uint64_t hi,
			      int (*fn)(const struct dd_state_job *job, void *arg), void *arg)
{
	struct walk w = {.st = st, .fn = fn, .arg = arg, .hi = hi};
	unsigned char k[8];
	be64(k, lo);
	MDB_val start = {8, k};
	return walk(&w, st->jobs, &start, range_step);
}

size_t dd_state_store_count(struct dd_state_store *st)
{
	MDB_txn *t;
	MDB_stat ms = {0};
	if (read_begin(st, &t))
		return 0;
	mdb_stat(t, st->jobs, &ms);
	read_end(st, t);
	return ms.ms_entries;
}
