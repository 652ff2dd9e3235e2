#ifndef EXEC_RATE_VIA_DAEMON_H
#define EXEC_RATE_VIA_DAEMON_H

#include <stdint.h>

/* Starts a dispatchd (@exe, or the build's), keeps @inflight process jobs
 * of @program in flight over its socket for @seconds after a short warm-up,
 * and returns the jobs ended per second; adds failed jobs to *failures.
 * With @nenv, each job carries an environment of that many variables. */
double daemon_exec_rate(const char *exe, const char *program, double seconds, unsigned inflight,
			unsigned nenv, uint64_t *failures);

#endif
