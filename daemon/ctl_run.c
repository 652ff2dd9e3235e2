/* `dispatchctl run`: the job runs where and as the caller is, and the
 * caller's terminal steers it as if it ran here. Standard input is passed
 * to the job as a descriptor (SCM_RIGHTS) over the Unix socket; TCP
 * cannot carry one, so there the job reads /dev/null. Ctrl-C forwards
 * SIGINT to the job's process group (the signal op); a second Ctrl-C
 * within two seconds, SIGTERM or SIGHUP cancel the job; either way `run`
 * keeps waiting until the job has ended, and exits with its exit code, or
 * 128 + the signal that ended it, as a shell does.
 *
 * The signals are read from a signalfd polled beside the socket, so one
 * is acted on as soon as it comes, whatever the daemon is doing. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "b64.h"
#include "ctl.h"
#include "dd_clock.h"

#define WAIT_SLICE 0.2		    /* s: how often new output is shown */
#define SECOND_INT_NS 2000000000ull /* a second Ctrl-C within this cancels */

struct run {
	struct ctl *c;
	json_int_t id;
	json_int_t off[2]; /* stdout, stderr: shown so far */
	bool json_out;     /* stdout is the job's JSON alone: its stdout is not shown */
	uint64_t last_int; /* CLOCK_MONOTONIC ns of the Ctrl-C forwarded last */
	bool cancelled, forwarded;
	int cause; /* the signal that made run cancel the job, 0 none */
	char tail[512];    /* the end of the job's stderr, NUL-terminated */
	size_t tail_len;
};

/* Keeps the last bytes of the job's stderr in r->tail. */
static void keep_tail(struct run *r, const unsigned char *p, size_t n)
{
	size_t cap = sizeof(r->tail) - 1;
	if (n >= cap) {
		memcpy(r->tail, p + n - cap, cap);
		r->tail_len = cap;
	} else {
		size_t drop = r->tail_len + n > cap ? r->tail_len + n - cap : 0;
		memmove(r->tail, r->tail + drop, r->tail_len - drop);
		memcpy(r->tail + r->tail_len - drop, p, n);
		r->tail_len += n - drop;
	}
	r->tail[r->tail_len] = 0;
}

static const char *err_code(json_t *resp)
{
	const char *s = json_string_value(json_object_get(json_object_get(resp, "error"), "code"));
	return s ? s : "";
}

static void seen_stderr(void *arg, const unsigned char *p, size_t n)
{
	keep_tail(arg, p, n);
}

/* Copies new output of stream @k (0 stdout, 1 stderr) to its file.
 * Returns 1 at the end of a finished job's stream, 0 if more may come, -1
 * on error (printed). */
static int stream(struct run *r, int k)
{
	if (!k && r->json_out)
		return 1;
	return dd_ctl_pump(r->c, r->id, k ? "stderr" : "stdout", 0, &r->off[k], k ? stderr : stdout,
			k ? seen_stderr : NULL, r);
}

static void cancel(struct run *r)
{
	if (r->cancelled)
		return;
	r->cancelled = true;
	fprintf(stderr, "dispatchctl: cancelling job %lld\n", (long long)r->id);
	json_t *resp = dd_ctl_call(r->c, json_pack("{s:s, s:I}", "op", "cancel", "id", r->id));
	if (resp && !json_is_true(json_object_get(resp, "ok")) && strcmp(err_code(resp), "ETERMINAL"))
		dd_ctl_result(resp); /* says why */
	json_decref(resp);
}

/* Ctrl-C: to the job's processes; a job not running one yet (queued,
 * waiting for its dependencies) has nothing to interrupt, so it is
 * cancelled, as is a job the daemon cannot signal. */
static void interrupt(struct run *r)
{
	uint64_t now = dd_mono_ns();
	if (r->cancelled)
		return;
	if (r->last_int && now - r->last_int < SECOND_INT_NS) {
		r->cause = SIGINT;
		cancel(r);
		return;
	}
	r->last_int = now;
	json_t *resp = dd_ctl_call(r->c, json_pack("{s:s, s:I, s:s}", "op", "signal", "id", r->id,
						"signal", "INT"));
	if (!resp)
		return;
	const char *code = err_code(resp);
	if (json_is_true(json_object_get(resp, "ok")))
		r->forwarded = true;
	else if (strcmp(code, "ETERMINAL")) {
		if (strcmp(code, "ESRCH"))
			dd_ctl_result(resp);
		r->cause = SIGINT;
		cancel(r);
	}
	json_decref(resp);
}

/* Acts on the signals waiting in @sfd. */
static void on_signals(struct run *r, int sfd)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGINT)
			interrupt(r);
		else if (!r->cancelled) {
			r->cause = (int)si.ssi_signo;
			cancel(r); /* SIGTERM, SIGHUP: the caller goes, and the job with it */
		}
	}
}

/* The caller's standard input for the job: 0 to pass, or -1 (the job
 * reads /dev/null) when there is none, it is /dev/null, or the socket
 * cannot carry a descriptor. */
