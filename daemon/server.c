/* The event loop: sockets, framing, back-pressure, signals. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dd_net.h"
#include "events.h"
#include "server.h"

#define OUT_PAUSE (16u << 20) /* stop reading a client that does not read */
#define OUT_RESUME (1u << 20)
#define READ_CHUNK 65536

/* epoll user data: these small numbers, or a struct conn * */
#define EV_SIG ((void *)1)
#define EV_EVENTS ((void *)2)
#define EV_UNIX ((void *)3)
#define EV_TCP ((void *)4)

/* One line a call, written whole (threads share stderr), stamped with the
 * UTC time to the millisecond: "2026-12-03T07:14:05.123Z dispatchd: ...". */
void dd_server_log(const char *fmt, ...)
{
	char line[2048];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	size_t k = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", gmtime_r(&now.tv_sec, &tm));
	k += (size_t)snprintf(line + k, sizeof(line) - k, ".%03dZ dispatchd: ",
			      (int)(now.tv_nsec / 1000000));
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + k, sizeof(line) - k - 1, fmt, ap);
	va_end(ap);
	k = m < 0 ? k : k + (size_t)m < sizeof(line) - 2 ? k + (size_t)m : sizeof(line) - 2;
	line[k++] = '\n';
	fwrite(line, 1, k, stderr);
}

int dd_server_open_log(const char *path)
{
	if (!freopen(path, "a", stderr))
		return -errno;
	/* freopen gives a file stream full buffering: a line at a time, so
	 * that the file says what happened while the daemon runs */
	setvbuf(stderr, NULL, _IOLBF, 0);
	return 0;
}

/* The log or store cannot be written (a full disk, most often): said once
 * when it begins and once when it ends, not once a refused submit. */
static void watch_state_error(struct dd_server *srv)
{
	uint64_t now = dd_mono_ns();
	if (!srv->eng || now - srv->state_checked < 100000000ull)
		return;
	srv->state_checked = now;
	int e = dd_state_error(srv->eng);
	if (e == srv->state_err)
		return;
	if (e && !srv->state_err) {
		srv->state_err_since = now;
		dd_server_log("the job log or store cannot be written: %s; submissions are refused "
			      "until it can (free space where %s is)",
			      dd_strerror(e), srv->cfg.state_dir);
	} else if (e) {
		dd_server_log("the job log or store still cannot be written: now %s", dd_strerror(e));
	} else {
		dd_server_log("the job log and store are written again: submissions are taken (they "
			      "were refused for %.1f s)",
			      (double)(now - srv->state_err_since) / 1e9);
	}
	srv->state_err = e;
}

