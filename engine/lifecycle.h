/* engine/ — job state transitions (lifecycle.c), all on the reactor.
 * Ending a job and its reason are in engine.h: every executor calls them. */
#ifndef DD_ENGINE_LIFECYCLE_H
#define DD_ENGINE_LIFECYCLE_H

#include "engine.h"

struct dd_sub;

/* j->reason = @reason, freeing the text j owned before (unless it is
 * @reason itself). */
void dd_job_set_reason(struct dd_shard *s, struct dd_jobrec *j, const char *reason);
void dd_job_arrive(struct dd_shard *s, struct dd_sub *m);
void dd_job_make_ready(struct dd_shard *s, struct dd_jobrec *j);
void dd_job_completed(struct dd_shard *s, struct dd_jobrec *j);
/* exit_code/term_signal of a process job from its result (wait status). */
void dd_job_info_exec(struct dd_job_info *info, bool exec, int result);
int dd_job_cancel(struct dd_shard *s, struct dd_jobrec *j, enum dd_state how,
		  const char *reason);
void dd_job_timer_fired(struct dd_queue_timer *t, void *arg);
void dd_job_info_fill(const struct dd_shard *s, const struct dd_jobrec *j,
		      struct dd_job_info *info);
void dd_shard_set_state(struct dd_shard *s, struct dd_jobrec *j, enum dd_state st);

#endif
