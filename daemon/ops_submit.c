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

/* Of @n submitted jobs, those whose key was known: the engine answered
 * with the id of a job submitted before @t0, which was counted against its
 * owner's limit when it came (and dropped when it ended), so it must not
 * be counted again. */
static int64_t known_keys(struct dd_server *srv, const struct dd_job_spec *specs,
			  const uint64_t *ids, size_t n, uint64_t t0)
{
	int64_t known = 0;
	struct dd_job_info in;
	for (size_t i = 0; i < n; i++)
		if (specs[i].idem_key && dd_job_get(srv->eng, ids[i], &in) == 0 &&
		    in.submitted_ns < t0)
			known++;
	return known;
}

/* Decoded jobs, valid ones only: registers the queues nobody serves yet,
 * stamps the owner, submits, and answers once durable. */
static void submit_specs(struct conn *c, json_t *tag, struct dd_job_spec *specs, size_t n,
			 bool batch)
{
	struct dd_server *srv = c->srv;
	for (size_t i = 0; i < n; i++) {
		/* a queue nobody serves here is served by external workers */
		if (!specs[i].exec && (i == 0 || strcmp(specs[i].kind, specs[i - 1].kind))) {
			int hr = dd_handler_register(srv->eng, specs[i].kind, NULL, NULL);
			if (hr < 0 && hr != -EEXIST) {
				engine_error(c, tag, hr, "queue");
				return;
			}
		}
		specs[i].flags |= DD_JOB_OWNER;
		specs[i].uid = c->uid;
		specs[i].gid = c->gid;
	}
	struct pend *p = pend_new(c, PEND_SUBMIT, tag, n);
	if (!p) {
		dd_ops_error(c, tag, "ENOMEM", "out of memory");
		return;
	}
	p->batch = batch;
	dd_events_user_add(srv->events, c->uid, (int64_t)n); /* before: an end may come first */
	size_t got = 0;
	uint64_t t0 = dd_mono_ns();
	int rc = dd_submit_batch(srv->eng, specs, n, 0, p->ids, &got);
	/* Rings full: the reactors drain them in microseconds, so wait a
	 * little for room rather than refuse; the store behind the log
	 * clears at its next commit. A limit that does not clear (max live
	 * jobs) is refused after RING_WAIT_NS. */
	while (rc == -EAGAIN && dd_mono_ns() - t0 < RING_WAIT_NS) {
		struct timespec ts = {0, 20000};
		nanosleep(&ts, NULL);
		size_t more = 0;
		rc = dd_submit_batch(srv->eng, specs + got, n - got, 0, p->ids + got, &more);
		got += more;
	}
	dd_events_user_add(srv->events, c->uid,
			   -(int64_t)(n - got) - known_keys(srv, specs, p->ids, got, t0));
	p->n = got;
	if (rc < 0) {
		struct dd_perr pe;
		dd_perr_engine(&pe, rc, got ? "batch cut short" : "not submitted");
		if (!got) {
			dd_ops_error(c, tag, pe.code, "%s", pe.msg);
			p->left = 0;
			dd_pend_free(srv, p);
			return;
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
}

void op_submit(struct conn *c, struct dd_req *r, bool batch)
{
	json_t *jobs = batch ? json_object_get(r->root, "jobs") : NULL;
	size_t n = batch ? json_array_size(jobs) : 1;
	if (!admit(c, r->tag, n))
		return;
	struct dd_jobdec *jd = calloc(n, sizeof(*jd));
	struct dd_job_spec *specs = calloc(n, sizeof(*specs));
	struct dd_perr e;
	size_t decoded = 0;
	if (!jd || !specs) {
		dd_ops_error(c, r->tag, "ENOMEM", "out of memory");
		goto out;
	}
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
		specs[decoded] = jd[decoded].spec;
	}
	submit_specs(c, r->tag, specs, n, batch);
out:
	for (size_t i = 0; jd && i < decoded; i++)
		dd_jobdec_free(&jd[i]);
	free(jd);
	free(specs);
}

bool op_submit_fast(struct conn *c, const char *line, size_t len)
{
	struct dd_fastsub *fs = &c->srv->fast;
	if (dd_fastsub_parse(fs, line, len, c->srv->cfg.max_batch) != 1)
		return false;
	if (admit(c, fs->tag, fs->n))
		submit_specs(c, fs->tag, fs->specs, fs->n, true);
	return true;
}
