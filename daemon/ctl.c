/* dispatchctl: submit, run, inspect and steer jobs of a dispatchd
 * (dispatchctl(1)). Exit codes: 0 done, 1 failed, 2 usage; `run` exits
 * with the job's own exit code. */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "duration.h"
#include "size.h"
#include "dd_config.h"
#include "dispatchd.h"
#include "b64.h"

static bool json_out;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dispatchctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
		"  submit [OPTIONS] SCRIPT [ARGS..]   a batch script: its #DD lines (before its first\n"
		"                                     command) are options, ours win; a shell\n"
		"                                     script runs as it was at the submit\n"
		"  submit [OPTIONS] -- CMD [ARGS..]   submit a process job, print its id (alone:\n"
		"                                     --parsable says so); --wait: then wait for\n"
		"                                     it and exit with its exit code\n"
		"  run [OPTIONS] -- CMD [ARGS..]      submit, wait, stream its output, exit with its code;\n"
		"                                     its stdin is run's; Ctrl-C: SIGINT to the job,\n"
		"                                     twice (or SIGTERM/SIGHUP): cancel it\n"
		"      --name NAME (-J)  what list and get call it\n"
		"      --output FILE (-o), --error FILE   stdout and stderr to files of yours,\n"
		"                   opened as you from the job's directory (sbatch's: --output\n"
		"                   alone takes stderr too); %%j id, %%A array id, %%a index,\n"
		"                   %%x name, %%u user, %%N host; without them dispatchd keeps\n"
		"                   the output (dispatchctl output)\n"
		"      --queue Q --priority urgent|high|normal|low --after ID,.. --delay S\n"
		"      --dependency afterok:ID[:ID..],afterany:ID,afternotok:ID,aftercorr:ID\n"
		"                   (Slurm's; --after is afterok; aftercorr: element i of this\n"
		"                   array after element i of array ID)\n"
		"      --timeout S --retries N --key K\n"
		"      --array 1-100[:STEP][%%MAX] | 1,3,5-9   submit: a job array (Slurm's syntax),\n"
		"                   an element per index, each seeing DD_ARRAY_INDEX (and\n"
		"                   SLURM_ARRAY_TASK_ID); %%MAX: at most that many at once\n"
		"      the job runs in the caller's directory, environment and umask unless:\n"
		"      --cwd DIR  --export=ALL|NONE|NAME[=V],..  --env K=V (repeatable)\n"
		"      --umask MODE  --stdin FILE (submit's default: /dev/null)\n"
		"      --cpus N     CPUs it needs (default 1): it starts when they are free,\n"
		"                   and runs on them\n"
		"      --mem SIZE   memory limit of its whole process tree (512M, 2G; a bare\n"
		"                   number is MiB); over it the job fails \"out of memory\"\n"
		"  get ID                             one job\n"
		"  wait [--timeout S] ID..            until they end; exit 0 if all succeeded\n"
		"  status ID..                        one word each: pending, running, success,\n"
		"                                     failed (a workflow engine's status command)\n"
		"  cancel ID..                        cancel jobs\n"
		"  list [--state S] [--queue Q] [--limit N] [--after ID]   --limit 0: every job\n"
		"  list --array ID [--state S]        an array's elements, in index order\n"
		"  list --name NAME | --user USER     the jobs of that name, of that user\n"
		"  output [--stderr] [--attempt N] ID what a process job wrote (N: 1 the first\n"
		"                                     attempt; default the last)\n"
		"  top [--count N]                    a live view, every second (q to quit);\n"
		"                                     --json: one stats object a line\n"
		"  stats | ping | drain\n"
		"  -c CMD [ARGS..]                    as a shell: run -- /bin/sh -c CMD (make's\n"
		"                                     SHELL=dispatchctl runs each recipe line so)\n"
		"  -s, --socket PATH|HOST:PORT  dispatchd's Unix socket (default: $DISPATCHD_SOCKET,\n"
		"                      else the daemon's default for this user), or its TCP\n"
		"                      address (HOST:PORT, [ADDR]:PORT)\n"
		"  -T, --token-file F  the daemon's TCP token (default: $DISPATCHD_TOKEN_FILE)\n"
		"  -j, --json          print the daemon's JSON answers, and nothing else, on stdout\n"
		"  durations (S): 90, 1.5, 90s, 10m, 1h30m, 2d, 250ms, 1:30, 1:00:00\n"
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

