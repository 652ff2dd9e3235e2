/* engine/ — external queues (lease.c): jobs of a kind with no local
 * handler, leased to clients that reserve them. Reactor side. */
#ifndef DD_ENGINE_LEASE_H
#define DD_ENGINE_LEASE_H

#include "engine.h"

struct dd_cmd;

static inline bool dd_job_external(const struct dd_shard *s, const struct dd_jobrec *j)
{
	return !(j->flags & JF_EXEC) && j->handler != DD_HANDLER_UNRESOLVED &&
	       !s->eng->handlers[j->handler].fn;
}
/* Queues j (QUEUED, external kind) in its queue's lanes. */
void dd_lease_queue(struct dd_shard *s, struct dd_jobrec *j);
/* Takes j out of them (finish, cancel). */
void dd_lease_unqueue(struct dd_shard *s, struct dd_jobrec *j);
void dd_lease_cmd(struct dd_shard *s, struct dd_jobrec *j, struct dd_cmd *c);
void dd_lease_reserve(struct dd_shard *s, struct dd_cmd *c);
void dd_lease_destroy(struct dd_shard *s);

#endif
