/* Request decoding (docs/PROTOCOL.md). JSON itself is jansson's job; this
 * file knows the operations and their fields, and trusts nothing. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "depspec.h"
#include "proto.h"

/* Field types: s string, i integer, n number, b boolean, a array, o object,
 * p priority (string or integer), g signal (string or integer), j any JSON
 * value. */
struct field {
	const char *name;
	char type;
};

struct opdef {
	const char *name;
	const struct field *fields;
};

static const struct field F_NONE[] = {{NULL, 0}};
static const struct field F_AUTH[] = {{"token", 's'}, {NULL, 0}};
static const struct field F_JOB[] = {
	{"queue", 's'}, {"argv", 'a'}, {"env", 'o'}, {"env_replace", 'b'}, {"cwd", 's'},
	{"priority", 'p'}, {"after", 'a'}, {"delay", 'n'}, {"timeout", 'n'}, {"retries", 'i'},
	{"backoff", 'n'}, {"key", 's'}, {"payload", 's'}, {"payload_b64", 's'},
	{"durability", 's'}, {"output_max", 'i'}, {"rlimits", 'o'}, {"strict", 'b'},
	{"umask", 'i'}, {"stdin", 's'}, {"stdin_fd", 'b'}, {"mem", 'i'}, {"cpus", 'i'},
	{"array", 's'}, {"dependency", 's'}, {"name", 's'}, {"output", 's'}, {"error", 's'},
	{NULL, 0}};
static const struct field F_BATCH[] = {{"jobs", 'a'}, {"env", 'o'}, {NULL, 0}};
static const struct field F_SIGNAL[] = {{"id", 'i'}, {"signal", 'g'}, {NULL, 0}};
static const struct field F_ID[] = {{"id", 'i'}, {NULL, 0}};
static const struct field F_IDS[] = {{"id", 'i'}, {"ids", 'a'}, {NULL, 0}};
static const struct field F_WAIT[] = {{"id", 'i'}, {"ids", 'a'}, {"timeout", 'n'}, {NULL, 0}};
static const struct field F_WATCH[] = {{"ids", 'a'}, {"queue", 's'}, {NULL, 0}};
static const struct field F_LIST[] = {
	{"state", 's'}, {"queue", 's'}, {"after", 'i'}, {"limit", 'i'}, {"array", 'i'},
	{"name", 's'}, {"uid", 'i'}, {NULL, 0}};
static const struct field F_OUTPUT[] = {
	{"id", 'i'}, {"stream", 's'}, {"offset", 'i'}, {"max", 'i'}, {"attempt", 'i'}, {NULL, 0}};
static const struct field F_RESERVE[] = {
	{"queue", 's'}, {"ttr", 'n'}, {"timeout", 'n'}, {NULL, 0}};
static const struct field F_STATS[] = {{"window", 'b'}, {"latency", 'b'}, {NULL, 0}};
static const struct field F_ACK[] = {{"id", 'i'}, {"attempt", 'i'}, {NULL, 0}};
static const struct field F_NACK[] = {{"id", 'i'}, {"attempt", 'i'}, {"result", 'i'}, {NULL, 0}};
static const struct field F_TOUCH[] = {{"id", 'i'}, {"attempt", 'i'}, {"ttr", 'n'}, {NULL, 0}};

static const struct opdef OPS[OP_COUNT] = {
	[OP_PING] = {"ping", F_NONE},		[OP_AUTH] = {"auth", F_AUTH},
	[OP_SUBMIT] = {"submit", F_JOB},	[OP_SUBMIT_BATCH] = {"submit_batch", F_BATCH},
	[OP_GET] = {"get", F_ID},		[OP_WAIT] = {"wait", F_WAIT},
	[OP_WATCH] = {"watch", F_WATCH},	[OP_UNWATCH] = {"unwatch", F_NONE},
	[OP_CANCEL] = {"cancel", F_IDS},	[OP_LIST] = {"list", F_LIST},
	[OP_OUTPUT] = {"output", F_OUTPUT},	[OP_RESERVE] = {"reserve", F_RESERVE},
	[OP_ACK] = {"ack", F_ACK},		[OP_NACK] = {"nack", F_NACK},
	[OP_TOUCH] = {"touch", F_TOUCH},	[OP_STATS] = {"stats", F_STATS},
	[OP_DRAIN] = {"drain", F_NONE},		[OP_SIGNAL] = {"signal", F_SIGNAL},
};

