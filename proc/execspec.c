/* A process spec as bytes: the engine keeps it as a process job's
 * payload, so that the log, the store and recovery carry it like any
 * payload.
 *
 *   u32 magic "DDX1"   u32 flags (1 env_replace, 2 cwd present,
 *                                 4 umask present, 8 stdin path present,
 *                                 16 memory limit present, 32 CPUs present,
 *                                 64 stdout path present, 128 stderr path present)
 *   u64 output_max     u32 nrlimits   u32 argc   u32 envc
 *   [u32 umask] [u64 memory limit, not 0] [u32 CPUs, at least 2]
 *   nrlimits x { i32 resource, u64 cur, u64 max }
 *   [cwd] [stdin path] [stdout path] [stderr path] argv[argc] env[envc],
 *   each u32 length + bytes (no NUL)
 *
 * The optional fields only follow their flag bits, so a spec without them
 * has the bytes of the format's first version, and every payload an
 * earlier engine wrote decodes as it was meant. (stdin_fd is not here: it
 * is not durable.)
 *
 * Host byte order: a state directory is not moved between machines of
 * different endianness. The decoder trusts nothing (recovered bytes, fuzz). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

#define MAGIC 0x31584444u /* "DDX1" */
#define F_ENV_REPLACE 1u
#define F_CWD 2u
#define F_UMASK 4u
#define F_STDIN 8u
#define F_MEM 16u
#define F_CPUS 32u
#define F_STDOUT 64u
#define F_STDERR 128u
#define F_ALL (F_ENV_REPLACE | F_CWD | F_UMASK | F_STDIN | F_MEM | F_CPUS | F_STDOUT | F_STDERR)
#define HEAD_BYTES 28u /* magic, flags, output_max, nrlimits, argc, envc */

struct wbuf {
	unsigned char *p;
	size_t n, cap;
};

static void put(struct wbuf *w, const void *v, size_t n)
{
	if (w->p && w->n + n <= w->cap)
		memcpy(w->p + w->n, v, n);
	w->n += n;
}

static void put_str(struct wbuf *w, const char *s)
{
	uint32_t len = (uint32_t)strlen(s);
	put(w, &len, 4);
	put(w, s, len);
}

static size_t encode(const struct dd_exec_spec *x, struct wbuf *w)
{
	uint32_t argc = 0, envc = 0, u;
	while (x->argv[argc])
		argc++;
	while (x->env && x->env[envc])
		envc++;
	u = MAGIC;
	put(w, &u, 4);
	bool um = x->flags & DD_EXEC_UMASK;
	u = (x->env_replace ? F_ENV_REPLACE : 0) | (x->cwd ? F_CWD : 0) | (um ? F_UMASK : 0) |
	    (x->stdin_path ? F_STDIN : 0) | (x->mem ? F_MEM : 0) | (x->cpus > 1 ? F_CPUS : 0) |
	    (x->stdout_path ? F_STDOUT : 0) | (x->stderr_path ? F_STDERR : 0);
	put(w, &u, 4);
	put(w, &x->output_max, 8);
	put(w, &x->nrlimits, 4);
	put(w, &argc, 4);
	put(w, &envc, 4);
	if (um) {
		u = x->umask;
		put(w, &u, 4);
	}
	if (x->mem)
		put(w, &x->mem, 8);
	if (x->cpus > 1) {
		u = x->cpus;
		put(w, &u, 4);
	}
	for (unsigned i = 0; i < x->nrlimits; i++) {
		int32_t r = x->rlimits[i].resource;
		put(w, &r, 4);
		put(w, &x->rlimits[i].cur, 8);
		put(w, &x->rlimits[i].max, 8);
	}
	if (x->cwd)
		put_str(w, x->cwd);
	if (x->stdin_path)
		put_str(w, x->stdin_path);
	if (x->stdout_path)
		put_str(w, x->stdout_path);
	if (x->stderr_path)
		put_str(w, x->stderr_path);
	for (uint32_t i = 0; i < argc; i++)
		put_str(w, x->argv[i]);
	for (uint32_t i = 0; i < envc; i++)
		put_str(w, x->env[i]);
	return w->n;
}

