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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dd_req r;
	struct dd_perr e;
	if (dd_fastsub_agrees((const char *)data, size) < 0)
		abort(); /* the fast path took it otherwise than the full decoder */
	if (dd_proto_parse((const char *)data, size, &r, &e) == 0) {
		struct dd_jobdec jd;
		if (r.op == OP_SUBMIT) {
			if (dd_proto_job(r.root, true, &jd, &e) == 0 && !jd.spec.kind)
				abort(); /* a decoded job always has a queue */
			dd_jobdec_free(&jd);
		} else if (r.op == OP_SUBMIT_BATCH) {
			size_t i;
			json_t *j;
			json_array_foreach(json_object_get(r.root, "jobs"), i, j)
			{
				dd_proto_job(j, false, &jd, &e);
				dd_jobdec_free(&jd);
			}
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
		/* shapes the submit_batch fast path takes */
		"{\"op\":\"submit_batch\",\"tag\":\"0000000001\",\"jobs\":[{\"queue\":\"dispatchd.noop\","
		"\"payload\":\"frame-000017.png\"},{\"queue\":\"dispatchd.noop\",\"payload\":\"\"}]}",
		"{ \"jobs\" : [ {\"priority\":\"low\",\"key\":\"k1\",\"durability\":\"none\"} ,"
		"{\"priority\":3,\"queue\":\"a\"},{}], \"tag\": -12, \"op\":\"submit_batch\" }\t",
		NULL,
	};
	return dd_fuzz_text_seeds(seeds, n);
}
