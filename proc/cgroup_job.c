/* One process tree's cgroup (DESIGN.md section 10): made on cgroup v2 for
 * the tree, and on the v1 hierarchies of controllers that are not on v2
 * there; limited, signalled, read and removed. Its v1 cgroups are reused
 * from the spares of earlier trees where there are (cgroup_spare.c). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_int.h"
#include "proc.h"

static void job_close(struct dd_proc_cg_job *j)
{
	int *fds[] = {&j->dir,	   &j->events,	 &j->v1[0],    &j->v1[1],    &j->v1[2],
		      &j->procs[0], &j->procs[1], &j->procs[2], &j->procs[3], &j->cpu_stat,
		      &j->mem[0],   &j->mem[1],	 &j->mem[2]};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	j->procs[4] = -1;
}

static const struct dd_proc_cg_job job_none = {.dir = -1,
						.procs = {-1, -1, -1, -1, -1},
						.events = -1,
						.v1 = {-1, -1, -1},
						.cpu_stat = -1,
						.mem = {-1, -1, -1}};

int dd_proc_cg_pread(int fd, char *buf, size_t n)
{
	ssize_t k = pread(fd, buf, n - 1, 0);
	if (k < 0)
		return -errno;
	buf[k] = 0;
	return (int)k;
}

/* The files read at every tree's end, opened once: cpu.stat of the new
 * v2 cgroup, and those of a new v1 memory one (a spare has them). */
static void open_reads(struct dd_proc_cg_job *j)
{
	j->cpu_stat = openat(j->dir, "cpu.stat", O_RDONLY | O_CLOEXEC);
	int m = j->v1[V1_MEMORY];
	if (m < 0 || j->mem[0] >= 0)
		return;
	j->mem[0] = openat(m, "memory.max_usage_in_bytes", O_RDWR | O_CLOEXEC);
	j->mem[1] = openat(m, "memory.oom_control", O_RDONLY | O_CLOEXEC);
	j->mem[2] = openat(m, "memory.usage_in_bytes", O_RDONLY | O_CLOEXEC);
}

/* mkdir @name at @parent; an empty one left by an earlier life is taken
 * over, a populated one refused (-EBUSY): its processes still run. */
static int make_dir(int parent, const char *name)
{
	if (mkdirat(parent, name, 0755) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0)
		return errno == EBUSY ? -EBUSY : -errno;
	return mkdirat(parent, name, 0755) < 0 ? -errno : 0;
}

int dd_proc_cg_set_memory(const struct dd_proc_cg *cg, struct dd_proc_cg_job *j, uint64_t max)
{
	char v[32];
	if (cg->v2on[V1_MEMORY]) {
		snprintf(v, sizeof(v), max ? "%" PRIu64 : "max", max);
		int rc = dd_proc_cg_write_at(j->dir, "memory.max", v);
		/* no swap to escape to: the limit is what it says */
		if (rc == 0)
			(void)dd_proc_cg_write_at(j->dir, "memory.swap.max", "0");
		if (rc == 0)
			j->mem_max = max;
		return rc;
	}
	snprintf(v, sizeof(v), max ? "%" PRIu64 : "-1", max);
	int m = j->v1[V1_MEMORY];
	bool sw = faccessat(m, "memory.memsw.limit_in_bytes", F_OK, 0) == 0;
	/* the memory+swap limit is never below the memory one: raised
	 * first, lowered last */
	bool up = !max || (j->mem_max && max > j->mem_max);
	if (sw && up)
		(void)dd_proc_cg_write_at(m, "memory.memsw.limit_in_bytes", v);
	int rc = dd_proc_cg_write_at(m, "memory.limit_in_bytes", v);
	if (rc == 0 && sw && !up)
		(void)dd_proc_cg_write_at(m, "memory.memsw.limit_in_bytes", v);
	if (rc == 0)
		j->mem_max = max;
	return rc;
}

/* The v1 side of a new cgroup: made in each v1 hierarchy used; procs[]
 * from index 1. */
