/* Starting a process job (DESIGN.md section 5), on a worker: never on
 * the reactor, since exec of a large binary can take milliseconds and
 * vfork holds the starting thread until then. The job's output files and
 * cgroup are made here, and its process starts in the supervisor (or,
 * without one, here, with dd_proc_spawn); the reactor then watches it
 * (exec.c). */
#include <errno.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

#include "array.h"

#include "exec.h"
#include "supervise.h"

/* The reactor's watchdog sees which start a worker is in, and since when. */
static void spawn_watch(void *arg, volatile struct dd_proc_report *rep)
{
	struct dd_worker *w = arg;
	if (!rep) {
		atomic_store_explicit(&w->spawn_since, 0, memory_order_release);
		return;
	}
	w->spawn_rep = rep;
	/* release pairs with the watchdog's acquire of spawn_since */
	atomic_store_explicit(&w->spawn_since, dd_mono_ns(), memory_order_release);
}

#define OUT_PATH_MAX 4096 /* Linux's PATH_MAX */

/* The files the spec's output patterns name for this start (sbatch's
 * --output and --error: stderr goes with stdout unless it has its own),
 * into x's paths, in @out and @err (OUT_PATH_MAX each). Returns 0, or -errno
 * with @why saying why. */
static int output_paths(const struct dd_jobrec *j, const struct dd_proc_cred *cr, struct dd_proc_spec *x, char *out, char *err,
			char *why, size_t whyn)
{
	char user[64] = "";
	if (cr) {
		snprintf(user, sizeof(user), "%s", cr->env[0] + 5); /* "USER=" */
	} else {
		struct passwd pw, *got = NULL;
		char buf[1024];
		if (getpwuid_r(j->uid, &pw, buf, sizeof(buf), &got) == 0 && got)
			snprintf(user, sizeof(user), "%s", got->pw_name);
		else
			snprintf(user, sizeof(user), "%u", (unsigned)j->uid);
	}
	uint64_t arr = j->arr ? j->arr->id : 0;
	int64_t idx = j->arr ? (int64_t)dd_array_index(j->arr, j->id - j->arr->id - 1) : -1;
	const char *pat[2] = {x->stdout_path, x->stderr_path ? x->stderr_path : x->stdout_path};
	char *dst[2] = {out, err};
	for (int k = 0; k < 2; k++) {
		if (!pat[k])
			continue;
		int r = dd_output_pattern(pat[k], j->id, arr, idx, j->name, user, dst[k], OUT_PATH_MAX);
		if (r < 0) {
			snprintf(why, whyn, "cannot make the %s path of '%s': %s", k ? "stderr" : "stdout",
				 pat[k], dd_strerror(r));
			return r;
		}
	}
	x->stdout_path = pat[0] ? out : NULL;
	x->stderr_path = pat[1] ? err : NULL;
	return 0;
}

/* Starts j's process into @p. Returns 0; -errno when it did not start
 * (@why: the text, when there is more to say than the errno); or the wait
 * status (> 0) of a child that could not go on, @why saying why. */
