/* Spare v1 cgroups: a tree's memory, pids and cpuset cgroups on v1
 * hierarchies outlive it, emptied and renamed "spare.N", and the next tree
 * takes them by renaming them to its own name: a v1 mkdir and rmdir cost
 * several times a rename, and the kernel frees a memory cgroup later in a
 * worker of its own (docs/BENCHMARKS.md, "Measured choices: reused v1
 * cgroups"). cgroup2 directories cannot be renamed, so a tree's v2
 * cgroup is always new.
 *
 * A spare keeps what its last tree left: its memory limit, pids.max and
 * cpuset (written again only where the next tree asks otherwise), the
 * memory controller's kill count (subtracted from the next tree's) and the
 * page cache charged to it, which the next tree's peak starts from; so a
 * memory cgroup is kept only when that is small (DD_CG_SPARE_MEM_LEFT).
 *
 * The names say what a spare is to the next engine on the subtree, which
 * removes spares an earlier one left (dd_proc_cg_spare_sweep). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup_int.h"
#include "proc.h"

#define SPARE_PREFIX "spare."

/* Renames the v1 cgroups @from to @to; on a failure those renamed
 * go back. Returns 0 or -errno. An empty @to left by an earlier life is
 * removed first (a populated one: -EBUSY). */
static int rename_v1(const struct dd_proc_cg *cg, const char *from, const char *to)
{
	int i;
	for (i = 0; i < V1_N; i++) {
		if (cg->v1[i] < 0)
			continue;
		if (renameat(cg->v1[i], from, cg->v1[i], to) == 0)
			continue;
		if (errno == EEXIST && unlinkat(cg->v1[i], to, AT_REMOVEDIR) == 0 &&
		    renameat(cg->v1[i], from, cg->v1[i], to) == 0)
			continue;
		int rc = -errno;
		while (--i >= 0)
			if (cg->v1[i] >= 0)
				(void)renameat(cg->v1[i], to, cg->v1[i], from);
		return rc;
	}
	return 0;
}

/* Closes a spare's files and removes its cgroups. */
static void drop(const struct dd_proc_cg *cg, struct dd_proc_cg_job *sp)
{
	for (int i = 0; i < V1_N; i++)
		if (sp->v1[i] >= 0) {
			(void)unlinkat(cg->v1[i], sp->name, AT_REMOVEDIR);
			close(sp->v1[i]);
			sp->v1[i] = -1;
		}
	for (int k = 1; k < 5; k++)
		if (sp->procs[k] >= 0) {
			close(sp->procs[k]);
			sp->procs[k] = -1;
		}
	for (int k = 0; k < 3; k++)
		if (sp->mem[k] >= 0) {
			close(sp->mem[k]);
			sp->mem[k] = -1;
		}
}

/* The spare to take for @cpus: the latest kept that is confined to them
 * (so nothing is written), else the latest. Under cg->mu. */
static unsigned pick(const struct dd_proc_cg *cg, const cpu_set_t *cpus)
{
	bool narrow = cpus && CPU_COUNT(cpus);
	for (unsigned i = cg->nspare; i-- > 0;) {
		const struct dd_proc_cg_job *sp = &cg->spare[i];
		if (sp->narrowed == narrow && (!narrow || CPU_EQUAL(&sp->cpus, cpus)))
			return i;
	}
	return cg->nspare - 1;
}

bool dd_proc_cg_spare_take(struct dd_proc_cg *cg, const char *name, const cpu_set_t *cpus,
		      struct dd_proc_cg_job *j)
{
	pthread_mutex_lock(&cg->mu);
	if (!cg->nspare) {
		pthread_mutex_unlock(&cg->mu);
		return false;
	}
	unsigned i = pick(cg, cpus);
	struct dd_proc_cg_job sp = cg->spare[i];
	cg->spare[i] = cg->spare[--cg->nspare];
	pthread_mutex_unlock(&cg->mu);
	/* the peak from now on: "0" sets it to what is charged now; one that
	 * cannot be reset would be the next tree's, so the spare goes */
	if (sp.mem[0] >= 0 && pwrite(sp.mem[0], "0", 1, 0) != 1) {
		drop(cg, &sp);
		return false;
	}
	int rc = rename_v1(cg, sp.name, name);
	if (rc == -EBUSY) {
		/* a cgroup of that name still holds processes: the spare is
		 * good, the name is not (the caller says so) */
		pthread_mutex_lock(&cg->mu);
		bool room = cg->nspare < DD_CG_SPARES;
		if (room)
			cg->spare[cg->nspare++] = sp;
		pthread_mutex_unlock(&cg->mu);
		if (!room)
			drop(cg, &sp);
		return false;
	}
	if (rc < 0) {
		drop(cg, &sp);
		return false;
	}
	for (int h = 0; h < V1_N; h++)
		j->v1[h] = sp.v1[h];
	for (int k = 1; k < 5; k++)
		j->procs[k] = sp.procs[k];
	for (int k = 0; k < 3; k++)
		j->mem[k] = sp.mem[k];
	j->mem_max = sp.mem_max;
	j->pids_max = sp.pids_max;
	j->oom_base = sp.oom_base;
	j->narrowed = sp.narrowed;
	j->cpus = sp.cpus;
	return true;
}