static void conn_events(struct conn *c)
{
	struct epoll_event ev = {.data.ptr = c};
	if (!c->paused && !c->closing && !c->held)
		ev.events |= EPOLLIN;
	if (c->out_len > c->out_off)
		ev.events |= EPOLLOUT;
	/* a syscall only when they change: most turns leave them be */
	if (ev.events != c->armed && epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->armed = ev.events;
}

static void conn_close(struct conn *c)
{
	struct dd_server *srv = c->srv;
	if (c->dead)
		return;
	c->dead = true;
	if (srv->cfg.verbose)
		dd_server_log("connection %llu closed", (unsigned long long)c->serial);
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->prev->next = c->next;
	c->next->prev = c->prev;
	srv->nconns--;
	if (c->watching) {
		srv->nwatchers--;
		dd_events_want(srv->events, 0, -1);
		json_decref(c->watch_ids);
		json_decref(c->watch_tag);
		c->watching = false;
	}
	c->srv->held_fds -= c->nfds;
	while (c->nfds)
		close(c->fds[--c->nfds]);
	free(c->in);
	free(c->out);
	c->in = c->out = NULL;
	dd_stats_window_destroy(c->win);
	c->win = NULL;
	c->in_len = c->in_cap = c->out_len = c->out_off = c->out_cap = 0;
	dd_conn_unref(c); /* the reference the open socket held */
}

int dd_conn_take_fd(struct conn *c)
{
	if (!c->nfds)
		return -1;
	int fd = c->fds[0];
	memmove(c->fds, c->fds + 1, --c->nfds * sizeof(int));
	c->srv->held_fds--;
	return fd;
}

/* recv() that also takes the descriptors a Unix peer passed (SCM_RIGHTS)
 * into c->fds. Returns what recv() would, or -2 after a protocol error
 * (more descriptors than DD_CONN_FDS unused, or other control data),
 * which closes the connection once the error is sent. */
static ssize_t conn_recv(struct conn *c, void *buf, size_t n)
{
	if (c->tcp)
		return recv(c->fd, buf, n, 0);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * DD_CONN_FDS)];
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = n};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			    .msg_controllen = sizeof(ctl.b)};
	ssize_t k = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	if (k < 0)
		return k;
	bool bad = (mh.msg_flags & MSG_CTRUNC) != 0;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) {
			bad = true;
			continue;
		}
		size_t nfd = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
			if (c->nfds < DD_CONN_FDS && c->srv->held_fds < DD_SERVER_FDS) {
				c->fds[c->nfds++] = fd;
				c->srv->held_fds++;
			} else {
				close(fd);
				bad = true;
			}
		}
	}
	if (!bad)
		return k;
	dd_ops_error(c, NULL, "EPROTO",
		     "more than %d file descriptors passed and not used (or the daemon holds %d "
		     "such already), or other control data: closing this connection",
		     DD_CONN_FDS, DD_SERVER_FDS);
	c->closing = true;
	return -2;
}

void dd_conn_unref(struct conn *c)
{
	/* freed at the end of the loop's turn: an epoll event of this turn
	 * may still name it */
	if (--c->refs == 0 && c->dead) {
		c->next = c->srv->graveyard;
		c->srv->graveyard = c;
	}
}

static void bury(struct dd_server *srv)
{
	while (srv->graveyard) {
		struct conn *c = srv->graveyard;
		srv->graveyard = c->next;
		free(c);
	}
}

void dd_conn_send(struct conn *c, const char *line, size_t len)
{
	if (c->dead)
		return;
	if (c->out_len + len + 1 > c->out_cap) {
		if (c->out_off) { /* slide the unsent part down first */
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len + 1)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (!p) {
			c->closing = true; /* cannot queue the answer: drop the client */
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, line, len);
	c->out[c->out_len + len] = '\n';
	c->out_len += len + 1;
}

/* Writes what it can. Returns -1 when the connection is gone. */
static int conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t k = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (k <= 0) {
			conn_close(c);
			return -1;
		}
		c->out_off += (size_t)k;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->closing && c->out_len == 0) {
		conn_close(c);
		return -1;
	}
	size_t queued = c->out_len - c->out_off;
	bool was = c->paused;
	if (queued > OUT_PAUSE)
		c->paused = true;
	else if (queued < OUT_RESUME)
		c->paused = false;
	(void)was;
	conn_events(c);
	return 0;
}

/* Handles every complete line in c->in; an oversize one ends the client. */
static void conn_lines(struct conn *c)
{
	struct dd_server *srv = c->srv;
	size_t start = 0;
	char *nl;
	while (!c->dead && !c->closing && !c->held &&
	       (nl = memchr(c->in + start, '\n', c->in_len - start))) {
		size_t len = (size_t)(nl - (c->in + start));
		if (len > srv->cfg.max_frame)
			break; /* handled below, as the frame it is */
		size_t l = len;
		if (l && c->in[start + l - 1] == '\r')
			l--;
		if (l)
			dd_ops_handle(c, c->in + start, l);
		start += len + 1;
	}
	if (c->dead)
		return;
	if (start) {
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
	}
	if (!c->closing && c->in_len > srv->cfg.max_frame) {
		dd_ops_error(c, NULL, "E2BIG",
			     "request over %zu bytes: closing this connection (other clients are "
			     "not affected)",
			     srv->cfg.max_frame);
		c->closing = true;
		c->in_len = 0;
	}
}

