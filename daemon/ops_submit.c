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
#include "ops.h"
#include "proto.h"
#include "server.h"

void op_submit(struct conn *c, struct dd_req *r, bool batch)
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
