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

#include "cgroup_int.h"
#include "proc.h"

#define SELF_LEAF "dispatchd.self"

static const char *const ctl_name[V1_N + 1] = {"memory", "pids", "cpuset", NULL};

/* ---- small file helpers: whole small files read and written at a dir fd ---- */

int dd_proc_cg_read_at(int dir, const char *name, char *buf, size_t n)
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

int dd_proc_cg_write_at(int dir, const char *name, const char *text)
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
bool dd_proc_cg_keyed(const char *text, const char *key, uint64_t *v)
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
int dd_proc_cg_list_procs(int dir, pid_t *pids, int max)
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
	if (dd_proc_cg_read_at(dir, "cgroup.controllers", have, sizeof(have)) < 0)
		return;
	if (dd_proc_cg_read_at(dir, "cgroup.subtree_control", sub, sizeof(sub)) < 0)
		sub[0] = 0;
	for (int i = 0; want[i]; i++) {
		if (!has_word(have, want[i]))
			continue;
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "+%s", want[i]);
		on[i] = has_word(sub, want[i]) || dd_proc_cg_write_at(dir, "cgroup.subtree_control", cmd) == 0;
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
	if (dd_proc_cg_read_at(c, "cgroup.controllers", have, sizeof(have)) >= 0)
		for (int i = 0; want[i]; i++)
			missing |= has_word(have, want[i]) && !on[i];
	pid_t pids[2] = {0};
	if (missing && dd_proc_cg_list_procs(c, pids, 2) == 1 && pids[0] == getpid() &&
	    (mkdirat(c, SELF_LEAF, 0755) == 0 || errno == EEXIST)) {
		int leaf = openat(c, SELF_LEAF, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (leaf >= 0) {
			if (dd_proc_cg_write_at(leaf, "cgroup.procs", "0") == 0)
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
	int k = dd_proc_cg_read_at(p, "cpuset.cpus", cg->v1cpus, sizeof(cg->v1cpus));
	int m = dd_proc_cg_read_at(p, "cpuset.mems", cg->v1mems, sizeof(cg->v1mems));
	close(p);
	cg->v1cpus[strcspn(cg->v1cpus, "\n")] = 0;
	cg->v1mems[strcspn(cg->v1mems, "\n")] = 0;
	if (k <= 0 || m <= 0 || !cg->v1cpus[0] || !cg->v1mems[0] ||
	    dd_proc_cg_write_at(cg->v1[V1_CPUSET], "cpuset.cpus", cg->v1cpus) < 0 ||
	    dd_proc_cg_write_at(cg->v1[V1_CPUSET], "cpuset.mems", cg->v1mems) < 0) {
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
	pthread_mutex_init(&cg->mu, NULL);
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
	dd_proc_cg_spare_sweep(cg);
	int k = snprintf(cg->desc, sizeof(cg->desc), "cgroup2 %s", cg->v2path);
	k = describe(cg, k, v1why);
	if (!cg->kill_file && k >= 0 && (size_t)k < sizeof(cg->desc))
		snprintf(cg->desc + k, sizeof(cg->desc) - (size_t)k,
			 ", no cgroup.kill (kernel before 5.14): trees killed pid by pid");
	*out = cg;
	return 0;
fail:
	pthread_mutex_destroy(&cg->mu);
	free(cg);
	return rc;
}

void dd_proc_cg_close(struct dd_proc_cg *cg)
{
	if (!cg)
		return;
	/* S stays while a job's cgroup is left in it (a process that outlives
	 * us, for the next engine to find) */
	dd_proc_cg_spare_drop_all(cg);
	close(cg->v2);
	rmdir(cg->v2path);
	for (int i = 0; i < V1_N; i++)
		if (cg->v1[i] >= 0) {
			close(cg->v1[i]);
			rmdir(cg->v1path[i]);
		}
	pthread_mutex_destroy(&cg->mu);
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
