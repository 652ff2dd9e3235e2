/* Applying log records to the store: one transaction per batch, the
 * records of each job folded into one write of it where they can be. */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <syslog.h>

#include "store.h"

/* LMDB turns a write cut short by a full disk into EIO ("short write").
 * Tell the two apart by asking the file system how much room is left. */
int dd_store_write_err(const struct dd_state_store *st, int rc)
{
	struct statvfs vfs;
	int r = err_of(rc);
	if (r == -EIO && statvfs(st->dir, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < (8u << 20)) {
		/* say what LMDB said too: the mapping is a guess, if a good one */
		if (st->log) {
			char msg[4400];
			snprintf(msg, sizeof(msg),
				 "store %s: %s, with %llu bytes free: taken as a full disk", st->dir,
				 mdb_strerror(rc), (unsigned long long)vfs.f_bavail * vfs.f_frsize);
			st->log(LOG_WARNING, msg, st->log_arg);
		}
		return -ENOSPC;
	}
	return r;
}

int dd_store_wcur_open(struct dd_state_store *st, MDB_txn *t, struct dd_store_wcur *w)
{
	int rc;
	memset(w, 0, sizeof(*w));
	if ((rc = mdb_cursor_open(t, st->jobs, &w->jobs)) ||
	    (rc = mdb_cursor_open(t, st->bystate, &w->bystate)) ||
	    (rc = mdb_cursor_open(t, st->ended, &w->ended)) ||
	    (rc = mdb_cursor_open(t, st->idem, &w->idem)))
		return rc;
	return 0;
}

void dd_store_wcur_close(struct dd_store_wcur *w)
{
	MDB_cursor **c[] = {&w->jobs, &w->bystate, &w->ended, &w->idem};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		if (*c[i])
			mdb_cursor_close(*c[i]);
		*c[i] = NULL;
	}
}

/* Deletes @key where it is; absent is not an error. */
static int cursor_del_key(MDB_cursor *c, MDB_val *key)
{
	MDB_val d;
	int rc = mdb_cursor_get(c, key, &d, MDB_SET);
	if (rc == MDB_NOTFOUND)
		return 0;
	return rc ? rc : mdb_cursor_del(c, 0);
}

/* Adds or removes an entry of an index (a key with an empty value). */
static int index_put(MDB_cursor *c, void *k, size_t klen, bool add)
{
	MDB_val key = {klen, k}, d = {0, ""};
	if (add)
		return mdb_cursor_put(c, &key, &d, 0);
	return cursor_del_key(c, &key);
}

/* bystate: state byte, then the id big-endian, so ids sort within a state.
 * Succeeded jobs have no entry: they are most jobs, and the jobs table,
 * in id order, lists them (dd_state_store_list) at little more cost. */
int dd_store_state_key(MDB_cursor *c, uint8_t state, uint64_t id, bool add)
{
	if (state == DD_STATE_SUCCEEDED)
		return 0;
	unsigned char k[9];
	k[0] = state;
	be64(k + 1, id);
	return index_put(c, k, sizeof(k), add);
}

/* ended: end time, then id, both big-endian: oldest first */
static int ended_key(MDB_cursor *c, uint64_t at, uint64_t id)
{
	unsigned char k[16];
	be64(k, at);
	be64(k + 8, id);
	/* jobs end in time order, so this key is almost always the last:
	 * MDB_APPEND skips the search (and refuses, cheaply, when it is not) */
	MDB_val key = {sizeof(k), k}, d = {0, ""};
	int rc = mdb_cursor_put(c, &key, &d, MDB_APPEND);
	return rc == MDB_KEYEXIST ? index_put(c, k, sizeof(k), true) : rc;
}

/* An ended job's entry in ended, which retention reads oldest first. A
 * succeeded job at or above trim_floor has none: retention finds it in
 * the jobs table (schema 4), which saves one insert and one delete for
 * most jobs. */
static int ended_entry(const struct dd_state_store *st, struct dd_store_wcur *w, uint8_t state,
		       uint64_t at, uint64_t id)
{
	if (state == DD_STATE_SUCCEEDED && id >= st->trim_floor)
		return 0;
	return ended_key(w->ended, at, id);
}

