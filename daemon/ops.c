/* The operations (docs/PROTOCOL.md): each request line is decoded by
 * proto.c, checked against the caller's rights, and answered — at once, or
 * later through a struct pend when it waits for the engine. */
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
#include "proto.h"
#include "server.h"

#define LIST_MAX 1000
#define OUTPUT_CHUNK (1u << 20)
#define OUTPUT_CHUNK_MAX (16u << 20)
#define DEFAULT_TTR_NS 60000000000ull
#define SUBMIT_CHECK_NS 100000000ull
#define RING_WAIT_NS 100000000ull /* a full ring: wait this long for room */ /* a submit waiting this long: is the log stuck? */

/* ---- answers ---- */

static void send_json(struct conn *c, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s) {
		/* cannot even say it: the client would wait for ever */
		const char *oom = "{\"ok\":false,\"error\":{\"code\":\"ENOMEM\",\"message\":\"out of memory\"}}";
		dd_conn_send(c, oom, strlen(oom));
		return;
	}
	dd_conn_send(c, s, strlen(s));
	free(s);
}

void dd_ops_reply(struct conn *c, json_t *tag, json_t *result)
{
	json_t *o = json_object();
	if (tag)
		json_object_set(o, "tag", tag);
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "result", result ? result : json_object());
	send_json(c, o);
}

static json_t *error_obj(json_t *tag, const char *code, const char *msg)
{
	json_t *o = json_object();
	if (tag)
		json_object_set(o, "tag", tag);
	json_object_set_new(o, "ok", json_false());
	json_object_set_new(o, "error", json_pack("{s:s, s:s}", "code", code, "message", msg));
	return o;
}

void dd_ops_error(struct conn *c, json_t *tag, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->srv->errors++;
	send_json(c, error_obj(tag, code, msg));
}

static void engine_error(struct conn *c, json_t *tag, int err, const char *what)
{
	struct dd_perr e;
	dd_perr_engine(&e, err, what);
	dd_ops_error(c, tag, e.code, "%s", e.msg);
}

/* ---- pending answers ---- */

static struct pend *pend_new(struct conn *c, enum pend_kind kind, json_t *tag, size_t n)
{
	struct dd_server *srv = c->srv;
	struct pend *p = calloc(1, sizeof(*p));
	if (!p || (n && !(p->ids = calloc(n, sizeof(uint64_t))))) {
		free(p);
		return NULL;
	}
	p->kind = kind;
	p->c = c;
	c->refs++;
	p->tag = tag ? json_incref(tag) : NULL;
	p->n = n;
	p->deadline = UINT64_MAX;
	p->since = dd_mono_ns();
	p->next = &srv->pends;
	p->prev = srv->pends.prev;
	srv->pends.prev->next = p;
	srv->pends.prev = p;
	return p;
}

void dd_pend_free(struct dd_server *srv, struct pend *p)
{
	p->prev->next = p->next;
	p->next->prev = p->prev;
	struct dd_idmap *m = p->kind == PEND_SUBMIT ? srv->durable_wait : srv->end_wait;
	if (p->left)
		for (size_t i = 0; i < p->n; i++)
			dd_idmap_del(m, p->ids[i], p);
	if (p->kind == PEND_WAIT)
		dd_events_want(srv->events, -1, 0);
	if (p->kind == PEND_RESERVE)
		srv->nreserves--;
	json_decref(p->tag);
	json_decref(p->jobs);
	free(p->ids);
	dd_conn_unref(p->c);
	free(p);
}

static json_t *ids_json(const uint64_t *ids, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)ids[i]));
	return a;
}