/* A duration (duration.h) in seconds. */
static int parse_secs(const char *s, double *out)
{
	uint64_t ns;
	if (dd_duration_parse(s, &ns) < 0)
		return -1;
	*out = (double)ns / 1e9;
	return 0;
}

/* A count or an id that may be 0. */
static int parse_count(const char *s, json_int_t *v)
{
	char *end;
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (errno || *end || end == s || x < 0)
		return -1;
	*v = x;
	return 0;
}

/* ---- submit / run ---- */

/* What submit alone takes: --wait, --parsable. */
struct submit_flags {
	bool wait, parsable;
};

/* submit's and run's options (a script's #DD lines hold them too) */
static const struct option job_opts[] = {
	{"queue", required_argument, NULL, 'q'},  {"priority", required_argument, NULL, 'p'},
	{"after", required_argument, NULL, 'a'},  {"delay", required_argument, NULL, 'd'},
	{"timeout", required_argument, NULL, 't'}, {"retries", required_argument, NULL, 'r'},
	{"key", required_argument, NULL, 'k'},    {"cwd", required_argument, NULL, 'C'},
	{"env", required_argument, NULL, 'e'},    {"export", required_argument, NULL, 'x'},
	{"stdin", required_argument, NULL, 'i'},  {"umask", required_argument, NULL, 'u'},
	{"mem", required_argument, NULL, 'm'},	  {"cpus", required_argument, NULL, 'c'},
	{"wait", no_argument, NULL, 'W'},	  {"parsable", no_argument, NULL, 'P'},
	{"array", required_argument, NULL, 'A'},
	{"dependency", required_argument, NULL, 'D'},
	{"name", required_argument, NULL, 'J'}, {"job-name", required_argument, NULL, 'J'},
	{"output", required_argument, NULL, 'o'}, {"error", required_argument, NULL, 'E'},
	{NULL, 0, NULL, 0},
};
#define JOB_SHORT_OPTS "+q:p:a:d:t:r:k:C:e:J:o:"

/* The job of submit (@f set) or run (@f NULL), with the caller's context
 * (ctl_context.c). */
