/* dispatchctl: submit, run, inspect and steer jobs of a dispatchd
 * (dispatchctl(1)). Exit codes: 0 done, 1 failed, 2 usage; `run` exits
 * with the job's own exit code. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "dd_config.h"
#include "b64.h"

static bool json_out;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dispatchctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
		"  submit [OPTIONS] -- CMD [ARGS..]   submit a process job, print its id\n"
		"  run [OPTIONS] -- CMD [ARGS..]      submit, wait, stream its output, exit with its code\n"
		"      --queue Q --priority urgent|high|normal|low --after ID,.. --delay S\n"
		"      --timeout S --retries N --key K --cwd DIR --env K=V (repeatable)\n"
		"  get ID                             one job\n"
		"  wait [--timeout S] ID..            until they end; exit 0 if all succeeded\n"
		"  cancel ID..                        cancel jobs\n"
		"  list [--state S] [--queue Q] [--limit N] [--after ID]\n"
		"  output [--stderr] [--attempt N] ID what a process job wrote (N: 1 the first\n"
		"                                     attempt; default the last)\n"
		"  top [--count N]                    a live view, every second (q to quit)\n"
		"  stats | ping | drain\n"
		"  -s, --socket PATH   dispatchd's socket (default: $DISPATCHD_SOCKET, else the\n"
		"                      daemon's default for this user)\n"
		"  -j, --json          print the daemon's JSON answers\n"
		"  -h, --help, -V, --version\n");
}

static int usage_err(const char *fmt, const char *arg)
{
	fprintf(stderr, "dispatchctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(dispatchctl --help shows the commands)\n");
	return 2;
}

static void print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (s)
		puts(s);
	free(s);
}

static int parse_id(const char *s, json_int_t *id)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v <= 0)
		return -1;
	*id = v;
	return 0;
}

static int parse_secs(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || end == s || !(v >= 0))
		return -1;
	*out = v;
	return 0;
}

/* ---- submit / run ---- */

static int build_job(int argc, char **argv, json_t **out)
{
	static const struct option o[] = {
		{"queue", required_argument, NULL, 'q'},  {"priority", required_argument, NULL, 'p'},
		{"after", required_argument, NULL, 'a'},  {"delay", required_argument, NULL, 'd'},
		{"timeout", required_argument, NULL, 't'}, {"retries", required_argument, NULL, 'r'},
		{"key", required_argument, NULL, 'k'},    {"cwd", required_argument, NULL, 'C'},
		{"env", required_argument, NULL, 'e'},    {NULL, 0, NULL, 0},
	};
	json_t *job = json_object(), *env = NULL, *after = NULL;
	int c;
	double secs;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+q:p:a:d:t:r:k:C:e:", o, NULL)) != -1) {
		switch (c) {
		case 'q':
			json_object_set_new(job, "queue", json_string(optarg));
			break;
		case 'p': {
			char *end;
			long v = strtol(optarg, &end, 10);
			json_object_set_new(job, "priority",
					    *end || end == optarg ? json_string(optarg) : json_integer(v));
			break;
		}
		case 'a': {
			after = after ? after : json_array();
			char *save, *tok;
			for (tok = strtok_r(optarg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				json_int_t id;
				if (parse_id(tok, &id) < 0) {
					json_decref(job);
					json_decref(after);
					json_decref(env);
					return usage_err("--after: '%s' is not a job id", tok);
				}
				json_array_append_new(after, json_integer(id));
			}
			break;
		}
		case 'd':
		case 't':
			if (parse_secs(optarg, &secs) < 0) {
				json_decref(job);
				return usage_err("'%s' is not a number of seconds", optarg);
			}
			json_object_set_new(job, c == 'd' ? "delay" : "timeout", json_real(secs));
			break;
		case 'r': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0) {
				json_decref(job);
				return usage_err("--retries: '%s' is not a count", optarg);
			}
			json_object_set_new(job, "retries", json_integer(v));
			break;
		}
		case 'k':
			json_object_set_new(job, "key", json_string(optarg));
			break;
		case 'C':
			json_object_set_new(job, "cwd", json_string(optarg));
			break;
		case 'e': {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg) {
				json_decref(job);
				return usage_err("--env wants K=V, got '%s'", optarg);
			}
			*eq = 0;
			env = env ? env : json_object();
			json_object_set_new(env, optarg, json_string(eq + 1));
			break;
		}
		default:
			json_decref(job);
			return 2;
		}
	}
	if (optind >= argc) {
		json_decref(job);
		json_decref(env);
		json_decref(after);
		return usage_err("%s: give the command after --", argv[0]);
	}
	json_t *av = json_array();
	for (int i = optind; i < argc; i++)
		json_array_append_new(av, json_string(argv[i]));
	json_object_set_new(job, "argv", av);
	if (env)
		json_object_set_new(job, "env", env);
	if (after)
		json_object_set_new(job, "after", after);
	json_object_set_new(job, "op", json_string("submit"));
	*out = job;
	return 0;
}