static void submit_answer(struct dd_server *srv, struct pend *p)
{
	if (!p->c->dead) {
		json_t *r = p->batch ? json_pack("{s:o}", "ids", ids_json(p->ids, p->n))
				     : json_pack("{s:I}", "id", (json_int_t)p->ids[0]);
		if (p->has_err) {
			json_t *o = error_obj(p->tag, p->err.code, p->err.msg);
			json_object_set_new(json_object_get(o, "error"), "submitted", r);
			p->c->srv->errors++;
			send_json(p->c, o);
		} else {
			dd_ops_reply(p->c, p->tag, r);
		}
	}
	p->left = 0;
	dd_pend_free(srv, p);
}

static void on_durable(void *val, uint64_t id, void *arg)
{
	struct pend *p = val;
	if (--p->left == 0)
		submit_answer(arg, p);
}

static bool may_touch(const struct conn *c, const struct dd_job_info *in)
{
	return c->uid == 0 || c->uid == in->uid;
}

/* ---- submit ---- */

static void op_submit(struct conn *c, struct dd_req *r, bool batch)
{
	struct dd_server *srv = c->srv;
	json_t *jobs = batch ? json_object_get(r->root, "jobs") : NULL;
	size_t n = batch ? json_array_size(jobs) : 1;
	if (srv->draining) {
		dd_ops_error(c, r->tag, "ESHUTDOWN", "dispatchd is draining: it takes no new jobs");
		return;
	}
	if (n > srv->cfg.max_batch) {
		dd_ops_error(c, r->tag, "E2BIG", "a batch holds at most %zu jobs", srv->cfg.max_batch);
		return;
	}
	if (n == 0) {
		dd_ops_reply(c, r->tag, json_pack("{s:[]}", "ids"));
		return;
	}
	int64_t live = dd_events_user_live(srv->events, c->uid);
	if ((uint64_t)live + n > srv->cfg.max_jobs_per_user) {
		dd_ops_error(c, r->tag, "EAGAIN",
			     "uid %u has %lld unfinished jobs (limit %llu): wait for some to end",
			     c->uid, (long long)live, (unsigned long long)srv->cfg.max_jobs_per_user);
		return;
	}
	struct dd_jobdec *jd = calloc(n, sizeof(*jd));
	struct dd_job_spec *specs = calloc(n, sizeof(*specs));
	struct pend *p = NULL;
	struct dd_perr e;
	size_t decoded = 0;
	if (!jd || !specs)
		goto nomem;
	for (; decoded < n; decoded++) {
		json_t *o = batch ? json_array_get(jobs, decoded) : r->root;
		if (dd_proto_job(o, !batch, &jd[decoded], &e) < 0) {
			dd_jobdec_free(&jd[decoded]);
			if (batch)
				dd_ops_error(c, r->tag, e.code, "jobs[%zu]: %s (nothing was submitted)",
					     decoded, e.msg);
			else
				dd_ops_error(c, r->tag, e.code, "%s", e.msg);
			goto out;
		}
		/* a queue nobody serves here is served by external workers */
		if (!jd[decoded].spec.exec && (decoded == 0 || strcmp(jd[decoded].queue,
								      jd[decoded - 1].queue))) {
			int hr = dd_handler_register(srv->eng, jd[decoded].queue, NULL, NULL);
			if (hr < 0 && hr != -EEXIST) {
				dd_jobdec_free(&jd[decoded]);
				engine_error(c, r->tag, hr, "queue");
				goto out;
			}
		}
		specs[decoded] = jd[decoded].spec;
		specs[decoded].flags |= DD_JOB_OWNER;
		specs[decoded].uid = c->uid;
		specs[decoded].gid = c->gid;
	}
	if (!(p = pend_new(c, PEND_SUBMIT, r->tag, n)))
		goto nomem;
	p->batch = batch;
	dd_events_user_add(srv->events, c->uid, (int64_t)n); /* before: an end may come first */
	size_t got = 0;
	int rc = dd_submit_batch(srv->eng, specs, n, 0, p->ids, &got);
	/* Rings full: the reactors drain them in microseconds, so wait a
	 * little for room rather than refuse; a limit that does not clear
	 * (max live jobs) is refused after RING_WAIT_NS. */
	for (uint64_t t0 = dd_mono_ns(); rc == -EAGAIN && dd_mono_ns() - t0 < RING_WAIT_NS;) {
		struct timespec ts = {0, 20000};
		nanosleep(&ts, NULL);
		size_t more = 0;
		rc = dd_submit_batch(srv->eng, specs + got, n - got, 0, p->ids + got, &more);
		got += more;
	}
	dd_events_user_add(srv->events, c->uid, -(int64_t)(n - got));
	p->n = got;
	if (rc < 0) {
		struct dd_perr pe;
		dd_perr_engine(&pe, rc, got ? "batch cut short" : "not submitted");
		if (!got) {
			dd_ops_error(c, r->tag, pe.code, "%s", pe.msg);
			p->left = 0;
			dd_pend_free(srv, p);
			goto out;
		}
		p->has_err = true;
		p->err.code = pe.code;
		snprintf(p->err.msg, sizeof(p->err.msg), "%s", pe.msg);
	}
	/* Answer once every job is on disk at its level. The engine reports
	 * that per id (events.c); a job of level none, or an old job returned
	 * for a known key, is not reported, so it does not wait. */
	for (size_t i = 0; i < got; i++) {
		int lvl = specs[i].durability ? specs[i].durability : srv->cfg.durability;
		if (lvl == DD_DURABILITY_NONE)
			continue;
		if (specs[i].idem_key && dd_wait_durable(srv->eng, p->ids[i], 0) != -ETIMEDOUT)
			continue;
		if (dd_idmap_add(srv->durable_wait, p->ids[i], p) == 0)
			p->left++;
	}
	if (!p->left)
		submit_answer(srv, p);
	goto out;
nomem:
	dd_ops_error(c, r->tag, "ENOMEM", "out of memory");
out:
	for (size_t i = 0; jd && i < decoded; i++)
		dd_jobdec_free(&jd[i]);
	free(jd);
	free(specs);
}

