/* A cgroup per process (DESIGN.md section 10): the whole tree a process
 * starts is found, signalled, limited and accounted through it.
 *
 * The tree is tracked on cgroup v2 (the unified hierarchy: /sys/fs/cgroup
 * on a pure v2 host, /sys/fs/cgroup/unified on a hybrid one). Memory is
 * limited and measured where the memory controller is: on v2 when it is
 * enabled for our subtree, else on a v1 memory hierarchy. CPU time comes
 * from v2's cpu.stat, which every v2 cgroup has with or without the cpu
 * controller.
 *
 * Layout: the caller's own cgroup C (from /proc/self/cgroup; the
 * hierarchy's root "/" counts as C too) holds the subtree S = C/<name>,
 * and S/<job> holds one process's tree. On v2 a controller reaches S's
 * children only when C and S enable it in cgroup.subtree_control, and a
 * cgroup other than the root cannot enable one while processes are in it
 * ("no internal processes"): when C holds processes (the daemon itself, as
 * in a systemd unit with Delegate=yes), the caller moves itself into the
 * leaf C/dispatchd.self first, provided it is the only process there. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"

#define SELF_LEAF "dispatchd.self"

/* The controllers a tree's cgroup uses, each on cgroup2 where it is
 * enabled there, else on its v1 hierarchy (a hybrid host). */
enum { V1_MEMORY, V1_PIDS, V1_CPUSET, V1_N };
static const char *const ctl_name[V1_N + 1] = {"memory", "pids", "cpuset", NULL};

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
};

/* ---- small file helpers: whole small files read and written at a dir fd ---- */

static int read_at(int dir, const char *name, char *buf, size_t n)
{
	int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t k = read(fd, buf, n - 1);
	int e = errno;
	close(fd);
	if (k < 0)
		return -e;
	buf[k] = 0;
	return (int)k;
}

static int write_at(int dir, const char *name, const char *text)
{
	int fd = openat(dir, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = strlen(text);
	ssize_t k = write(fd, text, len);
	int e = errno;
	close(fd);
	return k == (ssize_t)len ? 0 : k < 0 ? -e : -EIO;
}

/* The value of "key N" in a flat-keyed file's text; false when absent. */
static bool keyed(const char *text, const char *key, uint64_t *v)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncmp(p, key, kl) && p[kl] == ' ') {
			*v = strtoull(p + kl + 1, NULL, 10);
			return true;
		}
	}
	return false;
}

/* Whether @ctl is a word of the space-separated @list. */
static bool has_word(const char *list, const char *ctl)
{
	size_t n = strlen(ctl);
	for (const char *p = list; (p = strstr(p, ctl)); p += n)
		if ((p == list || p[-1] == ' ' || p[-1] == ',') &&
		    (!p[n] || p[n] == ' ' || p[n] == '\n' || p[n] == ','))
			return true;
	return false;
}

/* ---- finding the hierarchies and our place in them ---- */

/* The mount point and root of the cgroup2 hierarchy (@v1ctl NULL) or of
 * the v1 hierarchy holding controller @v1ctl, from /proc/self/mountinfo. */
static bool find_mount(const char *v1ctl, char *mnt, size_t mn, char *root, size_t rn)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		/* id parent maj:min root mountpoint opts... - fstype source superopts */
		char r[PATH_MAX], m[PATH_MAX], fs[64], src[256], sopts[1024];
		const char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2 ||
		    sscanf(dash + 3, "%63s %255s %1023s", fs, src, sopts) != 3)
			continue;
		if (v1ctl ? strcmp(fs, "cgroup") || !has_word(sopts, v1ctl) : strcmp(fs, "cgroup2"))
			continue;
		snprintf(mnt, mn, "%s", m);
		snprintf(root, rn, "%s", r);
		found = true;
	}
	fclose(f);
	return found;
}

/* Our cgroup's path in the hierarchy (v2 @v1ctl NULL, or the v1 one
 * holding @v1ctl), from /proc/self/cgroup. */
