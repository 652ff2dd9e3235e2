/* The reactor's side of durable state (DESIGN.md section 4): it appends a
 * record per transition to the shard's log, drives the log's batches
 * through the shard's io_uring, and releases durability acknowledgements
 * (callback, dd_wait_durable, strict starts) when the fsync of the batch
 * holding a submission completes — never before. The ring is the shard's
 * (uring.c), which the reactor also parks in. */
#include <endian.h>
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "array.h"
#include "command.h"
#include "internal.h"
#include "jobtab.h"
#include "lifecycle.h"
#include "state.h"
#include "stats.h"
#include "trust.h"
#include "uring.h"

_Static_assert(DD_STATE_SUCCEEDED == DD_SUCCEEDED, "the store numbers states as the API does");

#define FLUSH_LIMIT_NS 10000000000ull
#define RESERVE_CHUNK (1ull << 20) /* ids reserved per RESERVE record */

static uint64_t rt_now(const struct dd_shard *s)
{
	return (uint64_t)((int64_t)s->now + s->rt_offset);
}

/* ---- opening, recovery ---- */

int dd_durable_open(struct dd_shard *s, struct dd_state_recovery *rec)
{
	const struct dd_config *c = &s->eng->cfg;
	struct dd_durable *d = aligned_alloc(DD_CACHELINE, sizeof(*d));
	char path[4200];
	int r;
	if (!d)
		return -ENOMEM;
	memset(d, 0, sizeof(*d));
	s->dur = d;
	d->level = (uint8_t)c->durability;
	snprintf(d->dir, sizeof(d->dir), "%s/shard-%u", s->eng->state_dir, s->index);
	/* its dirs made and everything in them checked before anything is read */
	if ((r = dd_trust_shard(s->eng, s->index)) < 0)
		return r;
	struct dd_state_store_opts so = {.map_initial = c->map_initial,
					 .map_max = c->map_max,
					 .keep_no_ended = c->store_retain_count == 0,
					 .log = dd_log_state,
					 .log_arg = s->eng};
	snprintf(path, sizeof(path), "%s/store", d->dir);
	if ((r = dd_state_store_open(path, &so, &d->store)) < 0) {
		dd_log(s->eng, LOG_ERR, "cannot open the store %s: %s", path, dd_strerror(r));
		return r;
	}
	snprintf(path, sizeof(path), "%s/wal", d->dir);
	r = dd_state_recover(path, d->store, rec);
	if (rec->torn)
		dd_log(s->eng, LOG_WARNING,
		       "log %s: %s in segment %016llx.wal at offset %llu; recovered up to LSN "
		       "%llu, the rest is cut off",
		       path, rec->torn_why, (unsigned long long)rec->torn_segment,
		       (unsigned long long)rec->torn_offset, (unsigned long long)rec->last_lsn);
	if (r < 0) {
		dd_log(s->eng, LOG_ERR, "cannot recover the log %s: %s", path, dd_strerror(r));
		return r;
	}
	if (!s->uring)
		return -ENOSYS; /* the shard has no io_uring: see dd_uring_open() */
	if ((r = dd_state_wal_open(path, c->segment_bytes, d->level == DD_DURABILITY_FSYNC,
				   &rec->pos, &s->uring->ring, &d->wal)) < 0)
		return r;
	atomic_init(&d->durable_lsn, rec->last_lsn);
	atomic_init(&d->applied_lsn, dd_state_store_checkpoint(d->store));
	atomic_init(&d->appended_lsn, rec->last_lsn);
	d->seen_written = d->seen_synced = rec->last_lsn;
	s->first_seq = dd_state_store_next_seq(d->store);
	atomic_store(&s->next_seq, s->first_seq);
	atomic_store(&s->reserved_seq, s->first_seq); /* none yet: see reserve() */
	return 0;
}

void dd_durable_close(struct dd_shard *s)
{
	struct dd_durable *d = s->dur;
	if (!d)
		return;
	dd_applier_stop(s);
	dd_state_wal_close(d->wal);
	dd_state_store_close(d->store);
	free(d->acks);
	free(d->cb_ids);
	free(d->pstart);
	free(d);
	s->dur = NULL;
}