/* What a change record does to a job's header. Returns false when it
 * changes nothing (a terminal job never changes; replays change nothing). */
static bool fold(struct job_hdr *h, const struct dd_logrec *r, const char **reason,
		 uint32_t *reason_len, uint64_t *tail)
{
	if (h->state >= DD_STATE_SUCCEEDED)
		return false;
	switch (r->type) {
	case DD_LOGREC_START:
		h->state = DD_STATE_RUNNING;
		h->attempt = r->attempt;
		h->worker = r->worker;
		h->started_rt = r->at_rt;
		return true;
	case DD_LOGREC_RETRY:
		h->state = DD_STATE_DELAYED;
		h->attempt = r->attempt;
		h->not_before_rt = r->not_before_rt;
		return true;
	case DD_LOGREC_FINISH:
		h->worker = r->worker;
		h->started_rt = r->started_rt;
		/* the rest is an END's */
		__attribute__((fallthrough));
	case DD_LOGREC_END:
		h->state = r->state;
		h->result = r->result;
		h->ended_rt = r->at_rt;
		if (r->attempt > h->attempt)
			h->attempt = r->attempt;
		*reason = r->reason;
		*reason_len = r->reason_len < DD_STATE_REASON_MAX - 1 ? r->reason_len
								      : DD_STATE_REASON_MAX - 1;
		tail[TAIL_CUT0] = r->output_cut[0];
		tail[TAIL_CUT1] = r->output_cut[1];
		tail[TAIL_CPU] = r->cpu_ns;
		tail[TAIL_MEM] = r->mem_peak;
		h->flags = (uint8_t)((h->flags & ~(HDR_F_CUT | HDR_F_CPU | HDR_F_MEM)) |
				     (r->output_cut[0] || r->output_cut[1] ? HDR_F_CUT : 0) |
				     (r->use & DD_LOGREC_USE_CPU ? HDR_F_CPU : 0) |
				     (r->use & DD_LOGREC_USE_MEM ? HDR_F_MEM : 0));
		return true;
	default:
		return false;
	}
}


/* Writes a job record: header, reason, SUBMIT body. @body may point into
 * the map (the old record): it is copied out first when it does. */
static int put_job(MDB_cursor *jobs, MDB_val *key, const struct job_hdr *h,
		   const char *reason, const unsigned char *body, bool body_in_map,
		   const struct dd_logrec *sub, uint64_t *tail, unsigned flags)
{
	unsigned char *copy = NULL;
	if (body_in_map) {
		if (!(copy = malloc(h->body_len ? h->body_len : 1)))
			return ENOMEM;
		memcpy(copy, body, h->body_len);
		body = copy;
	}
	MDB_val d = {sizeof(*h) + h->reason_len + h->body_len + tail_len(h), NULL};
	int rc = mdb_cursor_put(jobs, key, &d, MDB_RESERVE | flags);
	if (rc == MDB_KEYEXIST && (flags & MDB_APPEND)) {
		/* not the highest id so far (lanes reorder submissions): search */
		d.mv_size = sizeof(*h) + h->reason_len + h->body_len + tail_len(h);
		rc = mdb_cursor_put(jobs, key, &d, MDB_RESERVE | (flags & ~(unsigned)MDB_APPEND));
	}
	if (rc == 0) {
		unsigned char *p = d.mv_data;
		memcpy(p, h, sizeof(*h));
		if (h->reason_len)
			memcpy(p + sizeof(*h), reason, h->reason_len);
		if (sub)
			dd_logrec_encode_body(sub, p + sizeof(*h) + h->reason_len);
		else
			memcpy(p + sizeof(*h) + h->reason_len, body, h->body_len);
		tail_copy(p + sizeof(*h) + h->reason_len + h->body_len, h, tail, true);
	}
	free(copy);
	return rc;
}

