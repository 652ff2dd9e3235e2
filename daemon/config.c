/* Settings: one table of keys shared by the INI file and the flags. */
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "duration.h"
#include "size.h"
#include "dispatchd.h"

void dd_dcfg_defaults(struct dd_dcfg *c)
{
	memset(c, 0, sizeof(*c));
	c->durability = DD_DURABILITY_FSYNC; /* a service acknowledges what is on disk */
	c->max_frame = 1u << 20;
	c->max_jobs_per_user = 1000000;
	c->max_batch = 10000;
	c->max_conns = 4096;
	c->output_max = 64u << 20;
	c->output_reserve = DD_RESERVE_AUTO;
	c->kill_grace_ns = 5000000000ull;
	c->pool_cpus = DD_POOL_AUTO;
	c->pool_mem = DD_POOL_AUTO_MEM;
	c->shutdown_grace_ns = 10000000000ull;
	c->spin_ns = DD_SPIN_AUTO; /* the engine chooses: see dispatchd.h */
	c->store_lag_max = 512u << 10;
	c->submit_wait_ns = 1000000000ull;
}

static int parse_u64(const char *v, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!*v || *v == '-')
		return -1;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || *end || x > max)
		return -1;
	*out = x;
	return 0;
}

/* Graces past some 30 years are typing mistakes. */
#define GRACE_MAX_NS (1000000000ull * 1000000000ull)

/* A duration (duration.h) of at most @max_ns. */
static int parse_secs(const char *v, uint64_t max_ns, uint64_t *ns)
{
	uint64_t x;
	if (dd_duration_parse(v, &x) < 0 || x > max_ns)
		return -1;
	*ns = x;
	return 0;
}

/* Bytes, with an optional binary suffix: "1073741824", "512M", "1G". */
static int parse_bytes(const char *v, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!*v || *v == '-')
		return -1;
	unsigned long long x = strtoull(v, &end, 10);
	unsigned shift = 0;
	if (*end && !end[1] && strchr("kKmMgGtT", *end))
		shift = *end == 'k' || *end == 'K' ? 10 : *end == 'm' || *end == 'M' ? 20
			: *end == 'g' || *end == 'G' ? 30 : 40;
	else if (*end)
		return -1;
	if (errno || x > (UINT64_MAX >> shift) - 1)
		return -1;
	*out = (uint64_t)x << shift;
	return 0;
}

static int copy(char *dst, size_t n, const char *v)
{
	return snprintf(dst, n, "%s", v) < (int)n ? 0 : -1;
}