const char *dd_op_name(enum dd_op op)
{
	return op < OP_COUNT ? OPS[op].name : "?";
}

static int fail(struct dd_perr *e, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	e->code = code;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static bool type_ok(json_t *v, char t)
{
	switch (t) {
	case 's': return json_is_string(v);
	case 'i': return json_is_integer(v);
	case 'n': return json_is_number(v);
	case 'b': return json_is_boolean(v);
	case 'a': return json_is_array(v);
	case 'o': return json_is_object(v);
	case 'p':
	case 'g': return json_is_string(v) || json_is_integer(v);
	default: return true;
	}
}

static const char *type_name(char t)
{
	switch (t) {
	case 's': return "a string";
	case 'i': return "an integer";
	case 'n': return "a number";
	case 'b': return "true or false";
	case 'a': return "an array";
	case 'o': return "an object";
	case 'p': return "a priority name or 0..3";
	case 'g': return "a signal name or number";
	default: return "a value";
	}
}

/* Every key of @o is in @f (or is op/tag when @top), of its type. */
static int check_fields(json_t *o, const struct field *f, bool top, struct dd_perr *e)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		if (top && (!strcmp(k, "op") || !strcmp(k, "tag")))
			continue;
		const struct field *x = f;
		while (x->name && strcmp(x->name, k))
			x++;
		if (!x->name)
			return fail(e, "EINVAL", "unknown field '%.64s'", k);
		if (!type_ok(v, x->type))
			return fail(e, "EINVAL", "field '%s' must be %s", k, type_name(x->type));
	}
	return 0;
}

int dd_proto_parse(const char *line, size_t len, struct dd_req *r, struct dd_perr *e)
{
	json_error_t je;
	memset(r, 0, sizeof(*r));
	/* JSON_REJECT_DUPLICATES: a key given twice is ambiguous, so an error */
	r->root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!r->root)
		return fail(e, "EPROTO", "not JSON: %s at column %d", je.text, je.column);
	if (!json_is_object(r->root))
		return fail(e, "EPROTO", "a request is a JSON object");
	r->tag = json_object_get(r->root, "tag");
	json_t *op = json_object_get(r->root, "op");
	if (!json_is_string(op))
		return fail(e, "EINVAL", "missing \"op\" (a string)");
	const char *name = json_string_value(op);
	for (unsigned i = 0; i < OP_COUNT; i++)
		if (!strcmp(OPS[i].name, name)) {
			r->op = (enum dd_op)i;
			return check_fields(r->root, OPS[i].fields, true, e);
		}
	return fail(e, "EINVAL", "unknown op '%.64s'", name);
}

void dd_req_free(struct dd_req *r)
{
	json_decref(r->root);
	memset(r, 0, sizeof(*r));
}

bool dd_get_u64(json_t *o, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

bool dd_get_secs(json_t *o, const char *key, uint64_t *ns)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_number(v))
		return false;
	double d = json_number_value(v);
	if (!(d >= 0 && d <= 1e9)) /* NaN fails too */
		return false;
	*ns = (uint64_t)llround(d * 1e9);
	return true;
}

/* ---- jobs ---- */

