/* The LMDB store of one shard. Written by one thread in large transactions
 * (the applier), read by any. Committed with MDB_NOMETASYNC: LMDB syncs the
 * data pages and then writes the meta page without syncing it, so a power
 * loss can lose the newest meta page (the tree then is the previous, still
 * consistent one, and the log replays onto it) but never leaves a meta page
 * pointing at pages that are not on the device — which MDB_NOSYNC could. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>

#include "migrate.h"
#include "state.h"

/* 2: SUBMIT bodies carry the owner (uid, gid)
 * 3: succeeded jobs are not in bystate (migrate.c)
 * 4: nor, mostly, in ended: retention finds them in the jobs table, from
 *    meta "trim_floor" up; meta "live" counts the jobs not ended
 * 5: idempotency keys belong to their owner: table "idem_uid", keyed by
 *    the owner's uid (4 bytes, big-endian) then the key; "idem", keyed by
 *    the key alone, is migrated into it (migrate.c) and dropped */
#define SCHEMA 5u

struct dd_state_store {
	MDB_env *env;
	MDB_dbi meta, jobs, bystate, ended, idem;
	MDB_dbi idem_old; /* schema 4's key table, while it is migrated */
	size_t map, map_max;
	/* Resizing the map needs every transaction of this process closed:
	 * readers hold this shared, a resize holds it exclusive. */
	pthread_rwlock_t resize;
	uint64_t ckpt, next_seq; /* the writer's copies */
	/* Retention of succeeded jobs (schema 4). They have no entry in
	 * ended: trimming walks the jobs table in id order from trim_floor,
	 * below which every job either is gone or has an entry there (one
	 * that succeeds below it gets one). live: jobs not ended, so that
	 * the ended ones number jobs - live. */
	uint64_t trim_floor, live;
	int64_t live_tx; /* live's change in the transaction being applied */
	bool keep_no_ended; /* dd_state_store_opts */
	uint64_t max_id;    /* no job above it is in the jobs table */
	void (*pause)(void *); /* dd_state_store_set_pause() */
	void *pause_arg;
	unsigned pause_every;
	void (*log)(int level, const char *msg, void *arg); /* dd_state_store_opts */
	void *log_arg;
	char dir[4096];
};


/* Stored value: this header, then the reason, then the SUBMIT body, then
 * with HDR_F_CUT the two output_cut counts (a value written before they
 * existed has flags 0). */
#define HDR_F_CUT 1u
struct job_hdr {
	uint8_t state;
	uint8_t flags;
	uint8_t pad[2];
	uint32_t attempt;
	int32_t result;
	int32_t worker;
	uint64_t started_rt, ended_rt, not_before_rt;
	uint32_t reason_len;
	uint32_t body_len;
};

static int err_of(int rc)
{
	switch (rc) {
	case 0: return 0;
	case MDB_MAP_FULL: return -ENOSPC;
	case MDB_NOTFOUND: return -ENOENT;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND: return -EIO;
	default: return rc > 0 ? -rc : -EIO;
	}
}

/* LMDB turns a write cut short by a full disk into EIO ("short write").
 * Tell the two apart by asking the file system how much room is left. */
static int write_err(const struct dd_state_store *st, int rc)
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

static void be64(unsigned char *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static uint64_t unbe64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return be64toh(v);
}

/* An idempotency key as stored: the owner's uid big-endian, then the key.
 * Returns its length, 0 for no key (or one too long to store). */
static size_t idem_key(unsigned char *buf, size_t n, uint32_t owner, const char *key, size_t len)
{
	if (!len || 4 + len > n)
		return 0;
	uint32_t u = htobe32(owner);
	memcpy(buf, &u, 4);
	memcpy(buf + 4, key, len);
	return 4 + len;
}

static int meta_get(MDB_txn *t, MDB_dbi dbi, const char *name, uint64_t *v)
{
	MDB_val k = {strlen(name), (void *)name}, d;
	int rc = mdb_get(t, dbi, &k, &d);
	if (rc == 0 && d.mv_size == 8)
		memcpy(v, d.mv_data, 8);
	return rc;
}

static int meta_put(MDB_txn *t, MDB_dbi dbi, const char *name, uint64_t v)
{
	MDB_val k = {strlen(name), (void *)name}, d = {8, &v};
	return mdb_put(t, dbi, &k, &d, 0);
}

static int upgrade(struct dd_state_store *st, uint64_t schema);

