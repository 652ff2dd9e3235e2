/* The jitter probe in the engine: loaded at create (cfg.probe), each
 * engine thread registers its role as it starts, dd_stats() reads it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine.h"
#include "probe.h"

int dd_probe_start(struct dd_engine *e)
{
	if (e->cfg.probe == DD_PROBE_OFF) {
		snprintf(e->probe_status, sizeof(e->probe_status), "off");
		return 0;
	}
	char why[128];
	int r = dd_tel_probe_open(getpid(), &e->probe, why, sizeof(why));
	if (r < 0) {
		e->probe = NULL;
		snprintf(e->probe_status, sizeof(e->probe_status), "unavailable: %s", why);
		/* auto: the engine works on without it */
		return e->cfg.probe == DD_PROBE_ON ? r : 0;
	}
	/* "loaded" alone means the BTF-typed tracepoints */
	snprintf(e->probe_status, sizeof(e->probe_status), "%s",
		 dd_tel_probe_raw(e->probe) ? "loaded (raw tracepoints)" : "loaded");
	return 0;
}

void dd_probe_stop(struct dd_engine *e)
{
	dd_tel_probe_close(e->probe);
	e->probe = NULL;
}

void dd_probe_thread(struct dd_engine *e, enum dd_probe_role role)
{
	if (e->probe)
		dd_tel_probe_role(e->probe, (int)syscall(SYS_gettid), (enum dd_jit_role)role);
}

void dd_probe_fill(struct dd_engine *e, struct dd_stats *st)
{
	st->probe_loaded = e->probe != NULL;
	snprintf(st->probe_status, sizeof(st->probe_status), "%s",
		 e->probe_status[0] ? e->probe_status : "off");
	if (!e->probe)
		return;
	static _Thread_local struct dd_jit_hist h; /* 8 KiB: not on the stack */
	for (unsigned r = 0; r < DD_ROLE_COUNT; r++) {
		if (dd_tel_probe_read(e->probe, (enum dd_jit_role)r, &h) < 0)
			continue;
		struct dd_hist_summary *o = &st->runq[r];
		o->count = h.count;
		o->sum_ns = h.sum;
		o->max_ns = h.max;
		o->p50_ns = dd_tel_jit_quantile(&h, 0.50);
		o->p90_ns = dd_tel_jit_quantile(&h, 0.90);
		o->p99_ns = dd_tel_jit_quantile(&h, 0.99);
		o->p999_ns = dd_tel_jit_quantile(&h, 0.999);
		st->preempted[r] = h.preempted;
	}
}
