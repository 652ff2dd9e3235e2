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

/* A daemon of its own, on a fresh directory: its pid (0: none), the
 * directory (@dir, from its template) and a connection to it (-1: none). */
struct daemon {
	pid_t pid;
	char dir[32];
	int fd;
};

static void daemon_start(struct daemon *d, const char *exe, const char *cgroups,
			 const char *supervisor)
{
	char path[PATH_MAX];
	d->pid = 0;
	d->fd = -1;
	strcpy(d->dir, "/var/tmp/exec-rate-XXXXXX"); /* mkdtemp fills the X's */
	exe = dd_wire_dispatchd(exe, path, sizeof(path));
	if (!mkdtemp(d->dir)) {
		d->dir[0] = 0;
		return;
	}
	char sock[100], state[PATH_MAX];
	snprintf(sock, sizeof(sock), "%s/sock", d->dir);
	snprintf(state, sizeof(state), "%s/state", d->dir);
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
	d->pid = pid;
	for (int i = 0; i < 500 && d->fd < 0 && pid > 0; i++) {
		usleep(20000);
		d->fd = dd_wire_connect(sock);
	}
}

static void daemon_stop(struct daemon *d)
{
	if (d->fd >= 0)
		close(d->fd);
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
	}
	if (d->dir[0])
		nftw(d->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The next answer on @fd (buffered in @buf, @len bytes held), or NULL. */
static json_t *next_answer(int fd, char *buf, size_t cap, size_t *len)
{
	for (;;) {
		char *nl = memchr(buf, '\n', *len);
		if (nl) {
			json_t *m = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
			memmove(buf, nl + 1, *len - (size_t)(nl - buf) - 1);
			*len -= (size_t)(nl - buf) + 1;
			return m;
		}
		ssize_t k = recv(fd, buf + *len, cap - *len, 0);
		if (k <= 0)
			return NULL;
		*len += (size_t)k;
	}
}

double daemon_array_rate(const char *exe, const char *program, unsigned elements,
			 const char *cgroups, const char *supervisor, uint64_t *failures)
{
	struct daemon d;
	daemon_start(&d, exe, cgroups, supervisor);
	double rate = 0;
	static char buf[1 << 16];
	size_t len = 0;
	char req[512];
	if (d.fd < 0)
		goto out;
	snprintf(req, sizeof(req),
		 "{\"op\":\"submit\",\"tag\":\"s\",\"argv\":[\"%s\"],\"array\":\"1-%u\"}\n",
		 program, elements);
	uint64_t t0 = dd_mono_ns();
	if (dd_net_send_all(d.fd, req, strlen(req)) < 0)
		goto out;
	json_t *m = next_answer(d.fd, buf, sizeof(buf), &len);
	json_int_t id = json_integer_value(json_object_get(json_object_get(m, "result"), "id"));
	json_decref(m);
	if (!id)
		goto out;
	snprintf(req, sizeof(req), "{\"op\":\"wait\",\"tag\":\"w\",\"id\":%lld}\n",
		 (long long)id);
	if (dd_net_send_all(d.fd, req, strlen(req)) < 0 ||
	    !(m = next_answer(d.fd, buf, sizeof(buf), &len)))
		goto out;
	uint64_t t1 = dd_mono_ns();
	json_t *st = json_object_get(json_object_get(json_object_get(json_object_get(m, "result"),
								     "job"), "array"), "states");
	json_int_t ok = json_integer_value(json_object_get(st, "succeeded"));
	*failures += elements - (uint64_t)ok;
	json_decref(m);
	rate = (double)elements / ((double)(t1 - t0) / 1e9);
out:
	daemon_stop(&d);
	return rate;
}

double daemon_exec_rate(const char *exe, const char *program, unsigned env_vars, double seconds,
			unsigned inflight, const char *cgroups, const char *supervisor,
			uint64_t *failures)
{
	struct daemon d;
	daemon_start(&d, exe, cgroups, supervisor);
	int fd = d.fd;
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
		json_t *m = next_answer(fd, buf, sizeof(buf), &len);
		if (!m)
			goto out;
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
	daemon_stop(&d);
	return rate;
}