static int build_job(int argc, char **argv, json_t **out, struct submit_flags *f)
{
	const struct option *o = job_opts;
	json_t *job = json_object(), *env = NULL, *after = NULL;
	const char *cwd = NULL, *export = NULL, *in = NULL;
	long mask = -1;
	int c, rc = 2;
	double secs;
	optind = 1;
	while ((c = getopt_long(argc, argv, JOB_SHORT_OPTS, o, NULL)) != -1) {
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
					usage_err("--after: '%s' is not a job id", tok);
					goto fail;
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
				usage_err("--retries: '%s' is not a count", optarg);
				goto fail;
			}
			json_object_set_new(job, "retries", json_integer(v));
			break;
		}
		case 'k':
			json_object_set_new(job, "key", json_string(optarg));
			break;
		case 'C':
			cwd = optarg;
			break;
		case 'e': {
			char *eq = strchr(optarg, '=');
			json_t *v = eq ? json_string(eq + 1) : NULL;
			if (!eq || eq == optarg || !v) {
				json_decref(v);
				usage_err("--env wants K=V (UTF-8), got '%s'", optarg);
				goto fail;
			}
			*eq = 0;
			env = env ? env : json_object();
			json_object_set_new(env, optarg, v);
			break;
		}
		case 'x':
			export = optarg;
			break;
		case 'i':
			in = optarg;
			break;
		case 'c': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || end == optarg || n < 1 || n > (long)DD_EXEC_CPUS_MAX) {
				usage_err("--cpus: '%s' is not a count of CPUs (1, 2, ...)", optarg);
				goto fail;
			}
			json_object_set_new(job, "cpus", json_integer(n));
			break;
		}
		case 'm': {
			uint64_t mem;
			int e = dd_size_parse(optarg, &mem);
			if (e < 0) {
				usage_err("--mem: '%s' is not a size (" DD_SIZE_FORMS ")", optarg);
				goto fail;
			}
			json_object_set_new(job, "mem", json_integer((json_int_t)mem));
			break;
		}
		case 'u': {
			char *end;
			mask = strtol(optarg, &end, 8);
			if (*end || end == optarg || mask < 0 || mask > 0777) {
				usage_err("--umask: '%s' is not an octal mode (022, 0077, ...)", optarg);
				goto fail;
			}
			break;
		}
		case 'J':
			json_object_set_new(job, "name", json_string(optarg));
			break;
		case 'o':
		case 'E':
			/* patterns: the engine names the files at each start */
			json_object_set_new(job, c == 'o' ? "output" : "error", json_string(optarg));
			break;
		case 'D':
			/* the daemon reads it (depspec.c) and says what is wrong */
			json_object_set_new(job, "dependency", json_string(optarg));
			break;
		case 'A':
			if (!f) {
				usage_err("run streams one job: submit an array with submit --array%s",
					  "");
				goto fail;
			}
			/* the daemon reads it (dd_array_parse) and says what is wrong */
			json_object_set_new(job, "array", json_string(optarg));
			break;
		case 'W':
		case 'P':
			if (!f) {
				usage_err("run waits and prints no id: --wait and --parsable are "
					  "submit's%s", "");
				goto fail;
			}
			if (c == 'W')
				f->wait = true;
			else
				f->parsable = true;
			break;
		default:
			goto fail;
		}
	}
	if (optind >= argc) {
		usage_err("%s: give the command after --", argv[0]);
		goto fail;
	}
	json_t *av = json_array();
	for (int i = optind; i < argc; i++)
		json_array_append_new(av, json_string(argv[i]));
	json_object_set_new(job, "argv", av);
	/* where and as the caller is, unless told otherwise */
	char path[PATH_MAX];
	int e = dd_ctl_abspath(cwd ? cwd : ".", path, sizeof(path));
	if (e < 0) {
		fprintf(stderr, "dispatchctl: cannot tell the current directory: %s; pass --cwd DIR\n",
			strerror(-e));
		rc = 1;
		goto fail;
	}
	json_object_set_new(job, "cwd", json_string(path));
	json_t *jenv;
	if ((rc = dd_ctl_export_env(export, env, &jenv)))
		goto fail;
	json_object_set_new(job, "env", jenv);
	json_object_set_new(job, "env_replace", json_true());
	json_object_set_new(job, "umask", json_integer(mask >= 0 ? mask : (long)dd_ctl_umask()));
	if (in) {
		if ((e = dd_ctl_abspath(in, path, sizeof(path))) < 0) {
			fprintf(stderr, "dispatchctl: --stdin %s: %s\n", in, strerror(-e));
			rc = 1;
			goto fail;
		}
		json_object_set_new(job, "stdin", json_string(path));
	}
	json_decref(env);
	if (after)
		json_object_set_new(job, "after", after);
	json_object_set_new(job, "op", json_string("submit"));
	*out = job;
	return 0;
fail:
	json_decref(job);
	json_decref(env);
	json_decref(after);
	return rc;
}

/* Prints the new job's id alone (--parsable says so, as sbatch's does;
 * it is what submit prints anyway); with --wait, then waits for it and
 * exits as it did. */
static int cmd_submit(struct ctl *c, int argc, char **argv)
{
	json_t *req;
	struct submit_flags f = {0};
	struct dd_ctl_script sc;
	int rc = dd_ctl_script_argv(argc, argv, job_opts, JOB_SHORT_OPTS, &sc);
	if (rc)
		return rc;
	if (sc.argv) { /* a batch script: its #DD options, then ours */
		argc = sc.argc;
		argv = sc.argv;
	}
	rc = build_job(argc, argv, &req, &f);
	dd_ctl_script_free(&sc); /* build_job copied what it needs */
	if (rc)
		return rc;
	json_t *resp = dd_ctl_call(c, req), *r = dd_ctl_result(resp);
	json_int_t id = r ? json_integer_value(json_object_get(r, "id")) : 0;
	if (r) {
		if (json_out && !f.wait)
			print_json(r);
		else if (!json_out)
			printf("%lld\n", (long long)id);
		fflush(stdout);
	}
	json_decref(resp);
	if (!r)
		return 1;
	return f.wait ? dd_ctl_wait_exit(c, id, json_out) : 0;
}

static int cmd_run(struct ctl *c, int argc, char **argv)
{
	json_t *req;
	int rc = build_job(argc, argv, &req, NULL);
	return rc ? rc : dd_ctl_run(c, req, json_out);
}