/* A new job, with the changes that follow it in the same transaction
 * folded in (@chain: their indexes in @recs, linked by @next; each one
 * folded is marked in @done). A job that starts and ends within one
 * batch — most of them, at a high rate — is then written once, in its
 * final state, instead of three times with its index entries moved twice. */
static int apply_submit(struct dd_state_store *st, struct dd_store_wcur *w,
			const struct dd_logrec *recs, uint32_t i, const uint32_t *next, bool *done)
{
	const struct dd_logrec *r = &recs[i];
	unsigned char k[8];
	be64(k, r->id);
	MDB_val key = {8, k};
	struct job_hdr h = {0};
	h.state = r->ndeps ? DD_STATE_WAITING : r->not_before_rt ? DD_STATE_DELAYED : DD_STATE_QUEUED;
	h.worker = -1;
	h.not_before_rt = r->not_before_rt;
	h.body_len = (uint32_t)dd_logrec_encode_body(r, NULL);
	const char *reason = NULL;
	uint64_t tail[TAIL_N] = {0};
	for (uint32_t j = next ? next[i] : UINT32_MAX; j != UINT32_MAX; j = next[j])
		fold(&h, &recs[j], &reason, &h.reason_len, tail);
	uint64_t seq = (r->id & DD_STORE_ID_SEQ_MASK) + 1;
	/* An id above every one in the table cannot be there already. Lanes
	 * may log a smaller id after a larger one: that job is written, and
	 * retention removes it as usual. */
	bool unseen = r->id > st->max_id;
	if (unseen)
		st->max_id = r->id;
	/* (an array's element is written all the same: recovery counts how
	 * far its array got from the elements the store holds) */
	if (unseen && h.state >= DD_STATE_SUCCEEDED && st->keep_no_ended &&
	    !(r->flags & (DD_LOGREC_F_EXEC | DD_LOGREC_F_ELEMENT))) {
		/* retention would remove it at its next round: write nothing.
		 * A replay finds no job and so skips it again. */
		for (uint32_t j = next ? next[i] : UINT32_MAX; j != UINT32_MAX; j = next[j])
			done[j] = true;
		if (seq > st->next_seq)
			st->next_seq = seq;
		return 0;
	}
	/* ids mostly grow, so try appending; an id already there is a replay
	 * (then its changes are applied one by one, as they come) */
	int rc = put_job(w->jobs, &key, &h, reason, NULL, false, r, tail,
			 MDB_NOOVERWRITE | MDB_APPEND);
	if (rc == MDB_KEYEXIST)
		return 0;
	if (rc || (rc = dd_store_state_key(w->bystate, h.state, r->id, true)))
		return rc;
	for (uint32_t j = next ? next[i] : UINT32_MAX; j != UINT32_MAX; j = next[j])
		done[j] = true;
	if (h.state < DD_STATE_SUCCEEDED)
		st->live_tx++;
	else if ((rc = ended_entry(st, w, h.state, h.ended_rt, r->id)))
		return rc;
	if (r->key_len) {
		unsigned char kb[IDEM_KEY_BYTES];
		MDB_val ik = {idem_key(kb, sizeof(kb), r->uid, r->key, r->key_len), kb}, iv = {8, k};
		if (ik.mv_size && (rc = mdb_cursor_put(w->idem, &ik, &iv, MDB_NOOVERWRITE)) &&
		    rc != MDB_KEYEXIST)
			return rc;
	}
	if (seq > st->next_seq)
		st->next_seq = seq;
	return 0;
}

/* The changes of a job whose SUBMIT is not in this batch: record @i and
 * those chained after it (@next; NULL: @i alone), folded into one rewrite
 * of the job and one move of its index entry. Under load most such jobs
 * are submitted at the end of the previous batch and start and end in
 * this one: one rewrite and one index change instead of two and three. */
