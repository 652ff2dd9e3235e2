/* Fuzz target: the daemon's request decoder (daemon/proto.c) — one request
 * line, then, for a submit or each job of a batch, the job decoder — and
 * the submit_batch fast path (daemon/fastsub.c), which must agree with it:
 * whatever the fast path accepts, the full decoder accepts too, as the
 * same tag and the same job specs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastsub_agree.h"
#include "proto.h"

#include "fuzz.h"

/* What a decoded process job's spec must hold whatever the input: its
 * env strings "K=V" with each name once (a job's own env over the
 * batch's), its umask in 0..0777, its stdin absolute, and no descriptor
 * (the server supplies that). */
static void check_exec(const struct dd_jobdec *jd)
{
	const struct dd_exec_spec *x = jd->spec.exec;
	if (!x)
		return;
	for (size_t i = 0; x->env && x->env[i]; i++) {
		const char *eq = strchr(x->env[i], '=');
		if (!eq || eq == x->env[i])
			abort();
		for (size_t k = 0; k < i; k++)
			if (!strncmp(x->env[k], x->env[i], (size_t)(eq - x->env[i]) + 1))
				abort();
	}
	if (((x->flags & DD_EXEC_UMASK) && x->umask > 0777) ||
	    (x->stdin_path && x->stdin_path[0] != '/') || x->stdin_fd != -1 ||
	    (x->stdin_path && (x->flags & DD_EXEC_STDIN_FD)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dd_req r;
	struct dd_perr e;
	if (dd_fastsub_agrees((const char *)data, size) < 0)
		abort(); /* the fast path took it otherwise than the full decoder */
	if (dd_proto_parse((const char *)data, size, &r, &e) == 0) {
		struct dd_jobdec jd;
		if (r.op == OP_SUBMIT) {
			if (dd_proto_job(r.root, true, NULL, &jd, &e) == 0) {
				if (!jd.spec.kind)
					abort(); /* a decoded job always has a queue */
				check_exec(&jd);
			}
			dd_jobdec_free(&jd);
		} else if (r.op == OP_SUBMIT_BATCH) {
			size_t i;
			json_t *j;
			struct dd_envdec env;
			if (dd_proto_batch_env(r.root, &env, &e) == 0)
				json_array_foreach(json_object_get(r.root, "jobs"), i, j)
				{
					if (dd_proto_job(j, false, &env, &jd, &e) == 0)
						check_exec(&jd);
					dd_jobdec_free(&jd);
				}
			dd_envdec_free(&env);
		}
		uint64_t u;
		dd_get_u64(r.root, "id", &u);
		dd_get_secs(r.root, "timeout", &u);
	} else if (!e.code || !e.msg[0]) {
		abort(); /* every refusal says why */
	}
	dd_req_free(&r);
	/* base64 of whatever came in */
	unsigned char *out = malloc(size / 4 * 3 + 3);
	if (out) {
		long n = dd_b64_decode((const char *)data, size, out);
		if (n > (long)(size / 4 * 3))
			abort();
		free(out);
	}
	return 0;
}

const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static const char *const seeds[] = {
		"{\"op\":\"ping\",\"tag\":1}",
		"{\"op\":\"submit\",\"argv\":[\"sh\",\"-c\",\"exit 3\"],\"env\":{\"A\":\"b\"},\"cwd\":\"/tmp\","
		"\"priority\":\"high\",\"after\":[1,2],\"delay\":0.5,\"timeout\":3,\"retries\":2,"
		"\"backoff\":0.1,\"key\":\"k\",\"rlimits\":{\"nofile\":[10,20],\"cpu\":5},"
		"\"output_max\":100,\"durability\":\"buffered\",\"strict\":true,\"queue\":\"q\"}",
		"{\"op\":\"submit\",\"queue\":\"w\",\"payload\":\"hello\"}",
		"{\"op\":\"submit\",\"queue\":\"w\",\"payload_b64\":\"aGVsbG8=\"}",
		"{\"op\":\"submit_batch\",\"jobs\":[{\"argv\":[\"true\"]},{\"queue\":\"x\",\"payload\":\"p\"}]}",
		"{\"op\":\"wait\",\"ids\":[1,2,3],\"timeout\":1.5}",
		"{\"op\":\"list\",\"state\":\"queued\",\"queue\":\"q\",\"after\":7,\"limit\":10}",
		"{\"op\":\"output\",\"id\":4,\"stream\":\"stderr\",\"offset\":10,\"max\":100}",
		"{\"op\":\"output\",\"id\":4,\"attempt\":2}",
		"{\"op\":\"reserve\",\"queue\":\"w\",\"ttr\":30,\"timeout\":1}",
		"{\"op\":\"nack\",\"id\":5,\"attempt\":1,\"result\":3}",
		"{\"op\":\"touch\",\"id\":5,\"attempt\":1,\"ttr\":10}",
		"{\"op\":\"watch\",\"ids\":[1]}",
		"{\"op\":\"cancel\",\"ids\":[1,2]}",
		"{\"op\":\"auth\",\"token\":\"abc\"}",
		/* the submitter's context: umask, stdin, a batch's shared env, signal */
		"{\"op\":\"submit\",\"argv\":[\"cat\"],\"cwd\":\"/home/u\",\"umask\":18,"
		"\"stdin\":\"/etc/hostname\",\"env\":{\"PATH\":\"/bin\"},\"env_replace\":true}",
		"{\"op\":\"submit\",\"argv\":[\"cat\"],\"stdin_fd\":true,\"umask\":0}",
		"{\"op\":\"submit_batch\",\"env\":{\"A\":\"1\",\"B\":\"2\"},\"jobs\":[{\"argv\":[\"env\"]},"
		"{\"argv\":[\"env\"],\"env\":{\"B\":\"3\",\"C\":\"4\"},\"env_replace\":true},"
		"{\"argv\":[\"true\"],\"env\":{}},{\"queue\":\"w\",\"payload\":\"p\"}]}",
		"{\"op\":\"submit_batch\",\"env\":{},\"jobs\":[{\"queue\":\"q\"}]}",
		"{\"op\":\"signal\",\"id\":3,\"signal\":\"INT\"}",
		"{\"op\":\"signal\",\"id\":3,\"signal\":15}",
		"{\"op\":\"signal\",\"id\":3,\"signal\":\"SIGusr1\"}",
		/* shapes the submit_batch fast path takes */
		"{\"op\":\"submit_batch\",\"tag\":\"0000000001\",\"jobs\":[{\"queue\":\"dispatchd.noop\","
		"\"payload\":\"frame-000017.png\"},{\"queue\":\"dispatchd.noop\",\"payload\":\"\"}]}",
		"{ \"jobs\" : [ {\"priority\":\"low\",\"key\":\"k1\",\"durability\":\"none\"} ,"
		"{\"priority\":3,\"queue\":\"a\"},{}], \"tag\": -12, \"op\":\"submit_batch\" }\t",
		NULL,
	};
	return dd_fuzz_text_seeds(seeds, n);
}