static bool own_cgroup(const char *v1ctl, char *path, size_t n)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
		if (!b)
			continue;
		*a = *b = 0; /* "id:controllers:path" */
		b[strcspn(b + 1, "\n") + 1] = 0;
		if (v1ctl ? !has_word(a + 1, v1ctl) : strcmp(line, "0") || a[1])
			continue;
		snprintf(path, n, "%s", b + 1);
		found = true;
	}
	fclose(f);
	return found;
}

/* The directory of our own cgroup: the mount point joined with our path
 * below the mount's root (a container mounts a sub-tree as its root). */
static int own_dir(const char *v1ctl, char *dir, size_t n, char *why, size_t whyn)
{
	char mnt[PATH_MAX], root[PATH_MAX], own[PATH_MAX];
	if (!find_mount(v1ctl, mnt, sizeof(mnt), root, sizeof(root))) {
		snprintf(why, whyn, v1ctl ? "no v1 %s hierarchy" : "no cgroup2 file system mounted",
			 v1ctl);
		return -ENOENT;
	}
	if (!own_cgroup(v1ctl, own, sizeof(own))) {
		snprintf(why, whyn, "/proc/self/cgroup names no %s cgroup", v1ctl ? v1ctl : "v2");
		return -ENOENT;
	}
	const char *rel = own;
	size_t rl = strlen(root);
	if (strcmp(root, "/") && !strncmp(own, root, rl) && (own[rl] == '/' || !own[rl]))
		rel = own + rl;
	if (!strcmp(rel, "/"))
		rel = "";
	/* a second engine in a process that moved itself to the leaf */
	size_t len = strlen(rel);
	char up[PATH_MAX];
	snprintf(up, sizeof(up), "%s", rel);
	if (len > sizeof(SELF_LEAF) && !strcmp(up + len - strlen(SELF_LEAF), SELF_LEAF) &&
	    up[len - strlen(SELF_LEAF) - 1] == '/')
		up[len - strlen(SELF_LEAF) - 1] = 0;
	if (snprintf(dir, n, "%s%s", mnt, up) >= (int)n)
		return -ENAMETOOLONG;
	return 0;
}

/* The pids in @dir's cgroup.procs (up to @max); returns the count or -errno. */
static int list_procs(int dir, pid_t *pids, int max)
{
	int fd = openat(dir, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	int n = 0;
	long p;
	while (n < max && fscanf(f, "%ld", &p) == 1)
		pids[n++] = (pid_t)p;
	fclose(f);
	return n;
}

/* Enables what of @want C offers in @dir's subtree_control; returns the
 * controllers that reach @dir's children. */
static void enable(int dir, const char *const *want, bool *on)
{
	char have[512], sub[512];
	if (read_at(dir, "cgroup.controllers", have, sizeof(have)) < 0)
		return;
	if (read_at(dir, "cgroup.subtree_control", sub, sizeof(sub)) < 0)
		sub[0] = 0;
	for (int i = 0; want[i]; i++) {
		if (!has_word(have, want[i]))
			continue;
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "+%s", want[i]);
		on[i] = has_word(sub, want[i]) || write_at(dir, "cgroup.subtree_control", cmd) == 0;
	}
}

/* Makes C pass the controllers on: C enables them, moving ourselves into
 * C/dispatchd.self when C holds us alone and refuses for holding us. */
static void pass_on(const char *cdir, const char *const *want)
{
	int c = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c < 0)
		return;
	bool on[V1_N] = {0};
	enable(c, want, on);
	char have[512];
	bool missing = false;
	if (read_at(c, "cgroup.controllers", have, sizeof(have)) >= 0)
		for (int i = 0; want[i]; i++)
			missing |= has_word(have, want[i]) && !on[i];
	pid_t pids[2] = {0};
	if (missing && list_procs(c, pids, 2) == 1 && pids[0] == getpid() &&
	    (mkdirat(c, SELF_LEAF, 0755) == 0 || errno == EEXIST)) {
		int leaf = openat(c, SELF_LEAF, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (leaf >= 0) {
			if (write_at(leaf, "cgroup.procs", "0") == 0)
				enable(c, want, on);
			close(leaf);
		}
	}
	close(c);
}

