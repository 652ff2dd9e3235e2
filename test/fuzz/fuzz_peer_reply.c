/* Fuzz target: bench/peers' reply parsers (beanstalkd text, Redis RESP).
 * Whatever the bytes, a parser must not read past them, must report sizes
 * inside them, and must make progress or stop. */
#include <stdlib.h>
#include <string.h>

#include "reply.h"

#include "fuzz.h"

struct span {
	const char *lo, *hi;
};

static void on_bulk(int depth, const char *p, size_t n, void *arg)
{
	const struct span *s = arg;
	if (depth < 1 || depth > RESP_DEPTH_MAX || p < s->lo || p + n > s->hi)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a copy of exactly @size bytes: ASan sees any read past them */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct span sp = {buf, buf + size};
	for (size_t off = 0; off < size;) {
		struct bs_reply r;
		ssize_t n = bs_parse(buf + off, size - off, &r);
		if (n <= 0)
			break;
		if ((size_t)n > size - off || !memchr(r.word, 0, sizeof(r.word)))
			abort();
		if (r.kind == BS_RESERVED && (r.body < buf + off || r.body + r.body_len > buf + off + n))
			abort();
		off += (size_t)n;
	}
	for (size_t off = 0; off < size;) {
		struct resp_reply r;
		ssize_t n = resp_parse(buf + off, size - off, &r, on_bulk, &sp);
		if (n <= 0)
			break;
		if ((size_t)n > size - off || (r.str && (r.str < buf || r.str + r.str_len > buf + size)))
			abort();
		off += (size_t)n;
	}
	free(buf);
	return 0;
}

const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static const char *const seeds[] = {
		"INSERTED 12\r\nRESERVED 7 16\r\n0000000000000001\r\nDELETED\r\nTIMED_OUT\r\n",
		"BURIED 3\r\nJOB_TOO_BIG\r\nDEADLINE_SOON\r\nRESERVED 1 0\r\n\r\n",
		":1000\r\n*2\r\n$1\r\nq\r\n*2\r\n$16\r\n0000000000000001\r\n$3\r\nabc\r\n",
		"+OK\r\n-ERR wrong\r\n*-1\r\n$-1\r\n$5\r\nhello\r\n*0\r\n",
		NULL,
	};
	return dd_fuzz_text_seeds(seeds, n);
}
