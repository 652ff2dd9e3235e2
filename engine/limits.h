/* engine/ — limits on running process jobs, per owner and per kind
 * (limits.c; DESIGN.md section 10). Private. */
#ifndef DD_ENGINE_LIMITS_H
#define DD_ENGINE_LIMITS_H

#include <stdbool.h>

#include "engine.h"

/* j->lim */
#define DD_LIM_HELD 1u  /* waits aside in s->held: a limit is reached */
#define DD_LIM_USER 2u  /* counted in its owner's running jobs */
#define DD_LIM_QUEUE 4u /* counted in its kind's running jobs */

struct dd_limits;

/* Engine creation: the limits of cfg.limits. 0, -EINVAL, -ENOMEM. */
int dd_limits_create(struct dd_engine *e);
void dd_limits_destroy(struct dd_engine *e);
/* Reactor: a process job about to take from the pool. True when it is
 * within its owner's and its kind's limits (and now counted in both);
 * false when it has been set aside until a job of that owner or kind
 * ends. */
bool dd_limits_take(struct dd_shard *s, struct dd_jobrec *j);
/* Recovery: @j runs (taken over): counted, whatever the limits say. */
void dd_limits_force(struct dd_shard *s, struct dd_jobrec *j);
/* Reactor: @j no longer runs or waits for the pool: its counts go back
 * (nothing when it holds none), and shards holding jobs look again. */
void dd_limits_give(struct dd_shard *s, struct dd_jobrec *j);
/* Reactor: takes a held job out (it ends while waiting). */
void dd_limits_unhold(struct dd_shard *s, struct dd_jobrec *j);
/* Reactor: held jobs may go now (a count went back, the limits changed). */
bool dd_limits_ready(const struct dd_shard *s);
/* Reactor: the next held job that is within its limits now, counted, or
 * NULL. Looks only after a count went back or the limits changed. */
struct dd_jobrec *dd_limits_next(struct dd_shard *s);

#endif
