/* Shared helpers for the engine suites. Every Criterion test runs in its
 * own process, so the globals here are per test. */
#ifndef TEST_ENGINE_UTIL_H
#define TEST_ENGINE_UTIL_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include "dispatchd.h"

#define MS 1000000ull

extern _Atomic int gate_open;      /* "gate" handlers block until it is 1 */
extern _Atomic int order_len;      /* "order" handlers log their tag here */
extern int order_log[4096];
extern _Atomic int started_count;
extern bool probe_wanted; /* make_engine() leaves the probe on (auto) */

/* Registers ok, fail, flaky, spin, gate, order on @e. */
void register_handlers(struct dd_engine *e);
/* Engine with @cfg (defaults when NULL) and the handlers above. */
struct dd_engine *make_engine(struct dd_config *cfg);
struct dd_job_spec spec(const char *kind);
uint64_t submit_ok(struct dd_engine *e, const struct dd_job_spec *s);
/* Waits and returns the final state. The limits of these waits (a minute)
 * are for a machine loaded many times over: a passing test never nears them. */
enum dd_state wait_state(struct dd_engine *e, uint64_t id, struct dd_job_info *info);
/* Polls until the job is in @st. */
void await_state(struct dd_engine *e, uint64_t id, enum dd_state st);
/* Until the job has begun an attempt (it may have ended since: a poll
 * can come late on a loaded machine). */
void await_started(struct dd_engine *e, uint64_t id);
/* Divisor for stress sizes (DD_TEST_SCALE, e.g. under sanitizers). */
unsigned test_scale(void);
void sleep_ms(unsigned ms);

/* The most jobs that ran at once, from the "<time> 1" and "<time> -1"
 * lines they wrote to @path (ends before starts at a tie); @events: how
 * many lines there must be. */
int most_at_once(const char *path, int events);

/* A one-shard, one-worker engine whose process jobs write their output
 * to @output_dir; @grace_ns and @output_max 0 keep the defaults. */
struct dd_engine *exec_engine_in(const char *output_dir, uint64_t grace_ns, uint64_t output_max);
/* Submits @argv as a process job ("procs") with @x's other fields (may be
 * NULL), owned by @uid/@gid when that is not us; returns its id. */
uint64_t submit_exec(struct dd_engine *e, const char *const *argv, struct dd_exec_spec *x,
		     uint32_t uid, uint32_t gid, uint64_t timeout_ns);

#endif