int dd_state_store_open(const char *dir, const struct dd_state_store_opts *o,
			struct dd_state_store **out)
{
	struct dd_state_store *st = calloc(1, sizeof(*st));
	MDB_txn *t = NULL;
	int rc;
	if (!st)
		return -ENOMEM;
	pthread_rwlock_init(&st->resize, NULL);
	st->map_max = o->map_max;
	st->keep_no_ended = o->keep_no_ended;
	st->log = o->log;
	st->log_arg = o->log_arg;
	snprintf(st->dir, sizeof(st->dir), "%s", dir);
	if ((rc = mkdir(dir, 0700)) < 0 && errno != EEXIST) {
		rc = -errno;
		goto fail;
	}
	if ((rc = mdb_env_create(&st->env)) || (rc = mdb_env_set_maxdbs(st->env, 8)))
		goto fail_mdb;
	static const char *const files[2] = {"data.mdb", "lock.mdb"};
	bool had[2];
	for (int i = 0; i < 2; i++) {
		/* an existing map may be larger than the initial size: keep it */
		struct stat sb;
		char path[4200];
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		had[i] = lstat(path, &sb) == 0;
		if (i == 0) {
			st->map = o->map_initial;
			if (had[0] && (size_t)sb.st_size > st->map)
				st->map = (size_t)sb.st_size;
		}
	}
	for (int i = 0; i < 2; i++) {
		/* Made here, 0600 whatever the umask, before LMDB opens them (an
		 * empty file is a new store to it). Never after: closing any
		 * descriptor of lock.mdb would drop the fcntl lock LMDB holds on
		 * it in this process, and the next process to open the store
		 * would take itself for the only one and reset the lock file. */
		char path[4200];
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		int fd = had[i] ? -1
				: open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				       0600);
		if (fd >= 0) {
			fchmod(fd, 0600);
			close(fd);
		}
	}
	if ((rc = mdb_env_set_mapsize(st->env, st->map)) ||
	    (rc = mdb_env_open(st->env, dir, MDB_NOMETASYNC | MDB_NOTLS, 0600)))
		goto fail_mdb;
	if ((rc = mdb_txn_begin(st->env, NULL, 0, &t)) ||
	    (rc = mdb_dbi_open(t, "meta", MDB_CREATE, &st->meta)) ||
	    (rc = mdb_dbi_open(t, "jobs", MDB_CREATE, &st->jobs)) ||
	    (rc = mdb_dbi_open(t, "bystate", MDB_CREATE, &st->bystate)) ||
	    (rc = mdb_dbi_open(t, "ended", MDB_CREATE, &st->ended)) ||
	    (rc = mdb_dbi_open(t, "idem_uid", MDB_CREATE, &st->idem)))
		goto fail_mdb;
	uint64_t schema = 0;
	rc = meta_get(t, st->meta, "schema", &schema);
	if (rc == 0 && schema < 5 &&
	    (rc = mdb_dbi_open(t, "idem", MDB_CREATE, &st->idem_old)))
		goto fail_mdb;
	if (rc == MDB_NOTFOUND) {
		if ((rc = meta_put(t, st->meta, "schema", SCHEMA)))
			goto fail_mdb;
	} else if (rc) {
		goto fail_mdb;
	} else if (schema < 2 || schema > SCHEMA) {
		rc = -EPROTONOSUPPORT; /* written by another version */
		goto fail;
	}
	st->next_seq = 1;
	meta_get(t, st->meta, "ckpt", &st->ckpt);
	meta_get(t, st->meta, "next_seq", &st->next_seq);
	meta_get(t, st->meta, "trim_floor", &st->trim_floor);
	meta_get(t, st->meta, "live", &st->live);
	{
		/* the highest id in the jobs table (keys are big-endian ids) */
		MDB_cursor *c;
		MDB_val k, d;
		if ((rc = mdb_cursor_open(t, st->jobs, &c)))
			goto fail_mdb;
		if (mdb_cursor_get(c, &k, &d, MDB_LAST) == 0 && k.mv_size == 8)
			st->max_id = unbe64(k.mv_data);
		mdb_cursor_close(c);
	}
	rc = mdb_txn_commit(t);
	t = NULL;
	if (rc)
		goto fail_mdb;
	if (schema && schema < SCHEMA && (rc = upgrade(st, schema)) < 0)
		goto fail;
	*out = st;
	return 0;
fail_mdb:
	rc = err_of(rc);
fail:
	if (t)
		mdb_txn_abort(t);
	if (st->env)
		mdb_env_close(st->env);
	pthread_rwlock_destroy(&st->resize);
	free(st);
	return rc;
}

void dd_state_store_close(struct dd_state_store *st)
{
	if (!st)
		return;
	mdb_env_close(st->env);
	pthread_rwlock_destroy(&st->resize);
	free(st);
}

