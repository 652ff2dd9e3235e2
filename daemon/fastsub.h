/* The submit_batch fast path: a decoder for the plain batches that a
 * high-rate client sends, with no allocation per job.
 *
 * It accepts a strict subset of what dd_proto_parse() + dd_proto_job()
 * accept, and decodes it to the same job specs: the request object with
 * "op":"submit_batch", an optional "tag" (a plain string or an integer)
 * and "jobs", whose objects hold only "queue", "payload", "priority",
 * "durability" and "key". Strings are plain: printable ASCII without
 * escapes. Anything else, including every error, it declines, and the
 * caller runs the full decoder, which gives the answer or the error. So
 * the protocol is exactly the one docs/PROTOCOL.md describes whichever
 * decoder ran; the request fuzz target checks that they agree.
 *
 * Why: jansson builds a hash table per job object and the daemon then
 * walks it, a large share of the daemon's main thread at a high submit
 * rate (measured: docs/BENCHMARKS.md, "Measured choices: submit fast path"). */
#ifndef DD_DAEMON_FASTSUB_H
#define DD_DAEMON_FASTSUB_H

#include <jansson.h>
#include <stddef.h>

#include "dispatchd.h"

struct dd_fastsub {
	struct dd_job_spec *specs; /* n of them; kind and idem_key point into
				    * strs, payload into the request line */
	size_t n, cap;
	char *strs;                /* NUL-terminated copies of queues and keys */
	size_t strs_len, strs_cap;
	json_t *tag;               /* owned, NULL when the request had none */
};

/* Decodes @line (one request, without its newline) when it is a plain
 * batch of at most @max_jobs jobs. Returns 1 with @fs filled (valid until
 * the next call, and while @line lives), 0 when it declines; the buffers
 * in @fs are reused from call to call. */
int dd_fastsub_parse(struct dd_fastsub *fs, const char *line, size_t len, size_t max_jobs);

/* Frees what dd_fastsub_parse() kept. */
void dd_fastsub_free(struct dd_fastsub *fs);

#endif