static const struct {
	const char *name;
	int res;
} RLIMITS[] = {
	{"cpu", RLIMIT_CPU},	   {"fsize", RLIMIT_FSIZE},   {"data", RLIMIT_DATA},
	{"stack", RLIMIT_STACK},   {"core", RLIMIT_CORE},     {"rss", RLIMIT_RSS},
	{"nproc", RLIMIT_NPROC},   {"nofile", RLIMIT_NOFILE}, {"memlock", RLIMIT_MEMLOCK},
	{"as", RLIMIT_AS},	   {"locks", RLIMIT_LOCKS},   {"sigpending", RLIMIT_SIGPENDING},
	{"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE}, {"rtprio", RLIMIT_RTPRIO},
	{"rttime", RLIMIT_RTTIME},
};

static int secs(json_t *o, const char *key, uint64_t *ns, struct dd_perr *e)
{
	if (json_object_get(o, key) && !dd_get_secs(o, key, ns))
		return fail(e, "EINVAL", "'%s' is seconds, 0 to 1e9", key);
	return 0;
}

static int job_argv(json_t *a, struct dd_jobdec *jd, struct dd_perr *e)
{
	size_t n = json_array_size(a);
	if (n == 0)
		return fail(e, "EINVAL", "'argv' needs at least the program");
	if (n > 65536)
		return fail(e, "E2BIG", "'argv' has over 65536 elements");
	if (!(jd->argv = calloc(n + 1, sizeof(char *))))
		return fail(e, "ENOMEM", "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_string(v) || memchr(json_string_value(v), 0, json_string_length(v)))
			return fail(e, "EINVAL", "'argv' holds strings without NUL bytes");
		jd->argv[i] = json_string_value(v);
	}
	if (!jd->argv[0][0])
		return fail(e, "EINVAL", "'argv[0]' is empty");
	jd->exec.argv = jd->argv;
	return 0;
}

/* Checks an "env" object; *@bytes: what its "K=V\0" strings take. */
static int env_check(json_t *o, size_t *bytes, struct dd_perr *e)
{
	const char *k;
	json_t *v;
	*bytes = 0;
	json_object_foreach(o, k, v)
	{
		if (!json_is_string(v) || !k[0] || strchr(k, '=') ||
		    memchr(json_string_value(v), 0, json_string_length(v)))
			return fail(e, "EINVAL",
				    "'env' maps names (no '=') to strings without NUL bytes");
		*bytes += strlen(k) + json_string_length(v) + 2;
	}
	return 0;
}

/* Appends "K=V" for each entry of @o not in @skip (may be NULL). */
static void env_put(json_t *o, json_t *skip, const char **env, size_t *i, char **p)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		if (skip && json_object_get(skip, k))
			continue;
		env[(*i)++] = *p;
		*p += sprintf(*p, "%s=%s", k, json_string_value(v)) + 1;
	}
}

int dd_proto_batch_env(json_t *root, struct dd_envdec *ed, struct dd_perr *e)
{
	memset(ed, 0, sizeof(*ed));
	json_t *o = json_object_get(root, "env");
	if (!o)
		return 0;
	if (!json_is_object(o))
		return fail(e, "EINVAL", "field 'env' must be an object");
	size_t n = json_object_size(o), i = 0;
	if (env_check(o, &ed->bytes, e) < 0)
		return -1;
	if (!(ed->env = calloc(n + 1, sizeof(char *))) || !(ed->buf = malloc(ed->bytes + 1)))
		return fail(e, "ENOMEM", "out of memory");
	char *p = ed->buf;
	env_put(o, NULL, ed->env, &i, &p);
	ed->obj = o;
	return 0;
}

void dd_envdec_free(struct dd_envdec *ed)
{
	free(ed->env);
	free(ed->buf);
	memset(ed, 0, sizeof(*ed));
}

/* The job's own "env" (@o, may be NULL) over the batch's (@shared). A job
 * with none of its own points at the batch's strings, decoded once. */
