/* Reply parsers for the peers std-r is measured against: beanstalkd's
 * text protocol and Redis's RESP. Both work on a receive buffer: they
 * return the bytes one whole reply takes, 0 when more bytes are needed,
 * or -1 when the bytes are not a reply at all. Fuzzed: test/fuzz. */
#ifndef PEERS_REPLY_H
#define PEERS_REPLY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- beanstalkd ---------------------------------------------------------- */

enum bs_kind {
	BS_INSERTED,  /* put: INSERTED <id> */
	BS_RESERVED,  /* reserve: RESERVED <id> <bytes>, then the body */
	BS_DELETED,
	BS_TIMED_OUT,
	BS_DEADLINE_SOON,
	BS_ERROR,     /* anything else the server says: BURIED, JOB_TOO_BIG,
		       * DRAINING, OUT_OF_MEMORY, NOT_FOUND, BAD_FORMAT, ... */
};

struct bs_reply {
	enum bs_kind kind;
	uint64_t id;
	const char *body; /* RESERVED: points into the buffer */
	size_t body_len;
	char word[32];    /* the reply's first word, for BS_ERROR messages */
};

#define BS_LINE_MAX 256      /* the protocol's lines are at most 224 bytes */
#define BS_BODY_MAX (1u << 20)

ssize_t bs_parse(const char *buf, size_t len, struct bs_reply *out);

/* ---- Redis (RESP2) ------------------------------------------------------- */

struct resp_reply {
	char type;        /* '+', '-', ':', '$', '*'; nil bulk/array: type with nil = 1 */
	int nil;
	long long integer; /* ':' */
	const char *str;  /* '+', '-', '$' at the top: points into the buffer */
	size_t str_len;
};

#define RESP_DEPTH_MAX 4
#define RESP_ELEMS_MAX (1 << 20)
#define RESP_BULK_MAX (1 << 20)

/* @on_bulk (may be NULL) is called for every bulk string nested inside an
 * array, with its depth (1 = element of the top array). Only called once
 * the whole reply is in the buffer. */
typedef void (*resp_bulk_fn)(int depth, const char *p, size_t n, void *arg);
ssize_t resp_parse(const char *buf, size_t len, struct resp_reply *out, resp_bulk_fn on_bulk,
		   void *arg);

#endif
