/* Fuzz target: the process supervisor's message and journal checks
 * (supervisor/wire.c). A supervisor reads each message from a socket and each
 * journal record from the disk, and trusts nothing it has not checked:
 * what passes must be safe to read as the checks promise. The first byte
 * picks the message type and the fds said to come with it. Seeds: one
 * well-formed message of each type, and a journal record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor.h"

#include "fuzz.h"

static const uint32_t types[] = {DD_SUP_HELLO, DD_SUP_SPAWN, DD_SUP_SPAWNED, DD_SUP_CHILD,
				 DD_SUP_LISTED, DD_SUP_EXIT,  DD_SUP_ACK,     DD_SUP_SIGNAL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned nfds = data[0] & 7;
	uint32_t want = types[(data[0] >> 3) & 7];
	data++;
	size--;
	if (size > DD_SUP_MSG_MAX)
		return 0;
	/* aligned, as a receive buffer is */
	void *m = malloc(size ? size : 1);
	if (!m)
		return 0;
	memcpy(m, data, size);
	if (dd_sup_check(m, size, nfds, want) == 0 && want == DD_SUP_SPAWN) {
		/* the promises the supervisor reads by: the tail holds the
		 * spec (inline), the groups and four NUL-ended strings */
		const struct dd_sup_spawn *s = m;
		if (nfds != dd_sup_spawn_nfds(s) || s->ncg > 4 || s->shard >= DD_SUP_MAX_SHARDS ||
		    !s->attempt || ((s->flags & DD_SUP_F_SETUID) && !(s->flags & DD_SUP_F_CRED)))
			abort();
		const char *t = (const char *)(s + 1) + ((s->flags & DD_SUP_F_MEMFD) ? 0 : s->spec_len);
		if (s->flags & DD_SUP_F_CRED) {
			const char *e = t + s->ngroups * 4, *end = (const char *)m + size;
			for (int i = 0; i < 4; i++) {
				const char *z = memchr(e, 0, (size_t)(end - e));
				if (!z)
					abort();
				e = z + 1;
			}
			if (e != end)
				abort();
		}
	}
	if (dd_sup_check(m, size, nfds, want) == 0 && want == DD_SUP_CHILD) {
		const struct dd_sup_child *c = m;
		if (!(c->flags & DD_SUP_C_EXITED) != !!(c->flags & DD_SUP_C_PIDFD) || c->pid <= 0)
			abort();
	}
	if (size == sizeof(struct dd_sup_jrec)) {
		struct dd_sup_jrec r;
		memcpy(&r, data, sizeof(r));
		if (dd_sup_jrec_valid(&r) == 0 && (r.attempt == 0 || r.shard >= DD_SUP_MAX_SHARDS))
			abort();
	}
	free(m);
	return 0;
}

/* One well-formed message of each kind the engine and the supervisor send,
 * each behind its selector byte, and a journal record. */
const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static struct dd_fuzz_seed seeds[8];
	static unsigned char hello[1 + sizeof(struct dd_sup_hello)];
	static unsigned char spawn[1 + sizeof(struct dd_sup_spawn) + 16 + 8 + 16];
	static unsigned char exitm[1 + sizeof(struct dd_sup_exit)];
	static unsigned char ack[1 + offsetof(struct dd_sup_ack, e) + 2 * sizeof(struct dd_sup_ack_ent)];
	static unsigned char child[1 + sizeof(struct dd_sup_child)];
	static unsigned char jrec[1 + sizeof(struct dd_sup_jrec)];
	struct dd_sup_hello h = {DD_SUP_HELLO, DD_SUP_VERSION, DD_SUP_ROLE_EVENTS, 0};
	hello[0] = 0 << 3;
	memcpy(hello + 1, &h, sizeof(h));
	struct dd_sup_spawn s = {.type = DD_SUP_SPAWN, .id = 7, .attempt = 1,
				 .flags = DD_SUP_F_CRED | DD_SUP_F_IN, .spec_len = 16, .ngroups = 2,
				 .env_len = 16};
	spawn[0] = (1 << 3) | 3; /* out, err, in */
	memcpy(spawn + 1, &s, sizeof(s));
	memcpy(spawn + 1 + sizeof(s) + 16 + 8, "U=a\0L=b\0H=c\0S=d", 16);
	struct dd_sup_exit x = {DD_SUP_EXIT, 256, 7, 1, 42};
	exitm[0] = 5 << 3;
	memcpy(exitm + 1, &x, sizeof(x));
	struct dd_sup_ack a = {.type = DD_SUP_ACK, .n = 2};
	a.e[0].id = 7, a.e[0].attempt = 1, a.e[1].id = 8, a.e[1].attempt = 2;
	ack[0] = 6 << 3;
	memcpy(ack + 1, &a, sizeof(ack) - 1);
	struct dd_sup_child c = {.type = DD_SUP_CHILD, .flags = DD_SUP_C_PIDFD | DD_SUP_C_OUT,
				 .id = 7, .attempt = 1, .pid = 42};
	child[0] = (3 << 3) | 2;
	memcpy(child + 1, &c, sizeof(c));
	struct dd_sup_jrec r = {.magic = DD_SUP_JMAGIC, .id = 7, .attempt = 1, .pid = 42,
				.status = 768};
	r.check = dd_sup_jrec_check(&r);
	jrec[0] = 0;
	memcpy(jrec + 1, &r, sizeof(r));
	seeds[0] = (struct dd_fuzz_seed){hello, sizeof(hello)};
	seeds[1] = (struct dd_fuzz_seed){spawn, sizeof(spawn)};
	seeds[2] = (struct dd_fuzz_seed){exitm, sizeof(exitm)};
	seeds[3] = (struct dd_fuzz_seed){ack, sizeof(ack)};
	seeds[4] = (struct dd_fuzz_seed){child, sizeof(child)};
	seeds[5] = (struct dd_fuzz_seed){jrec, sizeof(jrec)};
	*n = 6;
	return seeds;
}
