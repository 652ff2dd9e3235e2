/* dispatchctl's way to its daemon, and why it trusts it (DESIGN.md
 * section 9). A Unix socket: the daemon listening on it must run as the
 * caller or as root (SO_PEERCRED), else a squatter's daemon would take
 * the caller's jobs and run them as the squatter; a default path's
 * directory must be the caller's own (sockdir.h). TCP ("HOST:PORT",
 * "[::1]:PORT"): no peer credentials, so the daemon's token, from a file
 * only its owner may read, is sent before anything else. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "sockdir.h"
#include "wire.h"

bool dd_ctl_is_tcp(const char *where)
{
	return strchr(where, ':') && !strchr(where, '/');
}

static const char *user_name(uid_t uid, char *buf, size_t n)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];
	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, n, "uid %u (%s)", (unsigned)uid, res->pw_name);
	else
		snprintf(buf, n, "uid %u", (unsigned)uid);
	return buf;
}

/* The daemon at the other end of @fd runs as the caller or root. */
static int check_peer(int fd, const char *path)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	char who[300], me[300];
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		fprintf(stderr, "dispatchctl: %s: cannot read the daemon's credentials: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (cr.uid == 0 || cr.uid == geteuid() || cr.uid == getuid())
		return 0;
	fprintf(stderr,
		"dispatchctl: refusing %s: the process listening on it (pid %d) runs as %s, not as "
		"you (%s) or root; your jobs would run as that user. Point -s or DISPATCHD_SOCKET "
		"at your own daemon's socket, or start one (dispatchd --state-dir DIR)\n",
		path, (int)cr.pid, user_name(cr.uid, who, sizeof(who)),
		user_name(geteuid(), me, sizeof(me)));
	return -1;
}

/* Connects to @path; returns the fd or -errno (not printed). */
static int open_unix(const char *path, bool check_dir, char *err, size_t errlen)
{
	if (check_dir) {
		char dir[1024];
		dd_sockdir_of(path, dir, sizeof(dir));
		int r = dd_sockdir_check(dir, !strcmp(path, DD_ROOT_SOCKET) ? 0 : geteuid(), err,
					 errlen);
		if (r < 0)
			return r;
	}
	int fd = dd_wire_connect(path);
	if (fd < 0)
		snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(-fd));
	return fd;
}

static int connect_unix(struct ctl *c, const char *path, bool is_default)
{
	char err[1200], err2[1200];
	int fd = open_unix(path, is_default, err, sizeof(err));
	const char *used = path;
	/* a user without a daemon of her own reaches the system's */
	if (fd == -ENOENT && is_default && geteuid() != 0) {
		int fd2 = open_unix(DD_ROOT_SOCKET, true, err2, sizeof(err2));
		if (fd2 >= 0) {
			fd = fd2;
			used = DD_ROOT_SOCKET;
		} else if (fd2 != -ENOENT) {
			fprintf(stderr, "dispatchctl: %s\n", err2);
			return -1;
		}
	}
	if (fd < 0) {
		fprintf(stderr, "dispatchctl: %s\n", err);
		if (fd == -EPERM || fd == -ENOTDIR)
			return -1;
		fprintf(stderr, "  is dispatchd running? (start it, or point -s / DISPATCHD_SOCKET "
				"at its socket%s)\n",
			is_default && geteuid() != 0 ? "; " DD_ROOT_SOCKET " was not there either" : "");
		return -1;
	}
	if (check_peer(fd, used) < 0) {
		close(fd);
		return -1;
	}
	c->fd = fd;
	return 0;
}

/* The token from @file: only its owner may read it, as the daemon asks
 * of its own copy. */
static int read_token(const char *file, char *tok, size_t n)
{
	FILE *f = fopen(file, "r");
	struct stat st;
	if (!f) {
		fprintf(stderr, "dispatchctl: token file %s: %s\n", file, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) < 0 || (st.st_mode & 077)) {
		fprintf(stderr,
			"dispatchctl: token file %s is readable by others (mode %04o): chmod 600 it; "
			"whoever reads it acts as the daemon's user\n",
			file, (unsigned)(st.st_mode & 07777));
		fclose(f);
		return -1;
	}
	size_t k = fread(tok, 1, n - 1, f);
	fclose(f);
	while (k && (tok[k - 1] == '\n' || tok[k - 1] == '\r'))
		k--;
	tok[k] = 0;
	if (!k || memchr(tok, 0, k)) {
		fprintf(stderr, "dispatchctl: token file %s holds no token\n", file);
		return -1;
	}
	return 0;
}

static int connect_tcp(struct ctl *c, const char *where, const char *token_file)
{
	char host[256], tok[256];
	if (!token_file || !token_file[0]) {
		fprintf(stderr,
			"dispatchctl: %s is a TCP address: give the daemon's token with --token-file F "
			"or DISPATCHD_TOKEN_FILE\n",
			where);
		return -1;
	}
	snprintf(host, sizeof(host), "%s", where);
	char *colon = strrchr(host, ':');
	const char *h = host, *port = colon + 1;
	*colon = 0;
	if (host[0] == '[') { /* [::1]:PORT */
		char *rb = strchr(host, ']');
		if (!rb || rb[1]) {
			fprintf(stderr, "dispatchctl: %s: an IPv6 address is written [ADDR]:PORT\n", where);
			return -1;
		}
		*rb = 0;
		h = host + 1;
	} else if (strchr(host, ':')) {
		fprintf(stderr, "dispatchctl: %s: write an IPv6 address as [ADDR]:PORT\n", where);
		return -1;
	}
	if (!h[0])
		h = "127.0.0.1"; /* as dispatchd --listen reads ":PORT" */
	if (!*port) {
		fprintf(stderr, "dispatchctl: %s: give HOST:PORT\n", where);
		return -1;
	}
	if (read_token(token_file, tok, sizeof(tok)) < 0)
		return -1;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai, *a;
	int g = getaddrinfo(h, port, &hints, &ai), e = 0;
	if (g) {
		fprintf(stderr, "dispatchctl: %s: %s\n", where, gai_strerror(g));
		return -1;
	}
	int fd = -1;
	for (a = ai; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
			e = errno;
			close(fd);
			fd = -1;
		} else if (fd < 0) {
			e = errno;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		fprintf(stderr,
			"dispatchctl: cannot connect to %s: %s\n  is dispatchd listening there "
			"(dispatchd --listen %s --token-file F)?\n",
			where, strerror(e), where);
		return -1;
	}
	int one = 1; /* one request, one answer: no Nagle delay */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	json_t *resp = dd_ctl_call(c, json_pack("{s:s, s:s}", "op", "auth", "token", tok));
	memset(tok, 0, sizeof(tok));
	if (!resp)
		return -1;
	if (!json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "dispatchctl: %s refused the token in %s: %s\n", where, token_file,
			json_string_value(json_object_get(json_object_get(resp, "error"), "message")));
		json_decref(resp);
		return -1;
	}
	json_decref(resp);
	return 0;
}

int dd_ctl_connect(struct ctl *c, const char *where, bool is_default, const char *token_file)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	int r = dd_ctl_is_tcp(where) ? connect_tcp(c, where, token_file)
				  : connect_unix(c, where, is_default);
	if (r < 0)
		dd_ctl_close(c);
	return r;
}