static int cmd_status(struct ctl *c, int argc, char **argv)
{
	json_int_t ids[1024];
	if (argc < 2 || argc - 1 > 1024)
		return usage_err("status: give 1 to 1024 job ids%s", "");
	for (int i = 1; i < argc; i++)
		if (parse_id(argv[i], &ids[i - 1]) < 0)
			return usage_err("'%s' is not a job id", argv[i]);
	return dd_ctl_status(c, ids, (size_t)argc - 1, json_out);
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
	json_t *resp = dd_ctl_call(c, req), *r = dd_ctl_result(resp);
	if (r) {
		if (json_out || !show)
			print_json(r);
		else
			show(r);
	}
	json_decref(resp);
	return r ? 0 : 1;
}

static void show_job(json_t *r) { dd_ctl_print_job(json_object_get(r, "job")); }
static void show_stats(json_t *r) { dd_ctl_print_stats(r); }
static void show_pong(json_t *r)
{
	printf("dispatchd %s: alive (you are uid %lld)\n",
	       json_string_value(json_object_get(r, "version")),
	       (long long)json_integer_value(json_object_get(r, "uid")));
	json_t *cg = json_object_get(r, "cgroup_status");
	if (cg)
		printf("process jobs: %s%s\n",
		       json_is_true(json_object_get(r, "cgroups")) ? "in cgroups: " : "no cgroups: ",
		       json_string_value(cg));
	json_t *sup = json_object_get(r, "supervisor_status");
	if (sup)
		printf("process supervisor: %s\n", json_string_value(sup));
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
			return usage_err("wait: --timeout takes a duration (%s)", DD_DURATION_FORMS);
	}
	json_t *ids;
	int rc = ids_arg(argc, argv, optind, &ids);
	if (rc)
		return rc;
	json_t *req = json_pack("{s:s, s:o}", "op", "wait", "ids", ids);
	if (timeout >= 0)
		json_object_set_new(req, "timeout", json_real(timeout));
	json_t *resp = dd_ctl_call(c, req), *r = dd_ctl_result(resp);
	int code = r ? 0 : 1;
	if (r) {
		json_t *jobs = json_object_get(r, "jobs");
		if (json_out)
			print_json(r);
		else
			dd_ctl_print_jobs(jobs, true);
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
	json_t *resp = dd_ctl_call(c, json_pack("{s:s, s:o}", "op", "cancel", "ids", ids));
	json_t *r = dd_ctl_result(resp);
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
			code = 1; /* the message names the job */
			fprintf(stderr, "dispatchctl: %s\n", json_string_value(json_object_get(e, "message")));
		} else if (!json_out) {
			printf("%lld cancelled\n", id);
		}
	}
	json_decref(resp);
	return code;
}

/* --limit 0 lists every job: page after page of the daemon's largest,
 * following "next" to the end. --after 0 starts at the first job. */
