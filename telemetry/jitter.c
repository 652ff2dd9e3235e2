/* The jitter probe's loader: open -> set rodata -> load -> attach, one
 * cleanup path (libbpf-tools' shape). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "jitter.skel.h"
#include "probe.h"

struct dd_tel_probe {
	struct jitter_bpf *skel;
	bool raw; /* raw tracepoints, not tp_btf */
};

/* libbpf's print hook is process-wide and takes no argument: the open
 * under way holds the lock and names where its messages go. */
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
static dd_tel_print_fn hook_fn;
static void *hook_arg;

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* we say why ourselves, once; DD_BPF_DEBUG=1 shows libbpf's (and the
	 * verifier's) own account */
	if (level == LIBBPF_DEBUG || !hook_fn || !getenv("DD_BPF_DEBUG"))
		return 0;
	char msg[1024];
	int r = vsnprintf(msg, sizeof(msg), fmt, ap);
	for (char *line = msg, *end; *line; line = end) {
		end = line + strcspn(line, "\n");
		bool last = !*end;
		*end = '\0';
		if (*line)
			hook_fn(level == LIBBPF_WARN ? LOG_WARNING : LOG_INFO, line, hook_arg);
		if (!last)
			end++;
	}
	return r;
}

/* Opens, sets and loads the skeleton with one set of programs: the
 * BTF-typed tracepoints, or the raw ones. */
static int try_load(struct dd_tel_probe *p, int tgid, bool raw)
{
	p->skel = jitter_bpf__open();
	if (!p->skel)
		return -errno;
	p->skel->rodata->targ_tgid = tgid;
	bpf_program__set_autoload(p->skel->progs.on_wakeup, !raw);
	bpf_program__set_autoload(p->skel->progs.on_wakeup_new, !raw);
	bpf_program__set_autoload(p->skel->progs.on_switch, !raw);
	bpf_program__set_autoload(p->skel->progs.on_wakeup_raw, raw);
	bpf_program__set_autoload(p->skel->progs.on_wakeup_new_raw, raw);
	bpf_program__set_autoload(p->skel->progs.on_switch_raw, raw);
	int err = jitter_bpf__load(p->skel);
	if (err < 0) {
		jitter_bpf__destroy(p->skel);
		p->skel = NULL;
	}
	return err;
}

static int probe_open(int tgid, struct dd_tel_probe **out, char *why, size_t n)
{
	struct dd_tel_probe *p = calloc(1, sizeof(*p));
	int err;
	if (!p) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	/* DD_PROBE_RAW=1 forces the raw tracepoints (their test) */
	bool force_raw = getenv("DD_PROBE_RAW") != NULL;
	p->raw = force_raw;
	err = try_load(p, tgid, force_raw);
	if (err < 0 && !force_raw && err != -EPERM) {
		p->raw = true; /* an older kernel: no tp_btf */
		err = try_load(p, tgid, true);
	}
	if (err < 0) {
		snprintf(why, n, "cannot load the BPF program: %s%s", strerror(-err),
			 err == -EPERM ? " (needs CAP_BPF and CAP_PERFMON, or root)" : "");
		goto fail;
	}
	if ((err = jitter_bpf__attach(p->skel)) < 0) {
		snprintf(why, n, "cannot attach to the scheduler tracepoints: %s", strerror(-err));
		goto fail;
	}
	*out = p;
	return 0;
fail:
	jitter_bpf__destroy(p->skel);
	free(p);
	return err ? err : -EINVAL;
}

int dd_tel_probe_open(int tgid, dd_tel_print_fn print, void *print_arg,
		      struct dd_tel_probe **out, char *why, size_t n)
{
	pthread_mutex_lock(&print_lock);
	hook_fn = print;
	hook_arg = print_arg;
	libbpf_set_print(quiet);
	int err = probe_open(tgid, out, why, n);
	/* libbpf's later messages (a close) have no one to go to */
	hook_fn = NULL;
	hook_arg = NULL;
	pthread_mutex_unlock(&print_lock);
	return err;
}

bool dd_tel_probe_raw(const struct dd_tel_probe *p)
{
	return p && p->raw;
}

void dd_tel_probe_close(struct dd_tel_probe *p)
{
	if (!p)
		return;
	jitter_bpf__destroy(p->skel);
	free(p);
}

int dd_tel_probe_role(struct dd_tel_probe *p, int tid, enum dd_jit_role role)
{
	uint32_t k = (uint32_t)tid, v = (uint32_t)role;
	return bpf_map__update_elem(p->skel->maps.roles, &k, sizeof(k), &v, sizeof(v), BPF_ANY);
}

int dd_tel_probe_read(struct dd_tel_probe *p, enum dd_jit_role role, struct dd_jit_hist *out)
{
	uint32_t k = (uint32_t)role;
	if (k >= DD_JIT_ROLES)
		return -EINVAL;
	return bpf_map__lookup_elem(p->skel->maps.hists, &k, sizeof(k), out, sizeof(*out), 0);
}
