/* engine/ — idempotency keys (idem.c): an engine-wide map with striped
 * locks, since a keyed submission asks "is this key known?" on the
 * submitting thread. Any thread. */
#ifndef DD_ENGINE_IDEM_H
#define DD_ENGINE_IDEM_H

#include <stdint.h>

struct dd_idem;
int dd_idem_create(struct dd_idem **out);
void dd_idem_destroy(struct dd_idem *m);
void dd_idem_lock(struct dd_idem *m, uint64_t hash);
void dd_idem_unlock(struct dd_idem *m, uint64_t hash);
/* Keys are per owner: @uid and @key name one binding; @hash is
 * dd_idem_hash(uid, key). */
/* Under the stripe lock: id bound to the key, or 0. */
uint64_t dd_idem_find(struct dd_idem *m, uint64_t hash, uint32_t uid, const char *key);
/* Under the stripe lock: binds key to id. */
int dd_idem_insert(struct dd_idem *m, uint64_t hash, uint32_t uid, const char *key, uint64_t id);
/* Takes the lock itself: forgets the key if it is still bound to @id. */
void dd_idem_remove(struct dd_idem *m, uint64_t hash, uint32_t uid, const char *key, uint64_t id);
uint64_t dd_idem_hash(uint32_t uid, const char *key);

#endif