static int cmd_submit(struct ctl *c, int argc, char **argv)
{
	json_t *req;
	int rc = build_job(argc, argv, &req);
	if (rc)
		return rc;
	json_t *resp = ctl_call(c, req), *r = ctl_result(resp);
	if (r) {
		if (json_out)
			print_json(r);
		else
			printf("%lld\n", (long long)json_integer_value(json_object_get(r, "id")));
	}
	json_decref(resp);
	return r ? 0 : 1;
}

/* Copies new output of @stream from *off to @out. Returns 1 at the end of
 * a finished job's stream, 0 if more may come, -1 on error. */
static int pump(struct ctl *c, json_int_t id, const char *stream, json_int_t *off, FILE *out)
{
	json_t *resp = ctl_call(c, json_pack("{s:s, s:I, s:s, s:I}", "op", "output", "id", id,
					     "stream", stream, "offset", *off));
	json_t *r = ctl_result(resp);
	if (!r) {
		json_decref(resp);
		return -1;
	}
	const char *b64 = json_string_value(json_object_get(r, "data"));
	size_t n = b64 ? strlen(b64) : 0;
	unsigned char *buf = malloc(n / 4 * 3 + 3);
	long k = buf ? dd_b64_decode(b64, n, buf) : -1;
	if (k > 0) {
		fwrite(buf, 1, (size_t)k, out);
		fflush(out);
	}
	free(buf);
	*off = json_integer_value(json_object_get(r, "offset"));
	int eof = json_is_true(json_object_get(r, "eof"));
	json_decref(resp);
	return eof;
}

static int cmd_run(struct ctl *c, int argc, char **argv)
{
	json_t *req;
	int rc = build_job(argc, argv, &req);
	if (rc)
		return rc;
	json_t *resp = ctl_call(c, req), *r = ctl_result(resp);
	if (!r) {
		json_decref(resp);
		return 1;
	}
	json_int_t id = json_integer_value(json_object_get(r, "id"));
	json_decref(resp);
	json_int_t off_out = 0, off_err = 0;
	json_t *job = NULL;
	for (;;) {
		/* wait a little for the end, then show what was written so far */
		resp = ctl_call(c, json_pack("{s:s, s:I, s:f}", "op", "wait", "id", id, "timeout", 0.2));
		if (!resp)
			return 1;
		bool ended = json_is_true(json_object_get(resp, "ok"));
		if (ended)
			job = json_incref(json_object_get(json_object_get(resp, "result"), "job"));
		else if (strcmp(json_string_value(json_object_get(json_object_get(resp, "error"), "code")),
				"ETIMEDOUT")) {
			ctl_result(resp);
			json_decref(resp);
			return 1;
		}
		json_decref(resp);
		int a = pump(c, id, "stdout", &off_out, stdout), b = pump(c, id, "stderr", &off_err, stderr);
		if (a < 0 || b < 0)
			return 1;
		if (ended) {
			/* the last of it: until both streams say they are done */
			while ((a = pump(c, id, "stdout", &off_out, stdout)) == 0 ||
			       (b = pump(c, id, "stderr", &off_err, stderr)) == 0)
				if (a < 0 || b < 0)
					break;
			break;
		}
	}
	if (json_out)
		print_json(job);
	json_t *ec = json_object_get(job, "exit_code"), *sig = json_object_get(job, "signal");
	int code = json_is_integer(ec)	  ? (int)json_integer_value(ec)
		   : json_is_integer(sig) ? 128 + (int)json_integer_value(sig)
		   : !strcmp(json_string_value(json_object_get(job, "state")), "succeeded") ? 0
											     : 1;
	if (!json_is_integer(ec) && code)
		fprintf(stderr, "dispatchctl: job %lld %s: %s\n", (long long)id,
			json_string_value(json_object_get(job, "state")),
			json_string_value(json_object_get(job, "reason")));
	json_decref(job);
	return code;
}

/* ---- the rest ---- */

static int ids_arg(int argc, char **argv, int from, json_t **ids)
{
	*ids = json_array();
	for (int i = from; i < argc; i++) {
		json_int_t id;
		if (parse_id(argv[i], &id) < 0) {
			json_decref(*ids);
			return usage_err("'%s' is not a job id", argv[i]);
		}
		json_array_append_new(*ids, json_integer(id));
	}
	if (!json_array_size(*ids)) {
		json_decref(*ids);
		return usage_err("%s: give at least one job id", argv[0]);
	}
	return 0;
}