/* S = <cdir>/<name>, created (0755) or reused; its fd or -errno. */
static int subtree(const char *cdir, const char *name, char *path, size_t n)
{
	if (snprintf(path, n, "%s/%s", cdir, name) >= (int)n)
		return -ENAMETOOLONG;
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* S's v1 cpuset gets its parent's CPUs and memory nodes: v1 starts a
 * cpuset empty, and a task cannot enter an empty one. */
static void v1_cpuset_init(struct dd_proc_cg *cg, const char *parent)
{
	int p = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p < 0)
		return;
	int k = read_at(p, "cpuset.cpus", cg->v1cpus, sizeof(cg->v1cpus));
	int m = read_at(p, "cpuset.mems", cg->v1mems, sizeof(cg->v1mems));
	close(p);
	cg->v1cpus[strcspn(cg->v1cpus, "\n")] = 0;
	cg->v1mems[strcspn(cg->v1mems, "\n")] = 0;
	if (k <= 0 || m <= 0 || !cg->v1cpus[0] || !cg->v1mems[0] ||
	    write_at(cg->v1[V1_CPUSET], "cpuset.cpus", cg->v1cpus) < 0 ||
	    write_at(cg->v1[V1_CPUSET], "cpuset.mems", cg->v1mems) < 0) {
		close(cg->v1[V1_CPUSET]);
		rmdir(cg->v1path[V1_CPUSET]);
		cg->v1[V1_CPUSET] = -1;
	}
}

/* ", memory on cgroup2", ", pids on v1 /sys/fs/cgroup/pids/x", ... */
static int describe(struct dd_proc_cg *cg, int k, const char *v1why)
{
	size_t n = sizeof(cg->desc);
	for (int i = 0; i < V1_N && k >= 0 && (size_t)k < n; i++) {
		if (cg->v2on[i])
			k += snprintf(cg->desc + k, n - (size_t)k, ", %s on cgroup2", ctl_name[i]);
		else if (cg->v1[i] >= 0)
			k += snprintf(cg->desc + k, n - (size_t)k, ", %s on v1 %s", ctl_name[i],
				      cg->v1path[i]);
		else if (i == V1_MEMORY)
			k += snprintf(cg->desc + k, n - (size_t)k,
				      ", no memory controller (%s): memory limits and peaks unavailable",
				      v1why[0] ? v1why : "not enabled for this cgroup");
		else
			k += snprintf(cg->desc + k, n - (size_t)k, ", no %s controller", ctl_name[i]);
	}
	return k;
}

int dd_proc_cg_open(const char *name, struct dd_proc_cg **out, char *why, size_t whyn)
{
	*out = NULL;
	if (!name[0] || strchr(name, '/') || name[0] == '.')
		return -EINVAL;
	struct dd_proc_cg *cg = calloc(1, sizeof(*cg));
	if (!cg)
		return -ENOMEM;
	cg->v2 = -1;
	for (int i = 0; i < V1_N; i++)
		cg->v1[i] = -1;
	char cdir[PATH_MAX];
	int rc = own_dir(NULL, cdir, sizeof(cdir), why, whyn);
	if (rc < 0)
		goto fail;
	/* only these: no other controller's file is written or read */
	pass_on(cdir, ctl_name);
	if ((rc = subtree(cdir, name, cg->v2path, sizeof(cg->v2path))) < 0) {
		snprintf(why, whyn, "cannot create cgroup %s: %s%s", cg->v2path, strerror(-rc),
			 rc == -EACCES || rc == -EPERM || rc == -EROFS
				 ? " (not root, and no cgroup delegated to this user)"
				 : "");
		goto fail;
	}
	cg->v2 = rc;
	enable(cg->v2, ctl_name, cg->v2on);
	/* every cgroup but the root has it from Linux 5.14 */
	cg->kill_file = faccessat(cg->v2, "cgroup.kill", F_OK, 0) == 0;
	char v1why[PATH_MAX + 64] = "";
	for (int i = 0; i < V1_N; i++) {
		if (cg->v2on[i])
			continue;
		char dir[PATH_MAX], w[PATH_MAX + 64] = "";
		int r = own_dir(ctl_name[i], dir, sizeof(dir), w, sizeof(w));
		if (r == 0 && (r = subtree(dir, name, cg->v1path[i], sizeof(cg->v1path[i]))) >= 0) {
			cg->v1[i] = r;
			if (i == V1_CPUSET)
				v1_cpuset_init(cg, dir);
		} else if (i == V1_MEMORY) {
			if (r < 0 && !w[0])
				snprintf(w, sizeof(w), "cannot create %s: %s", cg->v1path[i],
					 strerror(-r));
			snprintf(v1why, sizeof(v1why), "%s", w);
		}
	}
	int k = snprintf(cg->desc, sizeof(cg->desc), "cgroup2 %s", cg->v2path);
	k = describe(cg, k, v1why);
	if (!cg->kill_file && k >= 0 && (size_t)k < sizeof(cg->desc))
		snprintf(cg->desc + k, sizeof(cg->desc) - (size_t)k,
			 ", no cgroup.kill (kernel before 5.14): trees killed pid by pid");
	*out = cg;
	return 0;
fail:
	free(cg);
	return rc;
}