/* No process is in @j's v1 cgroups. Its v2 one is empty, but a process
 * may leave that alone (root may move itself): such a cgroup is not
 * another tree's to have. */
static bool v1_empty(const struct dd_proc_cg *cg, const struct dd_proc_cg_job *j)
{
	for (int i = 0; i < V1_N; i++) {
		if (cg->v1[i] < 0)
			continue;
		char c;
		int fd = openat(j->v1[i], "cgroup.procs", O_RDONLY | O_CLOEXEC);
		ssize_t k = fd >= 0 ? read(fd, &c, 1) : -1;
		if (fd >= 0)
			close(fd);
		if (k != 0)
			return false;
	}
	return true;
}

bool dd_proc_cg_spare_keep(struct dd_proc_cg *cg, struct dd_proc_cg_job *j)
{
	/* all of its v1 side, with the files a child enters by */
	int used = 0, np = 1;
	for (int i = 0; i < V1_N; i++) {
		if (cg->v1[i] < 0)
			continue;
		if (j->v1[i] < 0 || j->procs[np++] < 0)
			return false;
		used++;
	}
	if (!used || !v1_empty(cg, j))
		return false;
	char buf[2048];
	uint64_t oom = 0;
	if (j->v1[V1_MEMORY] >= 0) {
		/* its files are open: a spare is read through them */
		if (j->mem[0] < 0 || j->mem[1] < 0 || j->mem[2] < 0)
			return false;
		if (dd_proc_cg_pread(j->mem[2], buf, sizeof(buf)) <= 0 ||
		    strtoull(buf, NULL, 10) > DD_CG_SPARE_MEM_LEFT)
			return false;
		if (dd_proc_cg_pread(j->mem[1], buf, sizeof(buf)) <= 0)
			return false;
		(void)dd_proc_cg_keyed(buf, "oom_kill", &oom);
	}
	pthread_mutex_lock(&cg->mu);
	bool room = cg->nspare < DD_CG_SPARES;
	unsigned seq = cg->seq++;
	pthread_mutex_unlock(&cg->mu);
	if (!room)
		return false;
	struct dd_proc_cg_job sp = *j;
	snprintf(sp.name, sizeof(sp.name), SPARE_PREFIX "%u", seq);
	if (rename_v1(cg, j->name, sp.name) < 0)
		return false;
	sp.dir = sp.events = sp.procs[0] = sp.cpu_stat = -1;
	sp.oom_base = oom;
	pthread_mutex_lock(&cg->mu);
	room = cg->nspare < DD_CG_SPARES;
	if (room)
		cg->spare[cg->nspare++] = sp;
	pthread_mutex_unlock(&cg->mu);
	if (!room) /* others filled it meanwhile */
		drop(cg, &sp);
	/* its v1 files are the spare's now (or closed) */
	for (int i = 0; i < V1_N; i++)
		j->v1[i] = -1;
	for (int k = 1; k < 5; k++)
		j->procs[k] = -1;
	for (int k = 0; k < 3; k++)
		j->mem[k] = -1;
	return true;
}

void dd_proc_cg_spare_sweep(struct dd_proc_cg *cg)
{
	for (int i = 0; i < V1_N; i++) {
		if (cg->v1[i] < 0)
			continue;
		int fd = dup(cg->v1[i]);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		if (!d) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		struct dirent *e;
		while ((e = readdir(d)))
			if (!strncmp(e->d_name, SPARE_PREFIX, strlen(SPARE_PREFIX)))
				(void)unlinkat(cg->v1[i], e->d_name, AT_REMOVEDIR);
		closedir(d);
	}
}

void dd_proc_cg_spare_drop_all(struct dd_proc_cg *cg)
{
	pthread_mutex_lock(&cg->mu);
	while (cg->nspare)
		drop(cg, &cg->spare[--cg->nspare]);
	pthread_mutex_unlock(&cg->mu);
}