static int spawn(struct dd_shard *s, struct dd_jobrec *j, struct dd_exec_run *p, char *why,
		 size_t whyn)
{
	struct dd_engine *e = s->eng;
	struct dd_proc_spec x;
	struct dd_proc_cred *cr = NULL;
	int rc;
	if ((rc = dd_proc_spec_decode(j->payload, j->payload_len, &x)) < 0)
		return rc;
	p->out_max = x.output_max ? x.output_max : e->cfg.output_max;
	p->id = j->id;
	p->attempt = j->attempt;
	if ((rc = dd_output_open(s, p, 1)) < 0)
		goto out;
	p->out = rc;
	if ((rc = dd_output_open(s, p, 2)) < 0)
		goto out;
	p->err = rc;
	/* another user's job: that user's groups and environment, and (as
	 * root) its uid; none for a uid without a passwd entry */
	if (j->uid != e->euid && (rc = dd_proc_creds_get(e->creds, j->uid, &cr, why, whyn)) < 0)
		goto out;
	/* output where the submitter asked, as this start names it */
	char outp[OUT_PATH_MAX], errp[OUT_PATH_MAX];
	const void *pay = j->payload;
	size_t plen = j->payload_len;
	void *named = NULL;
	if (x.stdout_path || x.stderr_path) {
		if ((rc = output_paths(j, cr, &x, outp, errp, why, whyn)) < 0)
			goto out;
		/* the supervisor starts it from the spec: these paths, not the patterns */
		if (e->sup && (rc = dd_proc_spec_set_output(j->payload, j->payload_len, x.stdout_path,
							    x.stderr_path, &named, &plen)) < 0)
			goto out;
		if (named)
			pay = named;
	}
	p->mem_max = x.mem;
	if ((rc = dd_proctree_create(s, p, x.mem, why, whyn)) < 0)
		goto out;
	/* the reactor's watchdog may kill a start that hangs: a child stopped
	 * by its user in the instant between its switch of uid and its exec,
	 * or one waiting on a file system that does not answer (FUSE, NFS) */
	struct dd_worker *w = j->worker >= 0 && (unsigned)j->worker < s->nworkers
				      ? &s->workers[j->worker]
				      : NULL;
	struct dd_proc_spawn sp = {
		.spec = &x, .cred = cr,
		/* as root, another user's job runs as that user; root's only if
		 * root owns it */
		.setuid = e->euid == 0 && cr, .uid = j->uid, .gid = j->gid,
		.in = j->stdin_fd, .out = p->out, .err = p->err,
		/* not pinned to the worker's CPU: the job runs on the CPUs the
		 * pool granted it, or any of ours */
		.cpus = p->grant.cpus ? &p->grant.set : e->proc_cpus_ok ? &e->proc_cpus : NULL,
		.cg_procs = p->cg_on ? p->cg.procs : NULL,
		.watch = w ? spawn_watch : NULL, .watch_arg = w,
	};
	struct dd_proc_child c;
	if (e->sup) {
		/* the supervisor starts it (it watches its own starts) */
		int once = -1;
		sp.watch = NULL;
		rc = dd_sup_spawn(e, w ? &w->sup_conn : &once, s->index, j->id, j->attempt, pay, plen,
				  &sp, &c, &p->sup_pid, why, whyn);
		if (once >= 0)
			close(once);
		p->sup = rc == 0;
		if (rc == -ETIMEDOUT)
			dd_log(e, LOG_WARNING, "shard %u: a process job's start hung for over %llu s: "
			       "killed by the supervisor's watchdog", s->index,
			       (unsigned long long)(DD_PROC_SPAWN_LIMIT_NS / 1000000000ull));
	} else {
		rc = dd_proc_spawn(&sp, &c, why, whyn);
	}
	if (rc == 0) {
		p->pid = c.pid;
		p->pidfd = c.pidfd;
	}
out:
	free(named);
	dd_proc_creds_put(e->creds, cr);
	dd_proc_spec_free(&x);
	return rc;
}

void dd_exec_spawn(struct dd_shard *s, struct dd_jobrec *j)
{
	j->w_start_ns = dd_mono_ns();
	/* the run the reactor made with the job's grant of the pool; it goes
	 * back with the job whatever happens here, and the reactor frees it
	 * (and gives the grant back) */
	struct dd_exec_run *p = j->proc;
	if (atomic_load_explicit(&j->cancel, memory_order_relaxed)) {
		j->w_result = -ECANCELED; /* cancelled between hand-over and start */
		return;
	}
	if (!s->uring) {
		j->w_result = -ENOSYS; /* no io_uring to watch it with */
		return;
	}
	if (!p) {
		j->w_result = -ENOMEM; /* the reactor could not make it */
		return;
	}
	char why[DD_REASON_MAX];
	why[0] = 0;
	int rc = spawn(s, j, p, why, sizeof(why));
	if (rc != 0) {
		/* nothing runs in its cgroup: the child that could not go on
		 * has been reaped */
		dd_proctree_free(s, p);
		j->w_result = rc;
		if (why[0]) {
			/* The reactor takes the text (without memory for it, it
			 * falls back to a static one) and names the output files:
			 * the job's stderr says it too, as a shell's (and Slurm's)
			 * would. pid 0: no process. */
			p->why = dd_reason_dup(s, why);
			if (p->err >= 0)
				dprintf(p->err, "dispatchd: %s\n", why);
		}
		return;
	}
	j->w_result = 0;
}
