/* engine/ — trust.c: the state directory is used only when it is the
 * engine's own (DESIGN.md section 9). Each returns 0, -EPERM (not ours: the message,
 * through dd_log(), names the path, its owner and mode, and the fix) or
 * another -errno (said too). */
#ifndef DD_ENGINE_TRUST_H
#define DD_ENGINE_TRUST_H

#include "engine.h"

/* Resolves and checks cfg.state_dir (creating it 0700) and the output dir
 * (cfg.output_dir, or <state_dir>/output); sets e->state_dir, e->state_fd
 * and e->output_dir. Nothing to do without either. */
int dd_trust_open(struct dd_engine *e);
/* <state_dir>/shard-@index, its wal and store dirs (created 0700), every
 * file in wal, and the store's data.mdb and lock.mdb when present. */
int dd_trust_shard(struct dd_engine *e, unsigned index);

#endif
