/* The LMDB store of one shard: opening it, its schema, its map's growth.
 * Written by one thread in large transactions (the applier), read by any.
 * Committed with MDB_NOMETASYNC: LMDB syncs the data pages and then writes
 * the meta page without syncing it, so a power loss can lose the newest
 * meta page (the tree then is the previous, still consistent one, and the
 * log replays onto it) but never leaves a meta page pointing at pages that
 * are not on the device — which MDB_NOSYNC could. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

static int meta_get(MDB_txn *t, MDB_dbi dbi, const char *name, uint64_t *v)
{
	MDB_val k = {strlen(name), (void *)name}, d;
	int rc = mdb_get(t, dbi, &k, &d);
	if (rc == 0 && d.mv_size == 8)
		memcpy(v, d.mv_data, 8);
	return rc;
}

int dd_store_grow(struct dd_state_store *st)
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

/* Brings a store of an older schema up to date (migrate.c), growing the
 * map when the deletions' copied pages need room, then records
 * DD_STORE_SCHEMA. */
static int upgrade(struct dd_state_store *st, uint64_t schema)
{
	bool migrated = false; /* a second round (after growing) only records */
	for (;;) {
		MDB_txn *t = NULL;
		uint64_t live = st->live, floor = st->trim_floor;
		int rc = migrated ? 0 : dd_store_migrate(st, schema);
		migrated = rc == 0;
		if (!rc && !(rc = mdb_txn_begin(st->env, NULL, 0, &t)) &&
		    (schema >= DD_STORE_SCHEMA_TRIM_FLOOR ||
		     (!(rc = dd_store_retention_start(st, t, &live, &floor)) &&
		      !(rc = meta_put(t, st->meta, "live", live)) &&
		      !(rc = meta_put(t, st->meta, "trim_floor", floor)))) &&
		    !(rc = meta_put(t, st->meta, "schema", DD_STORE_SCHEMA))) {
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
		if ((rc = dd_store_grow(st)) < 0)
			return rc;
	}
}

/* Makes data.mdb and lock.mdb in @dir where they are not there yet.
 * Returns the map size to open with: @map_initial, or an existing map's
 * size when that is larger. */
static size_t make_files(const char *dir, size_t map_initial)
{
	static const char *const files[2] = {"data.mdb", "lock.mdb"};
	size_t map = map_initial;
	bool had[2];
	for (int i = 0; i < 2; i++) {
		/* an existing map may be larger than the initial size: keep it */
		struct stat sb;
		char path[4200];
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		had[i] = lstat(path, &sb) == 0;
		if (i == 0 && had[0] && (size_t)sb.st_size > map)
			map = (size_t)sb.st_size;
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
	return map;
}

/* Opens the tables in @t and reads what the writer keeps of meta; a new
 * store gets the current schema. *schema: the store's, 0 for a new one.
 * Returns 0, -EPROTONOSUPPORT (a schema this version cannot read) or
 * another negative error. */
static int open_tables(struct dd_state_store *st, MDB_txn *t, uint64_t *schema)
{
	int rc;
	if ((rc = mdb_dbi_open(t, "meta", MDB_CREATE, &st->meta)) ||
	    (rc = mdb_dbi_open(t, "jobs", MDB_CREATE, &st->jobs)) ||
	    (rc = mdb_dbi_open(t, "bystate", MDB_CREATE, &st->bystate)) ||
	    (rc = mdb_dbi_open(t, "ended", MDB_CREATE, &st->ended)) ||
	    (rc = mdb_dbi_open(t, "idem_uid", MDB_CREATE, &st->idem)))
		return err_of(rc);
	*schema = 0;
	rc = meta_get(t, st->meta, "schema", schema);
	if (rc == 0 && *schema < DD_STORE_SCHEMA_IDEM_UID &&
	    (rc = mdb_dbi_open(t, "idem", MDB_CREATE, &st->idem_old)))
		return err_of(rc);
	if (rc == MDB_NOTFOUND) {
		if ((rc = meta_put(t, st->meta, "schema", DD_STORE_SCHEMA)))
			return err_of(rc);
	} else if (rc) {
		return err_of(rc);
	} else if (*schema < DD_STORE_SCHEMA_OWNER || *schema > DD_STORE_SCHEMA) {
		return -EPROTONOSUPPORT; /* written by another version */
	}
	st->next_seq = 1;
	meta_get(t, st->meta, "ckpt", &st->ckpt);
	meta_get(t, st->meta, "next_seq", &st->next_seq);
	meta_get(t, st->meta, "trim_floor", &st->trim_floor);
	meta_get(t, st->meta, "live", &st->live);
	/* the highest id in the jobs table (keys are big-endian ids) */
	MDB_cursor *c;
	MDB_val k, d;
	if ((rc = mdb_cursor_open(t, st->jobs, &c)))
		return err_of(rc);
	if (mdb_cursor_get(c, &k, &d, MDB_LAST) == 0 && k.mv_size == 8)
		st->max_id = unbe64(k.mv_data);
	mdb_cursor_close(c);
	return 0;
}

int dd_state_store_open(const char *dir, const struct dd_state_store_opts *o,
			struct dd_state_store **out)
{
	struct dd_state_store *st = calloc(1, sizeof(*st));
	MDB_txn *t = NULL;
	uint64_t schema = 0;
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
	st->map = make_files(dir, o->map_initial);
	if ((rc = mdb_env_set_mapsize(st->env, st->map)) ||
	    (rc = mdb_env_open(st->env, dir, MDB_NOMETASYNC | MDB_NOTLS, 0600)) ||
	    (rc = mdb_txn_begin(st->env, NULL, 0, &t)))
		goto fail_mdb;
	if ((rc = open_tables(st, t, &schema)))
		goto fail;
	rc = mdb_txn_commit(t);
	t = NULL;
	if (rc)
		goto fail_mdb;
	if (schema && schema < DD_STORE_SCHEMA && (rc = upgrade(st, schema)) < 0)
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

size_t dd_state_store_map_size(struct dd_state_store *st)
{
	return st->map;
}

int dd_state_store_sync(struct dd_state_store *st)
{
	return err_of(mdb_env_sync(st->env, 1));
}