int dd_dcfg_set(struct dd_dcfg *c, const char *key, const char *v, char *err, size_t errlen)
{
	uint64_t u = 0;
	int bad = 0;
	if (!strcmp(key, "state_dir") || !strcmp(key, "state-dir"))
		bad = copy(c->state_dir, sizeof(c->state_dir), v);
	else if (!strcmp(key, "socket"))
		bad = copy(c->socket, sizeof(c->socket), v);
	else if (!strcmp(key, "listen"))
		bad = copy(c->listen, sizeof(c->listen), v);
	else if (!strcmp(key, "token_file") || !strcmp(key, "token-file"))
		bad = copy(c->token_file, sizeof(c->token_file), v);
	else if (!strcmp(key, "metrics"))
		bad = copy(c->metrics, sizeof(c->metrics), v);
	else if (!strcmp(key, "log_file") || !strcmp(key, "log-file"))
		bad = copy(c->log_file, sizeof(c->log_file), v);
	else if (!strcmp(key, "shards"))
		bad = parse_u64(v, DD_MAX_SHARDS, &u) || (c->shards = (unsigned)u, 0);
	else if (!strcmp(key, "workers"))
		bad = parse_u64(v, 1024, &u) || (c->workers = (unsigned)u, 0);
	else if (!strcmp(key, "durability")) {
		enum dd_durability d;
		bad = dd_durability_parse(v, &d) < 0 || (c->durability = (int)d, 0);
	} else if (!strcmp(key, "max_frame") || !strcmp(key, "max-frame"))
		bad = parse_u64(v, 1u << 30, &u) || u < 1024 || (c->max_frame = u, 0);
	else if (!strcmp(key, "max_jobs_per_user"))
		bad = parse_u64(v, UINT64_MAX, &u) || u == 0 || (c->max_jobs_per_user = u, 0);
	else if (!strcmp(key, "max_batch"))
		bad = parse_u64(v, 1000000, &u) || u == 0 || (c->max_batch = u, 0);
	else if (!strcmp(key, "max_conns"))
		bad = parse_u64(v, 1000000, &u) || u == 0 || (c->max_conns = (unsigned)u, 0);
	else if (!strcmp(key, "output_max"))
		bad = parse_u64(v, UINT64_MAX, &u) || (c->output_max = u, 0);
	else if (!strcmp(key, "output_dir") || !strcmp(key, "output-dir"))
		bad = !v[0] || copy(c->output_dir, sizeof(c->output_dir), v);
	else if (!strcmp(key, "output_reserve") || !strcmp(key, "output-reserve"))
		bad = strcmp(v, "auto") ? parse_bytes(v, &c->output_reserve)
					: (c->output_reserve = DD_RESERVE_AUTO, 0);
	else if (!strcmp(key, "cpus"))
		bad = strcmp(v, "auto") ? parse_u64(v, 1u << 20, &u) || (c->pool_cpus = (unsigned)u, 0)
					: (c->pool_cpus = DD_POOL_AUTO, 0);
	else if (!strcmp(key, "mem"))
		bad = strcmp(v, "auto") ? dd_size_parse(v, &u) < 0 || u == UINT64_MAX ||
						  (c->pool_mem = u, 0)
					: (c->pool_mem = DD_POOL_AUTO_MEM, 0);
	else if (!strcmp(key, "job_pids_max"))
		bad = parse_u64(v, 1u << 22, &u) || (c->job_pids_max = u, 0);
	else if (!strcmp(key, "supervisor"))
		bad = !v[0] || (strcmp(v, "off") && v[0] != '/') ||
		      copy(c->supervisor, sizeof(c->supervisor), v);
	else if (!strcmp(key, "cgroups"))
		bad = !strcmp(v, "auto")  ? (c->cgroups = DD_CGROUPS_AUTO, 0)
		      : !strcmp(v, "on")  ? (c->cgroups = DD_CGROUPS_ON, 0)
		      : !strcmp(v, "off") ? (c->cgroups = DD_CGROUPS_OFF, 0)
					  : 1;
	else if (!strcmp(key, "kill_grace"))
		bad = parse_secs(v, GRACE_MAX_NS, &c->kill_grace_ns);
	else if (!strcmp(key, "shutdown_grace"))
		bad = parse_secs(v, GRACE_MAX_NS, &c->shutdown_grace_ns);
	else if (!strcmp(key, "store_lag_max"))
		bad = parse_u64(v, UINT64_MAX, &u) || u < 1024 || (c->store_lag_max = u, 0);
	else if (!strcmp(key, "submit_wait"))
		bad = parse_secs(v, 3600000000000ull, &c->submit_wait_ns);
	else if (!strcmp(key, "spin"))
		bad = strcmp(v, "auto") ? parse_secs(v, 1000000000ull, &c->spin_ns)
					: (c->spin_ns = DD_SPIN_AUTO, 0);
	else {
		snprintf(err, errlen, "unknown setting '%s'", key);
		return -1;
	}
	if (bad) {
		bool dur = !strcmp(key, "kill_grace") || !strcmp(key, "shutdown_grace") ||
			   !strcmp(key, "submit_wait") || !strcmp(key, "spin");
		snprintf(err, errlen, "bad value '%s' for %s%s", v, key,
			 dur ? " (a duration: " DD_DURATION_FORMS ")" : !strcmp(key, "cgroups") ? " (auto, on or off)"
			 : !strcmp(key, "supervisor") ? " (an absolute path, or off)"
			 : !strcmp(key, "mem")	   ? " (auto, or a size: " DD_SIZE_FORMS ")"
			 : !strcmp(key, "cpus")	   ? " (auto, or a count of CPUs)"
						   : "");
		return -1;
	}
	return 0;
}

struct load_ctx {
	struct dd_dcfg *c;
	char *err;
	size_t errlen;
	bool failed;
};

/* Cuts an inline comment off @v: a '#' or ';' at its start or after a
 * space or tab starts one (as in the example of docs/OPERATIONS.md), and
 * the blanks before it go with it. inih cuts "; ..." itself only when
 * built so, and never "# ...". No setting's value holds " #" or " ;". */
static const char *strip_comment(const char *v, char *buf, size_t n)
{
	size_t i = 0, len = strlen(v);
	for (; i < len; i++)
		if ((v[i] == '#' || v[i] == ';') && (i == 0 || v[i - 1] == ' ' || v[i - 1] == '\t'))
			break;
	if (i == len)
		return v;
	while (i && (v[i - 1] == ' ' || v[i - 1] == '\t'))
		i--;
	if (i >= n)
		return NULL;
	memcpy(buf, v, i);
	buf[i] = 0;
	return buf;
}

static int on_key(void *arg, const char *section, const char *name, const char *value)
{
	struct load_ctx *lc = arg;
	char vbuf[4096];
	if (lc->failed)
		return 0;
	if (!(value = strip_comment(value, vbuf, sizeof(vbuf)))) {
		snprintf(lc->err, lc->errlen, "the value of %s is too long", name);
		lc->failed = true;
		return 0;
	}
	if (!strcmp(section, "limits")) {
		if (dd_dcfg_limit(lc->c, name, value, lc->err, lc->errlen) < 0) {
			lc->failed = true;
			return 0;
		}
		return 1;
	}
	if (section[0] && strcmp(section, "dispatchd")) {
		snprintf(lc->err, lc->errlen, "unknown section [%s]", section);
		lc->failed = true;
		return 0;
	}
	if (dd_dcfg_set(lc->c, name, value, lc->err, lc->errlen) < 0) {
		lc->failed = true;
		return 0;
	}
	return 1;
}