/* ---- reading jobs ---- */

static bool get_id(struct conn *c, struct dd_req *r, uint64_t *id)
{
	if (dd_get_u64(r->root, "id", id))
		return true;
	dd_ops_error(c, r->tag, "EINVAL", "missing \"id\" (a job id)");
	return false;
}

/* Looks a job up for @c; answers the error itself and returns false. */
static bool lookup(struct conn *c, json_t *tag, uint64_t id, struct dd_job_info *in, bool own)
{
	int rc = dd_job_get(c->srv->eng, id, in);
	if (rc == -ENOENT) {
		dd_ops_error(c, tag, "ENOENT", "no job %llu", (unsigned long long)id);
		return false;
	}
	if (rc < 0) {
		engine_error(c, tag, rc, "get");
		return false;
	}
	if (own && !may_touch(c, in)) {
		dd_ops_error(c, tag, "EPERM", "job %llu belongs to uid %u; only it or root may do that",
			     (unsigned long long)id, in->uid);
		return false;
	}
	return true;
}

static void op_get(struct conn *c, struct dd_req *r)
{
	uint64_t id;
	struct dd_job_info in;
	if (get_id(c, r, &id) && lookup(c, r->tag, id, &in, false))
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

static void on_end(void *val, uint64_t id, void *arg)
{
	struct pend *p = val;
	struct dd_server *srv = arg;
	struct dd_job_info in;
	for (size_t i = 0; i < p->n; i++)
		if (p->ids[i] == id && json_is_null(json_array_get(p->jobs, i)) &&
		    dd_job_get(srv->eng, id, &in) == 0)
			json_array_set_new(p->jobs, i, dd_job_json(srv, &in));
	if (--p->left == 0)
		wait_answer(srv, p);
}

static void op_wait(struct conn *c, struct dd_req *r)
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
	struct pend *p = pend_new(c, PEND_WAIT, r->tag, 0);
	if (!p) {
		free(ids);
		dd_ops_error(c, r->tag, "ENOMEM", "out of memory");
		return;
	}
	p->ids = ids;
	p->n = (size_t)n;
	p->single = !json_object_get(r->root, "ids");
	p->jobs = json_array();
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
			engine_error(c, r->tag, rc, "wait");
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

static void op_watch(struct conn *c, struct dd_req *r, bool on)
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
	c->watching = true;
	c->watch_tag = r->tag ? json_incref(r->tag) : NULL;
	srv->nwatchers++;
	dd_events_want(srv->events, 0, 1);
	dd_ops_reply(c, r->tag, json_pack("{s:b}", "watching", 1));
}

