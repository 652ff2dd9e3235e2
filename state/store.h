/* The LMDB store's private header: the handle and the record format that
 * store_open.c (environment, schema, growth), store_apply.c (applying log
 * records), store_read.c (reads), store_retain.c (retention) and
 * migrate.c (schema upgrades) share. Nothing outside state/store*.c and
 * migrate.c includes it. */
#ifndef DD_STATE_STORE_H
#define DD_STATE_STORE_H

#include <endian.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "state.h"

/* The store's schema versions (meta "schema"); an older one is upgraded
 * when opened (migrate.c), a newer one refused. */
enum {
	/* SUBMIT bodies carry the owner (uid, gid): the oldest opened */
	DD_STORE_SCHEMA_OWNER = 2,
	/* succeeded jobs are not in bystate */
	DD_STORE_SCHEMA_LEAN_BYSTATE = 3,
	/* nor, mostly, in ended: retention finds them in the jobs table, from
	 * meta "trim_floor" up; meta "live" counts the jobs not ended */
	DD_STORE_SCHEMA_TRIM_FLOOR = 4,
	/* idempotency keys belong to their owner: table "idem_uid", keyed by
	 * the owner's uid (4 bytes, big-endian) then the key; "idem", keyed
	 * by the key alone, is migrated into it and dropped */
	DD_STORE_SCHEMA_IDEM_UID = 5,
	DD_STORE_SCHEMA = DD_STORE_SCHEMA_IDEM_UID, /* the one written */
};

/* An id's sequence number within its shard: the bits below the shard's
 * (engine.h's DD_ID_SHARD_SHIFT). */
#define DD_STORE_ID_SEQ_MASK ((1ull << 56) - 1)

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
 * a tail of the values its flags name, in this order: with HDR_F_CUT the
 * two output_cut counts, with HDR_F_CPU the last attempt's CPU time, with
 * HDR_F_MEM its memory peak (a value written before they existed has
 * flags 0). */
#define HDR_F_CUT 1u
#define HDR_F_CPU 2u
#define HDR_F_MEM 4u
enum { TAIL_CUT0, TAIL_CUT1, TAIL_CPU, TAIL_MEM, TAIL_N };
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

static inline size_t tail_len(const struct job_hdr *h)
{
	return (h->flags & HDR_F_CUT ? 16u : 0) + (h->flags & HDR_F_CPU ? 8u : 0) +
	       (h->flags & HDR_F_MEM ? 8u : 0);
}

/* Copies between the tail at @p (the flags of @h) and @t[TAIL_N]; @out:
 * from @t to @p. */
static inline void tail_copy(unsigned char *p, const struct job_hdr *h, uint64_t *t, bool out)
{
	static const struct { unsigned flag, first, n; } part[] = {
		{HDR_F_CUT, TAIL_CUT0, 2}, {HDR_F_CPU, TAIL_CPU, 1}, {HDR_F_MEM, TAIL_MEM, 1}};
	for (size_t i = 0; i < sizeof(part) / sizeof(part[0]); i++) {
		if (!(h->flags & part[i].flag))
			continue;
		if (out)
			memcpy(p, t + part[i].first, 8u * part[i].n);
		else
			memcpy(t + part[i].first, p, 8u * part[i].n);
		p += 8u * part[i].n;
	}
}

/* An LMDB return code as 0 or -errno. */
static inline int err_of(int rc)
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

static inline void be64(unsigned char *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static inline uint64_t unbe64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return be64toh(v);
}

/* An idempotency key as stored: the owner's uid big-endian, then the key.
 * Returns its length, 0 for no key (or one too long to store). */
static inline size_t idem_key(unsigned char *buf, size_t n, uint32_t owner, const char *key,
			      size_t len)
{
	if (!len || 4 + len > n)
		return 0;
	uint32_t u = htobe32(owner);
	memcpy(buf, &u, 4);
	memcpy(buf + 4, key, len);
	return 4 + len;
}

/* Room for a stored idempotency key: the owner's uid, then the key. */
#define IDEM_KEY_BYTES (4 + 512)

static inline int meta_put(MDB_txn *t, MDB_dbi dbi, const char *name, uint64_t v)
{
	MDB_val k = {strlen(name), (void *)name}, d = {8, &v};
	return mdb_put(t, dbi, &k, &d, 0);
}

/* The write cursors of one transaction, one per table (store_apply.c).
 * LMDB's mdb_put() and mdb_del() open a cursor per call and search the
 * tree from its root, looking each page up in the transaction's dirty
 * list on the way down. A cursor kept open stays on its leaf: the next
 * key, which is almost always on the same page (ids grow, end times
 * grow), is found with two compares and no descent (mdb_cursor_set()'s
 * positioned case). */
struct dd_store_wcur {
	MDB_cursor *jobs, *bystate, *ended, *idem;
};
int dd_store_wcur_open(struct dd_state_store *st, MDB_txn *t, struct dd_store_wcur *w);
/* Before the transaction ends (write cursors do not outlive it). */
void dd_store_wcur_close(struct dd_store_wcur *w);
/* Adds or removes a job's bystate entry (none for a succeeded job). */
int dd_store_state_key(MDB_cursor *c, uint8_t state, uint64_t id, bool add);
/* err_of() for a failed write, telling a full disk from other EIO. */
int dd_store_write_err(const struct dd_state_store *st, int rc);

/* Doubles the map, up to map_max; the caller holds no transaction
 * (store_open.c). Returns 0 or -ENOSPC (at map_max) or another error. */
int dd_store_grow(struct dd_state_store *st);

/* A stored job's value, decoded (store_read.c). job->spec points into
 * @d. Returns 0 or -EIO for a value that is not a job record of @id. */
int dd_store_job_decode(uint64_t id, const MDB_val *d, struct dd_state_job *job);

/* Schema upgrades (migrate.c). dd_store_migrate() brings the tables of a
 * store written at schema @from up to date, in transactions of its own;
 * returns 0 or an LMDB error, and the caller then records DD_STORE_SCHEMA. */
int dd_store_migrate(struct dd_state_store *st, uint64_t from);
/* 3 -> 4, in @t: *live = the jobs not ended (bystate's states below
 * SUCCEEDED), *floor = one above the highest id in jobs. */
int dd_store_retention_start(struct dd_state_store *st, MDB_txn *t, uint64_t *live,
			     uint64_t *floor);

#endif
