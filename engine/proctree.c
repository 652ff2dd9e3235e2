/* A process job's whole tree (DESIGN.md section 10): each attempt's
 * process starts in a cgroup of its own (proc/cgroup.c), so that what it
 * leaves behind when its main process ends (a background child, a setsid
 * grandchild) is found and killed before the job ends, cancels and
 * time-outs reach the whole tree, and the attempt's CPU time and memory
 * peak are the tree's. Without cgroups the engine says so once (its log,
 * dd_engine_cgroups(), dd_stats) and signals process groups instead. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "exec.h"

/* The subtree's name: one per state directory, so that the next engine on
 * it finds the cgroups of processes that outlive this one; without a
 * state directory, one per engine. */
static void subtree_name(const struct dd_engine *e, char *buf, size_t n)
{
	if (e->state_dir) {
		uint64_t h = 1469598103934665603ull; /* FNV-1a */
		for (const char *p = e->state_dir; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		snprintf(buf, n, "dispatchd-%016" PRIx64, h);
	} else {
		static _Atomic unsigned seq;
		snprintf(buf, n, "dispatchd-%d-%u", (int)getpid(),
			 atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed));
	}
}

int dd_proctree_open(struct dd_engine *e)
{
	if (e->cfg.cgroups == DD_CGROUPS_OFF) {
		snprintf(e->cg_status, sizeof(e->cg_status), "off: process groups only");
		return 0;
	}
	char name[64], why[1024] = "";
	subtree_name(e, name, sizeof(name));
	int r = dd_proc_cg_open(name, &e->cg, why, sizeof(why));
	if (r < 0) {
		snprintf(e->cg_status, sizeof(e->cg_status),
			 "unavailable: %s; process jobs run in process groups: a process that "
			 "leaves its group is not the job's, and there are no memory limits or "
			 "CPU and memory accounting",
			 why[0] ? why : dd_strerror(r));
		dd_log(e, e->cfg.cgroups == DD_CGROUPS_ON ? LOG_ERR : LOG_WARNING, "cgroups %s",
		       e->cg_status);
		return e->cfg.cgroups == DD_CGROUPS_ON ? r : 0;
	}
	snprintf(e->cg_status, sizeof(e->cg_status), "%s", dd_proc_cg_describe(e->cg));
	dd_log(e, LOG_INFO, "process jobs run in cgroups: %s", e->cg_status);
	return 0;
}

void dd_proctree_close(struct dd_engine *e)
{
	dd_proc_cg_close(e->cg);
	e->cg = NULL;
}

const char *dd_engine_cgroups(const struct dd_engine *e, bool *on)
{
	if (on)
		*on = e->cg != NULL;
	return e->cg_status[0] ? e->cg_status : "off";
}

int dd_proctree_create(struct dd_shard *s, struct dd_exec_run *p, uint64_t mem, char *why,
		       size_t whyn)
{
	const struct dd_engine *e = s->eng;
	p->cg_on = false;
	if (!e->cg) {
		if (!mem)
			return 0;
		snprintf(why, whyn, "a memory limit needs cgroups: %s", e->cg_status);
		return -EOPNOTSUPP;
	}
	char name[48];
	snprintf(name, sizeof(name), "%" PRIu64 ".%" PRIu32, p->id, p->attempt);
	const cpu_set_t *cpus = p->grant.pinned ? &p->grant.set : NULL;
	int r = dd_proc_cg_job_create(e->cg, name, mem, cpus, &p->cg);
	if (r == -EBUSY)
		snprintf(why, whyn, "a process of attempt %" PRIu32 " still runs in its cgroup "
			 "(%s): not started a second time", p->attempt, name);
	else if (r == -EOPNOTSUPP)
		snprintf(why, whyn, "a memory limit needs a memory controller: %s", e->cg_status);
	else if (r < 0)
		snprintf(why, whyn, "cannot create the job's cgroup %s: %s", name, dd_strerror(r));
	else
		p->cg_on = true;
	/* confined to what it got: a cpuset holds where affinity alone can
	 * be widened by the job itself; and at most pids_max processes */
	if (r == 0 && (r = dd_proc_cg_job_confine(e->cg, &p->cg, e->cfg.job_pids_max, cpus)) < 0) {
		snprintf(why, whyn, "cannot confine the job's cgroup %s: %s", name, dd_strerror(r));
		dd_proc_cg_job_destroy(e->cg, &p->cg);
		p->cg_on = false;
	}
	return r;
}

