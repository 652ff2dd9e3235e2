/* A supervisor whose state directory was removed: no engine can come back
 * for its children, so nothing of theirs may run on or stay behind. Each
 * child's whole tree is killed (its v2 cgroup, where it was started in a
 * cgroup; else its process group), and the cgroups the engine made for
 * its jobs (those the children ran in, and the engine's spare v1 ones)
 * are removed, with the subtrees themselves. A tree that does not die within a few
 * seconds (a process in uninterruptible sleep) is left, and said. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define GIVE_UP_NS 5000000000ull

/* The directory of the cgroup whose cgroup.procs @fd is; false if none. */
static bool cg_dir(int fd, char *dir, size_t n)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t k = readlink(link, dir, n - 1);
	if (k <= 0)
		return false;
	dir[k] = 0;
	char *slash = strrchr(dir, '/');
	if (!slash || strcmp(slash, "/cgroup.procs"))
		return false;
	*slash = 0;
	return true;
}

/* Waits until the v2 cgroup @dir holds no process, up to @until. */
static bool wait_empty(const char *dir, uint64_t until)
{
	char path[PATH_MAX + 32], buf[256];
	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	bool empty = false;
	for (;;) {
		ssize_t k = pread(fd, buf, sizeof(buf) - 1, 0);
		if (k < 0)
			break;
		buf[k] = 0;
		if ((empty = strstr(buf, "populated 0") != NULL))
			break;
		uint64_t now = now_ns(CLOCK_MONOTONIC);
		if (now >= until)
			break;
		struct pollfd pf = {fd, POLLPRI, 0};
		poll(&pf, 1, (int)((until - now) / 1000000 + 1)); /* "populated 0" wakes it */
	}
	close(fd);
	return empty;
}

/* SIGKILL to every process in the v2 cgroup @dir (proc/'s kill: its
 * cgroup.kill, or pid by pid before Linux 5.14). */
static void kill_cgroup(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)dd_proc_cg_signal_at(fd, faccessat(fd, "cgroup.kill", F_OK, 0) == 0, SIGKILL);
	close(fd);
}

/* Removes the spares (empty) in the subtree @dir, then @dir, which goes
 * only once nothing else is in it. */
static void remove_subtree(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (e->d_type == DT_DIR && !strncmp(e->d_name, "spare.", 6))
				(void)unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
		closedir(d);
	}
	(void)rmdir(dir);
}

/* Holds s->mu and the main loop for up to GIVE_UP_NS: no engine is there
 * to be kept waiting (no events and no spawn connection), and the
 * supervisor exits right after. */
void abandon(struct sup *s)
{
	pthread_mutex_lock(&s->mu);
	char dir[PATH_MAX];
	for (struct child *c = s->all.next; c != &s->all; c = c->next) {
		/* an exited child's tree too: what its main process left behind
		 * (a setsid grandchild) runs on in its cgroup. Its v2 cgroup is
		 * its own while it is there (a removed one reads "(deleted)",
		 * and v2 ones are never renamed) */
		if (c->ncg && cg_dir(c->cg[0], dir, sizeof(dir)))
			kill_cgroup(dir);
		else if (!c->exited && kill(-c->pid, SIGKILL) < 0)
			syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
	}
	uint64_t until = now_ns(CLOCK_MONOTONIC) + GIVE_UP_NS;
	for (struct child *c = s->all.next; c != &s->all; c = c->next) {
		if (!c->ncg || !cg_dir(c->cg[0], dir, sizeof(dir)))
			continue;
		if (!wait_empty(dir, until)) {
			fprintf(stderr, "dispatchd-supervisor: job %llu attempt %u: its processes did "
				"not end when killed; its cgroup %s is left\n",
				(unsigned long long)c->id, c->attempt, dir);
			continue;
		}
		/* v2 first, then the v1 ones of the same name, then the subtrees
		 * they are in. A v1 one under another name is not this child's
		 * any more: the engine reused it for a later tree (its v2 one
		 * then is gone, and this child was skipped above) */
		const char *name = strrchr(dir, '/') + 1;
		char want[64];
		snprintf(want, sizeof(want), "%s", name);
		for (unsigned i = 0; i < c->ncg; i++) {
			if (!cg_dir(c->cg[i], dir, sizeof(dir)))
				continue;
			char *slash = strrchr(dir, '/');
			if (strcmp(slash + 1, want))
				continue;
			(void)rmdir(dir);
			*slash = 0;
			remove_subtree(dir);
		}
	}
	pthread_mutex_unlock(&s->mu);
}
