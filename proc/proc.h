/* proc/ — starting processes: the exec spec's encoding, owners'
 * credentials. It knows nothing of jobs, shards or the log: the engine
 * supervises what it starts.
 *
 * Private header of the component (not part of the public API). */
#ifndef DD_PROC_H
#define DD_PROC_H

#include <stdbool.h>
#include <stdint.h>

#include "dispatchd.h"

/* Encoded process spec (execspec.c). */
int dd_exec_encode(const struct dd_exec_spec *x, void **out, size_t *len);
struct dd_exec_decoded {
	char **argv;  /* NULL-terminated, pointing into blk */
	char **env;   /* NULL-terminated, or NULL */
	bool env_replace;
	char *cwd;    /* or NULL */
	char *stdin_path; /* or NULL */
	unsigned umask; /* 022 unless the spec gave one */
	uint64_t output_max;
	struct dd_rlimit rl[DD_RLIMITS_MAX];
	unsigned nrl;
	void *blk;    /* one allocation holding all of it */
};
int dd_exec_decode(const void *buf, size_t len, struct dd_exec_decoded *out);
void dd_exec_decoded_free(struct dd_exec_decoded *d);

/* ---- owners' credentials (creds.c): passwd entry and groups per uid,
 * resolved once and cached (any thread) ---- */
struct dd_cred {
	uint32_t uid;
	int err;          /* 0, or -ENOENT: no passwd entry */
	int ngroups;
	uint32_t *groups; /* supplementary groups (getgrouplist of the name) */
	char *env[4];     /* "USER=", "LOGNAME=", "HOME=", "SHELL=" from passwd */
	unsigned refs;    /* under the cache's lock */
	bool stale;       /* dropped by a reload: freed by the last put */
	struct dd_cred *next;
};
struct dd_creds;
int dd_creds_create(struct dd_creds **out);
void dd_creds_destroy(struct dd_creds *c);
/* @uid's entry with a reference (looked up on first use; a uid with no
 * passwd entry gets one with err set). Returns 0, -ENOMEM, or -errno of a
 * failed NSS look-up (nothing kept). May block (NSS) the first time. */
int dd_creds_get(struct dd_creds *c, uint32_t uid, struct dd_cred **out);
void dd_creds_put(struct dd_creds *c, struct dd_cred *cr);
/* Forgets every entry: the next get reads passwd and groups again. */
void dd_creds_reload(struct dd_creds *c);

#endif
