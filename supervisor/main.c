/* dispatchd-supervisor: holds an engine's process jobs so that they
 * outlive it (supervisor.h). Started by the engine, never by hand:
 *   dispatchd-supervisor LISTEN_FD DIR_FD SOCKET_INODE
 * with the listening socket the engine bound at DD_SUP_SOCK in its state
 * directory, that directory, open, and as fd 5 DD_SUP_LOCK, locked. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <linux/close_range.h>

#include "supervisor.h"

static int number(const char *s, unsigned long long *v)
{
	char *end;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || end == s || *end ? -1 : 0;
}

int main(int argc, char **argv)
{
	unsigned long long lfd, dfd, ino;
	if (argc != 4 || number(argv[1], &lfd) || number(argv[2], &dfd) ||
	    number(argv[3], &ino) || lfd > 1024 || dfd > 1024) {
		fprintf(stderr, "usage: dispatchd-supervisor LISTEN_FD DIR_FD SOCKET_INODE "
			"(started by dispatchd, not by hand)\n");
		return 2;
	}
	/* a session of its own: the terminal's signals and hang-up are its
	 * engine's, not its own */
	setsid();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGCHLD, SIG_DFL); /* never auto-reaped: its exits are the point */
	/* two files per running job, and its pidfd */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (chdir("/") < 0)
		return 1;
	/* nothing of the engine's but the three it handed over (and stderr,
	 * where it says why it cannot start): the jobs get their own fds */
	close_range(6, ~0u, 0);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		close(null);
	}
	/* the engine may start it from a thread pinned to one CPU: the
	 * starts it makes run on the jobs' own CPUs, and it on any */
	cpu_set_t all;
	CPU_ZERO(&all);
	long n = sysconf(_SC_NPROCESSORS_CONF);
	for (long c = 0; c < n && c < CPU_SETSIZE; c++)
		CPU_SET((int)c, &all);
	sched_setaffinity(0, sizeof(all), &all);
	int r = dd_sup_serve((int)lfd, (int)dfd, ino);
	if (r < 0) {
		fprintf(stderr, "dispatchd-supervisor: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
