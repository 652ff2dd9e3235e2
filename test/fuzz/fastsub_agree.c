/* See fastsub_agree.h. */
#include <stdbool.h>
#include <string.h>

#include "fastsub.h"
#include "fastsub_agree.h"
#include "proto.h"

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool same_spec(const struct dd_job_spec *a, const struct dd_job_spec *b)
{
	return same_str(a->kind, b->kind) && a->payload_len == b->payload_len &&
	       (!a->payload_len || !memcmp(a->payload, b->payload, a->payload_len)) &&
	       !a->payload == !b->payload && a->priority == b->priority &&
	       a->delay_ns == b->delay_ns && a->timeout_ns == b->timeout_ns &&
	       a->max_attempts == b->max_attempts && a->backoff_ns == b->backoff_ns &&
	       a->backoff_max_ns == b->backoff_max_ns && a->ndeps == b->ndeps &&
	       a->node == b->node && a->shard == b->shard && same_str(a->idem_key, b->idem_key) &&
	       a->intended_ns == b->intended_ns && a->durability == b->durability &&
	       a->flags == b->flags && !a->exec && !b->exec && a->uid == b->uid && a->gid == b->gid;
}

int dd_fastsub_agrees(const char *line, size_t len)
{
	static struct dd_fastsub fs; /* kept: its buffers are reused, as in the server */
	if (dd_fastsub_parse(&fs, line, len, 100000) != 1)
		return 0;
	struct dd_req r;
	struct dd_perr e;
	int agree = dd_proto_parse(line, len, &r, &e) == 0 && r.op == OP_SUBMIT_BATCH &&
		    !r.tag == !fs.tag && (!r.tag || json_equal(r.tag, fs.tag));
	json_t *jobs = agree ? json_object_get(r.root, "jobs") : NULL;
	struct dd_envdec env = {0};
	agree = agree && json_array_size(jobs) == fs.n && dd_proto_batch_env(r.root, &env, &e) == 0;
	for (size_t i = 0; agree && i < fs.n; i++) {
		struct dd_jobdec jd;
		agree = dd_proto_job(json_array_get(jobs, i), false, &env, &jd, &e) == 0 &&
			same_spec(&jd.spec, &fs.specs[i]);
		dd_jobdec_free(&jd);
	}
	dd_envdec_free(&env);
	dd_req_free(&r);
	return agree ? 1 : -1;
}