static int job_env(json_t *o, const struct dd_envdec *shared, struct dd_jobdec *jd,
		   struct dd_perr *e)
{
	size_t bytes = 0;
	if (o && env_check(o, &bytes, e) < 0)
		return -1;
	if (!o || !json_object_size(o)) {
		if (shared && shared->env)
			jd->exec.env = shared->env;
		else if (o && !(jd->exec.env = jd->env = calloc(1, sizeof(char *))))
			return fail(e, "ENOMEM", "out of memory");
		return 0;
	}
	size_t n = json_object_size(o), i = 0;
	if (shared && shared->obj) {
		n += json_object_size(shared->obj);
		bytes += shared->bytes;
	}
	if (!(jd->env = calloc(n + 1, sizeof(char *))) || !(jd->envbuf = malloc(bytes + 1)))
		return fail(e, "ENOMEM", "out of memory");
	char *p = jd->envbuf;
	if (shared && shared->obj)
		env_put(shared->obj, o, jd->env, &i, &p);
	env_put(o, NULL, jd->env, &i, &p);
	jd->exec.env = jd->env;
	return 0;
}

/* "umask", "stdin", "stdin_fd": the process's context beyond cwd and env.
 * The descriptor itself is the server's to supply (stdin_fd stays -1). */
static int job_context(json_t *o, struct dd_jobdec *jd, struct dd_perr *e)
{
	json_t *v;
	jd->exec.stdin_fd = -1;
	if ((v = json_object_get(o, "umask"))) {
		json_int_t m = json_integer_value(v);
		if (m < 0 || m > 0777)
			return fail(e, "EINVAL", "'umask' is 0 to 0777 (511)");
		jd->exec.flags |= DD_EXEC_UMASK;
		jd->exec.umask = (unsigned)m;
	}
	if ((v = json_object_get(o, "stdin"))) {
		const char *path = json_string_value(v);
		if (path[0] != '/' || strlen(path) != json_string_length(v))
			return fail(e, "EINVAL", "'stdin' is an absolute path");
		jd->exec.stdin_path = path;
	}
	if (json_is_true(json_object_get(o, "stdin_fd"))) {
		if (jd->exec.stdin_path)
			return fail(e, "EINVAL", "give 'stdin' or 'stdin_fd', not both");
		jd->exec.flags |= DD_EXEC_STDIN_FD;
	}
	return 0;
}

static int job_rlimits(json_t *o, struct dd_jobdec *jd, struct dd_perr *e)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		size_t r = 0;
		while (r < sizeof(RLIMITS) / sizeof(RLIMITS[0]) && strcmp(RLIMITS[r].name, k))
			r++;
		if (r == sizeof(RLIMITS) / sizeof(RLIMITS[0]))
			return fail(e, "EINVAL", "unknown rlimit '%.32s'", k);
		json_int_t cur, max;
		if (json_is_integer(v)) {
			cur = max = json_integer_value(v);
		} else if (json_is_array(v) && json_array_size(v) == 2 &&
			   json_is_integer(json_array_get(v, 0)) &&
			   json_is_integer(json_array_get(v, 1))) {
			cur = json_integer_value(json_array_get(v, 0));
			max = json_integer_value(json_array_get(v, 1));
		} else {
			return fail(e, "EINVAL", "rlimit '%s' is N or [soft, hard]", k);
		}
		if (cur < 0 || max < 0 || cur > max)
			return fail(e, "EINVAL", "rlimit '%s': 0 <= soft <= hard", k);
		if (jd->exec.nrlimits >= DD_RLIMITS_MAX)
			return fail(e, "E2BIG", "too many rlimits");
		jd->rl[jd->exec.nrlimits++] = (struct dd_rlimit){
			.resource = RLIMITS[r].res, .cur = (uint64_t)cur, .max = (uint64_t)max};
	}
	jd->exec.rlimits = jd->rl;
	return 0;
}

/* "after" (ids that must succeed) and "dependency" (Slurm's syntax), the
 * two together: @a and @text, either may be NULL. */
