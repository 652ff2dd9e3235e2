/* std-r's accounting of durable acknowledgements: submit (intended time)
 * to the engine's on_durable callback, per job. */
#ifndef STD_R_DURABLE_ACCT_H
#define STD_R_DURABLE_ACCT_H

#include <stdint.h>

#include "telemetry.h"

/* Room for @per_shard submissions on each of @shards shards. 0 or -ENOMEM. */
int acct_init(unsigned shards, uint64_t per_shard);
/* Only jobs intended in [from, to) count. */
void acct_window(uint64_t from_ns, uint64_t to_ns);
void acct_free(void);
/* The generator: job @id was meant to go at @intended_ns. */
void acct_submitted(uint64_t id, uint64_t intended_ns);
/* The engine's on_durable callback. */
void acct_on_durable(const uint64_t *ids, size_t n, void *arg);
/* Submit -> durable latencies of jobs intended inside the window. */
const struct dd_tel_hist *acct_hist(void);

#endif
