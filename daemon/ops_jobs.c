/* Reading and steering jobs: get, wait, watch, cancel, list, output. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dd_config.h"
#include "events.h"
#include "ops.h"
#include "proto.h"
#include "server.h"

#define LIST_MAX 1000
#define OUTPUT_CHUNK (1u << 20)
#define OUTPUT_CHUNK_MAX (16u << 20)

bool dd_ops_get_id(struct conn *c, struct dd_req *r, uint64_t *id)
{
	if (dd_get_u64(r->root, "id", id))
		return true;
	dd_ops_error(c, r->tag, "EINVAL", "missing \"id\" (a job id)");
	return false;
}

/* An error about job @id, its message led by "job ID: " so that a client
 * may show it as it is. */
static void job_perr(struct dd_perr *e, uint64_t id, int rc, uint32_t owner)
{
	dd_perr_engine(e, rc, "");
	if (rc == -ENOENT)
		snprintf(e->msg, sizeof(e->msg), "job %llu: no such job", (unsigned long long)id);
	else if (rc == -EPERM)
		snprintf(e->msg, sizeof(e->msg),
			 "job %llu: belongs to uid %u; only that user or root may do that",
			 (unsigned long long)id, owner);
	else
		snprintf(e->msg, sizeof(e->msg), "job %llu: %s", (unsigned long long)id,
			 dd_strerror(rc));
}

static void job_error(struct conn *c, json_t *tag, uint64_t id, int rc, uint32_t owner)
{
	struct dd_perr e;
	job_perr(&e, id, rc, owner);
	dd_ops_error(c, tag, e.code, "%s", e.msg);
}

/* Looks a job up for @c; answers the error itself and returns false. */
bool dd_ops_lookup(struct conn *c, json_t *tag, uint64_t id, struct dd_job_info *in, bool own)
{
	int rc = dd_job_get(c->srv->eng, id, in);
	if (rc < 0) {
		job_error(c, tag, id, rc, 0);
		return false;
	}
	if (own && !dd_ops_may_touch(c, in)) {
		job_error(c, tag, id, -EPERM, in->uid);
		return false;
	}
	return true;
}

void dd_op_get(struct conn *c, struct dd_req *r)
{
	uint64_t id;
	struct dd_job_info in;
	if (dd_ops_get_id(c, r, &id) && dd_ops_lookup(c, r->tag, id, &in, false))
		dd_ops_reply(c, r->tag, json_pack("{s:o}", "job", dd_job_json(c->srv, &in)));
}