/* ---- appending ---- */

static int append(struct dd_shard *s, struct dd_logrec *r)
{
	struct dd_durable *d = s->dur;
	int rc = dd_state_wal_append(d->wal, r);
	if (rc < 0) {
		atomic_store_explicit(&d->wal_err, rc, memory_order_relaxed);
		return rc;
	}
	atomic_store_explicit(&d->records, atomic_load_explicit(&d->records, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_store_explicit(&d->appended_lsn, r->lsn, memory_order_relaxed);
	return 0;
}

static int ack_push(struct dd_durable *d, const struct dd_ack *a)
{
	if (d->acount == d->acap) {
		size_t cap = d->acap ? d->acap * 2 : 1024;
		struct dd_ack *n = malloc(cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (size_t i = 0; i < d->acount; i++)
			n[i] = d->acks[(d->ahead + i) & (d->acap - 1)];
		free(d->acks);
		d->acks = n;
		d->acap = cap;
		d->ahead = 0;
	}
	d->acks[(d->ahead + d->acount++) & (d->acap - 1)] = *a;
	return 0;
}

void dd_log_submit(struct dd_shard *s, struct dd_jobrec *j, const uint64_t *deps,
		   const uint8_t *kinds, uint32_t ndeps, bool strict)
{
	struct dd_durable *d = s->dur;
	const char *kind = s->eng->handlers[j->handler].name;
	struct dd_logrec r = {
		.type = DD_LOGREC_SUBMIT, .id = j->id, .at_rt = rt_now(s),
		.not_before_rt = j->not_before_ns ? (uint64_t)((int64_t)j->not_before_ns + s->rt_offset) : 0,
		.timeout_ns = j->timeout_ns, .backoff_ns = j->backoff_ns,
		.backoff_max_ns = j->backoff_max_ns, .max_attempts = j->max_attempts,
		.priority = j->priority,
		.flags = (strict ? DD_LOGREC_F_STRICT : 0) | ((j->flags & JF_EXEC) ? DD_LOGREC_F_EXEC : 0),
		.uid = j->uid, .gid = j->gid,
		.kind = kind, .kind_len = (uint32_t)strlen(kind),
		.payload = j->payload, .payload_len = j->payload_len,
		.deps = (const unsigned char *)deps, .ndeps = ndeps, .dep_kinds = kinds,
		.key = j->key, .key_len = j->key ? (uint32_t)strlen(j->key) : 0,
	};
	if (kinds)
		r.flags |= DD_LOGREC_F_DEPKINDS;
	if (j->name) {
		r.flags |= DD_LOGREC_F_NAME;
		r.name = j->name;
		r.name_len = (uint32_t)strlen(j->name);
	}
	uint32_t ranges[DD_ARRAY_RANGES_MAX * 3];
	const struct dd_array *arr = j->arr;
	if (arr && arr->parent == j) {
		r.flags |= DD_LOGREC_F_ARRAY;
		r.array_max = arr->max_running;
		r.array_nranges = arr->nranges;
		for (unsigned i = 0; i < arr->nranges; i++) {
			ranges[3 * i] = htole32(arr->ranges[i].first);
			ranges[3 * i + 1] = htole32(arr->ranges[i].last);
			ranges[3 * i + 2] = htole32(arr->ranges[i].step);
		}
		r.array_ranges = (const unsigned char *)ranges;
	} else if (arr) {
		r.flags |= DD_LOGREC_F_ELEMENT;
		r.array_id = arr->id;
		r.array_ord = (uint32_t)(j->id - arr->id - 1);
		r.array_index = dd_array_index(arr, r.array_ord);
	}
	if (append(s, &r) < 0)
		return; /* not logged: the caller fails the job */
	j->flags |= JF_LOGGED;
	j->sub_lsn = r.lsn;
	struct dd_ack a = {.lsn = r.lsn, .id = j->id, .at = s->now, .level = j->level, .held = strict};
	if (ack_push(d, &a) < 0 && strict)
		j->sub_lsn = 0; /* cannot track it: start it now rather than never */
	if (strict && j->sub_lsn) {
		j->flags |= JF_HELD;
		j->deps_unmet++;
	}
}

static void log_start_now(struct dd_shard *s, struct dd_jobrec *j)
{
	struct dd_logrec r = {.type = DD_LOGREC_START, .id = j->id,
			   .at_rt = (uint64_t)((int64_t)j->started_ns + s->rt_offset),
			   .attempt = j->attempt, .worker = j->worker};
	j->start_pending = false;
	append(s, &r);
}

/* A START record is not appended when the attempt begins, but when the
 * log batch it would be in is about to be written (dd_durable_poll). A
 * job that ends before then, as most short jobs do, logs one FINISH
 * record (START and END in one) instead of the two: a third fewer records
 * to encode, write, read back and apply. Nothing is lost by the wait: a
 * record is only safe once its batch is written, and the START goes in
 * the very batch it would have gone in, or ends up folded into the
 * FINISH in that same batch. */
void dd_log_start(struct dd_shard *s, struct dd_jobrec *j)
{
	struct dd_durable *d = s->dur;
	if (!(j->flags & JF_LOGGED) || j->start_pending)
		return;
	if (d->npstart == d->cappstart) {
		size_t cap = d->cappstart ? 2 * d->cappstart : 256;
		struct dd_pstart *n = realloc(d->pstart, cap * sizeof(*n));
		if (!n) {
			log_start_now(s, j); /* no room to wait: as before */
			return;
		}
		d->pstart = n;
		d->cappstart = cap;
	}
	d->pstart[d->npstart++] = (struct dd_pstart){j, j->id};
	j->start_pending = true;
}

/* The STARTs still waiting, before their batch is written. A job whose
 * record changed hands since is skipped by its id. */
static void flush_starts(struct dd_shard *s)
{
	struct dd_durable *d = s->dur;
	for (size_t i = 0; i < d->npstart; i++) {
		struct dd_jobrec *j = d->pstart[i].j;
		if (j->id == d->pstart[i].id && j->start_pending)
			log_start_now(s, j);
	}
	d->npstart = 0;
}

void dd_log_retry(struct dd_shard *s, struct dd_jobrec *j)
{
	if (!(j->flags & JF_LOGGED))
		return;
	if (j->start_pending)
		log_start_now(s, j); /* its worker and start time, as they were */
	struct dd_logrec r = {.type = DD_LOGREC_RETRY, .id = j->id, .at_rt = rt_now(s),
			   .attempt = j->attempt,
			   .not_before_rt = (uint64_t)((int64_t)j->not_before_ns + s->rt_offset)};
	append(s, &r);
}

void dd_log_end(struct dd_shard *s, struct dd_jobrec *j)
{
	if (!(j->flags & JF_LOGGED))
		return;
	/* Stopping is not an ending: the job stays in the log as it was and
	 * resumes (or is retried) when the state dir is opened again. A
	 * START still waiting goes to the log with the next batch. */
	if (j->reason == dd_reason[R_SHUTDOWN])
		return;
	struct dd_logrec r = {.type = DD_LOGREC_END, .id = j->id,
			   .at_rt = (uint64_t)((int64_t)j->ended_ns + s->rt_offset),
			   .attempt = j->attempt, .state = j->state, .result = j->result,
			   .reason = j->reason, .reason_len = j->reason ? (uint32_t)strlen(j->reason) : 0,
			   .output_cut = {j->output_cut[0], j->output_cut[1]},
			   .use = (uint8_t)((j->use & DD_USE_CPU ? DD_LOGREC_USE_CPU : 0) |
					    (j->use & DD_USE_MEM ? DD_LOGREC_USE_MEM : 0)),
			   .cpu_ns = j->cpu_ns, .mem_peak = j->mem_peak};
	if (j->start_pending) {
		r.type = DD_LOGREC_FINISH;
		r.worker = j->worker;
		r.started_rt = (uint64_t)((int64_t)j->started_ns + s->rt_offset);
		j->start_pending = false;
	}
	if (append(s, &r) == 0)
		j->end_lsn = r.lsn;
}

/* ---- completions ---- */

static uint64_t mark_for(const struct dd_durable *d, uint8_t level)
{
	return level == DD_DURABILITY_FSYNC ? dd_state_wal_synced(d->wal)
					    : dd_state_wal_written(d->wal);
}

static void unhold(struct dd_shard *s, uint64_t id)
{
	struct dd_jobrec *j = dd_tab_find(s, id);
	if (!j || !(j->flags & JF_HELD))
		return;
	j->flags &= (uint8_t)~JF_HELD;
	if (j->state == DD_WAITING && --j->deps_unmet == 0)
		dd_job_make_ready(s, j);
}

static void release_acks(struct dd_shard *s)
{
	struct dd_durable *d = s->dur;
	dd_durable_fn cb = s->eng->cfg.on_durable;
	size_t n = 0;
	while (d->acount) {
		struct dd_ack *a = &d->acks[d->ahead];
		if (a->lsn > mark_for(d, a->level))
			break;
		if (a->held)
			unhold(s, a->id);
		dd_hist_rec(s, DD_HIST_DURABLE_ACK, a->at, s->now);
		if (cb) {
			if (n == d->cb_cap) {
				size_t cap = d->cb_cap ? d->cb_cap * 2 : 256;
				uint64_t *ids = realloc(d->cb_ids, cap * sizeof(*ids));
				if (ids) {
					d->cb_ids = ids;
					d->cb_cap = cap;
				}
			}
			if (n < d->cb_cap)
				d->cb_ids[n++] = a->id;
		}
		d->ahead = (d->ahead + 1) & (d->acap - 1);
		d->acount--;
	}
	if (cb && n)
		cb(d->cb_ids, n, s->eng->cfg.durable_arg);
	for (struct dd_cmd **pp = &d->waiters; *pp;) {
		struct dd_cmd *c = *pp;
		if (c->lsn <= mark_for(d, c->level)) {
			*pp = c->next;
			dd_cmd_complete(c, 0);
		} else {
			pp = &c->next;
		}
	}
}

bool dd_durable_unwait(struct dd_shard *s, struct dd_cmd *c)
{
	if (!s->dur)
		return false;
	for (struct dd_cmd **pp = &s->dur->waiters; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			return true;
		}
	return false;
}

void dd_durable_fail_waiters(struct dd_shard *s, int rc)
{
	if (!s->dur)
		return;
	for (struct dd_cmd *c = s->dur->waiters, *n; c; c = n) {
		n = c->next;
		dd_cmd_complete(c, rc);
	}
	s->dur->waiters = NULL;
}

/* A CMD_WAIT_DURABLE for a job in memory. */
void dd_durable_wait_cmd(struct dd_shard *s, struct dd_jobrec *j, struct dd_cmd *c)
{
	struct dd_durable *d = s->dur;
	if (!d || j->level <= DD_DURABILITY_NONE) {
		dd_cmd_complete(c, -EOPNOTSUPP);
		return;
	}
	if (!(j->flags & JF_LOGGED)) {
		int err = atomic_load_explicit(&d->wal_err, memory_order_relaxed);
		dd_cmd_complete(c, err ? err : -EIO);
		return;
	}
	if (j->sub_lsn <= mark_for(d, j->level)) {
		dd_cmd_complete(c, 0);
		return;
	}
	int err = dd_state_wal_error(d->wal);
	if (err) {
		dd_cmd_complete(c, err);
		return;
	}
	c->lsn = j->sub_lsn;
	c->level = j->level;
	c->next = d->waiters;
	d->waiters = c;
}

/* Keeps the reservation of ids a chunk ahead of the ids handed out. */
static void reserve(struct dd_shard *s)
{
	struct dd_durable *d = s->dur;
	uint64_t have = atomic_load_explicit(&s->reserved_seq, memory_order_relaxed);
	if (d->reserve_lsn) {
		if (dd_state_wal_synced(d->wal) < d->reserve_lsn)
			return;
		/* release pairs with submitters' acquire: on the device now */
		atomic_store_explicit(&s->reserved_seq, d->reserve_to, memory_order_release);
		d->reserve_lsn = 0;
		return;
	}
	uint64_t next = atomic_load_explicit(&s->next_seq, memory_order_relaxed);
	if (have > next + RESERVE_CHUNK / 2)
		return;
	struct dd_logrec r = {.type = DD_LOGREC_RESERVE, .id = (next > have ? next : have) + RESERVE_CHUNK,
			   .at_rt = rt_now(s)};
	if (append(s, &r) == 0) {
		d->reserve_lsn = r.lsn;
		d->reserve_to = r.id;
	}
}

size_t dd_durable_poll(struct dd_shard *s)
{
	struct dd_durable *d = s->dur;
	if (!d)
		return 0;
	size_t n = 0;
	uint64_t w = dd_state_wal_written(d->wal), sy = dd_state_wal_synced(d->wal);
	if (w != d->seen_written || sy != d->seen_synced) {
		/* one sample per batch: when its last step (the sync, or the
		 * write without one) completed */
		if (d->level == DD_DURABILITY_FSYNC ? sy != d->seen_synced : w != d->seen_written)
			dd_hist_rec(s, DD_HIST_LOG_IO, 0, dd_state_wal_last_io_ns(d->wal));
		d->seen_written = w;
		d->seen_synced = sy;
		/* release pairs with the applier's acquire: the log bytes up to
		 * here are written before it reads them */
		atomic_store_explicit(&d->durable_lsn, d->level == DD_DURABILITY_FSYNC ? sy : w,
				      memory_order_release);
		release_acks(s);
	}
	reserve(s);
	if (d->npstart && !dd_state_wal_inflight(d->wal))
		flush_starts(s); /* into the batch the kick below writes */
	if (dd_state_wal_kick(d->wal, s->now)) {
		io_uring_submit(&s->uring->ring);
		atomic_store_explicit(&d->batches,
				      atomic_load_explicit(&d->batches, memory_order_relaxed) + 1,
				      memory_order_relaxed);
	}
	/* after the kick: it may have cleared the error (a segment made at
	 * last), and a refused submitter will not wake us to publish that */
	int err = dd_state_wal_error(d->wal);
	if (err != atomic_load_explicit(&d->wal_err, memory_order_relaxed)) {
		if (err && !atomic_load_explicit(&d->wal_err, memory_order_relaxed))
			dd_log(s->eng, LOG_ERR,
			       "shard %u: cannot write the log: %s; refusing submissions until it can",
			       s->index, dd_strerror(err));
		atomic_store_explicit(&d->wal_err, err, memory_order_relaxed);
		if (err)
			dd_durable_fail_waiters(s, err);
	}
	return n;
}

void dd_durable_complete(struct dd_shard *s, uint64_t user_data, int res)
{
	if (s->dur)
		dd_state_wal_complete(s->dur->wal, user_data, res, s->now);
}

bool dd_durable_inflight(const struct dd_shard *s)
{
	return s->dur && dd_state_wal_inflight(s->dur->wal);
}

uint64_t dd_durable_timeout(struct dd_shard *s, uint64_t timeout)
{
	struct dd_durable *d = s->dur;
	if (!d || dd_state_wal_inflight(d->wal) ||
	    (!dd_state_wal_busy(d->wal) && !dd_state_wal_error(d->wal)))
		return timeout;
	/* Records wait for a retry, or the log waits to make a segment (a full
	 * disk): look again soon, since no submission will wake us — they are
	 * refused until the error clears. */
	return timeout < 20000000 ? timeout : 20000000;
}

void dd_durable_flush(struct dd_shard *s)
{
	struct dd_durable *d = s->dur;
	if (!d)
		return;
	uint64_t until = dd_mono_ns() + FLUSH_LIMIT_NS;
	for (;;) {
		s->now = dd_mono_ns();
		dd_uring_reap(s);
		dd_durable_poll(s);
		if (!dd_state_wal_busy(d->wal) || s->now > until)
			break;
		if (dd_state_wal_inflight(d->wal)) {
			struct io_uring_cqe *cqe;
			struct __kernel_timespec ts = {0, 10000000};
			io_uring_wait_cqe_timeout(&s->uring->ring, &cqe, &ts);
		} else {
			struct timespec ts = {0, 10000000};
			nanosleep(&ts, NULL);
		}
	}
	dd_durable_fail_waiters(s, DD_ESHUTDOWN);
}

bool dd_durable_evictable(struct dd_shard *s, const struct dd_jobrec *j)
{
	struct dd_durable *d = s->dur;
	if (!d || !(j->flags & JF_LOGGED))
		return true;
	/* kept until the store has it, so that a look-up never misses it */
	return j->end_lsn && j->end_lsn <= atomic_load_explicit(&d->applied_lsn, memory_order_relaxed);
}

bool dd_durable_behind(const struct dd_shard *s, size_t max)
{
	const struct dd_durable *d = s->dur;
	if (!d)
		return false;
	uint64_t appended = atomic_load_explicit(&d->appended_lsn, memory_order_relaxed);
	uint64_t applied = atomic_load_explicit(&d->applied_lsn, memory_order_relaxed);
	return appended > applied && appended - applied > max;
}

int dd_durable_error(const struct dd_shard *s)
{
	const struct dd_durable *d = s->dur;
	if (!d)
		return 0;
	int e = atomic_load_explicit(&d->wal_err, memory_order_relaxed);
	return e ? e : atomic_load_explicit(&d->store_err, memory_order_relaxed);
}

struct dd_state_store *dd_durable_store(struct dd_shard *s)
{
	return s->dur ? s->dur->store : NULL;
}

void dd_durable_stats(struct dd_shard *s, struct dd_shard_stats *o)
{
	struct dd_durable *d = s->dur;
	if (!d)
		return;
	o->log_records = atomic_load_explicit(&d->records, memory_order_relaxed);
	o->log_batches = atomic_load_explicit(&d->batches, memory_order_relaxed);
	o->durable_lsn = atomic_load_explicit(&d->durable_lsn, memory_order_relaxed);
	o->applied_lsn = atomic_load_explicit(&d->applied_lsn, memory_order_relaxed);
	o->store_jobs = atomic_load_explicit(&d->store_jobs, memory_order_relaxed);
	o->store_map_bytes = atomic_load_explicit(&d->store_map, memory_order_relaxed);
	o->state_error = dd_durable_error(s);
}

/* ---- the applier thread (applier.c) ---- */

int dd_applier_start(struct dd_shard *s)
{
	struct dd_durable *d = s->dur;
	if (!d || d->applier_started)
		return 0;
	int r = pthread_create(&d->applier, NULL, dd_applier_main, s);
	if (r == 0) {
		char name[32];
		snprintf(name, sizeof(name), "dd-apply-%u", s->index);
		name[15] = 0;
		pthread_setname_np(d->applier, name);
	}
	if (r)
		return -r;
	d->applier_started = true;
	return 0;
}

/* After the reactor has flushed the log: the applier catches up, then ends. */
void dd_applier_stop(struct dd_shard *s)
{
	struct dd_durable *d = s->dur;
	if (!d || !d->applier_started)
		return;
	atomic_store_explicit(&d->stop, true, memory_order_release);
	pthread_join(d->applier, NULL);
	d->applier_started = false;
}

uint8_t dd_durable_level(const struct dd_shard *s)
{
	return s->dur ? s->dur->level : DD_DURABILITY_NONE;
}

bool dd_durable_catch_up(struct dd_shard *s, uint64_t timeout_ns)
{
	struct dd_durable *d = s->dur;
	if (!d)
		return true;
	/* everything logged before the call (a job seen ended has its END
	 * record appended, if not yet on the device); the applier's release
	 * of applied_lsn pairs with our acquire */
	uint64_t want = atomic_load_explicit(&d->appended_lsn, memory_order_relaxed);
	uint64_t until = dd_mono_ns() + timeout_ns;
	while (atomic_load_explicit(&d->applied_lsn, memory_order_acquire) < want) {
		if (dd_mono_ns() >= until)
			return false;
		struct timespec ts = {0, 500000};
		nanosleep(&ts, NULL);
	}
	return true;
}

uint64_t dd_durable_appended(const struct dd_shard *s)
{
	return s->dur ? atomic_load_explicit(&s->dur->appended_lsn, memory_order_relaxed) : 0;
}

uint64_t dd_durable_lsn(const struct dd_shard *s)
{
	return s->dur ? atomic_load_explicit(&s->dur->durable_lsn, memory_order_relaxed) : 0;
}
