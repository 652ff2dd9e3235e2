/* exec-rate --via-daemon: process jobs through a real dispatchd. One
 * socket, pipelined: each "submit" answer is followed by a "wait" for that
 * job, and each "wait" answer by the next "submit", so that @inflight jobs
 * are always in the daemon. With @env_vars, each job carries an environment
 * of that many variables of about 50 bytes each, as a shell's would. */
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dd_clock.h"
#include "dd_net.h"
#include "via_daemon_exec.h"
#include "wire.h"

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

/* The submit line, with @env_vars variables in "env"; malloc'd. */
static char *submit_line(const char *program, unsigned env_vars)
{
	json_t *req = json_pack("{s:s, s:s, s:[s]}", "op", "submit", "tag", "s", "argv", program);
	if (env_vars) {
		json_t *env = json_object();
		for (unsigned i = 0; i < env_vars; i++) {
			char k[32], v[64];
			snprintf(k, sizeof(k), "DD_BENCH_VAR_%02u", i);
			snprintf(v, sizeof(v), "/usr/local/share/dispatchd/bench/value-%02u", i);
			json_object_set_new(env, k, json_string(v));
		}
		json_object_set_new(req, "env", env);
	}
	char *s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	memcpy(line + n, "\n", 2);
	return line;
}

double daemon_exec_rate(const char *exe, const char *program, unsigned env_vars, double seconds,
			unsigned inflight, const char *cgroups, const char *supervisor,
			uint64_t *failures)
{
	char path[PATH_MAX], dir[] = "/var/tmp/exec-rate-XXXXXX"; /* mkdtemp fills the X's */
	exe = dd_wire_dispatchd(exe, path, sizeof(path));
	if (!mkdtemp(dir))
		return 0;
	char sock[100], state[PATH_MAX];
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen("/dev/null", "w", stderr))
			_exit(127);
		char sup[PATH_MAX + 32];
		const char *slash = strrchr(exe, '/');
		if (!supervisor && !getenv("DISPATCHD_SUPERVISOR") && slash) {
			/* the build tree's, beside the build's dispatchd */
			snprintf(sup, sizeof(sup), "%.*s/../supervisor/dispatchd-supervisor",
				 (int)(slash - exe), exe);
			if (access(sup, X_OK) == 0)
				supervisor = sup;
		}
		if (supervisor)
			execl(exe, exe, "--state-dir", state, "--socket", sock, "--cgroups", cgroups,
			      "--supervisor", supervisor, (char *)NULL);
		else
			execl(exe, exe, "--state-dir", state, "--socket", sock, "--cgroups", cgroups,
			      (char *)NULL);
		_exit(127);
	}
	int fd = -1;
	for (int i = 0; i < 500 && fd < 0; i++) {
		usleep(20000);
		fd = dd_wire_connect(sock);
	}
	double rate = 0;
	char *submit = submit_line(program, env_vars);
	if (fd < 0 || !submit)
		goto out;
	for (unsigned i = 0; i < inflight; i++)
		if (dd_net_send_all(fd, submit, strlen(submit)) < 0)
			goto out;
	static char buf[1 << 16];
	size_t len = 0;
	uint64_t ended = 0, t0 = 0, n0 = 0, warm = dd_mono_ns() + 300000000ull, until = 0, t1 = 0;
	for (;;) {
		uint64_t now = dd_mono_ns();
		if (!t0 && now >= warm) {
			t0 = now;
			n0 = ended;
			until = t0 + (uint64_t)(seconds * 1e9);
		}
		if (t0 && now >= until) {
			t1 = now;
			break;
		}
		char *nl = memchr(buf, '\n', len);
		if (!nl) {
			ssize_t k = recv(fd, buf + len, sizeof(buf) - len, 0);
			if (k <= 0)
				goto out;
			len += (size_t)k;
			continue;
		}
		json_t *m = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
		memmove(buf, nl + 1, len - (size_t)(nl - buf) - 1);
		len -= (size_t)(nl - buf) + 1;
		const char *tag = json_string_value(json_object_get(m, "tag"));
		json_t *res = json_object_get(m, "result");
		char req[128];
		if (tag && !strcmp(tag, "s") && res) {
			snprintf(req, sizeof(req), "{\"op\":\"wait\",\"tag\":\"w\",\"id\":%lld}\n",
				 (long long)json_integer_value(json_object_get(res, "id")));
			dd_net_send_all(fd, req, strlen(req));
		} else if (tag && !strcmp(tag, "w") && res) {
			ended++;
			if (strcmp(json_string_value(json_object_get(json_object_get(res, "job"), "state")),
				   "succeeded"))
				(*failures)++;
			dd_net_send_all(fd, submit, strlen(submit));
		} else {
			(*failures)++;
			dd_net_send_all(fd, submit, strlen(submit));
		}
		json_decref(m);
	}
	rate = (double)(ended - n0) / ((double)(t1 - t0) / 1e9);
out:
	free(submit);
	if (fd >= 0)
		close(fd);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rate;
}