static int cmd_list(struct ctl *c, int argc, char **argv)
{
	static const struct option o[] = {
		{"state", required_argument, NULL, 's'}, {"queue", required_argument, NULL, 'q'},
		{"limit", required_argument, NULL, 'n'}, {"after", required_argument, NULL, 'a'},
		{"array", required_argument, NULL, 'A'}, {"name", required_argument, NULL, 'N'},
		{"user", required_argument, NULL, 'u'}, {NULL, 0, NULL, 0}};
	json_t *req = json_pack("{s:s}", "op", "list");
	int ch;
	json_int_t v, limit = -1, after = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+s:q:n:a:", o, NULL)) != -1) {
		if (ch == 'N') {
			json_object_set_new(req, "name", json_string(optarg));
		} else if (ch == 'u') {
			struct passwd *pw = getpwnam(optarg);
			char *end;
			long long uid = strtoll(optarg, &end, 10);
			if (!pw && (*end || end == optarg || uid < 0)) {
				json_decref(req);
				return usage_err("list --user: no user '%s'", optarg);
			}
			json_object_set_new(req, "uid", json_integer(pw ? (json_int_t)pw->pw_uid : uid));
		} else if (ch == 'A' && parse_id(optarg, &v) == 0) {
			json_object_set_new(req, "array", json_integer(v));
		} else if (ch == 'A') {
			json_decref(req);
			return usage_err("list --array: '%s' is not a job id", optarg);
		} else if (ch == 's') {
			json_object_set_new(req, "state", json_string(optarg));
		} else if (ch == 'q') {
			json_object_set_new(req, "queue", json_string(optarg));
		} else if ((ch == 'n' || ch == 'a') && parse_count(optarg, &v) == 0) {
			*(ch == 'n' ? &limit : &after) = v;
		} else {
			json_decref(req);
			return usage_err("list: --limit takes a count (0: all), --after a job id (0: from "
					 "the first)%s", "");
		}
	}
	if (optind != argc) {
		json_decref(req);
		return usage_err("list: unexpected argument '%s'", argv[optind]);
	}
	bool all = limit == 0;
	if (limit > 0)
		json_object_set_new(req, "limit", json_integer(limit));
	else if (all)
		json_object_set_new(req, "limit", json_integer(1000)); /* the daemon's most */
	json_t *jobs = json_array(), *next = json_null();
	int rc = 0;
	for (bool first = true;; first = false) {
		json_object_set_new(req, "after", json_integer(after));
		json_t *resp = dd_ctl_call(c, json_incref(req)), *r = dd_ctl_result(resp);
		if (!r) {
			json_decref(resp);
			rc = 1;
			break;
		}
		json_t *page = json_object_get(r, "jobs");
		if (!json_out)
			dd_ctl_print_jobs(page, first);
		json_array_extend(jobs, page);
		json_decref(next);
		next = json_incref(json_object_get(r, "next"));
		json_decref(resp);
		if (!all || !json_is_integer(next))
			break;
		after = json_integer_value(next);
	}
	if (!rc && json_out) {
		json_t *out = json_pack("{s:O, s:O}", "jobs", jobs, "next", next);
		print_json(out);
		json_decref(out);
	} else if (!rc && json_is_integer(next)) {
		fprintf(stderr, "(more: --after %lld)\n", (long long)json_integer_value(next));
	}
	json_decref(jobs);
	json_decref(next);
	json_decref(req);
	return rc;
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
	for (;;) {
		json_int_t before = off;
		int r = dd_ctl_pump(c, id, err ? "stderr" : "stdout", attempt, &off, stdout, NULL, NULL);
		if (r < 0)
			return 1;
		if (off == before)
			return 0; /* all there is, for now */
	}
}

int main(int argc, char **argv)
{
	static const struct option o[] = {
		{"socket", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},	  {"version", no_argument, NULL, 'V'},
		{"token-file", required_argument, NULL, 'T'}, {NULL, 0, NULL, 0}};
	char sock[1024] = "";
	const char *token_file = getenv("DISPATCHD_TOKEN_FILE");
	/* as a shell: "dispatchctl -c CMD [ARGS..]", what make runs each
	 * recipe line with under SHELL=dispatchctl, is run -- /bin/sh -c */
	char *shell_av[260];
	if (argc >= 3 && argc < 256 && !strcmp(argv[1], "-c")) {
		int n = 0;
		shell_av[n++] = argv[0];
		shell_av[n++] = "run";
		shell_av[n++] = "--";
		shell_av[n++] = "/bin/sh";
		for (int i = 1; i < argc; i++)
			shell_av[n++] = argv[i];
		shell_av[n] = NULL;
		argc = n;
		argv = shell_av;
	}
	int ch;
	while ((ch = getopt_long(argc, argv, "+s:T:jhV", o, NULL)) != -1) {
		switch (ch) {
		case 's': snprintf(sock, sizeof(sock), "%s", optarg); break;
		case 'T': token_file = optarg; break;
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
	static const char *const known[] = {"submit", "run",	 "get",	 "wait", "status", "cancel",
					    "list",   "output", "stats", "ping", "drain",  "top"};
	bool ok = false;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		ok |= !strcmp(cmd, known[i]);
	if (!ok)
		return usage_err("unknown command '%s'", cmd);
	bool is_default = !sock[0] && dd_default_socket(sock, sizeof(sock), true);
	struct ctl c;
	if (dd_ctl_connect(&c, sock, is_default, token_file) < 0)
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
	else if (!strcmp(cmd, "status"))
		rc = cmd_status(&c, ac, av);
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
							   : dd_ctl_top(&c, frames, json_out);
	} else if (!strcmp(cmd, "stats"))
		rc = simple(&c, json_pack("{s:s}", "op", "stats"), show_stats);
	else if (!strcmp(cmd, "ping"))
		rc = simple(&c, json_pack("{s:s}", "op", "ping"), show_pong);
	else
		rc = simple(&c, json_pack("{s:s}", "op", "drain"), show_drain);
	dd_ctl_close(&c);
	return rc;
}
