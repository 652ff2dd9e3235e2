/* engine/ — what became of every sequence number (fate.c), so that a
 * dependency on a job no longer in memory is answered without the store
 * where it can be. Reactor only, except where said. */
#ifndef DD_ENGINE_FATE_H
#define DD_ENGINE_FATE_H

#include "engine.h"

enum { SEQ_UNSEEN = 0, SEQ_LIVE = 1, SEQ_ENDED_OK = 2, SEQ_ENDED_BAD = 3 };

uint8_t dd_seq_get(const struct dd_shard *s, uint64_t id);
/* dd_seq_get(), asking the store about ids from before this run. */
uint8_t dd_seq_fate(struct dd_shard *s, uint64_t id);
int dd_seq_set(struct dd_shard *s, uint64_t id, uint8_t fate);
void dd_fate_destroy(struct dd_shard *s);

#endif
