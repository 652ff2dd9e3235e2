/* engine/ — the shard's reactor (reactor.c): the scheduler loop, and what
 * the rest of the engine asks of it. */
#ifndef DD_ENGINE_REACTOR_H
#define DD_ENGINE_REACTOR_H

#include "engine.h"

/* The shard whose reactor is the calling thread, or NULL: calls that would
 * wait for that reactor must not (inline handlers, event callbacks). */
extern _Thread_local struct dd_shard *dd_tls_reactor;

void *dd_reactor_main(void *arg);

/* Jobs whose kind was unknown, looked at again after a registration
 * (also before a reserve). */
void dd_requeue_nohandler(struct dd_shard *s);
/* The attempt's bookkeeping, shared with reserve. */
void dd_start_attempt(struct dd_shard *s, struct dd_jobrec *j, int worker);

#endif