int dd_dcfg_limit(struct dd_dcfg *c, const char *key, const char *value, char *err,
		  size_t errlen)
{
	uint64_t max;
	struct dd_dcfg_limit l = {0};
	if (parse_u64(value, UINT32_MAX, &max) < 0) {
		snprintf(err, errlen, "bad value '%s' for %s (a count of running process jobs; 0: no "
			 "limit)", value, key);
		return -1;
	}
	l.max = (uint32_t)max;
	if (!strncmp(key, "queue.", 6) && key[6] && strlen(key + 6) < sizeof(l.kind)) {
		snprintf(l.kind, sizeof(l.kind), "%s", key + 6);
	} else if (!strcmp(key, "user.*")) {
		l.uid = DD_LIMIT_ANY_USER;
	} else if (!strncmp(key, "user.", 5) && key[5]) {
		/* a name the passwd database knows, or a uid */
		struct passwd *pw = getpwnam(key + 5);
		uint64_t uid;
		if (pw)
			l.uid = pw->pw_uid;
		else if (parse_u64(key + 5, UINT32_MAX - 1, &uid) == 0)
			l.uid = (uint32_t)uid;
		else {
			snprintf(err, errlen, "[limits] %s: no user %s", key, key + 5);
			return -1;
		}
	} else {
		snprintf(err, errlen, "unknown limit '%s' (user.NAME, user.* or queue.NAME)", key);
		return -1;
	}
	for (size_t i = 0; i < c->nlimits; i++)
		if (c->limits[i].uid == l.uid && !strcmp(c->limits[i].kind, l.kind)) {
			c->limits[i].max = l.max; /* the later line wins */
			return 0;
		}
	if (c->nlimits == DD_DCFG_LIMITS) {
		snprintf(err, errlen, "more than %d limits", DD_DCFG_LIMITS);
		return -1;
	}
	c->limits[c->nlimits++] = l;
	return 0;
}

size_t dd_dcfg_run_limits(const struct dd_dcfg *c, struct dd_run_limit *out)
{
	for (size_t i = 0; i < c->nlimits; i++)
		out[i] = (struct dd_run_limit){.uid = c->limits[i].uid,
					       .kind = c->limits[i].kind[0] ? c->limits[i].kind : NULL,
					       .max = c->limits[i].max};
	return c->nlimits;
}

static int finish(struct load_ctx *lc, int rc, const char *where)
{
	char tmp[512];
	if (rc == -1) {
		snprintf(lc->err, lc->errlen, "%s: cannot open: %s", where, strerror(errno));
		return -1;
	}
	if (lc->failed || rc) {
		/* inih reports the first line its handler refused (or could not parse) */
		snprintf(tmp, sizeof(tmp), "%s", lc->failed ? lc->err : "syntax error");
		snprintf(lc->err, lc->errlen, "%s:%d: %s", where, rc > 0 ? rc : 0, tmp);
		return -1;
	}
	return 0;
}

int dd_dcfg_load(struct dd_dcfg *c, const char *path, char *err, size_t errlen)
{
	struct load_ctx lc = {c, err, errlen, false};
	int rc = ini_parse(path, on_key, &lc);
	if (finish(&lc, rc, path) < 0)
		return -1;
	return copy(c->config, sizeof(c->config), path);
}

int dd_dcfg_load_string(struct dd_dcfg *c, const char *text, char *err, size_t errlen)
{
	struct load_ctx lc = {c, err, errlen, false};
	return finish(&lc, ini_parse_string(text, on_key, &lc), "<string>");
}

bool dd_default_socket(char *buf, size_t n, bool for_client)
{
	const char *env = for_client ? getenv("DISPATCHD_SOCKET") : NULL;
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	uid_t me = geteuid();
	struct stat st;
	if (env && env[0]) {
		snprintf(buf, n, "%s", env);
		return false;
	}
	/* an XDG_RUNTIME_DIR that is not ours (su, sudo keep the caller's) is
	 * passed over: the private directory in /tmp is used instead */
	if (me != 0 && xdg && xdg[0] == '/' && stat(xdg, &st) == 0 && S_ISDIR(st.st_mode) &&
	    st.st_uid == me)
		snprintf(buf, n, "%s/dispatchd.sock", xdg);
	else if (me != 0)
		snprintf(buf, n, DD_USER_SOCKET_DIR "/dispatchd.sock", (unsigned)me);
	else
		snprintf(buf, n, DD_ROOT_SOCKET);
	return true;
}