static int simple(struct ctl *c, json_t *req, void (*show)(json_t *))
{
	json_t *resp = ctl_call(c, req), *r = ctl_result(resp);
	if (r) {
		if (json_out || !show)
			print_json(r);
		else
			show(r);
	}
	json_decref(resp);
	return r ? 0 : 1;
}

static void show_job(json_t *r) { ctl_print_job(json_object_get(r, "job")); }
static void show_stats(json_t *r) { ctl_print_stats(r); }
static void show_pong(json_t *r)
{
	printf("dispatchd %s: alive (you are uid %lld)\n",
	       json_string_value(json_object_get(r, "version")),
	       (long long)json_integer_value(json_object_get(r, "uid")));
}
static void show_drain(json_t *r) { (void)r; puts("dispatchd is draining"); }

static int cmd_wait(struct ctl *c, int argc, char **argv)
{
	static const struct option o[] = {{"timeout", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
	double timeout = -1;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+t:", o, NULL)) != -1) {
		if (ch != 't' || parse_secs(optarg, &timeout) < 0)
			return usage_err("wait: --timeout takes seconds%s", "");
	}
	json_t *ids;
	int rc = ids_arg(argc, argv, optind, &ids);
	if (rc)
		return rc;
	json_t *req = json_pack("{s:s, s:o}", "op", "wait", "ids", ids);
	if (timeout >= 0)
		json_object_set_new(req, "timeout", json_real(timeout));
	json_t *resp = ctl_call(c, req), *r = ctl_result(resp);
	int code = r ? 0 : 1;
	if (r) {
		json_t *jobs = json_object_get(r, "jobs");
		if (json_out)
			print_json(r);
		else
			ctl_print_jobs(jobs, true);
		size_t i;
		json_t *j;
		json_array_foreach(jobs, i, j)
		if (strcmp(json_string_value(json_object_get(j, "state")), "succeeded"))
			code = 1;
	}
	json_decref(resp);
	return code;
}

static int cmd_cancel(struct ctl *c, int argc, char **argv)
{
	json_t *ids;
	int rc = ids_arg(argc, argv, 1, &ids);
	if (rc)
		return rc;
	json_t *resp = ctl_call(c, json_pack("{s:s, s:o}", "op", "cancel", "ids", ids));
	json_t *r = ctl_result(resp);
	int code = r ? 0 : 1;
	size_t i;
	json_t *x;
	if (r && json_out)
		print_json(r);
	json_array_foreach(json_object_get(r, "results"), i, x)
	{
		json_t *e = json_object_get(x, "error");
		long long id = (long long)json_integer_value(json_object_get(x, "id"));
		if (e) {
			code = 1;
			fprintf(stderr, "dispatchctl: %lld: %s\n", id,
				json_string_value(json_object_get(e, "message")));
		} else if (!json_out) {
			printf("%lld cancelled\n", id);
		}
	}
	json_decref(resp);
	return code;
}

static int cmd_list(struct ctl *c, int argc, char **argv)
{
	static const struct option o[] = {
		{"state", required_argument, NULL, 's'}, {"queue", required_argument, NULL, 'q'},
		{"limit", required_argument, NULL, 'n'}, {"after", required_argument, NULL, 'a'},
		{NULL, 0, NULL, 0}};
	json_t *req = json_pack("{s:s}", "op", "list");
	int ch;
	json_int_t v;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+s:q:n:a:", o, NULL)) != -1) {
		if (ch == 's')
			json_object_set_new(req, "state", json_string(optarg));
		else if (ch == 'q')
			json_object_set_new(req, "queue", json_string(optarg));
		else if ((ch == 'n' || ch == 'a') && parse_id(optarg, &v) == 0)
			json_object_set_new(req, ch == 'n' ? "limit" : "after", json_integer(v));
		else {
			json_decref(req);
			return usage_err("list: bad option%s", "");
		}
	}
	json_t *resp = ctl_call(c, req), *r = ctl_result(resp);
	if (r) {
		if (json_out) {
			print_json(r);
		} else {
			ctl_print_jobs(json_object_get(r, "jobs"), true);
			if (json_is_integer(json_object_get(r, "next")))
				printf("(more: --after %lld)\n",
				       (long long)json_integer_value(json_object_get(r, "next")));
		}
	}
	json_decref(resp);
	return r ? 0 : 1;
}

