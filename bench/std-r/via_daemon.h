/* std-r --via-daemon: the same open- or closed-loop load, submitted to a
 * real dispatchd over its Unix socket in batches. */
#ifndef STD_R_VIA_DAEMON_H
#define STD_R_VIA_DAEMON_H

#include "opts.h"
#include "result.h"

/* One run at @rate jobs/s (0 = closed loop, o->depth batches in flight).
 * Starts a dispatchd on @state_dir unless o->socket names one, and drains
 * it after. Fills @res; returns 0, or 1 after saying why on stderr. */
int via_daemon_run(const struct opts *o, double rate, const char *state_dir,
		   struct run_result *res);

#endif
