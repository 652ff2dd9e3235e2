/* External workers: reserve (at once or waiting), ack, nack, touch. */
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
		dd_ops_engine_error(c, tag, rc, "reserve");
		return -1;
	}
	dd_ops_reply(c, tag, json_pack("{s:o}", "job", lease_json(&l, queue, ttr)));
	free(l.payload);
	return 1;
}

/* A reserve that waits looks again each tick, until its deadline. */
static void reserve_tick(struct dd_server *srv, struct pend *p, const struct dd_pend_tick *t)
{
	if (p->c->dead) {
		dd_pend_free(srv, p);
		return;
	}
	int got = try_reserve(p->c, p->tag, p->queue, p->ttr, p->owner);
	if (got == 0 && t->now >= p->deadline)
		dd_ops_reply(p->c, p->tag, json_pack("{s:n}", "job"));
	if (got != 0 || t->now >= p->deadline)
		dd_pend_free(srv, p);
}

static const struct dd_pend_ops reserve_ops = {
	.tick = reserve_tick,
	.poll = true,
};

void dd_op_reserve(struct conn *c, struct dd_req *r)
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
		dd_ops_engine_error(c, r->tag, rc, "reserve");
		return;
	}
	uint32_t owner = c->uid == 0 ? DD_ANY_OWNER : c->uid;
	if (try_reserve(c, r->tag, queue, ttr, owner) != 0)
		return;
	if (!timeout) {
		dd_ops_reply(c, r->tag, json_pack("{s:n}", "job"));
		return;
	}
	struct pend *p = dd_pend_new(c, &reserve_ops, r->tag, 0);
	if (!p) {
		dd_ops_error(c, r->tag, "ENOMEM", "out of memory");
		return;
	}
	snprintf(p->queue, sizeof(p->queue), "%s", queue);
	p->ttr = ttr;
	p->owner = owner;
	p->deadline = dd_mono_ns() + timeout;
}

void dd_op_lease(struct conn *c, struct dd_req *r)
{
	uint64_t id, attempt, ttr = DEFAULT_TTR_NS;
	struct dd_job_info in;
	if (!dd_ops_get_id(c, r, &id))
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
	if (!dd_ops_lookup(c, r->tag, id, &in, true))
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
		dd_ops_engine_error(c, r->tag, rc, dd_op_name(r->op));
	else
		dd_ops_reply(c, r->tag, NULL);
}