static void op_cancel(struct conn *c, struct dd_req *r)
{
	uint64_t *ids;
	long n = get_ids(c, r, &ids, 10000);
	if (n < 0)
		return;
	if (!json_object_get(r->root, "ids")) {
		struct dd_job_info in;
		if (lookup(c, r->tag, ids[0], &in, true)) {
			int rc = dd_cancel(c->srv->eng, ids[0]);
			if (rc < 0)
				engine_error(c, r->tag, rc, "cancel");
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
		struct dd_job_info in;
		int rc = dd_job_get(c->srv->eng, ids[i], &in);
		if (rc == 0 && !may_touch(c, &in))
			rc = -EPERM;
		if (rc == 0)
			rc = dd_cancel(c->srv->eng, ids[i]);
		struct dd_perr e = {0};
		if (rc < 0)
			dd_perr_engine(&e, rc, "cancel");
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

static void op_list(struct conn *c, struct dd_req *r)
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
	const char *queue = json_string_value(json_object_get(r->root, "queue"));
	uint64_t ids[LIST_MAX];
	json_t *jobs = json_array();
	bool end = false;
	uint64_t cursor = after;
	/* a queue filter may skip whole pages: bounded, the cursor says where */
	for (int pages = 0; pages < 64 && !end && json_array_size(jobs) < limit; pages++) {
		size_t n;
		int rc = list_ids(srv->eng, state, cursor, ids, (size_t)limit, &n, &end);
		if (rc < 0) {
			json_decref(jobs);
			engine_error(c, r->tag, rc, "list");
			return;
		}
		for (size_t i = 0; i < n && json_array_size(jobs) < limit; i++) {
			struct dd_job_info in;
			cursor = ids[i];
			if (dd_job_get(srv->eng, ids[i], &in) < 0)
				continue; /* gone meanwhile (retention) */
			if (queue && strcmp(queue, in.kind))
				continue;
			json_array_append_new(jobs, dd_job_json(srv, &in));
		}
		if (!queue)
			break;
	}
	dd_ops_reply(c, r->tag,
		     json_pack("{s:o, s:o}", "jobs", jobs, "next",
			       end && json_array_size(jobs) < limit ? json_null()
								     : json_integer((json_int_t)cursor)));
}

static void op_output(struct conn *c, struct dd_req *r)
{
	struct dd_server *srv = c->srv;
	uint64_t id, off = 0, max = OUTPUT_CHUNK;
	struct dd_job_info in;
	if (!get_id(c, r, &id) || !lookup(c, r->tag, id, &in, true))
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
	char path[4200];
	int rc = dd_job_output_path(srv->eng, id, stream, path, sizeof(path));
	if (rc < 0) {
		engine_error(c, r->tag, rc, "output");
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
	bool eof = dd_state_terminal(in.state) && next >= (uint64_t)sb.st_size;
	dd_ops_reply(c, r->tag, json_pack("{s:s, s:I, s:I, s:b}", "data", b64 ? b64 : "", "offset",
					  (json_int_t)next, "size", (json_int_t)sb.st_size, "eof",
					  eof));
	free(b64);
}

/* ---- external workers ---- */

static json_t *lease_json(const struct dd_lease *l, const char *queue, uint64_t ttr)
{
	json_t *j = json_pack("{s:I, s:i, s:i, s:s, s:i, s:f}", "id", (json_int_t)l->id,
			      "attempt", (int)l->attempt, "max_attempts", (int)l->max_attempts,
			      "queue", queue, "uid", (int)l->uid, "ttr", (double)ttr / 1e9);
	json_t *s = l->payload_len ? json_stringn(l->payload, l->payload_len) : json_string("");
	if (s) {
		json_object_set_new(j, "payload", s);
	} else { /* not UTF-8: as base64 */
		char *b = dd_b64_encode(l->payload, l->payload_len);
		json_object_set_new(j, "payload_b64", json_string(b ? b : ""));
		free(b);
	}
	return j;
}

/* Returns 1 leased (answered), 0 none now, -1 error (answered). */
static int try_reserve(struct conn *c, json_t *tag, const char *queue, uint64_t ttr,
		       uint32_t owner)
{
	struct dd_lease l;
	int rc = dd_reserve(c->srv->eng, queue, ttr, owner, &l);
	if (rc == -EAGAIN)
		return 0;
	if (rc < 0) {
		engine_error(c, tag, rc, "reserve");
		return -1;
	}
	dd_ops_reply(c, tag, json_pack("{s:o}", "job", lease_json(&l, queue, ttr)));
	free(l.payload);
	return 1;
}

static void op_reserve(struct conn *c, struct dd_req *r)
{
	struct dd_server *srv = c->srv;
	uint64_t ttr = DEFAULT_TTR_NS, timeout = 0;
	json_t *q = json_object_get(r->root, "queue");
	if (!q || !json_string_length(q) || json_string_length(q) > 63 ||
	    strlen(json_string_value(q)) != json_string_length(q)) {
		dd_ops_error(c, r->tag, "EINVAL", "'queue' is 1 to 63 bytes");
		return;
	}
	if ((json_object_get(r->root, "ttr") && (!dd_get_secs(r->root, "ttr", &ttr) || !ttr)) ||
	    (json_object_get(r->root, "timeout") && !dd_get_secs(r->root, "timeout", &timeout))) {
		dd_ops_error(c, r->tag, "EINVAL", "'ttr' (> 0) and 'timeout' are seconds");
		return;
	}
	const char *queue = json_string_value(q);
	/* A queue nobody serves in-process is external; name it so. */
	int rc = dd_handler_register(srv->eng, queue, NULL, NULL);
	if (rc < 0 && rc != -EEXIST) {
		engine_error(c, r->tag, rc, "reserve");
		return;
	}
	uint32_t owner = c->uid == 0 ? DD_ANY_OWNER : c->uid;
	if (try_reserve(c, r->tag, queue, ttr, owner) != 0)
		return;
	if (!timeout) {
		dd_ops_reply(c, r->tag, json_pack("{s:n}", "job"));
		return;
	}
	struct pend *p = pend_new(c, PEND_RESERVE, r->tag, 0);
	if (!p) {
		dd_ops_error(c, r->tag, "ENOMEM", "out of memory");
		return;
	}
	snprintf(p->queue, sizeof(p->queue), "%s", queue);
	p->ttr = ttr;
	p->owner = owner;
	p->deadline = dd_mono_ns() + timeout;
	srv->nreserves++;
}

static void op_lease(struct conn *c, struct dd_req *r)
{
	uint64_t id, attempt, ttr = DEFAULT_TTR_NS;
	struct dd_job_info in;
	if (!get_id(c, r, &id))
		return;
	if (!dd_get_u64(r->root, "attempt", &attempt) || attempt == 0 || attempt > UINT32_MAX) {
		dd_ops_error(c, r->tag, "EINVAL", "missing \"attempt\" (from reserve)");
		return;
	}
	if (r->op == OP_TOUCH && json_object_get(r->root, "ttr") &&
	    (!dd_get_secs(r->root, "ttr", &ttr) || !ttr)) {
		dd_ops_error(c, r->tag, "EINVAL", "'ttr' is seconds, > 0");
		return;
	}
	if (!lookup(c, r->tag, id, &in, true))
		return;
	json_t *res = json_object_get(r->root, "result");
	int rc = r->op == OP_ACK    ? dd_lease_ack(c->srv->eng, id, (uint32_t)attempt)
		 : r->op == OP_NACK ? dd_lease_nack(c->srv->eng, id, (uint32_t)attempt,
						   res ? (int)json_integer_value(res) : 1)
				    : dd_lease_touch(c->srv->eng, id, (uint32_t)attempt, ttr);
	if (rc == -ESTALE)
		dd_ops_error(c, r->tag, "ESTALE", "the lease on attempt %llu of job %llu is over",
			     (unsigned long long)attempt, (unsigned long long)id);
	else if (rc < 0)
		engine_error(c, r->tag, rc, dd_op_name(r->op));
	else
		dd_ops_reply(c, r->tag, NULL);
}

/* ---- the rest ---- */

static void op_auth(struct conn *c, struct dd_req *r)
{
	const char *t = json_string_value(json_object_get(r->root, "token"));
	size_t tl = t ? strlen(t) : 0, kl = strlen(c->srv->token);
	if (!c->tcp) {
		dd_ops_reply(c, r->tag, json_pack("{s:b}", "authenticated", 1));
		return;
	}
	/* compare all of it whatever the first difference: no timing hint */
	unsigned char d = tl != kl;
	for (size_t i = 0; i < kl; i++)
		d |= (unsigned char)(c->srv->token[i] ^ (i < tl ? t[i] : 0));
	if (d || !kl) {
		dd_ops_error(c, r->tag, "EPERM", "wrong token");
		c->closing = true; /* no second guess on this connection */
		return;
	}
	c->authed = true;
	c->uid = (uint32_t)geteuid();
	c->gid = (uint32_t)getegid();
	dd_ops_reply(c, r->tag, json_pack("{s:b}", "authenticated", 1));
}

static void op_drain(struct conn *c, struct dd_req *r)
{
	if (c->uid != 0 && c->uid != geteuid()) {
		dd_ops_error(c, r->tag, "EPERM", "only root or the daemon's user may drain it");
		return;
	}
	c->srv->draining = true;
	dd_server_log("drain requested by uid %u", c->uid);
	dd_ops_reply(c, r->tag, json_pack("{s:b}", "draining", 1));
}

void dd_ops_handle(struct conn *c, const char *line, size_t len)
{
	struct dd_server *srv = c->srv;
	struct dd_req r;
	struct dd_perr e;
	srv->requests++;
	if (dd_proto_parse(line, len, &r, &e) < 0) {
		dd_ops_error(c, r.tag, e.code, "%s", e.msg);
		dd_req_free(&r);
		return;
	}
	if (c->tcp && !c->authed && r.op != OP_AUTH && r.op != OP_PING) {
		dd_ops_error(c, r.tag, "EPERM", "authenticate first: {\"op\":\"auth\",\"token\":...}");
		dd_req_free(&r);
		return;
	}
	switch (r.op) {
	case OP_PING:
		dd_ops_reply(c, r.tag, json_pack("{s:b, s:s, s:i}", "pong", 1, "version",
						 DD_VERSION, "uid", (int)c->uid));
		break;
	case OP_AUTH: op_auth(c, &r); break;
	case OP_SUBMIT: op_submit(c, &r, false); break;
	case OP_SUBMIT_BATCH: op_submit(c, &r, true); break;
	case OP_GET: op_get(c, &r); break;
	case OP_WAIT: op_wait(c, &r); break;
	case OP_WATCH: op_watch(c, &r, true); break;
	case OP_UNWATCH: op_watch(c, &r, false); break;
	case OP_CANCEL: op_cancel(c, &r); break;
	case OP_LIST: op_list(c, &r); break;
	case OP_OUTPUT: op_output(c, &r); break;
	case OP_RESERVE: op_reserve(c, &r); break;
	case OP_ACK:
	case OP_NACK:
	case OP_TOUCH: op_lease(c, &r); break;
	case OP_STATS: dd_ops_reply(c, r.tag, dd_stats_json(srv)); break;
	case OP_DRAIN: op_drain(c, &r); break;
	default: dd_ops_error(c, r.tag, "EINVAL", "unknown op"); break;
	}
	dd_req_free(&r);
}

/* ---- from the engine's callbacks, and the clock ---- */

static void send_event(struct dd_server *srv, const struct dd_event *ev)
{
	char key[24];
	snprintf(key, sizeof(key), "%llu", (unsigned long long)ev->id);
	for (struct conn *c = srv->conns.next; c != &srv->conns; c = c->next) {
		if (!c->watching || c->dead || (c->watch_ids && !json_object_get(c->watch_ids, key)))
			continue;
		json_t *o = json_object();
		if (c->watch_tag)
			json_object_set(o, "tag", c->watch_tag);
		json_object_set_new(o, "event", dd_event_json(srv, ev));
		send_json(c, o);
	}
}

void dd_ops_events(struct dd_server *srv)
{
	const struct dd_event *ev;
	const uint64_t *dur;
	size_t nev, ndur;
	dd_events_take(srv->events, &ev, &nev, &dur, &ndur);
	for (size_t i = 0; i < ndur; i++)
		dd_idmap_take(srv->durable_wait, dur[i], on_durable, srv);
	for (size_t i = 0; i < nev && srv->eng; i++) {
		if (dd_state_terminal(ev[i].state))
			dd_idmap_take(srv->end_wait, ev[i].id, on_end, srv);
		if (srv->nwatchers)
			send_event(srv, &ev[i]);
	}
}

void dd_ops_tick(struct dd_server *srv)
{
	uint64_t now = dd_mono_ns();
	int log_err = 0;
	struct dd_stats st;
	if (dd_idmap_count(srv->durable_wait)) {
		dd_stats(srv->eng, &st);
		for (unsigned i = 0; i < st.nshards; i++)
			if (st.shard[i].state_error)
				log_err = st.shard[i].state_error;
	}
	for (struct pend *p = srv->pends.next, *nx; p != &srv->pends; p = nx) {
		nx = p->next;
		if (p->kind == PEND_SUBMIT && log_err && now - p->since > SUBMIT_CHECK_NS) {
			/* the log cannot take them: the jobs failed "not logged" */
			struct dd_perr pe;
			dd_perr_engine(&pe, log_err, "not on disk");
			p->has_err = true;
			p->err.code = pe.code;
			snprintf(p->err.msg, sizeof(p->err.msg),
				 "%s; these jobs will not run: submit them again", pe.msg);
			submit_answer(srv, p);
		} else if (p->kind == PEND_RESERVE && !p->c->dead) {
			int got = try_reserve(p->c, p->tag, p->queue, p->ttr, p->owner);
			if (got == 0 && now >= p->deadline)
				dd_ops_reply(p->c, p->tag, json_pack("{s:n}", "job"));
			if (got != 0 || now >= p->deadline)
				dd_pend_free(srv, p);
		} else if (p->kind == PEND_WAIT && now >= p->deadline) {
			if (!p->c->dead)
				dd_ops_error(p->c, p->tag, "ETIMEDOUT",
					     "%zu of %zu jobs had not ended within the timeout", p->left,
					     p->n);
			dd_pend_free(srv, p);
		} else if (p->c->dead && p->kind != PEND_SUBMIT) {
			dd_pend_free(srv, p);
		}
	}
}

uint64_t dd_ops_next_tick(struct dd_server *srv)
{
	if (srv->nreserves)
		return 5; /* ms: a reserve that waits looks again this often */
	if (srv->pends.next != &srv->pends)
		return 50;
	return (uint64_t)-1;
}