void dd_proc_cg_close(struct dd_proc_cg *cg)
{
	if (!cg)
		return;
	/* S stays while a job's cgroup is left in it (a process that outlives
	 * us, for the next engine to find) */
	close(cg->v2);
	rmdir(cg->v2path);
	for (int i = 0; i < V1_N; i++)
		if (cg->v1[i] >= 0) {
			close(cg->v1[i]);
			rmdir(cg->v1path[i]);
		}
	free(cg);
}

const char *dd_proc_cg_describe(const struct dd_proc_cg *cg)
{
	return cg->desc;
}

bool dd_proc_cg_memory(const struct dd_proc_cg *cg)
{
	return cg->v2on[V1_MEMORY] || cg->v1[V1_MEMORY] >= 0;
}

bool dd_proc_cg_pids(const struct dd_proc_cg *cg)
{
	return cg->v2on[V1_PIDS] || cg->v1[V1_PIDS] >= 0;
}

bool dd_proc_cg_cpuset(const struct dd_proc_cg *cg)
{
	return cg->v2on[V1_CPUSET] || cg->v1[V1_CPUSET] >= 0;
}

/* ---- one process's cgroup ---- */

static void job_close(struct dd_proc_cg_job *j)
{
	int *fds[] = {&j->dir, &j->events, &j->v1[0], &j->v1[1], &j->v1[2],
		      &j->procs[0], &j->procs[1], &j->procs[2], &j->procs[3]};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	j->procs[4] = -1;
}

static const struct dd_proc_cg_job job_none = {
	.dir = -1, .procs = {-1, -1, -1, -1, -1}, .events = -1, .v1 = {-1, -1, -1}};

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

static int set_memory(const struct dd_proc_cg *cg, struct dd_proc_cg_job *j, uint64_t max)
{
	char v[32];
	snprintf(v, sizeof(v), "%" PRIu64, max);
	if (cg->v2on[V1_MEMORY]) {
		int rc = write_at(j->dir, "memory.max", v);
		/* no swap to escape to: the limit is what it says */
		if (rc == 0)
			(void)write_at(j->dir, "memory.swap.max", "0");
		return rc;
	}
	int m = j->v1[V1_MEMORY];
	int rc = write_at(m, "memory.limit_in_bytes", v);
	if (rc == 0 && faccessat(m, "memory.memsw.limit_in_bytes", F_OK, 0) == 0)
		(void)write_at(m, "memory.memsw.limit_in_bytes", v);
	return rc;
}

