/* signal: a signal for a running process job's process group, from its
 * owner or root (as cancel). dispatchctl run forwards its Ctrl-C with it. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ops.h"
#include "proto.h"
#include "server.h"

static const struct {
	const char *name;
	int sig;
} SIGNALS[] = {
	{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT},
	{"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
	{"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CONT", SIGCONT},
	{"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
	{"WINCH", SIGWINCH},
};

/* "INT", "SIGINT" (any case) or 1..SIGRTMAX; 0 when it is none of those. */
static int signal_of(json_t *v)
{
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		return n >= 1 && n <= SIGRTMAX ? (int)n : 0;
	}
	const char *s = json_string_value(v);
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < sizeof(SIGNALS) / sizeof(SIGNALS[0]); i++)
		if (!strcasecmp(s, SIGNALS[i].name))
			return SIGNALS[i].sig;
	return 0;
}

void dd_op_signal(struct conn *c, struct dd_req *r)
{
	uint64_t id;
	struct dd_job_info in;
	json_t *v = json_object_get(r->root, "signal");
	int sig = v ? signal_of(v) : 0;
	if (!sig) {
		dd_ops_error(c, r->tag, "EINVAL",
			     "'signal' is a name (\"INT\", \"TERM\", \"USR1\", ...) or a number 1 to %d",
			     SIGRTMAX);
		return;
	}
	if (!dd_ops_get_id(c, r, &id) || !dd_ops_lookup(c, r->tag, id, &in, true))
		return;
	int rc = dd_job_signal(c->srv->eng, id, sig);
	if (rc == -ESRCH)
		dd_ops_error(c, r->tag, "ESRCH", "job %llu is not running a process now (it is %s)",
			     (unsigned long long)id, dd_state_name(in.state));
	else if (rc < 0)
		dd_ops_engine_error(c, r->tag, rc, "signal");
	else
		dd_ops_reply(c, r->tag, json_pack("{s:I, s:i}", "id", (json_int_t)id, "signal", sig));
}