static int v1_make(const struct dd_proc_cg *cg, const char *name, struct dd_proc_cg_job *j)
{
	int np = 1, rc;
	for (int i = 0; i < V1_N; i++) {
		if (cg->v1[i] < 0)
			continue;
		if ((rc = make_dir(cg->v1[i], name)) < 0)
			return rc;
		if ((j->v1[i] = openat(cg->v1[i], name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			return -errno;
		/* a v1 cpuset starts empty, and nothing can enter it so */
		if (i == V1_CPUSET &&
		    ((rc = dd_proc_cg_write_at(j->v1[i], "cpuset.cpus", cg->v1cpus)) < 0 ||
		     (rc = dd_proc_cg_write_at(j->v1[i], "cpuset.mems", cg->v1mems)) < 0))
			return rc;
		if ((j->procs[np++] = openat(j->v1[i], "cgroup.procs", O_WRONLY | O_CLOEXEC)) < 0)
			return -errno;
	}
	return 0;
}

int dd_proc_cg_job_create(struct dd_proc_cg *cg, const char *name, uint64_t mem_max,
			  const cpu_set_t *cpus, struct dd_proc_cg_job *j)
{
	*j = job_none;
	snprintf(j->name, sizeof(j->name), "%s", name);
	if (mem_max && !dd_proc_cg_memory(cg))
		return -EOPNOTSUPP;
	int rc = make_dir(cg->v2, name);
	if (rc < 0)
		return rc;
	if ((j->dir = openat(cg->v2, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (j->procs[0] = openat(j->dir, "cgroup.procs", O_WRONLY | O_CLOEXEC)) < 0 ||
	    (j->events = openat(j->dir, "cgroup.events", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		goto fail;
	}
	if (!dd_proc_cg_spare_take(cg, name, cpus, j) && (rc = v1_make(cg, name, j)) < 0)
		goto fail;
	open_reads(j);
	/* what is on v2 is new whatever the spare held */
	if (cg->v2on[V1_MEMORY])
		j->mem_max = 0;
	if (cg->v2on[V1_PIDS])
		j->pids_max = 0;
	if (cg->v2on[V1_CPUSET])
		j->narrowed = false;
	if (mem_max != j->mem_max && (rc = dd_proc_cg_set_memory(cg, j, mem_max)) < 0)
		goto fail;
	return 0;
fail:
	if (j->dir < 0) /* not ours to remove: it was never opened */
		j->name[0] = 0;
	dd_proc_cg_job_destroy(cg, j);
	return rc;
}

int dd_proc_cg_job_open(const struct dd_proc_cg *cg, const char *name, uint64_t mem_max,
			struct dd_proc_cg_job *j)
{
	*j = job_none;
	j->mem_max = mem_max;
	snprintf(j->name, sizeof(j->name), "%s", name);
	if ((j->dir = openat(cg->v2, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) < 0 ||
	    (j->events = openat(j->dir, "cgroup.events", O_RDONLY | O_CLOEXEC)) < 0)
		goto fail;
	/* its v1 sides, where there are: the memory one for the peak and the
	 * limit's kills, all to be removed with it; a tree made before a
	 * controller was is followed without it */
	for (int i = 0; i < V1_N; i++)
		if (cg->v1[i] >= 0)
			j->v1[i] = openat(cg->v1[i], name,
					  O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	return 0;
fail:;
	int rc = -errno;
	j->name[0] = 0; /* not removed on failure: it is someone's */
	dd_proc_cg_job_release(j);
	return rc;
}

/* "0,2-3" */
static void cpu_list(const cpu_set_t *set, char *buf, size_t n)
{
	size_t k = 0;
	buf[0] = 0;
	for (int c = 0; c < CPU_SETSIZE && k + 24 < n; c++) {
		if (!CPU_ISSET(c, set))
			continue;
		int e = c;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		k += (size_t)snprintf(buf + k, n - k, e > c ? "%s%d-%d" : "%s%d", k ? "," : "", c, e);
		c = e;
	}
}

int dd_proc_cg_job_confine(const struct dd_proc_cg *cg, struct dd_proc_cg_job *j,
			   uint64_t pids_max, const cpu_set_t *cpus)
{
	/* written only where they differ from what the cgroup holds: a
	 * reused one holds its last tree's */
	int rc = 0;
	if (pids_max != j->pids_max && dd_proc_cg_pids(cg)) {
		char v[32];
		snprintf(v, sizeof(v), pids_max ? "%" PRIu64 : "max", pids_max);
		rc = dd_proc_cg_write_at(cg->v2on[V1_PIDS] ? j->dir : j->v1[V1_PIDS], "pids.max", v);
		if (rc == 0)
			j->pids_max = pids_max;
	}
	bool narrow = cpus && CPU_COUNT(cpus);
	if (rc == 0 && dd_proc_cg_cpuset(cg) &&
	    (narrow ? !j->narrowed || !CPU_EQUAL(cpus, &j->cpus) : j->narrowed)) {
		char list[4096];
		if (narrow)
			cpu_list(cpus, list, sizeof(list));
		else /* the subtree's: v2's empty list is the parent's */
			snprintf(list, sizeof(list), "%s", cg->v2on[V1_CPUSET] ? "" : cg->v1cpus);
		rc = dd_proc_cg_write_at(cg->v2on[V1_CPUSET] ? j->dir : j->v1[V1_CPUSET], "cpuset.cpus",
				    list);
		if (rc == 0) {
			j->narrowed = narrow;
			if (narrow)
				j->cpus = *cpus;
		}
	}
	return rc;
}

int dd_proc_cg_job_populated(const struct dd_proc_cg_job *j)
{
	char buf[256];
	ssize_t k = pread(j->events, buf, sizeof(buf) - 1, 0);
	if (k < 0)
		return -errno;
	buf[k] = 0;
	uint64_t v;
	return dd_proc_cg_keyed(buf, "populated", &v) ? v != 0 : -EPROTO;
}

int dd_proc_cg_signal_at(int dir, bool kill_file, int sig)
{
	if (sig == SIGKILL && kill_file)
		return dd_proc_cg_write_at(dir, "cgroup.kill", "1");
	/* pid by pid: a process forked while we read is caught by the next
	 * round; SIGKILL rounds go on until one finds nobody new */
	pid_t pids[1024];
	int total = 0;
	for (int round = 0; round < 64; round++) {
		int n = dd_proc_cg_list_procs(dir, pids, 1024);
		if (n < 0)
			return n;
		int sent = 0;
		for (int i = 0; i < n; i++)
			sent += kill(pids[i], sig) == 0;
		total += sent;
		if (sig != SIGKILL || n == 0)
			break;
	}
	return total;
}

int dd_proc_cg_job_signal(const struct dd_proc_cg *cg, const struct dd_proc_cg_job *j, int sig)
{
	return dd_proc_cg_signal_at(j->dir, cg->kill_file, sig);
}

/* A file's text: through @fd where it is open, else @name at @dir. */
static int read_text(int fd, int dir, const char *name, char *buf, size_t n)
{
	return fd >= 0 ? dd_proc_cg_pread(fd, buf, n) : dd_proc_cg_read_at(dir, name, buf, n);
}

int dd_proc_cg_job_usage(const struct dd_proc_cg *cg, const struct dd_proc_cg_job *j,
			 struct dd_proc_usage *u)
{
	char buf[2048];
	uint64_t v;
	*u = (struct dd_proc_usage){0};
	if (read_text(j->cpu_stat, j->dir, "cpu.stat", buf, sizeof(buf)) > 0 &&
	    dd_proc_cg_keyed(buf, "usage_usec", &v)) {
		u->cpu_ns = v * 1000;
		u->have_cpu = true;
	}
	/* the peak and the kernel's kills for the limit: v2's files, or
	 * the v1 memory controller's */
	int dir = j->dir, peak = -1, events = -1;
	const char *peak_name = "memory.peak", *events_name = "memory.events";
	if (!cg->v2on[V1_MEMORY]) {
		if ((dir = j->v1[V1_MEMORY]) < 0)
			return 0;
		peak = j->mem[0];
		events = j->mem[1];
		peak_name = "memory.max_usage_in_bytes";
		events_name = "memory.oom_control";
	}
	if (read_text(peak, dir, peak_name, buf, sizeof(buf)) > 0) {
		u->mem_peak = strtoull(buf, NULL, 10);
		u->have_mem = true;
	}
	/* a reused v1 memory cgroup counts its earlier trees' kills too */
	if (read_text(events, dir, events_name, buf, sizeof(buf)) > 0 &&
	    dd_proc_cg_keyed(buf, "oom_kill", &v))
		u->oom_kills = v >= j->oom_base ? v - j->oom_base : 0;
	return 0;
}

int dd_proc_cg_job_destroy(const struct dd_proc_cg *cg, struct dd_proc_cg_job *j)
{
	if (j->name[0]) {
		/* v2 first: it refuses while a process is in the tree */
		if (j->dir >= 0 && unlinkat(cg->v2, j->name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return -errno;
		for (int i = 0; i < V1_N; i++)
			if (j->v1[i] >= 0 && unlinkat(cg->v1[i], j->name, AT_REMOVEDIR) < 0 &&
			    errno != ENOENT)
				return -errno;
		j->name[0] = 0;
	}
	job_close(j);
	return 0;
}

int dd_proc_cg_job_recycle(struct dd_proc_cg *cg, struct dd_proc_cg_job *j)
{
	if (!j->name[0] || j->dir < 0)
		return dd_proc_cg_job_destroy(cg, j);
	if (unlinkat(cg->v2, j->name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	if (dd_proc_cg_spare_keep(cg, j))
		j->name[0] = 0;
	return dd_proc_cg_job_destroy(cg, j);
}

void dd_proc_cg_job_release(struct dd_proc_cg_job *j)
{
	job_close(j);
	j->name[0] = 0;
}

int dd_proc_cg_job_procs(const struct dd_proc_cg_job *j, pid_t *pids, int max)
{
	return dd_proc_cg_list_procs(j->dir, pids, max);
}