static int apply_changes(struct dd_state_store *st, struct dd_store_wcur *w,
			 const struct dd_logrec *recs, uint32_t i, const uint32_t *next, bool *done)
{
	const struct dd_logrec *r = &recs[i];
	unsigned char k[8];
	be64(k, r->id);
	MDB_val key = {8, k}, d;
	for (uint32_t j = next ? next[i] : UINT32_MAX; j != UINT32_MAX; j = next[j])
		done[j] = true;
	int rc = mdb_cursor_get(w->jobs, &key, &d, MDB_SET);
	if (rc == MDB_NOTFOUND)
		return 0; /* trimmed already, or logged without its submit (none level) */
	if (rc)
		return rc;
	struct job_hdr h;
	memcpy(&h, d.mv_data, sizeof(h));
	uint8_t old = h.state;
	const unsigned char *body = (const unsigned char *)d.mv_data + sizeof(h) + h.reason_len;
	const char *reason = NULL;
	uint32_t reason_len = 0;
	uint64_t tail[TAIL_N] = {0};
	if (d.mv_size >= sizeof(h) + h.reason_len + h.body_len + tail_len(&h))
		tail_copy((unsigned char *)(uintptr_t)(body + h.body_len), &h, tail, false);
	bool changed = false;
	for (uint32_t j = i; j != UINT32_MAX; j = next ? next[j] : UINT32_MAX)
		changed |= fold(&h, &recs[j], &reason, &reason_len, tail);
	if (!changed)
		return 0;
	h.reason_len = reason_len;
	/* the cursor is on the job: MDB_CURRENT spares a second search. body
	 * points into the map: put_job copies it out before the put */
	if ((rc = put_job(w->jobs, &key, &h, reason, body, true, NULL, tail, MDB_CURRENT)))
		return rc;
	if (old != h.state && ((rc = dd_store_state_key(w->bystate, old, r->id, false)) ||
			       (rc = dd_store_state_key(w->bystate, h.state, r->id, true))))
		return rc;
	if (h.state >= DD_STATE_SUCCEEDED) { /* it was not: fold() changes no ended job */
		st->live_tx--;
		if ((rc = ended_entry(st, w, h.state, h.ended_rt, r->id)))
			return rc;
	}
	return 0;
}

/* Where an id's chain is looked up. A batch holds runs of consecutive ids
 * (a shard numbers its jobs in order), so the table keeps them together:
 * ids that differ only in their low 6 bits share a block of 64 slots, in
 * order, and only the block is hashed. A run of jobs then touches a few
 * cache lines of the table instead of a line each (a line each, the
 * probes' misses are half of this function); an id from elsewhere probes
 * at most to the end of a full block. */
static size_t chain_slot(uint64_t id, size_t cap)
{
	uint64_t block = ((id >> 6) * 0x9e3779b97f4a7c15ull) >> 32;
	return (size_t)((block << 6) | (id & 63)) & (cap - 1);
}

/* Links the records of each job in a batch, in log order (next[]: the
 * chain from its first record). A chain starts at the job's SUBMIT, or,
 * when that was in an earlier batch, at its first change (head[] marks
 * those). Returns false when out of memory: then nothing is folded. */
static bool chain_batch(const struct dd_logrec *recs, size_t n, uint64_t ckpt, uint32_t *next,
			bool *head)
{
	size_t cap = 64;
	while (cap < 2 * n)
		cap *= 2;
	uint64_t *hid = malloc(cap * sizeof(uint64_t));
	uint32_t *htail = malloc(cap * sizeof(uint32_t));
	bool *hsub = malloc(cap * sizeof(bool));
	if (!hid || !htail || !hsub) {
		free(hid);
		free(htail);
		free(hsub);
		return false;
	}
	for (size_t i = 0; i < cap; i++)
		htail[i] = UINT32_MAX;
	for (size_t i = 0; i < n; i++) {
		next[i] = UINT32_MAX;
		head[i] = false;
		const struct dd_logrec *r = &recs[i];
		if (r->lsn <= ckpt || r->type == DD_LOGREC_RESERVE)
			continue;
		size_t sl = chain_slot(r->id, cap);
		while (htail[sl] != UINT32_MAX && hid[sl] != r->id)
			sl = (sl + 1) & (cap - 1);
		bool fresh = htail[sl] == UINT32_MAX;
		if (r->type == DD_LOGREC_SUBMIT) {
			/* A second SUBMIT of an id is not folded. Changes before a
			 * SUBMIT (not in a log the engine writes) stay before it. */
			if (fresh || !hsub[sl]) {
				hid[sl] = r->id;
				htail[sl] = (uint32_t)i;
				hsub[sl] = true;
			}
		} else if (fresh) {
			hid[sl] = r->id;
			htail[sl] = (uint32_t)i;
			hsub[sl] = false;
			head[i] = true;
		} else {
			next[htail[sl]] = (uint32_t)i;
			htail[sl] = (uint32_t)i;
		}
	}
	free(hid);
	free(htail);
	free(hsub);
	return true;
}