static int cmd_output(struct ctl *c, int argc, char **argv)
{
	static const struct option o[] = {{"stderr", no_argument, NULL, 'e'},
					  {"attempt", required_argument, NULL, 'a'},
					  {NULL, 0, NULL, 0}};
	bool err = false;
	json_int_t attempt = 0;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+ea:", o, NULL)) != -1) {
		if (ch == 'e')
			err = true;
		else if (ch == 'a' && parse_id(optarg, &attempt) == 0 && attempt > 0)
			continue;
		else if (ch == 'a')
			return usage_err("output: --attempt is 1 for the first attempt, 2 for the "
					 "next...: not '%s'", optarg);
		else
			return usage_err("output: bad option%s", "");
	}
	json_int_t id, off = 0;
	if (optind != argc - 1 || parse_id(argv[optind], &id) < 0)
		return usage_err("output: give one job id%s", "");
	if (!attempt) {
		for (;;) {
			json_int_t before = off;
			int r = pump(c, id, err ? "stderr" : "stdout", &off, stdout);
			if (r < 0)
				return 1;
			if (off == before)
				return 0; /* all there is, for now */
		}
	}
	for (;;) {
		json_t *resp = ctl_call(c, json_pack("{s:s, s:I, s:s, s:I, s:I}", "op", "output", "id",
						     id, "stream", err ? "stderr" : "stdout",
						     "offset", off, "attempt", attempt));
		json_t *r = ctl_result(resp);
		if (!r) {
			json_decref(resp);
			return 1;
		}
		const char *b64 = json_string_value(json_object_get(r, "data"));
		size_t n = b64 ? strlen(b64) : 0;
		unsigned char *buf = malloc(n / 4 * 3 + 3);
		long k = buf ? dd_b64_decode(b64, n, buf) : -1;
		if (k > 0)
			fwrite(buf, 1, (size_t)k, stdout);
		free(buf);
		json_int_t next = json_integer_value(json_object_get(r, "offset"));
		json_decref(resp);
		if (k < 0)
			return 1;
		if (next == off)
			return fflush(stdout) == 0 ? 0 : 1; /* all there is, for now */
		off = next;
	}
}

int main(int argc, char **argv)
{
	static const struct option o[] = {
		{"socket", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},	  {"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}};
	char sock[1024] = "";
	int ch;
	while ((ch = getopt_long(argc, argv, "+s:jhV", o, NULL)) != -1) {
		switch (ch) {
		case 's': snprintf(sock, sizeof(sock), "%s", optarg); break;
		case 'j': json_out = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("dispatchctl %s\n", DD_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	char **av = argv + optind;
	int ac = argc - optind;
	const char *cmd = av[0];
	static const char *const known[] = {"submit", "run", "get", "wait", "cancel", "list",
					    "output", "stats", "ping", "drain", "top"};
	bool ok = false;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		ok |= !strcmp(cmd, known[i]);
	if (!ok)
		return usage_err("unknown command '%s'", cmd);
	if (!sock[0])
		dd_default_socket(sock, sizeof(sock), true);
	struct ctl c;
	if (ctl_connect(&c, sock) < 0)
		return 1;
	int rc;
	json_int_t id;
	if (!strcmp(cmd, "submit"))
		rc = cmd_submit(&c, ac, av);
	else if (!strcmp(cmd, "run"))
		rc = cmd_run(&c, ac, av);
	else if (!strcmp(cmd, "get"))
		rc = ac != 2 || parse_id(av[1], &id) < 0
			     ? usage_err("get: give one job id%s", "")
			     : simple(&c, json_pack("{s:s, s:I}", "op", "get", "id", id), show_job);
	else if (!strcmp(cmd, "wait"))
		rc = cmd_wait(&c, ac, av);
	else if (!strcmp(cmd, "cancel"))
		rc = cmd_cancel(&c, ac, av);
	else if (!strcmp(cmd, "list"))
		rc = cmd_list(&c, ac, av);
	else if (!strcmp(cmd, "output"))
		rc = cmd_output(&c, ac, av);
	else if (!strcmp(cmd, "top")) {
		int frames = 0;
		if (ac == 3 && !strcmp(av[1], "--count"))
			frames = atoi(av[2]);
		rc = (ac != 1 && (ac != 3 || frames <= 0)) ? usage_err("top [--count N]%s", "")
							   : ctl_top(&c, frames);
	} else if (!strcmp(cmd, "stats"))
		rc = simple(&c, json_pack("{s:s}", "op", "stats"), show_stats);
	else if (!strcmp(cmd, "ping"))
		rc = simple(&c, json_pack("{s:s}", "op", "ping"), show_pong);
	else
		rc = simple(&c, json_pack("{s:s}", "op", "drain"), show_drain);
	ctl_close(&c);
	return rc;
}