static int job_deps(json_t *a, const char *text, struct dd_jobdec *jd, struct dd_perr *e)
{
	size_t n = json_array_size(a);
	if (n > DD_DEPS_MAX)
		return fail(e, "E2BIG", "'after' holds at most %u ids", DD_DEPS_MAX);
	size_t room = text ? DD_DEPS_MAX : n;
	if (room && (!(jd->deps = malloc(room * sizeof(uint64_t))) ||
		     !(jd->kinds = calloc(room, 1))))
		return fail(e, "ENOMEM", "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_integer(v) || json_integer_value(v) <= 0)
			return fail(e, "EINVAL", "'after' holds job ids");
		jd->deps[i] = (uint64_t)json_integer_value(v);
	}
	char why[160] = "";
	int r = text ? dd_depspec_parse(text, jd->deps, jd->kinds, DD_DEPS_MAX, &n, why, sizeof(why))
		     : 0;
	if (r == -E2BIG)
		return fail(e, "E2BIG", "'after' and 'dependency' hold at most %u ids", DD_DEPS_MAX);
	if (r < 0)
		return fail(e, "EINVAL", "'dependency': %s", why);
	jd->spec.deps = jd->deps;
	jd->spec.ndeps = (uint32_t)n;
	jd->spec.dep_kinds = text ? jd->kinds : NULL;
	return 0;
}

static int job_priority(json_t *v, struct dd_jobdec *jd, struct dd_perr *e)
{
	static const char *const names[] = {"urgent", "high", "normal", "low"};
	if (json_is_integer(v)) {
		json_int_t p = json_integer_value(v);
		if (p < 0 || p > 3)
			return fail(e, "EINVAL", "'priority' is 0 (urgent) to 3 (low)");
		jd->spec.priority = (int)p;
		return 0;
	}
	for (int i = 0; i < 4; i++)
		if (!strcmp(json_string_value(v), names[i])) {
			jd->spec.priority = i;
			return 0;
		}
	return fail(e, "EINVAL", "'priority' is urgent, high, normal or low");
}

static int job_payload(json_t *o, struct dd_jobdec *jd, struct dd_perr *e)
{
	json_t *p = json_object_get(o, "payload"), *b = json_object_get(o, "payload_b64");
	if (p && b)
		return fail(e, "EINVAL", "give 'payload' or 'payload_b64', not both");
	if (!p && !b)
		return 0;
	size_t len = json_string_length(p ? p : b);
	if ((p ? len : len / 4 * 3) > DD_PAYLOAD_MAX)
		return fail(e, "E2BIG", "payload over %u bytes", DD_PAYLOAD_MAX);
	if (!(jd->payload = malloc(len + 1)))
		return fail(e, "ENOMEM", "out of memory");
	if (p) {
		memcpy(jd->payload, json_string_value(p), len);
	} else {
		long n = dd_b64_decode(json_string_value(b), len, jd->payload);
		if (n < 0)
			return fail(e, "EINVAL", "'payload_b64' is not base64");
		len = (size_t)n;
	}
	jd->spec.payload = jd->payload;
	jd->spec.payload_len = len;
	return 0;
}

/* "output" or "error" (@key): a path pattern (dd_output_pattern), checked
 * by expanding it once. */
static int job_output(json_t *o, const char *key, const char **path, struct dd_perr *e)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	const char *s = json_string_value(v);
	char buf[4096];
	int r = strlen(s) == json_string_length(v) && s[0]
			? dd_output_pattern(s, 1, 0, -1, "n", "u", buf, sizeof(buf))
			: -EINVAL;
	if (r == -EINVAL)
		return fail(e, "EINVAL", "'%s' is a path, with %%j (job id), %%A (array id), %%a "
					 "(array index), %%x (name), %%u (user), %%N (host), %%%% ('%%')",
			    key);
	if (r < 0)
		return fail(e, "EINVAL", "'%s': the path is too long", key);
	*path = s;
	return 0;
}

/* "array": Slurm's syntax (dd_array_parse). */
static int job_array(json_t *v, struct dd_jobdec *jd, struct dd_perr *e)
{
	char why[200] = "";
	uint64_t count;
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(e, "EINVAL", "'array' is a text such as \"1-100%%4\"");
	if (jd->exec.flags & DD_EXEC_STDIN_FD)
		return fail(e, "EINVAL", "the elements of an array cannot share one 'stdin_fd'");
	if (!(jd->ranges = malloc(DD_ARRAY_RANGES_MAX * sizeof(*jd->ranges))))
		return fail(e, "ENOMEM", "out of memory");
	if (dd_array_parse(json_string_value(v), jd->ranges, DD_ARRAY_RANGES_MAX, &jd->array.nranges,
			   &jd->array.max_running, &count, why, sizeof(why)) < 0)
		return fail(e, "EINVAL", "'array': %s", why);
	jd->array.ranges = jd->ranges;
	jd->spec.array = &jd->array;
	return 0;
}