static void conn_read(struct conn *c)
{
	struct dd_server *srv = c->srv;
	for (int rounds = 0; rounds < 16 && !c->dead && !c->closing && !c->paused && !c->held;
	     rounds++) {
		if (c->in_cap - c->in_len < READ_CHUNK) {
			size_t cap = c->in_cap ? c->in_cap * 2 : READ_CHUNK * 2;
			if (cap > srv->cfg.max_frame + 2 * READ_CHUNK)
				cap = srv->cfg.max_frame + 2 * READ_CHUNK;
			if (cap <= c->in_cap) {
				conn_lines(c); /* full: must be a frame over the limit */
				break;
			}
			char *p = realloc(c->in, cap);
			if (!p) {
				conn_close(c);
				return;
			}
			c->in = p;
			c->in_cap = cap;
		}
		ssize_t k = conn_recv(c, c->in + c->in_len, c->in_cap - c->in_len);
		if (k == -2)
			break;
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (k <= 0) {
			/* the client went away (or closed its half): answer what it
			 * sent, then close */
			conn_lines(c);
			if (!c->dead)
				c->closing = true;
			break;
		}
		c->in_len += (size_t)k;
		conn_lines(c);
	}
	if (!c->dead)
		conn_flush(c);
}

/* Connections whose held submit went in: the lines they sent meanwhile,
 * then reading again. */
static void resume_all(struct dd_server *srv)
{
	if (!srv->nresume)
		return;
	srv->nresume = 0;
	for (struct conn *c = srv->conns.next, *nx; c != &srv->conns; c = nx) {
		nx = c->next;
		if (!c->resume)
			continue;
		c->resume = false;
		conn_lines(c);
		if (!c->dead)
			conn_flush(c);
	}
}

/* The listeners' epoll events: EPOLLIN, or 0 to rest them. */
static void listen_arm(struct dd_server *srv, uint32_t events)
{
	struct epoll_event u = {.events = events, .data.ptr = EV_UNIX};
	struct epoll_event t = {.events = events, .data.ptr = EV_TCP};
	if (srv->unix_fd >= 0)
		epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->unix_fd, &u);
	if (srv->tcp_fd >= 0)
		epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->tcp_fd, &t);
}

/* Out of descriptors: the pending connection stays in the backlog and
 * its listener would wake the loop at once, again and again; so the
 * listeners rest for 100 ms (listen_resume), and it is said once. */
static void listen_pause(struct dd_server *srv, int err)
{
	listen_arm(srv, 0);
	if (!srv->accept_resume)
		dd_server_log("accept: %s: new connections wait until descriptors are free "
			      "(raise the open-file limit, ulimit -n, or lower max_conns)",
			      strerror(err));
	srv->accept_resume = dd_mono_ns() + 100000000ull;
}

static void listen_resume(struct dd_server *srv)
{
	if (srv->accept_resume <= 1 || dd_mono_ns() < srv->accept_resume)
		return;
	listen_arm(srv, EPOLLIN);
	srv->accept_resume = 1; /* listening; said again only after one got in */
}

static void accept_all(struct dd_server *srv, int lfd, bool tcp)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				listen_pause(srv, errno);
			return;
		}
		if (srv->accept_resume == 1)
			srv->accept_resume = 0;
		if (srv->nconns >= srv->cfg.max_conns || srv->draining) {
			const char *m = srv->draining
				? "{\"ok\":false,\"error\":{\"code\":\"ESHUTDOWN\",\"message\":\"dispatchd is draining\"}}\n"
				: "{\"ok\":false,\"error\":{\"code\":\"EAGAIN\",\"message\":\"too many connections\"}}\n";
			(void)!send(fd, m, strlen(m), MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->srv = srv;
		c->fd = fd;
		c->tcp = tcp;
		c->serial = ++srv->serial;
		c->refs = 1;
		if (!tcp) {
			struct ucred cr;
			socklen_t len = sizeof(cr);
			if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
				close(fd);
				free(c);
				continue;
			}
			c->uid = cr.uid;
			c->gid = cr.gid;
			c->pid = cr.pid;
		} else {
			/* nobody until the token is shown */
			c->uid = c->gid = 65534;
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev);
		c->armed = EPOLLIN;
		if (srv->cfg.verbose)
			dd_server_log("connection %llu: %s, uid %u pid %d", (unsigned long long)c->serial,
				      tcp ? "tcp" : "unix", c->uid, (int)c->pid);
		c->next = &srv->conns;
		c->prev = srv->conns.prev;
		srv->conns.prev->next = c;
		srv->conns.prev = c;
		srv->nconns++;
	}
}