int dd_proc_cg_job_create(const struct dd_proc_cg *cg, const char *name, uint64_t mem_max,
			  struct dd_proc_cg_job *j)
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
	    (j->events = openat(j->dir, "cgroup.events", O_RDONLY | O_CLOEXEC)) < 0)
		goto fail;
	int np = 1;
	for (int i = 0; i < V1_N; i++) {
		if (cg->v1[i] < 0)
			continue;
		if ((rc = make_dir(cg->v1[i], name)) < 0) {
			errno = -rc;
			goto fail;
		}
		if ((j->v1[i] = openat(cg->v1[i], name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			goto fail;
		/* a v1 cpuset starts empty, and nothing can enter it so */
		if (i == V1_CPUSET && ((rc = write_at(j->v1[i], "cpuset.cpus", cg->v1cpus)) < 0 ||
				       (rc = write_at(j->v1[i], "cpuset.mems", cg->v1mems)) < 0)) {
			errno = -rc;
			goto fail;
		}
		if ((j->procs[np++] = openat(j->v1[i], "cgroup.procs", O_WRONLY | O_CLOEXEC)) < 0)
			goto fail;
	}
	if (mem_max && (rc = set_memory(cg, j, mem_max)) < 0) {
		errno = -rc;
		goto fail;
	}
	j->mem_max = mem_max;
	return 0;
fail:
	rc = -errno;
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
	int rc = 0;
	if (pids_max && dd_proc_cg_pids(cg)) {
		char v[32];
		snprintf(v, sizeof(v), "%" PRIu64, pids_max);
		rc = write_at(cg->v2on[V1_PIDS] ? j->dir : j->v1[V1_PIDS], "pids.max", v);
	}
	if (rc == 0 && cpus && CPU_COUNT(cpus) && dd_proc_cg_cpuset(cg)) {
		char list[4096];
		cpu_list(cpus, list, sizeof(list));
		rc = write_at(cg->v2on[V1_CPUSET] ? j->dir : j->v1[V1_CPUSET], "cpuset.cpus", list);
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
	return keyed(buf, "populated", &v) ? v != 0 : -EPROTO;
}

int dd_proc_cg_job_signal(const struct dd_proc_cg *cg, const struct dd_proc_cg_job *j, int sig)
{
	if (sig == SIGKILL && cg->kill_file)
		return write_at(j->dir, "cgroup.kill", "1");
	/* pid by pid: a process forked while we read is caught by the next
	 * round; SIGKILL rounds go on until one finds nobody new */
	pid_t pids[1024];
	int total = 0;
	for (int round = 0; round < 64; round++) {
		int n = list_procs(j->dir, pids, 1024);
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

/* @peak (a number) and the oom_kill count of @events, at @dir. */
static void memory_usage(int dir, const char *peak, const char *events, struct dd_proc_usage *u)
{
	char buf[2048];
	uint64_t v;
	if (read_at(dir, peak, buf, sizeof(buf)) > 0) {
		u->mem_peak = strtoull(buf, NULL, 10);
		u->have_mem = true;
	}
	if (read_at(dir, events, buf, sizeof(buf)) > 0 && keyed(buf, "oom_kill", &v))
		u->oom_kills = v;
}

int dd_proc_cg_job_usage(const struct dd_proc_cg *cg, const struct dd_proc_cg_job *j,
			 struct dd_proc_usage *u)
{
	char buf[2048];
	uint64_t v;
	*u = (struct dd_proc_usage){0};
	if (read_at(j->dir, "cpu.stat", buf, sizeof(buf)) > 0 && keyed(buf, "usage_usec", &v)) {
		u->cpu_ns = v * 1000;
		u->have_cpu = true;
	}
	/* the peak and the kernel's kills for the limit: v2's files, or
	 * the v1 memory controller's */
	if (cg->v2on[V1_MEMORY])
		memory_usage(j->dir, "memory.peak", "memory.events", u);
	else if (j->v1[V1_MEMORY] >= 0)
		memory_usage(j->v1[V1_MEMORY], "memory.max_usage_in_bytes", "memory.oom_control", u);
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

void dd_proc_cg_job_release(struct dd_proc_cg_job *j)
{
	job_close(j);
	j->name[0] = 0;
}

int dd_proc_cg_job_procs(const struct dd_proc_cg_job *j, pid_t *pids, int max)
{
	return list_procs(j->dir, pids, max);
}