int dd_proto_job(json_t *o, bool top, const struct dd_envdec *shared, struct dd_jobdec *jd,
		 struct dd_perr *e)
{
	memset(jd, 0, sizeof(*jd));
	if (!json_is_object(o))
		return fail(e, "EINVAL", "a job is an object");
	if (check_fields(o, F_JOB, top, e) < 0)
		return -1;
	struct dd_job_spec *s = &jd->spec;
	s->priority = DD_PRIO_NORMAL;
	s->node = s->shard = -1;
	json_t *v;
	const char *q = "default";
	if ((v = json_object_get(o, "queue"))) {
		q = json_string_value(v);
		if (!q[0] || json_string_length(v) >= sizeof(jd->queue) ||
		    strlen(q) != json_string_length(v))
			return fail(e, "EINVAL", "'queue' is 1 to 63 bytes");
	}
	strcpy(jd->queue, q);
	s->kind = jd->queue;
	if ((v = json_object_get(o, "argv"))) {
		if (job_argv(v, jd, e) < 0)
			return -1;
		s->exec = &jd->exec;
		if (job_env(json_object_get(o, "env"), shared, jd, e) < 0 ||
		    job_context(o, jd, e) < 0)
			return -1;
		jd->exec.env_replace = json_is_true(json_object_get(o, "env_replace"));
		if ((v = json_object_get(o, "cwd"))) {
			if (!json_string_value(v)[0] || strlen(json_string_value(v)) != json_string_length(v))
				return fail(e, "EINVAL", "'cwd' is a path");
			jd->exec.cwd = json_string_value(v);
		}
		if ((v = json_object_get(o, "rlimits")) && job_rlimits(v, jd, e) < 0)
			return -1;
		if (job_output(o, "output", &jd->exec.stdout_path, e) < 0 ||
		    job_output(o, "error", &jd->exec.stderr_path, e) < 0)
			return -1;
		uint64_t om;
		if (dd_get_u64(o, "output_max", &om))
			jd->exec.output_max = om ? om : 1; /* 0 would mean "the default" */
		else if (json_object_get(o, "output_max"))
			return fail(e, "EINVAL", "'output_max' is bytes, >= 0");
		if (!dd_get_u64(o, "mem", &jd->exec.mem) && json_object_get(o, "mem"))
			return fail(e, "EINVAL", "'mem' is bytes, >= 0 (0: no limit)");
		uint64_t cpus = 1;
		if ((!dd_get_u64(o, "cpus", &cpus) && json_object_get(o, "cpus")) || cpus < 1 ||
		    cpus > DD_EXEC_CPUS_MAX)
			return fail(e, "EINVAL", "'cpus' is 1 to %u", DD_EXEC_CPUS_MAX);
		jd->exec.cpus = (unsigned)cpus;
		if (json_object_get(o, "payload") || json_object_get(o, "payload_b64"))
			return fail(e, "EINVAL", "a process job (argv) has no payload");
	} else {
		static const char *const exec_only[] = {"env",	   "env_replace", "cwd",
							"rlimits", "output_max",  "umask",
							"stdin",   "stdin_fd",	  "mem",
							"cpus",    "output",	  "error"};
		for (size_t i = 0; i < sizeof(exec_only) / sizeof(exec_only[0]); i++)
			if (json_object_get(o, exec_only[i]))
				return fail(e, "EINVAL", "'%s' needs 'argv'", exec_only[i]);
		if (job_payload(o, jd, e) < 0)
			return -1;
	}
	if ((v = json_object_get(o, "priority")) && job_priority(v, jd, e) < 0)
		return -1;
	json_t *dv = json_object_get(o, "dependency");
	if (dv && strlen(json_string_value(dv)) != json_string_length(dv))
		return fail(e, "EINVAL", "'dependency' is a text such as \"afterok:12:13,afterany:14\"");
	if (((v = json_object_get(o, "after")) || dv) &&
	    job_deps(v, dv ? json_string_value(dv) : NULL, jd, e) < 0)
		return -1;
	if (secs(o, "delay", &s->delay_ns, e) < 0 || secs(o, "timeout", &s->timeout_ns, e) < 0 ||
	    secs(o, "backoff", &s->backoff_ns, e) < 0)
		return -1;
	if ((v = json_object_get(o, "retries"))) {
		json_int_t r = json_integer_value(v);
		if (r < 0 || r > 1000000)
			return fail(e, "EINVAL", "'retries' is 0 to 1000000");
		s->max_attempts = (uint32_t)r + 1;
	}
	if ((v = json_object_get(o, "key"))) {
		size_t kl = json_string_length(v);
		if (!kl || kl > DD_KEY_MAX || strlen(json_string_value(v)) != kl)
			return fail(e, "EINVAL", "'key' is 1 to %u bytes", DD_KEY_MAX);
		s->idem_key = json_string_value(v);
	}
	if ((v = json_object_get(o, "durability"))) {
		enum dd_durability d;
		if (dd_durability_parse(json_string_value(v), &d) < 0)
			return fail(e, "EINVAL", "'durability' is none, buffered or fsync");
		s->durability = d;
	}
	if (json_is_true(json_object_get(o, "strict")))
		s->flags |= DD_JOB_STRICT;
	if ((v = json_object_get(o, "array")) && job_array(v, jd, e) < 0)
		return -1;
	if ((v = json_object_get(o, "name"))) {
		size_t nl = json_string_length(v);
		const char *nm = json_string_value(v);
		bool printable = true;
		for (size_t i = 0; i < nl; i++) /* it is shown in other users' tables */
			printable &= (unsigned char)nm[i] >= ' ' && nm[i] != 0x7f;
		if (!nl || nl > DD_NAME_MAX || strlen(nm) != nl || !printable)
			return fail(e, "EINVAL", "'name' is 1 to %u bytes of printable text", DD_NAME_MAX);
		s->name = json_string_value(v);
	}
	return 0;
}