static void flush_all(struct dd_server *srv)
{
	for (struct conn *c = srv->conns.next, *nx; c != &srv->conns; c = nx) {
		nx = c->next;
		if (c->out_len > c->out_off || c->closing)
			conn_flush(c);
	}
}

static void reload(struct dd_server *srv)
{
	if (srv->cfg.log_file[0] && dd_server_open_log(srv->cfg.log_file) < 0)
		return; /* stderr is gone: nothing to say it on */
	if (!srv->cfg.config[0]) {
		dd_server_log("SIGHUP: log reopened (no config file to reload)");
		return;
	}
	struct dd_dcfg fresh;
	char err[512];
	dd_dcfg_defaults(&fresh);
	if (dd_dcfg_load(&fresh, srv->cfg.config, err, sizeof(err)) < 0) {
		dd_server_log("SIGHUP: %s; keeping the old limits", err);
		return;
	}
	srv->cfg.max_frame = fresh.max_frame;
	srv->cfg.max_jobs_per_user = fresh.max_jobs_per_user;
	srv->cfg.max_batch = fresh.max_batch;
	srv->cfg.max_conns = fresh.max_conns;
	srv->cfg.submit_wait_ns = fresh.submit_wait_ns;
	struct dd_run_limit lim[DD_DCFG_LIMITS];
	size_t nlim = dd_dcfg_run_limits(&fresh, lim);
	int r = dd_engine_set_limits(srv->eng, lim, nlim);
	if (r < 0)
		dd_server_log("SIGHUP: cannot set the limits on running jobs: %s", dd_strerror(r));
	else
		dd_server_log("SIGHUP: %zu limits on running process jobs", nlim);
	dd_server_log("SIGHUP: limits reloaded from %s (max_frame %zu, max_jobs_per_user %llu, "
		      "max_batch %zu, max_conns %u)",
		      srv->cfg.config, srv->cfg.max_frame,
		      (unsigned long long)srv->cfg.max_jobs_per_user, srv->cfg.max_batch,
		      srv->cfg.max_conns);
}

static void on_signal(struct dd_server *srv)
{
	struct signalfd_siginfo si;
	while (read(srv->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			dd_engine_reload(srv->eng); /* owners' passwd entries and groups */
			reload(srv);
		} else if (!srv->draining) {
			dd_server_log("%s: stopping", strsignal((int)si.ssi_signo));
			srv->draining = true;
			srv->leave_running = true;
		} else {
			dd_server_log("%s again: already draining", strsignal((int)si.ssi_signo));
		}
	}
}

int dd_server_run(struct dd_server *srv)
{
	struct epoll_event evs[256];
	while (!srv->draining) {
		listen_resume(srv);
		uint64_t tick = dd_ops_next_tick(srv);
		if (srv->accept_resume > 1 && tick > 100)
			tick = 100;
		int n = epoll_wait(srv->epfd, evs, 256, tick == (uint64_t)-1 ? 1000 : (int)tick);
		if (n < 0 && errno != EINTR) {
			dd_server_log("epoll_wait: %s", strerror(errno));
			return -1;
		}
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == EV_SIG)
				on_signal(srv);
			else if (p == EV_EVENTS)
				dd_ops_events(srv);
			else if (p == EV_UNIX)
				accept_all(srv, srv->unix_fd, false);
			else if (p == EV_TCP)
				accept_all(srv, srv->tcp_fd, true);
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if ((void *)c <= EV_TCP || c->dead)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_read(c);
			else if (evs[i].events & EPOLLOUT)
				conn_flush(c);
		}
		if (srv->pends.next != &srv->pends)
			dd_ops_tick(srv);
		watch_state_error(srv);
		resume_all(srv);
		flush_all(srv);
		bury(srv);
	}
	return 0;
}

