/* engine/ — background work off the hot CPUs (placement.c), and the
 * reactor's spin budget, which depends on the same CPUs. */
#ifndef DD_ENGINE_PLACEMENT_H
#define DD_ENGINE_PLACEMENT_H

#include <sched.h>
#include <stdbool.h>
#include "engine.h"

/* The process's CPUs that no reactor or worker is pinned to; false when
 * there are none (or nothing is pinned). */
bool dd_cold_cpus(const struct dd_engine *e, cpu_set_t *set);
/* Moves the calling thread (the applier) to the cold CPUs, if any. */
void dd_place_applier(const struct dd_engine *e);
/* Called by the reactor: its ring's kernel workers go to the cold CPUs. */
void dd_place_uring_workers(struct dd_shard *s);
/* Turns cfg.spin_ns = DD_SPIN_AUTO into a number (see dispatchd.h). */
void dd_resolve_spin(struct dd_engine *e);

#endif