static int stdin_to_pass(const struct ctl *c)
{
	struct stat st;
	if (fstat(0, &st) < 0)
		return -1;
	bool devnull = S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	bool unix_sock = getsockname(c->fd, (struct sockaddr *)&sa, &sl) == 0 &&
			 sa.ss_family == AF_UNIX;
	if (devnull)
		return -1;
	if (!unix_sock) {
		if (!isatty(0))
			fprintf(stderr, "dispatchctl: over TCP the job's standard input is /dev/null "
					"(a descriptor cannot be passed): use --stdin FILE with a file "
					"the daemon's machine can read\n");
		return -1;
	}
	return 0;
}

/* The job's end, as a shell reports a command's. */
static int exit_code(struct run *r, json_t *job)
{
	json_t *ec = json_object_get(job, "exit_code"), *sig = json_object_get(job, "signal");
	const char *state = json_string_value(json_object_get(job, "state"));
	const char *reason = json_string_value(json_object_get(job, "reason"));
	state = state ? state : "?";
	reason = reason ? reason : "";
	if (json_is_integer(ec)) {
		/* A command that could not start: "cmd: No such file or
		 * directory", said once, as a shell would. The engine may have
		 * said it on the job's stderr already, as its last line. */
		size_t rl = strlen(reason), tl = r->tail_len;
		bool said = tl > rl && r->tail[tl - 1] == '\n' &&
			    !memcmp(r->tail + tl - 1 - rl, reason, rl) &&
			    (tl == rl + 1 || r->tail[tl - rl - 2] == ' ');
		if (strcmp(state, "succeeded") && strncmp(reason, "exit ", 5) && reason[0] && !said)
			fprintf(stderr, "dispatchctl: %s\n", reason);
		return (int)json_integer_value(ec);
	}
	/* a job cancelled before its process ran ends without a signal: run
	 * reports the signal it was itself stopped by, as a shell would */
	int code = json_is_integer(sig)		    ? 128 + (int)json_integer_value(sig)
		   : !strcmp(state, "succeeded")	    ? 0
		   : r->cause && !strcmp(state, "cancelled") ? 128 + r->cause
							    : 1;
	bool asked = (r->forwarded && json_integer_value(sig) == SIGINT) || r->cancelled;
	if (code && !asked)
		fprintf(stderr, "dispatchctl: job %lld %s: %s\n", (long long)r->id, state, reason);
	return code;
}

int dd_ctl_run(struct ctl *c, json_t *req, bool json_out)
{
	struct run r = {.c = c, .json_out = json_out};
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	/* blocked from before the submit: a Ctrl-C that comes while it is on
	 * its way is acted on once the job has an id */
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, "dispatchctl: signalfd: %s\n", strerror(errno));
		json_decref(req);
		return 1;
	}
	int fd = -1;
	if (!json_object_get(req, "stdin") && (fd = stdin_to_pass(c)) >= 0)
		json_object_set_new(req, "stdin_fd", json_true());
	json_t *resp = dd_ctl_call_fd(c, req, fd), *res = dd_ctl_result(resp);
	if (!res) {
		json_decref(resp);
		close(sfd);
		return 1;
	}
	r.id = json_integer_value(json_object_get(res, "id"));
	json_decref(resp);
	json_t *job = NULL;
	unsigned wtag = 0; /* the "wait" on its way, 0 none */
	int code = 1;
	for (;;) {
		if (!wtag && !(wtag = dd_ctl_send(c,
					       json_pack("{s:s, s:I, s:f}", "op", "wait", "id", r.id,
							 "timeout", WAIT_SLICE),
					       -1)))
			break;
		if (!dd_ctl_pending(c)) {
			struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
			if (poll(p, 2, -1) < 0 && errno != EINTR) {
				fprintf(stderr, "dispatchctl: poll: %s\n", strerror(errno));
				break;
			}
			if (p[1].revents & POLLIN) {
				/* the calls it makes drop the wait's answer: ask again */
				on_signals(&r, sfd);
				wtag = 0;
				continue;
			}
			if (!p[0].revents)
				continue;
		}
		json_t *m = dd_ctl_recv(c);
		if (!m)
			break;
		json_t *t = json_object_get(m, "tag");
		if (!json_is_integer(t) || json_integer_value(t) != wtag) {
			json_decref(m); /* the answer to a wait asked again since */
			continue;
		}
		wtag = 0;
		bool ended = json_is_true(json_object_get(m, "ok"));
		if (!ended && strcmp(err_code(m), "ETIMEDOUT")) {
			dd_ctl_result(m);
			json_decref(m);
			break;
		}
		if (ended)
			job = json_incref(json_object_get(json_object_get(m, "result"), "job"));
		json_decref(m);
		int a = stream(&r, 0), b = stream(&r, 1);
		if (a < 0 || b < 0)
			break;
		if (!ended)
			continue;
		/* the rest of it: until both streams say they are done */
		while (a == 0 || b == 0) {
			if ((a == 0 && (a = stream(&r, 0)) < 0) || (b == 0 && (b = stream(&r, 1)) < 0))
				break;
		}
		if (json_out) {
			char *s = json_dumps(job, JSON_INDENT(2));
			if (s)
				puts(s);
			free(s);
		}
		code = exit_code(&r, job);
		break;
	}
	json_decref(job);
	close(sfd);
	return code;
}