void dd_state_store_set_pause(struct dd_state_store *st, void (*fn)(void *), void *arg,
			      unsigned every)
{
	st->pause = every ? fn : NULL;
	st->pause_arg = arg;
	st->pause_every = every;
}

int dd_state_store_apply(struct dd_state_store *st, const struct dd_logrec *recs, size_t n)
{
	if (n == 0)
		return 0;
	uint32_t *next = n < UINT32_MAX ? malloc(n * sizeof(uint32_t)) : NULL;
	bool *done = calloc(n, sizeof(bool)), *head = malloc(n * sizeof(bool));
	if (next && (!done || !head || !chain_batch(recs, n, st->ckpt, next, head))) {
		free(next);
		next = NULL; /* apply one by one */
	}
	int rc;
	for (;;) {
		MDB_txn *t;
		uint64_t next_seq = st->next_seq;
		if ((rc = mdb_txn_begin(st->env, NULL, 0, &t))) {
			rc = err_of(rc);
			break;
		}
		if (done)
			memset(done, 0, n * sizeof(bool));
		st->live_tx = 0;
		struct dd_store_wcur w;
		rc = dd_store_wcur_open(st, t, &w);
		size_t pause_at = st->pause ? st->pause_every : SIZE_MAX;
		for (size_t i = 0; i < n && !rc; i++) {
			if (i == pause_at) {
				st->pause(st->pause_arg);
				pause_at += st->pause_every;
			}
			if (recs[i].lsn <= st->ckpt || (done && done[i]))
				continue; /* already in the tree, or folded into its SUBMIT */
			if (recs[i].type == DD_LOGREC_RESERVE) {
				/* the id field holds a sequence bound, not a job */
				if (recs[i].id > st->next_seq)
					st->next_seq = recs[i].id;
				continue;
			}
			/* a change is either the head of its job's chain, or one
			 * a replayed SUBMIT did not fold: then applied alone */
			rc = recs[i].type == DD_LOGREC_SUBMIT
				     ? apply_submit(st, &w, recs, (uint32_t)i, next, done)
				     : apply_changes(st, &w, recs, (uint32_t)i,
						     next && head[i] ? next : NULL, done);
		}
		dd_store_wcur_close(&w);
		uint64_t last = recs[n - 1].lsn > st->ckpt ? recs[n - 1].lsn : st->ckpt;
		if (!rc)
			rc = meta_put(t, st->meta, "ckpt", last);
		if (!rc)
			rc = meta_put(t, st->meta, "next_seq", st->next_seq);
		if (!rc && st->live_tx)
			rc = meta_put(t, st->meta, "live", st->live + (uint64_t)st->live_tx);
		if (!rc) {
			rc = mdb_txn_commit(t);
			if (!rc) {
				st->ckpt = last;
				st->live += (uint64_t)st->live_tx;
				break;
			}
		} else {
			mdb_txn_abort(t);
		}
		st->next_seq = next_seq;
		if (rc != MDB_MAP_FULL) {
			rc = dd_store_write_err(st, rc);
			break;
		}
		if ((rc = dd_store_grow(st)) < 0)
			break;
	}
	free(next);
	free(done);
	free(head);
	return rc;
}

uint64_t dd_state_store_checkpoint(struct dd_state_store *st)
{
	return st->ckpt;
}

uint64_t dd_state_store_next_seq(struct dd_state_store *st)
{
	return st->next_seq;
}