/* The write cursors of one transaction, one per table. LMDB's mdb_put()
 * and mdb_del() open a cursor per call and search the tree from its root,
 * looking each page up in the transaction's dirty list on the way down.
 * A cursor kept open stays on its leaf: the next key, which is almost
 * always on the same page (ids grow, end times grow), is found with two
 * compares and no descent (mdb_cursor_set()'s positioned case). */
struct wcur {
	MDB_cursor *jobs, *bystate, *ended, *idem;
};

static int wcur_open(struct dd_state_store *st, MDB_txn *t, struct wcur *w)
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

/* Before the transaction ends (write cursors do not outlive it). */
static void wcur_close(struct wcur *w)
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
static int state_key(MDB_cursor *c, uint8_t state, uint64_t id, bool add)
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
static int ended_entry(const struct dd_state_store *st, struct wcur *w, uint8_t state,
		       uint64_t at, uint64_t id)
{
	if (state == DD_STATE_SUCCEEDED && id >= st->trim_floor)
		return 0;
	return ended_key(w->ended, at, id);
}

/* What a change record does to a job's header. Returns false when it
 * changes nothing (a terminal job never changes; replays change nothing). */
static bool fold(struct job_hdr *h, const struct dd_logrec *r, const char **reason,
		 uint32_t *reason_len, uint64_t *cut)
{
	if (h->state >= DD_STATE_SUCCEEDED)
		return false;
	switch (r->type) {
	case DD_LOGREC_START:
		h->state = 4;
		h->attempt = r->attempt;
		h->worker = r->worker;
		h->started_rt = r->at_rt;
		return true;
	case DD_LOGREC_RETRY:
		h->state = 2;
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
		cut[0] = r->output_cut[0];
		cut[1] = r->output_cut[1];
		h->flags = (uint8_t)((h->flags & ~HDR_F_CUT) | (cut[0] || cut[1] ? HDR_F_CUT : 0));
		return true;
	default:
		return false;
	}
}

/* Writes a job record: header, reason, SUBMIT body. @body may point into
 * the map (the old record): it is copied out first when it does. */
static size_t cut_len(const struct job_hdr *h)
{
	return h->flags & HDR_F_CUT ? 16 : 0;
}

static int put_job(MDB_cursor *jobs, MDB_val *key, const struct job_hdr *h,
		   const char *reason, const unsigned char *body, bool body_in_map,
		   const struct dd_logrec *sub, const uint64_t *cut, unsigned flags)
{
	unsigned char *copy = NULL;
	if (body_in_map) {
		if (!(copy = malloc(h->body_len ? h->body_len : 1)))
			return ENOMEM;
		memcpy(copy, body, h->body_len);
		body = copy;
	}
	MDB_val d = {sizeof(*h) + h->reason_len + h->body_len + cut_len(h), NULL};
	int rc = mdb_cursor_put(jobs, key, &d, MDB_RESERVE | flags);
	if (rc == MDB_KEYEXIST && (flags & MDB_APPEND)) {
		/* not the highest id so far (lanes reorder submissions): search */
		d.mv_size = sizeof(*h) + h->reason_len + h->body_len + cut_len(h);
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
		if (cut_len(h))
			memcpy(p + sizeof(*h) + h->reason_len + h->body_len, cut, 16);
	}
	free(copy);
	return rc;
}

/* A new job, with the changes that follow it in the same transaction
 * folded in (@chain: their indexes in @recs, linked by @next; each one
 * folded is marked in @done). A job that starts and ends within one
 * batch — most of them, at a high rate — is then written once, in its
 * final state, instead of three times with its index entries moved twice. */