int dd_proctree_signal(struct dd_shard *s, struct dd_exec_run *p, int sig)
{
	return dd_proc_cg_job_signal(s->eng->cg, &p->cg, sig);
}

/* The tree is empty: its usage is read and its cgroup goes (its v1 side
 * kept for the next tree). */
static void tree_done(struct dd_shard *s, struct dd_exec_run *p)
{
	dd_proc_cg_job_usage(s->eng->cg, &p->cg, &p->use);
	int r = dd_proc_cg_job_recycle(s->eng->cg, &p->cg);
	if (r < 0) {
		dd_log(s->eng, LOG_WARNING, "job %" PRIu64 ": cannot remove its cgroup %s: %s",
		       p->id, p->cg.name, dd_strerror(r));
		dd_proc_cg_job_release(&p->cg);
	}
	p->cg_on = false;
}

bool dd_proctree_gone(struct dd_shard *s, struct dd_exec_run *p)
{
	if (!p->cg_on)
		return true;
	int pop = dd_proc_cg_job_populated(&p->cg);
	if (pop <= 0) {
		/* empty, or cgroup.events cannot be read (then nothing better
		 * can be done than to go on) */
		tree_done(s, p);
		return true;
	}
	if (!p->tree_killed) {
		/* what the main process left behind: killed, as Slurm's
		 * proctrack/cgroup does at a step's end */
		p->tree_killed = true;
		dd_proctree_signal(s, p, SIGKILL);
	}
	return false;
}

void dd_proctree_free(struct dd_shard *s, struct dd_exec_run *p)
{
	if (!p->cg_on)
		return;
	/* the engine goes away: nothing of the job may outlive it unseen */
	dd_proctree_signal(s, p, SIGKILL);
	if (dd_proc_cg_job_destroy(s->eng->cg, &p->cg) < 0) {
		dd_log(s->eng, LOG_WARNING, "job %" PRIu64 ": its cgroup %s is left with "
		       "processes that were just killed", p->id, p->cg.name);
		dd_proc_cg_job_release(&p->cg);
	}
	p->cg_on = false;
}

void dd_proctree_release(struct dd_shard *s, struct dd_exec_run *p)
{
	(void)s;
	if (!p->cg_on)
		return;
	/* left to run for the next engine, which finds it by its name */
	dd_proc_cg_job_release(&p->cg);
	p->cg_on = false;
}

int dd_proctree_adopt(struct dd_shard *s, struct dd_exec_run *p)
{
	const struct dd_engine *e = s->eng;
	p->cg_on = false;
	if (!e->cg)
		return 0;
	char name[48];
	snprintf(name, sizeof(name), "%" PRIu64 ".%" PRIu32, p->id, p->attempt);
	int r = dd_proc_cg_job_open(e->cg, name, p->mem_max, &p->cg);
	if (r == 0)
		p->cg_on = true;
	return r;
}

bool dd_proctree_orphan(struct dd_shard *s, uint64_t id, uint32_t attempt)
{
	const struct dd_engine *e = s->eng;
	if (!e->cg)
		return false;
	char name[48];
	struct dd_proc_cg_job cg;
	snprintf(name, sizeof(name), "%" PRIu64 ".%" PRIu32, id, attempt);
	if (dd_proc_cg_job_open(e->cg, name, 0, &cg) < 0)
		return false;
	bool ran = dd_proc_cg_job_populated(&cg) > 0;
	if (ran) {
		/* what ran out of anyone's sight: ended before the job goes on;
		 * bounded, as creation is (a process in D state stays) */
		dd_proc_cg_job_signal(e->cg, &cg, SIGKILL);
		for (int i = 0; i < 200 && dd_proc_cg_job_populated(&cg) > 0; i++) {
			struct pollfd pf = {cg.events, POLLPRI, 0};
			poll(&pf, 1, 10); /* woken by "populated 0" */
		}
	}
	if (dd_proc_cg_job_destroy(e->cg, &cg) < 0)
		dd_proc_cg_job_release(&cg);
	return ran;
}
