/* Idempotency keys: engine-wide map (owner uid, key) -> first job id. A
 * key belongs to its owner: the same key from two users is two keys.
 *
 * dd_submit() must answer "is this key known?" synchronously, from any
 * thread, before the job reaches a reactor, so the map cannot be owned by a
 * shard. It is split into stripes, each with its own mutex; only keyed
 * submissions touch it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "chain.h"
#include "idem.h"

#define STRIPES 64

struct idem_ent {
	struct idem_ent *next;
	uint64_t hash;
	uint64_t id;
	uint32_t uid;
	char key[];
};

struct stripe {
	_Alignas(DD_CACHELINE) pthread_mutex_t lock;
	struct idem_ent **b;
	size_t cap, n;
};

struct dd_idem {
	struct stripe s[STRIPES];
};

uint64_t dd_idem_hash(uint32_t uid, const char *key)
{
	/* FNV-1a over the uid and the key, then a final mix so stripe and
	 * bucket bits are independent */
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < 4; i++)
		h = (h ^ ((uid >> (8 * i)) & 0xff)) * 1099511628211ull;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

int dd_idem_create(struct dd_idem **out)
{
	struct dd_idem *m = aligned_alloc(DD_CACHELINE, sizeof(*m));
	if (!m)
		return -ENOMEM;
	memset(m, 0, sizeof(*m));
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&m->s[i].lock, NULL);
	*out = m;
	return 0;
}

void dd_idem_destroy(struct dd_idem *m)
{
	if (!m)
		return;
	for (int i = 0; i < STRIPES; i++) {
		struct stripe *s = &m->s[i];
		for (size_t b = 0; b < s->cap; b++)
			for (struct idem_ent *e = s->b[b], *n; e; e = n) {
				n = e->next;
				free(e);
			}
		free(s->b);
		pthread_mutex_destroy(&s->lock);
	}
	free(m);
}

static struct stripe *stripe_of(struct dd_idem *m, uint64_t hash)
{
	return &m->s[hash % STRIPES];
}

void dd_idem_lock(struct dd_idem *m, uint64_t hash)
{
	pthread_mutex_lock(&stripe_of(m, hash)->lock);
}

void dd_idem_unlock(struct dd_idem *m, uint64_t hash)
{
	pthread_mutex_unlock(&stripe_of(m, hash)->lock);
}

uint64_t dd_idem_find(struct dd_idem *m, uint64_t hash, uint32_t uid, const char *key)
{
	struct stripe *s = stripe_of(m, hash);
	if (!s->cap)
		return 0;
	for (struct idem_ent *e = s->b[(hash / STRIPES) & (s->cap - 1)]; e; e = e->next)
		if (e->hash == hash && e->uid == uid && strcmp(e->key, key) == 0)
			return e->id;
	return 0;
}

static size_t ent_slot(const struct idem_ent *e, size_t cap)
{
	return (e->hash / STRIPES) & (cap - 1);
}

DD_CHAIN_GROW(grow_buckets, struct idem_ent, ent_slot)

int dd_idem_insert(struct dd_idem *m, uint64_t hash, uint32_t uid, const char *key, uint64_t id)
{
	struct stripe *s = stripe_of(m, hash);
	if (!s->cap || s->n * 4 >= s->cap * 3) {
		int r = grow_buckets(&s->b, &s->cap, 64);
		if (r < 0)
			return r;
	}
	size_t len = strlen(key);
	struct idem_ent *e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return -ENOMEM;
	e->hash = hash;
	e->id = id;
	e->uid = uid;
	memcpy(e->key, key, len + 1);
	size_t k = (hash / STRIPES) & (s->cap - 1);
	e->next = s->b[k];
	s->b[k] = e;
	s->n++;
	return 0;
}

void dd_idem_remove(struct dd_idem *m, uint64_t hash, uint32_t uid, const char *key, uint64_t id)
{
	struct stripe *s = stripe_of(m, hash);
	pthread_mutex_lock(&s->lock);
	if (s->cap) {
		struct idem_ent **pp = &s->b[(hash / STRIPES) & (s->cap - 1)];
		for (; *pp; pp = &(*pp)->next) {
			struct idem_ent *e = *pp;
			if (e->hash == hash && e->id == id && e->uid == uid &&
			    strcmp(e->key, key) == 0) {
				*pp = e->next;
				free(e);
				s->n--;
				break;
			}
		}
	}
	pthread_mutex_unlock(&s->lock);
}