static int apply_submit(struct dd_state_store *st, struct wcur *w, const struct dd_logrec *recs,
			uint32_t i, const uint32_t *next, bool *done)
{
	const struct dd_logrec *r = &recs[i];
	unsigned char k[8];
	be64(k, r->id);
	MDB_val key = {8, k};
	struct job_hdr h = {0};
	h.state = r->ndeps ? 1 : r->not_before_rt ? 2 : 3; /* WAITING, DELAYED, QUEUED */
	h.worker = -1;
	h.not_before_rt = r->not_before_rt;
	h.body_len = (uint32_t)dd_logrec_encode_body(r, NULL);
	const char *reason = NULL;
	uint64_t cut[2] = {0, 0};
	for (uint32_t j = next ? next[i] : UINT32_MAX; j != UINT32_MAX; j = next[j])
		fold(&h, &recs[j], &reason, &h.reason_len, cut);
	uint64_t seq = (r->id & ((1ull << 56) - 1)) + 1;
	/* An id above every one in the table cannot be there already. Lanes
	 * may log a smaller id after a larger one: that job is written, and
	 * retention removes it as usual. */
	bool unseen = r->id > st->max_id;
	if (unseen)
		st->max_id = r->id;
	if (unseen && h.state >= DD_STATE_SUCCEEDED && st->keep_no_ended &&
	    !(r->flags & DD_LOGREC_F_EXEC)) {
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
	int rc = put_job(w->jobs, &key, &h, reason, NULL, false, r, cut,
			 MDB_NOOVERWRITE | MDB_APPEND);
	if (rc == MDB_KEYEXIST)
		return 0;
	if (rc || (rc = state_key(w->bystate, h.state, r->id, true)))
		return rc;
	for (uint32_t j = next ? next[i] : UINT32_MAX; j != UINT32_MAX; j = next[j])
		done[j] = true;
	if (h.state < DD_STATE_SUCCEEDED)
		st->live_tx++;
	else if ((rc = ended_entry(st, w, h.state, h.ended_rt, r->id)))
		return rc;
	if (r->key_len) {
		unsigned char kb[4 + 512];
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
 * were submitted at the end of the previous batch and start and end in
 * this one: two rewrites and three index changes became one of each. */
static int apply_changes(struct dd_state_store *st, struct wcur *w, const struct dd_logrec *recs,
			 uint32_t i, const uint32_t *next, bool *done)
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
	uint64_t cut[2] = {0, 0};
	if (cut_len(&h) && d.mv_size >= sizeof(h) + h.reason_len + h.body_len + 16)
		memcpy(cut, body + h.body_len, 16);
	bool changed = false;
	for (uint32_t j = i; j != UINT32_MAX; j = next ? next[j] : UINT32_MAX)
		changed |= fold(&h, &recs[j], &reason, &reason_len, cut);
	if (!changed)
		return 0;
	h.reason_len = reason_len;
	/* the cursor is on the job: MDB_CURRENT spares a second search. body
	 * points into the map: put_job copies it out before the put */
	if ((rc = put_job(w->jobs, &key, &h, reason, body, true, NULL, cut, MDB_CURRENT)))
		return rc;
	if (old != h.state && ((rc = state_key(w->bystate, old, r->id, false)) ||
			       (rc = state_key(w->bystate, h.state, r->id, true))))
		return rc;
	if (h.state >= DD_STATE_SUCCEEDED) { /* it was not: fold() changes no ended job */
		st->live_tx--;
		if ((rc = ended_entry(st, w, h.state, h.ended_rt, r->id)))
			return rc;
	}
	return 0;
}

/* Links the records of each job in a batch, in log order (next[]: the
 * chain from its first record). A chain starts at the job's SUBMIT, or,
 * when that was in an earlier batch, at its first change (head[] marks
 * those). Returns false when out of memory: then nothing is folded. */
/* Where an id's chain is looked up. A batch holds runs of consecutive ids
 * (a shard numbers its jobs in order), so the table keeps them together:
 * ids that differ only in their low 6 bits share a block of 64 slots, in
 * order, and only the block is hashed. A run of jobs then touches a few
 * cache lines of the table instead of a line each (the probes' misses were
 * half of this function); an id from elsewhere probes at most to the end
 * of a full block. */
static size_t chain_slot(uint64_t id, size_t cap)
{
	uint64_t block = ((id >> 6) * 0x9e3779b97f4a7c15ull) >> 32;
	return (size_t)((block << 6) | (id & 63)) & (cap - 1);
}

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

/* Doubles the map; the caller holds no transaction. */
static int grow(struct dd_state_store *st)
{
	if (st->map >= st->map_max)
		return -ENOSPC;
	size_t want = st->map * 2 < st->map_max ? st->map * 2 : st->map_max;
	pthread_rwlock_wrlock(&st->resize);
	int rc = mdb_env_set_mapsize(st->env, want);
	pthread_rwlock_unlock(&st->resize);
	if (rc)
		return err_of(rc);
	st->map = want;
	return 0;
}

static int job_decode(uint64_t id, const MDB_val *d, struct dd_state_job *job);

/* migrate.c's way to a job's owner (schema 4 -> 5). */
static int job_owner(uint64_t id, const MDB_val *d, uint32_t *uid)
{
	struct dd_state_job job;
	int r = job_decode(id, d, &job);
	if (r == 0)
		*uid = job.spec.uid;
	return r;
}

/* Brings a store of an older schema up to date (migrate.c), growing the
 * map when the deletions' copied pages need room, then records SCHEMA. */
static int upgrade(struct dd_state_store *st, uint64_t schema)
{
	bool migrated = false; /* a second round (after growing) only records */
	for (;;) {
		MDB_txn *t = NULL;
		uint64_t live = st->live, floor = st->trim_floor;
		struct dd_store_dbis dbis = {.jobs = st->jobs, .bystate = st->bystate,
					     .idem_old = st->idem_old, .idem = st->idem,
					     .owner = job_owner};
		int rc = migrated ? 0 : dd_store_migrate(st->env, &dbis, schema);
		migrated = rc == 0;
		if (!rc && !(rc = mdb_txn_begin(st->env, NULL, 0, &t)) &&
		    (schema >= 4 ||
		     (!(rc = dd_store_retention_start(t, st->jobs, st->bystate, &live, &floor)) &&
		      !(rc = meta_put(t, st->meta, "live", live)) &&
		      !(rc = meta_put(t, st->meta, "trim_floor", floor)))) &&
		    !(rc = meta_put(t, st->meta, "schema", SCHEMA))) {
			rc = mdb_txn_commit(t);
			t = NULL;
			if (!rc) {
				st->live = live;
				st->trim_floor = floor;
			}
		}
		if (t)
			mdb_txn_abort(t);
		if (rc != MDB_MAP_FULL)
			return err_of(rc);
		if ((rc = grow(st)) < 0)
			return rc;
	}
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
		struct wcur w;
		rc = wcur_open(st, t, &w);
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
		wcur_close(&w);
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
			rc = write_err(st, rc);
			break;
		}
		if ((rc = grow(st)) < 0)
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

int dd_state_store_sync(struct dd_state_store *st)
{
	return err_of(mdb_env_sync(st->env, 1));
}

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

static int job_decode(uint64_t id, const MDB_val *d, struct dd_state_job *job)
{
	struct job_hdr h;
	if (d->mv_size < sizeof(h))
		return -EIO;
	memcpy(&h, d->mv_data, sizeof(h));
	if (sizeof(h) + h.reason_len + (size_t)h.body_len + cut_len(&h) != d->mv_size ||
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
	if (cut_len(&h))
		memcpy(job->output_cut, body + h.body_len, 16);
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
	int r = job_decode(id, &c, job);
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
	unsigned char kb[4 + 512];
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

int dd_state_store_scan_live(struct dd_state_store *st,
			     int (*fn)(const struct dd_state_job *job, void *arg), void *arg)
{
	MDB_txn *t;
	MDB_cursor *c;
	int rc = read_begin(st, &t), r = 0;
	if (rc)
		return err_of(rc);
	if ((rc = mdb_cursor_open(t, st->bystate, &c)) == 0) {
		MDB_val key, d;
		rc = mdb_cursor_get(c, &key, &d, MDB_FIRST);
		while (rc == 0 && r == 0 && ((unsigned char *)key.mv_data)[0] < 5) {
			uint64_t id = unbe64((unsigned char *)key.mv_data + 1);
			unsigned char k[8];
			be64(k, id);
			MDB_val jk = {8, k}, jd;
			struct dd_state_job job;
			if ((rc = mdb_get(t, st->jobs, &jk, &jd)) != 0)
				break;
			if ((r = job_decode(id, &jd, &job)) == 0)
				r = fn(&job, arg);
			rc = mdb_cursor_get(c, &key, &d, MDB_NEXT);
		}
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	read_end(st, t);
	return r ? r : err_of(rc);
}

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
		int g = grow(st);
		if (g < 0)
			return r;
	}
}

/* One job's parts besides its record: its idempotency key (if it still
 * names this job) and, for a process job, its id for the caller to remove
 * the output files. @jd: its record, read before the delete. */
static int drop_extras(struct wcur *w, uint64_t id, const MDB_val *jd, uint64_t *exec_ids,
		       uint32_t *exec_att, size_t *nx, unsigned budget, uint8_t *state)
{
	struct dd_state_job job;
	unsigned char keybuf[4 + 512];
	size_t klen = 0;
	*state = 0;
	if (job_decode(id, jd, &job) == 0) {
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
	struct wcur w = {0};
	if ((rc = mdb_stat(t, st->jobs, &ms)) || (rc = wcur_open(st, t, &w)) ||
	    (rc = mdb_cursor_open(t, st->jobs, &scan))) {
		if (scan)
			mdb_cursor_close(scan);
		wcur_close(&w);
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
				    (state && (rc = state_key(w.bystate, state, id, false))))
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
	wcur_close(&w);
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
		return write_err(st, rc);
	}
	st->trim_floor = floor;
	if (nexec)
		*nexec = nx;
	return gone;
}

size_t dd_state_store_map_size(struct dd_state_store *st)
{
	return st->map;
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
