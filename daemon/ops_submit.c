/* submit and submit_batch: decoded, owned by the caller's uid, counted
 * against its limit, and answered once durable. */
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
#include "fastsub.h"
#include "ops.h"
#include "proto.h"
#include "server.h"

/* ---- the answer ---- */

static json_t *ids_json(const uint64_t *ids, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)ids[i]));
	return a;
}

/* {"tag":T,"ok":true,"result":{"ids":[...]}} written directly: the bytes
 * dd_ops_reply() would send (jansson keeps insertion order), without a
 * JSON object per id, which under load cost as much as the decoding. */
static void send_ids(struct conn *c, json_t *tag, const uint64_t *ids, size_t n)
{
	char *t = tag ? json_dumps(tag, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	size_t tl = t ? strlen(t) : 0, cap = tl + 64 + n * 21;
	char *s = (!tag || t) ? malloc(cap) : NULL;
	if (!s) {
		free(t);
		dd_ops_reply(c, tag, json_pack("{s:o}", "ids", ids_json(ids, n))); /* says ENOMEM */
		return;
	}
	size_t k = 0;
	if (t)
		k += (size_t)sprintf(s, "{\"tag\":%s,", t);
	else
		s[k++] = '{';
	k += (size_t)sprintf(s + k, "\"ok\":true,\"result\":{\"ids\":[");
	for (size_t i = 0; i < n; i++) {
		char d[20];
		int nd = 0;
		uint64_t v = ids[i];
		do
			d[nd++] = (char)('0' + v % 10);
		while ((v /= 10));
		if (i)
			s[k++] = ',';
		while (nd)
			s[k++] = d[--nd];
	}
	memcpy(s + k, "]}}", 3);
	dd_conn_send(c, s, k + 3);
	free(s);
	free(t);
}

static void submit_answer(struct dd_server *srv, struct pend *p)
{
	if (!p->c->dead && p->batch && !p->has_err) {
		send_ids(p->c, p->tag, p->ids, p->n);
	} else if (!p->c->dead) {
		json_t *r = p->batch ? json_pack("{s:o}", "ids", ids_json(p->ids, p->n))
				     : json_pack("{s:I}", "id", (json_int_t)p->ids[0]);
		if (p->has_err) {
			json_t *o = dd_ops_error_obj(p->tag, p->err.code, p->err.msg);
			json_object_set_new(json_object_get(o, "error"), "submitted", r);
			p->c->srv->errors++;
			dd_ops_send_json(p->c, o);
		} else {
			dd_ops_reply(p->c, p->tag, r);
		}
	}
	p->left = 0;
	dd_pend_free(srv, p);
}

/* An id is durable (dd_pend_ops.release). */
static void submit_release(struct dd_server *srv, struct pend *p, uint64_t id)
{
	if (--p->left == 0 && !p->held) /* held: answered once all are in */
		submit_answer(srv, p);
}

/* ---- the request ---- */

static const struct dd_pend_ops submit_ops;

/* Closes fds[from..to) that are open (@fds may be NULL). */
static void close_fds(int *fds, size_t from, size_t to)
{
	for (size_t i = from; fds && i < to; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* What holds before any job is decoded: not draining, the batch's size,
 * the owner's limit of unfinished jobs. False once it answered. */
static bool admit(struct conn *c, json_t *tag, size_t n)
{
	struct dd_server *srv = c->srv;
	if (srv->draining) {
		dd_ops_error(c, tag, "ESHUTDOWN", "dispatchd is draining: it takes no new jobs");
		return false;
	}
	if (n > srv->cfg.max_batch) {
		dd_ops_error(c, tag, "E2BIG", "a batch holds at most %zu jobs", srv->cfg.max_batch);
		return false;
	}
	if (n == 0) {
		dd_ops_reply(c, tag, json_pack("{s:[]}", "ids"));
		return false;
	}
	int64_t live = dd_events_user_live(srv->events, c->uid);
	if ((uint64_t)live + n > srv->cfg.max_jobs_per_user) {
		dd_ops_error(c, tag, "EAGAIN",
			     "uid %u has %lld unfinished jobs (limit %llu): wait for some to end",
			     c->uid, (long long)live, (unsigned long long)srv->cfg.max_jobs_per_user);
		return false;
	}
	return true;
}

/* Decoded jobs, valid ones only: registers the queues nobody serves yet.
 * False once it answered an error. */
static bool register_queues(struct conn *c, json_t *tag, const struct dd_job_spec *specs,
			    size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* a queue nobody serves here is served by external workers */
		if (!specs[i].exec && (i == 0 || strcmp(specs[i].kind, specs[i - 1].kind))) {
			int hr = dd_handler_register(c->srv->eng, specs[i].kind, NULL, NULL);
			if (hr < 0 && hr != -EEXIST) {
				dd_ops_engine_error(c, tag, hr, "queue");
				return false;
			}
		}
	}
	return true;
}

static void stamp_owner(const struct conn *c, struct dd_job_spec *specs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		specs[i].flags |= DD_JOB_OWNER;
		specs[i].uid = c->uid;
		specs[i].gid = c->gid;
	}
}

/* A submit held for room: its line, decoded once, so that the retries
 * each turn cost a dd_submit_batch() call and nothing more. */
struct held_req {
	char *line;
	size_t len;
	struct dd_fastsub fs; /* the fast path's decoding, or */
	struct dd_req r;      /* the full decoder's */
	struct dd_envdec env; /* the batch's "env", which jd points into */
	struct dd_jobdec *jd;
	size_t njd;
	struct dd_job_spec *specs;
	size_t n;
};

static void free_jobs(struct dd_jobdec *jd, size_t decoded, struct dd_job_spec *specs);

static void held_free(struct held_req *h)
{
	if (!h)
		return;
	if (h->jd)
		free_jobs(h->jd, h->njd, h->specs); /* the full decoder's specs */
	dd_fastsub_free(&h->fs);
	dd_envdec_free(&h->env);
	dd_req_free(&h->r);
	free(h->line);
	free(h);
}

/* A held request is in, or its pend goes: the connection reads again. */
static void held_release(struct pend *p)
{
	if (!p->held)
		return;
	held_free(p->held);
	p->held = NULL;
	p->c->held = NULL;
	p->c->resume = true;
	p->c->srv->nheld--;
	p->c->srv->nresume++;
}

/* Submits what is left of @p's jobs (@specs: all @n of them, decoded from
 * the request). Returns false when the engine has no room yet and has not
 * had any for less than submit_wait: the caller holds the request, and
 * the loop calls again (submit_retry). Otherwise it has answered, or
 * arranged the answer for when the jobs are durable, and returns true. */
static bool submit_rest(struct conn *c, struct pend *p, const struct dd_job_spec *specs,
			size_t n)
{
	struct dd_server *srv = c->srv;
	size_t more = 0, before = p->sent;
	/* gone, or draining (the tick of the turn that began the drain gets
	 * here): what is in stays in, the rest is refused */
	int rc = c->dead || srv->draining
			 ? DD_ESHUTDOWN
			 : dd_submit_batch_known(srv->eng, specs + p->sent, n - p->sent, 0,
						 p->ids + p->sent, p->known + p->sent, &more);
	p->sent += more;
	/* the engine holds its own copies of these descriptors now */
	close_fds(p->fds, before, p->sent);
	/* Answer once every job is on disk at its level. The engine reports
	 * that per id (events.c), and this loop reads those reports only
	 * after this turn: so wait for these now, before a report can pass
	 * them by while the rest is held. A job of level none is not
	 * reported, nor is an earlier job returned for a known key once it is
	 * durable: those do not wait. */
	for (size_t i = before; i < p->sent; i++) {
		int lvl = specs[i].durability ? specs[i].durability : srv->cfg.durability;
		if (lvl == DD_DURABILITY_NONE)
			continue;
		if (p->known[i] && dd_wait_durable(srv->eng, p->ids[i], 0) != -ETIMEDOUT)
			continue;
		if (dd_idmap_add(srv->durable_wait, p->ids[i], p) == 0)
			p->left++;
	}
	if (rc == -EAGAIN && dd_mono_ns() - p->since < srv->cfg.submit_wait_ns)
		return false;
	size_t got = p->sent;
	close_fds(p->fds, got, n); /* refused: the jobs that did not go in */
	free(p->fds);
	p->fds = NULL;
	/* a known key made no job: the earlier one was counted when it came */
	int64_t known = 0;
	for (size_t i = 0; i < got; i++)
		known += p->known[i];
	held_release(p); /* frees @specs when they are the held copy's: not used after */
	dd_events_user_add(srv->events, c->uid, -(int64_t)(n - got) - known);
	p->n = got;
	if (rc < 0) {
		struct dd_perr pe;
		dd_perr_engine(&pe, rc, got ? "batch cut short" : "not submitted");
		if (rc == DD_ERESOURCES) {
			/* what it could have asked for */
			static _Thread_local struct dd_stats st; /* large: not on the stack */
			dd_stats_counters(srv->eng, &st);
			size_t k = strlen(pe.msg);
			snprintf(pe.msg + k, sizeof(pe.msg) - k, " (%llu CPUs and %.1f MiB)",
				 (unsigned long long)st.total.pool_cpus,
				 (double)st.total.pool_mem / 1048576.0);
		}
		if (!got) {
			dd_ops_error(c, p->tag, pe.code, "%s", pe.msg);
			dd_pend_free(srv, p);
			return true;
		}
		p->has_err = true;
		p->err.code = pe.code;
		snprintf(p->err.msg, sizeof(p->err.msg), "%s", pe.msg);
	}
	if (!p->left)
		submit_answer(srv, p);
	return true;
}

/* The engine had no room (rings full, or its store far behind its log):
 * rather than wait in the event loop, which would stall every client,
 * keep the request line and stop reading this connection until
 * submit_retry() gets it in: its later requests are not even read
 * before then. */
static int decode_jobs(struct dd_req *r, bool batch, struct dd_envdec *env, struct dd_jobdec *jd,
		       struct dd_job_spec *specs, size_t n, size_t *decoded, struct dd_perr *e);

static bool hold(struct conn *c, struct pend *p, const char *line, size_t len)
{
	struct held_req *h = calloc(1, sizeof(*h));
	if (!h || !(h->line = malloc(len ? len : 1))) {
		free(h);
		return false;
	}
	memcpy(h->line, line, len);
	h->len = len;
	/* decoded again from the copy, as the first time: the same specs */
	struct dd_perr e;
	size_t max = c->srv->cfg.max_batch;
	if (dd_fastsub_parse(&h->fs, h->line, len, max) == 1) {
		h->specs = h->fs.specs;
		h->n = h->fs.n;
	} else if (dd_proto_parse(h->line, len, &h->r, &e) == 0) {
		bool batch = h->r.op == OP_SUBMIT_BATCH;
		h->n = batch ? json_array_size(json_object_get(h->r.root, "jobs")) : 1;
		h->jd = calloc(h->n, sizeof(*h->jd));
		h->specs = calloc(h->n, sizeof(*h->specs));
		if (!h->jd || !h->specs ||
		    decode_jobs(&h->r, batch, &h->env, h->jd, h->specs, h->n, &h->njd, &e) < 0)
			h->n = 0;
		for (size_t i = 0; p->fds && i < h->n; i++)
			h->jd[i].exec.stdin_fd = p->fds[i]; /* the descriptors taken the first time */
	}
	if (!h->specs || h->n != p->n) { /* out of memory */
		if (!h->jd && h->specs != h->fs.specs)
			free(h->specs); /* held_free() frees it only with jd */
		held_free(h);
		return false;
	}
	stamp_owner(c, h->specs, h->n);
	p->held = h;
	c->held = p;
	c->srv->nheld++;
	return true;
}

/* The first try of a decoded submit. @fds: job i's stdin descriptor (-1
 * none), or NULL; taken over (set to NULL). */
static void submit_specs(struct conn *c, json_t *tag, struct dd_job_spec *specs, size_t n,
			 bool batch, const char *line, size_t len, int **fds)
{
	if (!register_queues(c, tag, specs, n))
		return;
	stamp_owner(c, specs, n);
	struct pend *p = dd_pend_new(c, &submit_ops, tag, n);
	if (p && !(p->known = calloc(n, sizeof(bool)))) {
		dd_pend_free(c->srv, p);
		p = NULL;
	}
	if (!p) {
		dd_ops_error(c, tag, "ENOMEM", "out of memory");
		return;
	}
	p->map = c->srv->durable_wait;
	p->batch = batch;
	p->fds = *fds;
	*fds = NULL;
	dd_events_user_add(c->srv->events, c->uid, (int64_t)n); /* before: an end may come first */
	if (!submit_rest(c, p, specs, n) && !hold(c, p, line, len)) {
		p->since = 0; /* cannot hold it: no more waiting */
		submit_rest(c, p, specs, n);
	}
}

/* Decodes the jobs of a parsed submit (@batch: submit_batch, whose "env"
 * goes to @env) into @jd and @specs, n of each. Returns 0, -1 with @e
 * filled and *@decoded the job at fault, or -2 with @e filled when the
 * batch's "env" is; *@decoded counts the @jd to free either way, and
 * @env is the caller's to free. */
static int decode_jobs(struct dd_req *r, bool batch, struct dd_envdec *env, struct dd_jobdec *jd,
		       struct dd_job_spec *specs, size_t n, size_t *decoded, struct dd_perr *e)
{
	json_t *jobs = batch ? json_object_get(r->root, "jobs") : NULL;
	*decoded = 0;
	if (batch && dd_proto_batch_env(r->root, env, e) < 0)
		return -2;
	for (; *decoded < n; ++*decoded) {
		size_t i = *decoded;
		if (dd_proto_job(batch ? json_array_get(jobs, i) : r->root, !batch, env, &jd[i], e) <
		    0) {
			dd_jobdec_free(&jd[i]);
			return -1;
		}
		specs[i] = jd[i].spec;
	}
	return 0;
}

static void free_jobs(struct dd_jobdec *jd, size_t decoded, struct dd_job_spec *specs)
{
	for (size_t i = 0; jd && i < decoded; i++)
		dd_jobdec_free(&jd[i]);
	free(jd);
	free(specs);
}

/* The descriptors a submit's "stdin_fd" jobs take from @c, oldest first,
 * into *@fds (job i's, -1 none; NULL when no job asks). False after
 * answering the error: fewer were passed than asked for (those taken are
 * closed, as the request used them). */
static bool take_fds(struct conn *c, struct dd_req *r, bool batch, size_t n, int **fds)
{
	json_t *jobs = batch ? json_object_get(r->root, "jobs") : NULL;
	size_t want = 0;
	*fds = NULL;
	for (size_t i = 0; i < n; i++)
		want += json_is_true(json_object_get(batch ? json_array_get(jobs, i) : r->root,
						     "stdin_fd"));
	if (!want)
		return true;
	if (!(*fds = malloc(n * sizeof(int)))) {
		dd_ops_error(c, r->tag, "ENOMEM", "out of memory");
		return false;
	}
	bool missing = false;
	for (size_t i = 0; i < n; i++) {
		(*fds)[i] = -1;
		if (json_is_true(json_object_get(batch ? json_array_get(jobs, i) : r->root, "stdin_fd")) &&
		    ((*fds)[i] = dd_conn_take_fd(c)) < 0)
			missing = true;
	}
	if (missing) {
		close_fds(*fds, 0, n);
		free(*fds);
		*fds = NULL;
		dd_ops_error(c, r->tag, "EINVAL",
			     "'stdin_fd': no file descriptor was passed (send it with SCM_RIGHTS on "
			     "the Unix socket, with the request or before it)");
	}
	return !missing;
}

void dd_op_submit(struct conn *c, struct dd_req *r, bool batch, const char *line, size_t len)
{
	size_t n = batch ? json_array_size(json_object_get(r->root, "jobs")) : 1;
	int *fds;
	if (!take_fds(c, r, batch, n, &fds))
		return;
	if (!admit(c, r->tag, n)) {
		close_fds(fds, 0, n);
		free(fds);
		return;
	}
	struct dd_jobdec *jd = calloc(n, sizeof(*jd));
	struct dd_job_spec *specs = calloc(n, sizeof(*specs));
	struct dd_envdec env = {0};
	struct dd_perr e;
	size_t decoded = 0;
	int rc = -1;
	if (!jd || !specs)
		dd_ops_error(c, r->tag, "ENOMEM", "out of memory");
	else if ((rc = decode_jobs(r, batch, &env, jd, specs, n, &decoded, &e)) == -1 && batch)
		dd_ops_error(c, r->tag, e.code, "jobs[%zu]: %s (nothing was submitted)", decoded,
			     e.msg);
	else if (rc < 0)
		dd_ops_error(c, r->tag, e.code, "%s", e.msg);
	else {
		for (size_t i = 0; fds && i < n; i++)
			jd[i].exec.stdin_fd = fds[i];
		submit_specs(c, r->tag, specs, n, batch, line, len, &fds);
	}
	close_fds(fds, 0, n);
	free(fds);
	free_jobs(jd, decoded, specs);
	dd_envdec_free(&env);
}

bool dd_op_submit_fast(struct conn *c, const char *line, size_t len)
{
	struct dd_fastsub *fs = &c->srv->fast;
	if (dd_fastsub_parse(fs, line, len, c->srv->cfg.max_batch) != 1)
		return false;
	int *none = NULL;
	if (admit(c, fs->tag, fs->n))
		submit_specs(c, fs->tag, fs->specs, fs->n, true, line, len, &none);
	return true;
}

/* ---- the pend's callbacks ---- */

static void submit_retry(struct dd_server *srv, struct pend *p)
{
	submit_rest(p->c, p, p->held->specs, p->held->n); /* held on while no room */
}

static void submit_tick(struct dd_server *srv, struct pend *p, const struct dd_pend_tick *t)
{
	if (!t->log_err || t->now - p->since <= SUBMIT_CHECK_NS)
		return;
	/* the log cannot take them: the jobs failed "not logged" */
	struct dd_perr pe;
	dd_perr_engine(&pe, t->log_err, "not on disk");
	p->has_err = true;
	p->err.code = pe.code;
	snprintf(p->err.msg, sizeof(p->err.msg), "%s; these jobs will not run: submit them again",
		 pe.msg);
	submit_answer(srv, p);
}

static void submit_destroy(struct dd_server *srv, struct pend *p)
{
	held_release(p); /* shutting down while it waited for room */
	free(p->known);
	close_fds(p->fds, 0, p->n);
	free(p->fds);
}

static const struct dd_pend_ops submit_ops = {
	.release = submit_release,
	.tick = submit_tick,
	.retry = submit_retry,
	.destroy = submit_destroy,
};