void dd_jobdec_free(struct dd_jobdec *jd)
{
	free(jd->argv);
	free(jd->env);
	free(jd->envbuf);
	free(jd->deps);
	free(jd->kinds);
	free(jd->payload);
	free(jd->ranges);
	memset(jd, 0, sizeof(*jd));
}

/* ---- errors ---- */

void dd_perr_engine(struct dd_perr *e, int err, const char *what)
{
	static const struct {
		int err;
		const char *code;
	} map[] = {
		{DD_ETERMINAL, "ETERMINAL"}, {DD_ENOHANDLER, "ENOQUEUE"}, {DD_EDEPS, "EDEPS"},
		{DD_ESHUTDOWN, "ESHUTDOWN"}, {DD_EEVICTED, "EEVICTED"}, {DD_ESTOREFULL, "ESTOREFULL"},
		{DD_ERESOURCES, "ERESOURCES"},
		{-EINVAL, "EINVAL"}, {-ENOENT, "ENOENT"}, {-EAGAIN, "EAGAIN"}, {-E2BIG, "E2BIG"},
		{-ETIMEDOUT, "ETIMEDOUT"}, {-ENOSPC, "ENOSPC"}, {-EIO, "EIO"}, {-ENOMEM, "ENOMEM"},
		{-ESTALE, "ESTALE"}, {-EMFILE, "EMFILE"}, {-EPERM, "EPERM"}, {-EOPNOTSUPP, "ENOTSUP"},
		{-ESRCH, "ESRCH"}, {-ENOSYS, "ENOSYS"},
	};
	e->code = "EIO";
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].err == err)
			e->code = map[i].code;
	snprintf(e->msg, sizeof(e->msg), "%s: %s", what, dd_strerror(err));
}
