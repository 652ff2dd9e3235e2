/* A multimap from job id to pointer (open hashing, chains): which waiting
 * answers a job's durability or end concerns. Single-threaded. */
#ifndef DD_DAEMON_IDMAP_H
#define DD_DAEMON_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct dd_idmap;

int dd_idmap_create(struct dd_idmap **out);
void dd_idmap_destroy(struct dd_idmap *m);
int dd_idmap_add(struct dd_idmap *m, uint64_t id, void *val);
/* Removes one (id, val) pair; returns whether it was there. */
int dd_idmap_del(struct dd_idmap *m, uint64_t id, void *val);
/* Takes every value under @id out, calling @fn on each. */
void dd_idmap_take(struct dd_idmap *m, uint64_t id, void (*fn)(void *val, uint64_t id, void *arg),
		   void *arg);
size_t dd_idmap_count(const struct dd_idmap *m);

#endif