/* Called by main after the engine has stopped: the last answers out. */
void dd_server_finish(struct dd_server *srv)
{
	dd_ops_events(srv); /* durability of the last batches */
	flush_all(srv);
	while (srv->conns.next != &srv->conns)
		conn_close(srv->conns.next);
	while (srv->pends.next != &srv->pends)
		dd_pend_free(srv, srv->pends.next);
	bury(srv);
}

/* ---- listening ---- */

static int mkparent(const char *path)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int dd_server_listen_unix(struct dd_server *srv, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path %s is too long (max %zu)", path,
			 sizeof(sa.sun_path) - 1);
		return -1;
	}
	strcpy(sa.sun_path, path);
	int r = mkparent(path);
	if (r < 0) {
		snprintf(err, errlen, "cannot make the directory of %s: %s", path, strerror(-r));
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* a socket file left by a daemon that died: take it over, unless
	 * someone still answers on it */
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(probe);
		close(fd);
		snprintf(err, errlen, "another dispatchd is listening on %s: stop it or pass --socket",
			 path);
		return -1;
	}
	if (probe >= 0)
		close(probe);
	unlink(path);
	mode_t old = umask(0117); /* created 0660: owner and group */
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || chmod(path, 0660) < 0 || listen(fd, 4096) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	srv->unix_fd = fd;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = EV_UNIX};
	epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

int dd_server_listen_tcp(struct dd_server *srv, const char *hostport, char *err, size_t errlen)
{
	char buf[256];
	const char *h, *port;
	if (dd_net_hostport(hostport, buf, sizeof(buf), &h, &port) < 0) {
		snprintf(err, errlen, "--listen wants HOST:PORT, got '%s'", hostport);
		return -1;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai;
	int g = getaddrinfo(h, port, &hints, &ai);
	if (g) {
		snprintf(err, errlen, "--listen %s: %s", hostport, gai_strerror(g));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", hostport, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	srv->tcp_fd = fd;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = EV_TCP};
	epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

int dd_server_init(struct dd_server *srv)
{
	srv->conns.next = srv->conns.prev = &srv->conns;
	srv->pends.next = srv->pends.prev = &srv->pends;
	srv->unix_fd = srv->tcp_fd = -1;
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	srv->rt_offset = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec - (int64_t)dd_mono_ns();
	if ((srv->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -errno;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* blocked in every thread (the engine's are started later and inherit
	 * it), taken from the signalfd by the loop */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((srv->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return -errno;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = EV_SIG};
	epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->sigfd, &ev);
	int r;
	if ((r = dd_events_create(&srv->events)) < 0 ||
	    (r = dd_idmap_create(&srv->durable_wait)) < 0 ||
	    (r = dd_idmap_create(&srv->end_wait)) < 0)
		return r;
	ev.data.ptr = EV_EVENTS;
	epoll_ctl(srv->epfd, EPOLL_CTL_ADD, dd_events_fd(srv->events), &ev);
	return 0;
}

void dd_server_close_listeners(struct dd_server *srv)
{
	if (srv->unix_fd >= 0) {
		close(srv->unix_fd);
		srv->unix_fd = -1;
		unlink(srv->cfg.socket);
	}
	if (srv->tcp_fd >= 0) {
		close(srv->tcp_fd);
		srv->tcp_fd = -1;
	}
}

void dd_server_destroy(struct dd_server *srv)
{
	dd_idmap_destroy(srv->durable_wait);
	dd_idmap_destroy(srv->end_wait);
	dd_events_destroy(srv->events);
	dd_fastsub_free(&srv->fast);
	if (srv->sigfd >= 0)
		close(srv->sigfd);
	if (srv->epfd >= 0)
		close(srv->epfd);
}