int dd_proc_spec_encode(const struct dd_exec_spec *x, void **out, size_t *len)
{
	if (!x->argv || !x->argv[0] || !x->argv[0][0] || x->nrlimits > DD_RLIMITS_MAX ||
	    (x->nrlimits && !x->rlimits))
		return -EINVAL;
	if (x->cpus > DD_EXEC_CPUS_MAX)
		return -EINVAL;
	if ((x->flags & ~(DD_EXEC_UMASK | DD_EXEC_STDIN_FD)) ||
	    ((x->flags & DD_EXEC_UMASK) && x->umask > 0777) ||
	    (x->stdin_path && (!x->stdin_path[0] || (x->flags & DD_EXEC_STDIN_FD))) ||
	    (x->stdout_path && !x->stdout_path[0]) || (x->stderr_path && !x->stderr_path[0]) ||
	    ((x->flags & DD_EXEC_STDIN_FD) && x->stdin_fd < 0))
		return -EINVAL;
	for (size_t i = 0; x->env && x->env[i]; i++)
		if (!strchr(x->env[i], '=') || x->env[i][0] == '=')
			return -EINVAL;
	for (unsigned i = 0; i < x->nrlimits; i++)
		if (x->rlimits[i].resource < 0 || x->rlimits[i].resource >= 16 ||
		    x->rlimits[i].cur > x->rlimits[i].max)
			return -EINVAL;
	struct wbuf w = {0};
	size_t n = encode(x, &w);
	if (n > DD_EXEC_MAX)
		return -E2BIG;
	w = (struct wbuf){.p = malloc(n), .cap = n};
	if (!w.p)
		return -ENOMEM;
	encode(x, &w);
	*out = w.p;
	*len = n;
	return 0;
}

struct rbuf {
	const unsigned char *p;
	size_t n, off;
	bool bad;
};

static void get(struct rbuf *r, void *v, size_t n)
{
	if (r->bad || r->n - r->off < n) {
		r->bad = true;
		memset(v, 0, n);
		return;
	}
	memcpy(v, r->p + r->off, n);
	r->off += n;
}

/* Copies the next string into *dst (NUL-terminated) and moves *dst on. */
static char *get_str(struct rbuf *r, char **dst)
{
	uint32_t len;
	get(r, &len, 4);
	if (r->bad || r->n - r->off < len || memchr(r->p + r->off, 0, len)) {
		r->bad = true;
		return NULL;
	}
	char *s = *dst;
	memcpy(s, r->p + r->off, len);
	s[len] = 0;
	*dst += len + 1;
	r->off += len;
	return s;
}

int dd_proc_spec_decode(const void *buf, size_t len, struct dd_proc_spec *out)
{
	struct rbuf r = {.p = buf, .n = len};
	uint32_t magic, flags, nrl, argc, envc;
	memset(out, 0, sizeof(*out));
	get(&r, &magic, 4);
	get(&r, &flags, 4);
	get(&r, &out->output_max, 8);
	get(&r, &nrl, 4);
	get(&r, &argc, 4);
	get(&r, &envc, 4);
	/* every string takes at least its 4-byte length: bounds the counts */
	if (r.bad || magic != MAGIC || (flags & ~F_ALL) || nrl > DD_RLIMITS_MAX ||
	    argc == 0 || argc > len / 4 || envc > len / 4)
		return -EPROTO;
	out->env_replace = flags & F_ENV_REPLACE;
	out->umask = 022;
	if (flags & F_UMASK) {
		uint32_t um;
		get(&r, &um, 4);
		if (r.bad || um > 0777)
			return -EPROTO;
		out->umask = um;
	}
	if (flags & F_MEM) {
		get(&r, &out->mem, 8);
		if (r.bad || !out->mem) /* one encoding: no limit has no field */
			return -EPROTO;
	}
	out->cpus = 1;
	if (flags & F_CPUS) {
		get(&r, &out->cpus, 4);
		if (r.bad || out->cpus < 2 || out->cpus > DD_EXEC_CPUS_MAX) /* one CPU: no field */
			return -EPROTO;
	}
	out->nrl = nrl;
	for (unsigned i = 0; i < nrl; i++) {
		int32_t res;
		get(&r, &res, 4);
		get(&r, &out->rl[i].cur, 8);
		get(&r, &out->rl[i].max, 8);
		out->rl[i].resource = res;
		if (res < 0 || res >= 16 || out->rl[i].cur > out->rl[i].max)
			return -EPROTO;
	}
	if (r.bad)
		return -EPROTO;
	/* pointers, then the strings with their NULs: never more than the rest
	 * of the buffer plus one byte per string (cwd, stdin, stdout, stderr: 4) */
	size_t nptr = (size_t)argc + 1 + (envc ? (size_t)envc + 1 : 0);
	size_t bytes = nptr * sizeof(char *) + (len - r.off) + (size_t)argc + envc + 4;
	out->blk = malloc(bytes);
	if (!out->blk)
		return -ENOMEM;
	char **ptrs = out->blk;
	char *dst = (char *)(ptrs + nptr);
	if (flags & F_CWD)
		out->cwd = get_str(&r, &dst);
	if (flags & F_STDIN) {
		out->stdin_path = get_str(&r, &dst);
		r.bad |= out->stdin_path && !out->stdin_path[0];
	}
	if (flags & F_STDOUT) {
		out->stdout_path = get_str(&r, &dst);
		r.bad |= out->stdout_path && !out->stdout_path[0];
	}
	if (flags & F_STDERR) {
		out->stderr_path = get_str(&r, &dst);
		r.bad |= out->stderr_path && !out->stderr_path[0];
	}
	out->argv = ptrs;
	for (uint32_t i = 0; i < argc; i++)
		out->argv[i] = get_str(&r, &dst);
	out->argv[argc] = NULL;
	if (envc) {
		out->env = ptrs + argc + 1;
		for (uint32_t i = 0; i < envc; i++) {
			out->env[i] = get_str(&r, &dst);
			if (out->env[i] && (!strchr(out->env[i], '=') || out->env[i][0] == '='))
				r.bad = true;
		}
		out->env[envc] = NULL;
	}
	if (r.bad || r.off != len || !out->argv[0][0]) {
		dd_proc_spec_free(out);
		return -EPROTO;
	}
	return 0;
}

