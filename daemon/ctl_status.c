/* dispatchctl status, and submit --wait: what the generic cluster
 * interfaces of workflow engines call (a "status command" given job ids,
 * a submit that blocks until its job is done). One word per job, as those
 * interfaces expect: pending, running, success, failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* The word for a job's state: one that has not started is pending (also
 * while it waits for a dependency, a delay or room), one that ended any
 * way but succeeded has failed (cancelled and timed out too: a workflow
 * engine reruns or stops either way). */
static const char *status_word(const char *state)
{
	if (!state)
		return "unknown";
	if (!strcmp(state, "waiting") || !strcmp(state, "delayed") || !strcmp(state, "queued"))
		return "pending";
	if (!strcmp(state, "running"))
		return "running";
	return !strcmp(state, "succeeded") ? "success" : "failed";
}

int dd_ctl_status(struct ctl *c, const json_int_t *ids, size_t n, bool json_out)
{
	int rc = 0;
	json_t *all = json_out ? json_array() : NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *resp = dd_ctl_call(c, json_pack("{s:s, s:I}", "op", "get", "id", ids[i]));
		json_t *r = dd_ctl_result(resp); /* a job it does not know: said on stderr */
		const char *state =
			r ? json_string_value(json_object_get(json_object_get(r, "job"), "state")) : NULL;
		const char *w = status_word(state);
		if (!state)
			rc = 1;
		if (all)
			json_array_append_new(all, json_pack("{s:I, s:s}", "id", ids[i], "status", w));
		else
			puts(w);
		json_decref(resp);
	}
	if (all) {
		json_t *o = json_pack("{s:o}", "statuses", all);
		char *s = json_dumps(o, JSON_INDENT(2));
		if (s)
			puts(s);
		free(s);
		json_decref(o);
	}
	fflush(stdout);
	return rc;
}

int dd_ctl_job_exit(json_t *job)
{
	json_t *ec = json_object_get(job, "exit_code"), *sig = json_object_get(job, "signal");
	const char *state = json_string_value(json_object_get(job, "state"));
	if (json_is_integer(ec))
		return (int)json_integer_value(ec);
	if (json_is_integer(sig))
		return 128 + (int)json_integer_value(sig);
	return state && !strcmp(state, "succeeded") ? 0 : 1;
}

int dd_ctl_wait_exit(struct ctl *c, json_int_t id, bool json_out)
{
	json_t *resp = dd_ctl_call(c, json_pack("{s:s, s:I}", "op", "wait", "id", id));
	json_t *r = dd_ctl_result(resp);
	if (!r) {
		json_decref(resp);
		return 1;
	}
	json_t *job = json_object_get(r, "job");
	int code = dd_ctl_job_exit(job);
	if (json_out) {
		char *s = json_dumps(job, JSON_INDENT(2));
		if (s)
			puts(s);
		free(s);
	} else if (code) {
		const char *reason = json_string_value(json_object_get(job, "reason"));
		fprintf(stderr, "dispatchctl: job %lld %s: %s\n", (long long)id,
			json_string_value(json_object_get(job, "state")), reason ? reason : "");
	}
	json_decref(resp);
	return code;
}
