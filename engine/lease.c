/* External workers: jobs of a queue without an in-process handler wait in
 * that queue's own priority lanes on their shard, until a worker outside
 * the engine leases one (dd_reserve). The lease is the job's timer; the
 * attempt number names the lease in every answer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "command.h"
#include "lease.h"
#include "reactor.h"
#include "registry.h"

static struct dd_queue_lanes *lanes_of(struct dd_shard *s, uint16_t h, bool create)
{
	if (!s->extq) {
		if (!create || !(s->extq = calloc(DD_MAX_HANDLERS, sizeof(*s->extq))))
			return NULL;
	}
	if (!s->extq[h] && create && (s->extq[h] = malloc(sizeof(**s->extq))))
		dd_queue_lanes_init(s->extq[h]);
	return s->extq[h];
}

void dd_lease_queue(struct dd_shard *s, struct dd_jobrec *j)
{
	struct dd_queue_lanes *l = lanes_of(s, j->handler, true);
	if (!l) {
		/* out of memory: the job cannot wait anywhere; fail it rather than
		 * lose it silently */
		dd_job_finish(s, j, DD_FAILED, dd_reason[R_HANDLER_FAILED]);
		return;
	}
	dd_queue_lanes_push(l, j->priority, &j->link);
	j->flags |= JF_EXTQ;
}

void dd_lease_unqueue(struct dd_shard *s, struct dd_jobrec *j)
{
	dd_queue_lanes_remove(lanes_of(s, j->handler, false), j->priority, &j->link);
	j->link.next = j->link.prev = NULL;
	j->flags &= (uint8_t)~JF_EXTQ;
}

/* The most urgent, oldest job of @l that @owner may take. */
static struct dd_jobrec *pick(struct dd_queue_lanes *l, uint32_t owner)
{
	for (unsigned p = 0; p < DD_QUEUE_LANES; p++) {
		if (!l->count[p])
			continue;
		for (struct dd_queue_node *n = l->head[p].next; n != &l->head[p]; n = n->next) {
			struct dd_jobrec *j = (struct dd_jobrec *)n;
			if (owner == DD_ANY_OWNER || j->uid == owner)
				return j;
		}
	}
	return NULL;
}

void dd_lease_reserve(struct dd_shard *s, struct dd_cmd *c)
{
	dd_requeue_nohandler(s); /* the queue may have been named just now */
	struct dd_queue_lanes *l = s->stopping ? NULL : lanes_of(s, c->handler, false);
	struct dd_jobrec *j = l && l->total ? pick(l, c->owner) : NULL;
	if (!j) {
		dd_cmd_complete(c, -EAGAIN);
		return;
	}
	struct dd_lease *o = c->lease;
	void *copy = NULL;
	if (j->payload_len && !(copy = malloc(j->payload_len))) {
		dd_cmd_complete(c, -ENOMEM); /* the job stays queued */
		return;
	}
	dd_lease_unqueue(s, j);
	dd_start_attempt(s, j, -1);
	j->flags |= JF_LEASED;
	dd_queue_wheel_arm(&s->wheel, &j->timer, s->now + c->ttr);
	if (copy)
		memcpy(copy, j->payload, j->payload_len);
	*o = (struct dd_lease){
		.id = j->id, .attempt = j->attempt, .max_attempts = j->max_attempts,
		.uid = j->uid, .gid = j->gid, .priority = j->priority,
		.deadline_ns = s->now + c->ttr, .payload = copy, .payload_len = j->payload_len,
	};
	dd_cmd_complete(c, 0);
}

void dd_lease_cmd(struct dd_shard *s, struct dd_jobrec *j, struct dd_cmd *c)
{
	if (dd_state_terminal((enum dd_state)j->state)) {
		dd_cmd_complete(c, DD_ETERMINAL);
		return;
	}
	if (!(j->flags & JF_LEASED) || j->attempt != c->attempt) {
		dd_cmd_complete(c, -ESTALE); /* expired, and maybe leased again */
		return;
	}
	switch (c->type) {
	case CMD_ACK:
		j->flags &= (uint8_t)~JF_LEASED;
		dd_job_attempt_done(s, j, 0, NULL);
		break;
	case CMD_NACK:
		j->flags &= (uint8_t)~JF_LEASED;
		dd_job_attempt_done(s, j, c->result ? c->result : 1, dd_reason[R_NACK]);
		break;
	default: /* CMD_TOUCH */
		dd_queue_wheel_cancel(&s->wheel, &j->timer);
		dd_queue_wheel_arm(&s->wheel, &j->timer, s->now + c->ttr);
		break;
	}
	dd_cmd_complete(c, 0);
}

void dd_lease_destroy(struct dd_shard *s)
{
	if (!s->extq)
		return;
	for (unsigned h = 0; h < DD_MAX_HANDLERS; h++)
		free(s->extq[h]);
	free(s->extq);
	s->extq = NULL;
}

/* ---- API (any thread) ---- */

static _Atomic unsigned reserve_rr;

int dd_reserve(struct dd_engine *e, const char *queue, uint64_t ttr_ns, uint32_t owner,
	       struct dd_lease *out)
{
	if (!queue || !out || ttr_ns == 0)
		return -EINVAL;
	int h = dd_handler_find(e, queue);
	if (h < 0 || e->handlers[h].fn)
		return DD_ENOHANDLER;
	/* start at a different shard each time, so no shard's queue starves */
	unsigned first = atomic_fetch_add_explicit(&reserve_rr, 1, memory_order_relaxed);
	int r = -EAGAIN;
	for (unsigned k = 0; k < e->nshards; k++) {
		unsigned sh = (first + k) % e->nshards;
		struct dd_cmd c = {
			.type = CMD_RESERVE, .id = (uint64_t)sh << DD_ID_SHARD_SHIFT,
			.handler = (uint16_t)h, .owner = owner, .ttr = ttr_ns, .lease = out,
		};
		r = dd_cmd_call(e, &c);
		if (r != -EAGAIN)
			return r;
	}
	return r;
}

static int answer(struct dd_engine *e, enum dd_cmd_type type, uint64_t id, uint32_t attempt,
		  int result, uint64_t ttr)
{
	struct dd_cmd c = {.type = type, .id = id, .attempt = attempt, .result = result,
			   .ttr = ttr};
	return dd_cmd_call(e, &c);
}

int dd_lease_ack(struct dd_engine *e, uint64_t id, uint32_t attempt)
{
	int r = answer(e, CMD_ACK, id, attempt, 0, 0);
	return r == DD_EEVICTED ? DD_ETERMINAL : r;
}

int dd_lease_nack(struct dd_engine *e, uint64_t id, uint32_t attempt, int result)
{
	int r = answer(e, CMD_NACK, id, attempt, result, 0);
	return r == DD_EEVICTED ? DD_ETERMINAL : r;
}

int dd_lease_touch(struct dd_engine *e, uint64_t id, uint32_t attempt, uint64_t ttr_ns)
{
	if (ttr_ns == 0)
		return -EINVAL;
	int r = answer(e, CMD_TOUCH, id, attempt, 0, ttr_ns);
	return r == DD_EEVICTED ? DD_ETERMINAL : r;
}