int dd_proc_spec_request(const void *buf, size_t len, uint32_t *cpus, uint64_t *mem)
{
	struct rbuf r = {.p = buf, .n = len};
	uint32_t magic, flags, um;
	*cpus = 1;
	*mem = 0;
	get(&r, &magic, 4);
	get(&r, &flags, 4);
	r.off = HEAD_BYTES;
	if (r.n < HEAD_BYTES || magic != MAGIC || (flags & ~F_ALL))
		return -EPROTO;
	if (flags & F_UMASK)
		get(&r, &um, 4);
	if (flags & F_MEM)
		get(&r, mem, 8);
	if (flags & F_CPUS)
		get(&r, cpus, 4);
	if (r.bad || (flags & F_MEM && !*mem) ||
	    (flags & F_CPUS && (*cpus < 2 || *cpus > DD_EXEC_CPUS_MAX))) {
		*cpus = 1;
		*mem = 0;
		return -EPROTO;
	}
	return 0;
}

void dd_proc_spec_free(struct dd_proc_spec *d)
{
	free(d->blk);
	memset(d, 0, sizeof(*d));
}

/* @d encoded again, with the "KEY=VALUE" strings of @add (NULL: none) in
 * its environment (replacing its own of those keys) and, when @set_out,
 * @out_path and @err_path for its output paths. */
static int rewrite(const struct dd_proc_spec *d, const char *const *add, bool set_out,
		   const char *out_path, const char *err_path, void **res, size_t *reslen)
{
	size_t nd = 0, na = 0, k = 0;
	while (d->env && d->env[nd])
		nd++;
	while (add && add[na])
		na++;
	const char **env = malloc((nd + na + 1) * sizeof(*env));
	if (!env)
		return -ENOMEM;
	for (size_t i = 0; i < nd; i++) {
		size_t kl = strcspn(d->env[i], "=") + 1;
		bool over = false;
		for (size_t m = 0; m < na && !over; m++)
			over = !strncmp(add[m], d->env[i], kl);
		if (!over)
			env[k++] = d->env[i];
	}
	for (size_t m = 0; m < na; m++)
		env[k++] = add[m];
	env[k] = NULL;
	struct dd_exec_spec x = {
		.argv = (const char *const *)d->argv, .env = k ? env : NULL,
		.env_replace = d->env_replace, .cwd = d->cwd, .output_max = d->output_max,
		.rlimits = d->rl, .nrlimits = d->nrl, .flags = DD_EXEC_UMASK, .umask = d->umask,
		.stdin_path = d->stdin_path,
		.stdout_path = set_out ? out_path : d->stdout_path,
		.stderr_path = set_out ? err_path : d->stderr_path, .mem = d->mem, .cpus = d->cpus,
	};
	int rc = dd_proc_spec_encode(&x, res, reslen);
	free(env);
	return rc;
}

