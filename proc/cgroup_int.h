/* What proc/cgroup.c, cgroup_job.c and cgroup_spare.c share: the subtree
 * and the small-file helpers. Not part of proc.h's interface. */
#ifndef DD_PROC_CGROUP_INT_H
#define DD_PROC_CGROUP_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc.h"

/* The controllers a tree's cgroup uses, each on cgroup2 where it is
 * enabled there, else on its v1 hierarchy (a hybrid host). */
enum { V1_MEMORY, V1_PIDS, V1_CPUSET, V1_N };

/* Emptied v1 cgroups kept for reuse (cgroup_spare.c), at most. */
#define DD_CG_SPARES 32
/* A v1 memory cgroup is reused only when what its last tree left charged
 * to it (page cache of files it wrote) is at most this: the next tree's
 * peak starts from it. */
#define DD_CG_SPARE_MEM_LEFT (1u << 20)

struct dd_proc_cg {
	int v2;            /* S on cgroup2 (a directory fd) */
	bool v2on[V1_N];   /* the controller reaches S's children on v2 */
	int v1[V1_N];      /* else S on the controller's v1 hierarchy, or -1 */
	bool kill_file;    /* cgroup.kill (Linux 5.14) */
	char v2path[PATH_MAX];
	char v1path[V1_N][PATH_MAX];
	char v1cpus[1024], v1mems[256]; /* S's v1 cpuset, which a child's
					 * starts from (v1 starts it empty) */
	char desc[4 * PATH_MAX + 256];
	/* the spares: named "spare.N" in each v1 hierarchy, empty */
	pthread_mutex_t mu;
	struct dd_proc_cg_job spare[DD_CG_SPARES];
	unsigned nspare, seq;
};

/* Whole small files, read and written at a directory fd. */
int dd_proc_cg_read_at(int dir, const char *name, char *buf, size_t n);
int dd_proc_cg_write_at(int dir, const char *name, const char *text);
/* The value of "key N" in a flat-keyed file's text; false when absent. */
bool dd_proc_cg_keyed(const char *text, const char *key, uint64_t *v);
/* The text of the open file @fd, from its start. */
int dd_proc_cg_pread(int fd, char *buf, size_t n);
/* The pids in @dir's cgroup.procs (up to @max); the count or -errno. */
int dd_proc_cg_list_procs(int dir, pid_t *pids, int max);

/* @j's memory limit becomes @max (0: none); 0 or -errno. */
int dd_proc_cg_set_memory(const struct dd_proc_cg *cg, struct dd_proc_cg_job *j, uint64_t max);

/* A spare's v1 cgroups become @name's and go to @j (their files, and what
 * they hold now: limit, pids.max, cpuset), the memory peak reset; one
 * confined to @cpus (NULL: to none) where there is. Returns true, or
 * false when there is none to take (or its peak cannot be reset or it
 * cannot be renamed: then it is removed; a populated cgroup of that name
 * leaves it a spare). Any thread. */
bool dd_proc_cg_spare_take(struct dd_proc_cg *cg, const char *name, const cpu_set_t *cpus,
		      struct dd_proc_cg_job *j);
/* @j's v1 cgroups, its v2 one removed, become a spare where there is
 * room and they can be reused (no process in them, little memory charged
 * to them); returns true when that is done (@j's v1 files then are the
 * spare's), false to remove them. */
bool dd_proc_cg_spare_keep(struct dd_proc_cg *cg, struct dd_proc_cg_job *j);
/* Removes the spares an earlier engine left in @cg's v1 subtrees. */
void dd_proc_cg_spare_sweep(struct dd_proc_cg *cg);
/* Removes every spare (@cg is closing). */
void dd_proc_cg_spare_drop_all(struct dd_proc_cg *cg);

#endif