/* "id" or "ids" (at most @max); returns the count or -1 (answered). */
static long get_ids(struct conn *c, struct dd_req *r, uint64_t **out, size_t max)
{
	json_t *a = json_object_get(r->root, "ids");
	uint64_t one;
	if (a && json_object_get(r->root, "id")) {
		dd_ops_error(c, r->tag, "EINVAL", "give \"id\" or \"ids\", not both");
		return -1;
	}
	size_t n = a ? json_array_size(a) : 1;
	if (!a && !dd_get_u64(r->root, "id", &one)) {
		dd_ops_error(c, r->tag, "EINVAL", "missing \"id\" or \"ids\"");
		return -1;
	}
	if (n == 0 || n > max) {
		dd_ops_error(c, r->tag, "EINVAL", "\"ids\" holds 1 to %zu job ids", max);
		return -1;
	}
	uint64_t *ids = malloc(n * sizeof(uint64_t));
	if (!ids) {
		dd_ops_error(c, r->tag, "ENOMEM", "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = a ? json_array_get(a, i) : NULL;
		if (a && (!json_is_integer(v) || json_integer_value(v) <= 0)) {
			free(ids);
			dd_ops_error(c, r->tag, "EINVAL", "\"ids\" holds job ids");
			return -1;
		}
		ids[i] = a ? (uint64_t)json_integer_value(v) : one;
	}
	*out = ids;
	return (long)n;
}

static void wait_answer(struct dd_server *srv, struct pend *p)
{
	if (!p->c->dead)
		dd_ops_reply(p->c, p->tag,
			     p->single ? json_pack("{s:O}", "job", json_array_get(p->jobs, 0))
				       : json_pack("{s:O}", "jobs", p->jobs));
	p->left = 0;
	dd_pend_free(srv, p);
}

/* p->order: the indexes of p->ids sorted by id, so that an end finds its
 * place(s) in O(log n) — a wait may name 10,000 jobs. */
static const uint64_t *sort_ids;

static int by_id(const void *a, const void *b)
{
	uint64_t x = sort_ids[*(const uint32_t *)a], y = sort_ids[*(const uint32_t *)b];
	return x < y ? -1 : x > y;
}

/* A job it waits for ended (dd_pend_ops.release). */
static void wait_release(struct dd_server *srv, struct pend *p, uint64_t id)
{
	struct dd_job_info in;
	size_t lo = 0, hi = p->n;
	while (lo < hi) { /* first position whose id is >= id */
		size_t mid = (lo + hi) / 2;
		if (p->ids[p->order[mid]] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	bool got = false;
	for (size_t k = lo; k < p->n && p->ids[p->order[k]] == id; k++) {
		uint32_t i = p->order[k];
		if (!json_is_null(json_array_get(p->jobs, i)))
			continue; /* the same id named twice: filled already */
		if (!got && dd_job_get(srv->eng, id, &in) < 0)
			break;
		got = true;
		json_array_set_new(p->jobs, i, dd_job_json(srv, &in));
	}
	if (--p->left == 0)
		wait_answer(srv, p);
}

/* ETIMEDOUT naming the jobs that had not ended (the first few of them). */
static void wait_timed_out(struct pend *p)
{
	char ids[160];
	size_t k = 0, named = 0;
	ids[0] = 0;
	for (size_t i = 0; i < p->n && named < 5; i++) {
		if (!json_is_null(json_array_get(p->jobs, i)))
			continue;
		k += (size_t)snprintf(ids + k, sizeof(ids) - k, "%s%llu", named ? ", " : "",
				      (unsigned long long)p->ids[i]);
		named++;
	}
	if (p->left == 1)
		dd_ops_error(p->c, p->tag, "ETIMEDOUT", "job %s: had not ended within the timeout", ids);
	else
		dd_ops_error(p->c, p->tag, "ETIMEDOUT",
			     "jobs %s%s: %zu of %zu had not ended within the timeout", ids,
			     p->left > named ? ", ..." : "", p->left, p->n);
}

static void wait_tick(struct dd_server *srv, struct pend *p, const struct dd_pend_tick *t)
{
	if (t->now >= p->deadline) {
		if (!p->c->dead)
			wait_timed_out(p);
		dd_pend_free(srv, p);
	} else if (p->c->dead) {
		dd_pend_free(srv, p);
	}
}

static void wait_destroy(struct dd_server *srv, struct pend *p)
{
	dd_events_want(srv->events, -1, 0);
	json_decref(p->jobs);
	free(p->order);
}

static const struct dd_pend_ops wait_ops = {
	.release = wait_release,
	.tick = wait_tick,
	.destroy = wait_destroy,
};

void dd_op_wait(struct conn *c, struct dd_req *r)
{
	struct dd_server *srv = c->srv;
	uint64_t *ids, timeout = UINT64_MAX;
	long n = get_ids(c, r, &ids, 10000);
	if (n < 0)
		return;
	if (json_object_get(r->root, "timeout") && !dd_get_secs(r->root, "timeout", &timeout)) {
		free(ids);
		dd_ops_error(c, r->tag, "EINVAL", "'timeout' is seconds");
		return;
	}
	struct pend *p = dd_pend_new(c, &wait_ops, r->tag, 0);
	if (!p) {
		free(ids);
		dd_ops_error(c, r->tag, "ENOMEM", "out of memory");
		return;
	}
	p->map = srv->end_wait;
	p->ids = ids;
	p->n = (size_t)n;
	p->single = !json_object_get(r->root, "ids");
	p->jobs = json_array();
	if (!(p->order = malloc((size_t)n * sizeof(uint32_t)))) {
		dd_ops_error(c, r->tag, "ENOMEM", "out of memory");
		dd_pend_free(srv, p);
		return;
	}
	for (long i = 0; i < n; i++)
		p->order[i] = (uint32_t)i;
	sort_ids = ids; /* one thread: the server's */
	qsort(p->order, (size_t)n, sizeof(uint32_t), by_id);
	/* Interest first: an end that comes after it is queued for us, one
	 * that came before shows in the look-up below. */
	dd_events_want(srv->events, 1, 0);
	for (long i = 0; i < n; i++) {
		struct dd_job_info in;
		int rc = dd_job_get(srv->eng, ids[i], &in);
		if (rc < 0) {
			p->left = 0;
			for (long k = 0; k < i; k++)
				dd_idmap_del(srv->end_wait, ids[k], p);
			job_error(c, r->tag, ids[i], rc, 0);
			dd_pend_free(srv, p);
			return;
		}
		if (dd_state_terminal(in.state)) {
			json_array_append_new(p->jobs, dd_job_json(srv, &in));
		} else {
			json_array_append_new(p->jobs, json_null());
			if (dd_idmap_add(srv->end_wait, ids[i], p) == 0)
				p->left++;
		}
	}
	if (!p->left) {
		wait_answer(srv, p);
		return;
	}
	if (timeout != UINT64_MAX)
		p->deadline = dd_mono_ns() + timeout;
}

void dd_op_watch(struct conn *c, struct dd_req *r, bool on)
{
	struct dd_server *srv = c->srv;
	if (c->watching) {
		c->watching = false;
		srv->nwatchers--;
		dd_events_want(srv->events, 0, -1);
		json_decref(c->watch_ids);
		json_decref(c->watch_tag);
		c->watch_ids = c->watch_tag = NULL;
	}
	if (!on) {
		dd_ops_reply(c, r->tag, json_pack("{s:b}", "watching", 0));
		return;
	}
	json_t *a = json_object_get(r->root, "ids");
	if (a) {
		c->watch_ids = json_object();
		size_t i;
		json_t *v;
		json_array_foreach(a, i, v)
		{
			char key[24];
			if (!json_is_integer(v)) {
				json_decref(c->watch_ids);
				c->watch_ids = NULL;
				dd_ops_error(c, r->tag, "EINVAL", "\"ids\" holds job ids");
				return;
			}
			snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(v));
			json_object_set_new(c->watch_ids, key, json_true());
		}
	}
	json_t *q = json_object_get(r->root, "queue");
	if (q && (!json_string_length(q) || json_string_length(q) > 63)) {
		json_decref(c->watch_ids);
		c->watch_ids = NULL;
		dd_ops_error(c, r->tag, "EINVAL", "'queue' is 1 to 63 bytes");
		return;
	}
	snprintf(c->watch_queue, sizeof(c->watch_queue), "%s", q ? json_string_value(q) : "");
	c->watching = true;
	c->watch_tag = r->tag ? json_incref(r->tag) : NULL;
	srv->nwatchers++;
	dd_events_want(srv->events, 0, 1);
	dd_ops_reply(c, r->tag, json_pack("{s:b}", "watching", 1));
}

void dd_op_watch_event(struct dd_server *srv, const struct dd_evrec *r)
{
	struct dd_event e = r->ev;
	const struct dd_event *ev = &e;
	e.reason = r->reason;
	char key[24], akey[24] = "";
	snprintf(key, sizeof(key), "%llu", (unsigned long long)ev->id);
	if (ev->array_id) /* a watch of an array sees its elements too */
		snprintf(akey, sizeof(akey), "%llu", (unsigned long long)ev->array_id);
	for (struct conn *c = srv->conns.next; c != &srv->conns; c = c->next) {
		if (!c->watching || c->dead ||
		    (c->watch_ids && !json_object_get(c->watch_ids, key) &&
		     !(akey[0] && json_object_get(c->watch_ids, akey))) ||
		    (c->watch_queue[0] && strcmp(c->watch_queue, r->kind)))
			continue;
		json_t *o = json_object();
		if (c->watch_tag)
			json_object_set(o, "tag", c->watch_tag);
		json_object_set_new(o, "event", dd_event_json(srv, ev));
		dd_ops_send_json(c, o);
	}
}

void dd_op_cancel(struct conn *c, struct dd_req *r)
{
	uint64_t *ids;
	long n = get_ids(c, r, &ids, 10000);
	if (n < 0)
		return;
	if (!json_object_get(r->root, "ids")) {
		struct dd_job_info in;
		if (dd_ops_lookup(c, r->tag, ids[0], &in, true)) {
			int rc = dd_cancel(c->srv->eng, ids[0]);
			if (rc < 0)
				job_error(c, r->tag, ids[0], rc, in.uid);
			else if (dd_job_get(c->srv->eng, ids[0], &in) == 0)
				dd_ops_reply(c, r->tag, json_pack("{s:o}", "job", dd_job_json(c->srv, &in)));
			else
				dd_ops_reply(c, r->tag, NULL);
		}
		free(ids);
		return;
	}
	json_t *res = json_array();
	for (long i = 0; i < n; i++) {
		struct dd_job_info in = {0};
		int rc = dd_job_get(c->srv->eng, ids[i], &in);
		if (rc == 0 && !dd_ops_may_touch(c, &in))
			rc = -EPERM;
		if (rc == 0)
			rc = dd_cancel(c->srv->eng, ids[i]);
		struct dd_perr e = {0};
		if (rc < 0)
			job_perr(&e, ids[i], rc, in.uid);
		json_array_append_new(res, rc == 0 ? json_pack("{s:I, s:b}", "id", (json_int_t)ids[i], "ok", 1)
						   : json_pack("{s:I, s:b, s:{s:s, s:s}}", "id",
							       (json_int_t)ids[i], "ok", 0, "error",
							       "code", e.code, "message", e.msg));
	}
	free(ids);
	dd_ops_reply(c, r->tag, json_pack("{s:o}", "results", res));
}

static int state_of(const char *name)
{
	for (int s = DD_WAITING; s <= DD_TIMED_OUT; s++)
		if (!strcmp(dd_state_name((enum dd_state)s), name))
			return s;
	return -1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Up to @max ids after @after, in @state or (state < 0) any, ascending. */
static int list_ids(struct dd_engine *e, int state, uint64_t after, uint64_t *ids, size_t max,
		    size_t *n, bool *end)
{
	*n = 0;
	if (state >= 0) {
		int rc = dd_job_list(e, (enum dd_state)state, after, ids, max, n);
		*end = *n < max;
		return rc;
	}
	/* every state: the first max of each, merged */
	uint64_t *all = malloc((size_t)8 * max * sizeof(uint64_t));
	size_t total = 0;
	*end = true;
	if (!all)
		return -ENOMEM;
	for (int s = DD_WAITING; s <= DD_TIMED_OUT; s++) {
		size_t got;
		int rc = dd_job_list(e, (enum dd_state)s, after, all + total, max, &got);
		if (rc < 0) {
			free(all);
			return rc;
		}
		if (got == max)
			*end = false;
		total += got;
	}
	qsort(all, total, sizeof(uint64_t), cmp_u64);
	size_t k = 0;
	for (size_t i = 0; i < total && k < max; i++)
		if (!k || all[i] != ids[k - 1]) /* a job may move between states meanwhile */
			ids[k++] = all[i];
	if (k == max && total > max)
		*end = false;
	*n = k;
	free(all);
	return 0;
}

/* list with "array": its elements, in index order, from after "after". */
static void list_array(struct conn *c, struct dd_req *r, uint64_t arr, int state, uint64_t after,
		       uint64_t limit)
{
	struct dd_server *srv = c->srv;
	struct dd_job_info in;
	if (!dd_ops_lookup(c, r->tag, arr, &in, false))
		return;
	if (in.array_id != arr) {
		dd_ops_error(c, r->tag, "EINVAL", "job %llu is not an array", (unsigned long long)arr);
		return;
	}
	uint64_t last = arr + in.array_count, id = after > arr ? after + 1 : arr + 1;
	json_t *jobs = json_array();
	/* a state filter may skip many: bounded, the cursor says where */
	for (uint64_t looked = 0; id <= last && json_array_size(jobs) < limit &&
				  looked < 64 * (uint64_t)LIST_MAX; id++, looked++) {
		if (dd_job_get(srv->eng, id, &in) < 0 || (state >= 0 && (int)in.state != state))
			continue;
		json_array_append_new(jobs, dd_job_json(srv, &in));
	}
	dd_ops_reply(c, r->tag, json_pack("{s:o, s:o}", "jobs", jobs, "next",
					  id > last ? json_null() : json_integer((json_int_t)(id - 1))));
}

void dd_op_list(struct conn *c, struct dd_req *r)
{
	struct dd_server *srv = c->srv;
	uint64_t after = 0, limit = 100;
	int state = -1;
	json_t *v;
	if ((v = json_object_get(r->root, "state")) && (state = state_of(json_string_value(v))) < 0) {
		dd_ops_error(c, r->tag, "EINVAL", "unknown state '%.32s'", json_string_value(v));
		return;
	}
	dd_get_u64(r->root, "after", &after);
	if (json_object_get(r->root, "limit") &&
	    (!dd_get_u64(r->root, "limit", &limit) || limit == 0 || limit > LIST_MAX)) {
		dd_ops_error(c, r->tag, "EINVAL", "'limit' is 1 to %d", LIST_MAX);
		return;
	}
	uint64_t arr;
	if (dd_get_u64(r->root, "array", &arr)) {
		list_array(c, r, arr, state, after, limit);
		return;
	}
	const char *queue = json_string_value(json_object_get(r->root, "queue"));
	const char *name = json_string_value(json_object_get(r->root, "name"));
	uint64_t uid = 0;
	bool by_uid = dd_get_u64(r->root, "uid", &uid);
	bool filter = queue || name || by_uid;
	uint64_t ids[LIST_MAX];
	json_t *jobs = json_array();
	bool end = false;
	uint64_t cursor = after;
	/* a filter may skip whole pages: bounded, the cursor says where */
	for (int pages = 0; pages < 64 && !end && json_array_size(jobs) < limit; pages++) {
		size_t n;
		int rc = list_ids(srv->eng, state, cursor, ids, (size_t)limit, &n, &end);
		if (rc < 0) {
			json_decref(jobs);
			dd_ops_engine_error(c, r->tag, rc, "list");
			return;
		}
		for (size_t i = 0; i < n && json_array_size(jobs) < limit; i++) {
			struct dd_job_info in;
			cursor = ids[i];
			if (dd_job_get(srv->eng, ids[i], &in) < 0)
				continue; /* gone meanwhile (retention) */
			if ((queue && strcmp(queue, in.kind)) || (name && strcmp(name, in.name)) ||
			    (by_uid && in.uid != uid))
				continue;
			json_array_append_new(jobs, dd_job_json(srv, &in));
		}
		if (!filter)
			break;
	}
	dd_ops_reply(c, r->tag,
		     json_pack("{s:o, s:o}", "jobs", jobs, "next",
			       end && json_array_size(jobs) < limit ? json_null()
								     : json_integer((json_int_t)cursor)));
}

void dd_op_output(struct conn *c, struct dd_req *r)
{
	struct dd_server *srv = c->srv;
	uint64_t id, off = 0, max = OUTPUT_CHUNK;
	struct dd_job_info in;
	if (!dd_ops_get_id(c, r, &id) || !dd_ops_lookup(c, r->tag, id, &in, true))
		return;
	const char *st = json_string_value(json_object_get(r->root, "stream"));
	int stream = !st || !strcmp(st, "stdout") ? 1 : !strcmp(st, "stderr") ? 2 : 0;
	if (!stream) {
		dd_ops_error(c, r->tag, "EINVAL", "'stream' is stdout or stderr");
		return;
	}
	if (!in.exec) {
		dd_ops_error(c, r->tag, "EINVAL", "job %llu is not a process job: it has no output",
			     (unsigned long long)id);
		return;
	}
	dd_get_u64(r->root, "offset", &off);
	if (json_object_get(r->root, "max") &&
	    (!dd_get_u64(r->root, "max", &max) || max == 0 || max > OUTPUT_CHUNK_MAX)) {
		dd_ops_error(c, r->tag, "EINVAL", "'max' is 1 to %u bytes", OUTPUT_CHUNK_MAX);
		return;
	}
	/* 0 or none: the last attempt, the one the job info describes */
	uint64_t attempt = 0;
	if (json_object_get(r->root, "attempt") &&
	    (!dd_get_u64(r->root, "attempt", &attempt) || attempt > in.attempt)) {
		dd_ops_error(c, r->tag, "EINVAL", "job %llu has had %u attempt%s: 'attempt' is 1 to %u, "
			     "or 0 for the last", (unsigned long long)id, in.attempt,
			     in.attempt == 1 ? "" : "s", in.attempt);
		return;
	}
	if (!attempt)
		attempt = in.attempt ? in.attempt : 1;
	char path[4200];
	int rc = dd_job_output_path(srv->eng, id, (uint32_t)attempt, stream, path, sizeof(path));
	if (rc < 0) {
		dd_ops_engine_error(c, r->tag, rc, "output");
		return;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb = {0};
	char *buf = NULL;
	ssize_t got = 0;
	if (fd >= 0 && fstat(fd, &sb) == 0 && (uint64_t)sb.st_size > off) {
		size_t want = (uint64_t)sb.st_size - off < max ? (size_t)((uint64_t)sb.st_size - off)
							       : (size_t)max;
		if ((buf = malloc(want)) && (got = pread(fd, buf, want, (off_t)off)) < 0)
			got = 0;
	} else if (fd < 0 && errno != ENOENT) {
		dd_ops_error(c, r->tag, "EIO", "cannot read %s: %s", path, strerror(errno));
		return;
	}
	if (fd >= 0)
		close(fd);
	char *b64 = dd_b64_encode(buf ? buf : "", (size_t)got);
	free(buf);
	uint64_t next = off + (uint64_t)got;
	/* an earlier attempt's output is complete */
	bool over = dd_state_terminal(in.state) || attempt < in.attempt;
	bool eof = over && next >= (uint64_t)sb.st_size;
	dd_ops_reply(c, r->tag, json_pack("{s:s, s:I, s:I, s:b, s:I}", "data", b64 ? b64 : "",
					  "offset", (json_int_t)next, "size", (json_int_t)sb.st_size,
					  "eof", eof, "attempt", (json_int_t)attempt));
	free(b64);
}
