/* Helpers for the durable-state suites: temporary state dirs, engines on
 * them. Every test makes its own directory, so they run in parallel. */
#ifndef TEST_STATE_SUTIL_H
#define TEST_STATE_SUTIL_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatchd.h"

#define MS 1000000ull

/* A fresh directory under $TMPDIR (or /tmp); removed by rm_tree(). */
char *make_tmpdir(const char *tag);
void rm_tree(const char *dir);
/* rm_tree() and free() */
void drop_tmpdir(char *dir);
/* Engine on @dir at @level with handlers "ok", "fail" and "hold" (blocks
 * while hold_gate is 0) registered; cfg may be NULL. */
extern _Atomic int hold_gate;
struct dd_engine *open_engine(const char *dir, enum dd_durability level, struct dd_config *cfg);
void register_state_handlers(struct dd_engine *e);
void config_for(struct dd_config *cfg, const char *dir, enum dd_durability level);
struct dd_job_spec job(const char *kind);

#endif
