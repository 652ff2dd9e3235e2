#ifndef EXEC_RATE_VIA_DAEMON_H
#define EXEC_RATE_VIA_DAEMON_H

#include <stdint.h>

/* Starts a dispatchd (@exe, or the build's), keeps @inflight process jobs
 * of @program in flight over its socket for @seconds after a short warm-up,
 * and returns the jobs ended per second; adds failed jobs to *failures.
 * @env_vars: variables in each job's environment (0: none sent).
 * @cgroups: the daemon's --cgroups (auto, on, off); @supervisor its
 * --supervisor (NULL: $DISPATCHD_SUPERVISOR, else the build's beside
 * @exe's, else the installed one). */
double daemon_exec_rate(const char *exe, const char *program, unsigned env_vars, double seconds,
			unsigned inflight, const char *cgroups, const char *supervisor,
			uint64_t *failures);
/* The same daemon, one array of @elements process jobs of @program: the
 * elements ended per second, from the submit to the array's end. */
double daemon_array_rate(const char *exe, const char *program, unsigned elements,
			 const char *cgroups, const char *supervisor, uint64_t *failures);

#endif
