/* engine/ — dependencies (deps.c): dependants of a job, in its shard or
 * another, and the cross-shard events that carry subscriptions and
 * outcomes over one SPSC ring per ordered pair of shards. Reactor only. */
#ifndef DD_ENGINE_DEPS_H
#define DD_ENGINE_DEPS_H

#include "engine.h"

#define DD_XS_RING 4096       /* cross-shard event ring cells */

enum { XS_SUBSCRIBE = 1, XS_OUTCOME = 2 };

struct dd_xs_event {
	uint8_t type;
	uint8_t kind;       /* enum dd_dep_kind */
	uint8_t ok;         /* XS_OUTCOME: the dependency succeeded */
	uint8_t lost;       /* XS_OUTCOME: it cannot be followed (no memory,
			     * an id that never was): never met */
	uint32_t pad;
	uint64_t dep;       /* the dependency's id */
	uint64_t waiter;    /* the dependant's id */
};

struct dd_xs_overflow {
	struct dd_xs_event *ev;
	size_t n, cap;
};

struct dd_pending { /* dependants of a job that has not arrived yet */
	uint64_t dep;
	uint64_t waiter;
	uint8_t kind;
	struct dd_pending *next;
};

void dd_deps_subscribe(struct dd_shard *s, uint64_t dep, uint64_t waiter, uint8_t kind);
void dd_deps_release(struct dd_shard *s, struct dd_jobrec *j);
void dd_deps_arrived(struct dd_shard *s, struct dd_jobrec *j);
/* @id will never arrive (an array element that is not made): what waits
 * on it is told @ok. */
void dd_deps_gone(struct dd_shard *s, uint64_t id, bool ok);
size_t dd_deps_drain(struct dd_shard *s);
void dd_deps_flush(struct dd_shard *s);
bool dd_deps_ready(struct dd_shard *s);
void dd_deps_destroy(struct dd_shard *s);
bool dd_deps_backlog(const struct dd_shard *s);

#endif
