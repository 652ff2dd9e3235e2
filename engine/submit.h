/* engine/ — the submission message (one MPSC cell, written by submit.c
 * on the submitting thread, taken by the reactor) and what the reactor
 * calls back in submit.c. */
#ifndef DD_ENGINE_SUBMIT_H
#define DD_ENGINE_SUBMIT_H

#include "engine.h"

struct dd_sub {
	uint64_t id;
	uint64_t intended_ns;
	uint64_t not_before_ns; /* absolute, 0 = now */
	uint64_t timeout_ns;
	uint64_t backoff_ns;
	uint64_t backoff_max_ns;
	uint32_t max_attempts;
	uint32_t payload_len;
	uint32_t ndeps;
	uint16_t handler;
	uint8_t priority;
	union {
		unsigned char inl[DD_INLINE_PAYLOAD];
		void *heap; /* arena copy, ownership passes to the record */
	} payload;
	union {
		uint64_t inl[DD_INLINE_DEPS];
		uint64_t *heap; /* arena copy, freed by the reactor */
	} deps;
	uint8_t *kinds; /* [ndeps] enum dd_dep_kind (arena copy, freed by the
			 * reactor), or NULL: all DD_DEP_AFTEROK */
	char *key; /* arena copy, owned by the record, or NULL */
	char *name; /* likewise */
	uint64_t key_hash;
	uint8_t level;  /* enum dd_durability, resolved */
	uint8_t strict; /* DD_JOB_STRICT */
	uint8_t exec;   /* the payload is an encoded process spec (exec.c) */
	uint32_t uid, gid; /* owner */
	int32_t stdin_fd;  /* DD_EXEC_STDIN_FD: the engine's copy, owned by the
			    * message and then the record; else -1 */
	struct dd_array *arr; /* an array's own job: its array (owned by the
			       * message, then the record); an element (made
			       * by the reactor): its array; else NULL */
};

/* Closes a job's copy of its standard input (@fd >= 0) */
void dd_stdin_release(struct dd_engine *e, int fd);
/* Frees the arena copies a message carries (key binding untouched) */
void dd_sub_release(struct dd_shard *s, struct dd_sub *m);

#endif