int dd_proc_spec_add_env(const void *buf, size_t len, const char *const *add, void **out,
			 size_t *outlen)
{
	struct dd_proc_spec d;
	int rc = dd_proc_spec_decode(buf, len, &d);
	if (rc < 0)
		return rc;
	rc = rewrite(&d, add, false, NULL, NULL, out, outlen);
	dd_proc_spec_free(&d);
	return rc;
}

int dd_proc_spec_set_output(const void *buf, size_t len, const char *out_path,
			    const char *err_path, void **res, size_t *reslen)
{
	struct dd_proc_spec d;
	int rc = dd_proc_spec_decode(buf, len, &d);
	if (rc < 0)
		return rc;
	rc = rewrite(&d, NULL, true, out_path, err_path, res, reslen);
	dd_proc_spec_free(&d);
	return rc;
}

/* The next string of @r, in place (not NUL-terminated). */
static bool peek_str(struct rbuf *r, const char **s, uint32_t *len)
{
	get(r, len, 4);
	if (r->bad || r->n - r->off < *len) {
		r->bad = true;
		return false;
	}
	*s = (const char *)r->p + r->off;
	r->off += *len;
	return true;
}

/* @n bytes of @s appended at cmd[*o] (room @cmdn), without terminal
 * controls: one line of a table's row, shown to other users too. */
static void add_text(char *out, size_t outn, size_t *o, const char *s, size_t n, char ctl)
{
	for (size_t i = 0; i < n && *o + 1 < outn; i++) {
		unsigned char c = (unsigned char)s[i];
		out[(*o)++] = c < ' ' || c == 0x7f ? ctl : (char)c;
	}
	out[*o] = 0;
}

void dd_proc_spec_describe(const void *buf, size_t len, char *cmd, size_t cmdn, char *cwd,
			   size_t cwdn)
{
	/* read in place, allocating nothing: it runs for every job a get or a
	 * wait answers for, on the reactor */
	struct rbuf r = {.p = buf, .n = len};
	uint32_t magic, flags, nrl, argc, envc, l;
	uint64_t out_max;
	const char *str;
	cmd[0] = cwd[0] = 0;
	get(&r, &magic, 4);
	get(&r, &flags, 4);
	get(&r, &out_max, 8);
	get(&r, &nrl, 4);
	get(&r, &argc, 4);
	get(&r, &envc, 4);
	if (r.bad || magic != MAGIC || (flags & ~F_ALL) || nrl > DD_RLIMITS_MAX || argc == 0)
		return;
	r.off += (flags & F_UMASK ? 4 : 0) + (flags & F_MEM ? 8 : 0) + (flags & F_CPUS ? 4 : 0) +
		 (size_t)nrl * 20;
	if (r.off > r.n)
		return;
	if ((flags & F_CWD) && peek_str(&r, &str, &l)) {
		size_t o = 0;
		add_text(cwd, cwdn, &o, str, l, '?');
	}
	static const uint32_t paths[] = {F_STDIN, F_STDOUT, F_STDERR}; /* their order */
	for (int k = 0; k < 3; k++)
		if ((flags & paths[k]) && !peek_str(&r, &str, &l))
			return;
	/* a batch script run from its text (SHELL -c "#!..." PATH ARGS..): shown
	 * as its path and arguments, as it was submitted */
	struct rbuf at = r;
	uint32_t first = 0;
	const char *prev = NULL, *prev2 = NULL;
	uint32_t pl = 0, pl2 = 0;
	for (uint32_t i = 0; i < argc && peek_str(&at, &str, &l); i++) {
		if (i >= 2 && pl2 == 2 && !memcmp(prev2, "-c", 2) && pl >= 2 && !memcmp(prev, "#!", 2)) {
			first = i;
			break;
		}
		prev2 = prev, pl2 = pl;
		prev = str, pl = l;
	}
	size_t o = 0;
	for (uint32_t i = 0; i < argc && peek_str(&r, &str, &l); i++) {
		if (i < first)
			continue;
		if (i > first)
			add_text(cmd, cmdn, &o, " ", 1, ' ');
		add_text(cmd, cmdn, &o, str, l, ' ');
		if (o + 1 >= cmdn)
			break;
	}
	if (o + 1 >= cmdn && cmdn > 4)
		memcpy(cmd + cmdn - 4, "...", 4); /* cut: say so */
}
