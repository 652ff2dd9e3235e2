/* Reply parsers: see reply.h. Neither trusts the server: lengths are
 * bounded, numbers checked, nesting limited. */
#include <string.h>

#include "reply.h"

/* The line at @buf ending in CRLF: its length without the CRLF, -2 when
 * no CRLF within @max bytes, -1 when more bytes are needed. */
static ssize_t line_end(const char *buf, size_t len, size_t max)
{
	for (size_t i = 0; i + 1 < len && i < max; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n')
			return (ssize_t)i;
	return len >= max ? -2 : -1;
}

/* A decimal number of at most 19 digits, all of [p, p+n). */
static int parse_u64(const char *p, size_t n, uint64_t *out)
{
	if (n == 0 || n > 19)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

ssize_t bs_parse(const char *buf, size_t len, struct bs_reply *out)
{
	ssize_t n = line_end(buf, len, BS_LINE_MAX);
	if (n == -1)
		return 0;
	if (n < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	size_t w = 0;
	while (w < (size_t)n && buf[w] != ' ')
		w++;
	if (w == 0 || w >= sizeof(out->word))
		return -1;
	memcpy(out->word, buf, w);
	const char *arg = buf + w + 1, *end = buf + n;
	size_t used = (size_t)n + 2;
	if (!strcmp(out->word, "INSERTED") || !strcmp(out->word, "BURIED")) {
		out->kind = out->word[0] == 'I' ? BS_INSERTED : BS_ERROR;
		if (arg > end || parse_u64(arg, (size_t)(end - arg), &out->id))
			return -1;
		return (ssize_t)used;
	}
	if (!strcmp(out->word, "RESERVED")) {
		const char *sp = arg <= end ? memchr(arg, ' ', (size_t)(end - arg)) : NULL;
		uint64_t bytes;
		if (!sp || parse_u64(arg, (size_t)(sp - arg), &out->id) ||
		    parse_u64(sp + 1, (size_t)(end - sp - 1), &bytes) || bytes > BS_BODY_MAX)
			return -1;
		if (len < used + bytes + 2)
			return 0;
		if (buf[used + bytes] != '\r' || buf[used + bytes + 1] != '\n')
			return -1;
		out->kind = BS_RESERVED;
		out->body = buf + used;
		out->body_len = (size_t)bytes;
		return (ssize_t)(used + bytes + 2);
	}
	if ((size_t)n != w) /* the rest take no argument */
		return -1;
	if (!strcmp(out->word, "DELETED"))
		out->kind = BS_DELETED;
	else if (!strcmp(out->word, "TIMED_OUT"))
		out->kind = BS_TIMED_OUT;
	else if (!strcmp(out->word, "DEADLINE_SOON"))
		out->kind = BS_DEADLINE_SOON;
	else
		out->kind = BS_ERROR;
	return (ssize_t)used;
}

/* Signed decimal, at most 18 digits. */
static int parse_ll(const char *p, size_t n, long long *out)
{
	int neg = n > 0 && p[0] == '-';
	uint64_t v;
	if (parse_u64(p + neg, n - (size_t)neg, &v) || v > 999999999999999999ull)
		return -1;
	*out = neg ? -(long long)v : (long long)v;
	return 0;
}

/* One value at @buf; @depth 0 is the top. Bytes used, 0 or -1. */
static ssize_t value(const char *buf, size_t len, int depth, struct resp_reply *top,
		     resp_bulk_fn on_bulk, void *arg, int call)
{
	if (depth > RESP_DEPTH_MAX)
		return -1;
	ssize_t n = line_end(buf, len, 64 * 1024);
	if (n == -1)
		return 0;
	if (n < 1)
		return -1;
	char type = buf[0];
	size_t used = (size_t)n + 2;
	long long v = 0;
	if (depth == 0)
		*top = (struct resp_reply){.type = type};
	switch (type) {
	case '+':
	case '-':
		if (depth == 0) {
			top->str = buf + 1;
			top->str_len = (size_t)n - 1;
		}
		return (ssize_t)used;
	case ':':
		if (parse_ll(buf + 1, (size_t)n - 1, &v))
			return -1;
		if (depth == 0)
			top->integer = v;
		return (ssize_t)used;
	case '$':
		if (parse_ll(buf + 1, (size_t)n - 1, &v) || v < -1 || v > RESP_BULK_MAX)
			return -1;
		if (v == -1) {
			if (depth == 0)
				top->nil = 1;
			return (ssize_t)used;
		}
		if (len < used + (size_t)v + 2)
			return 0;
		if (buf[used + (size_t)v] != '\r' || buf[used + (size_t)v + 1] != '\n')
			return -1;
		if (depth == 0) {
			top->str = buf + used;
			top->str_len = (size_t)v;
		} else if (call && on_bulk) {
			on_bulk(depth, buf + used, (size_t)v, arg);
		}
		return (ssize_t)(used + (size_t)v + 2);
	case '*':
		if (parse_ll(buf + 1, (size_t)n - 1, &v) || v < -1 || v > RESP_ELEMS_MAX)
			return -1;
		if (v == -1) {
			if (depth == 0)
				top->nil = 1;
			return (ssize_t)used;
		}
		if (depth == 0)
			top->integer = v;
		for (long long i = 0; i < v; i++) {
			ssize_t k = value(buf + used, len - used, depth + 1, top, on_bulk, arg, call);
			if (k <= 0)
				return k;
			used += (size_t)k;
		}
		return (ssize_t)used;
	default:
		return -1;
	}
}

ssize_t resp_parse(const char *buf, size_t len, struct resp_reply *out, resp_bulk_fn on_bulk,
		   void *arg)
{
	/* first check that the whole reply is here, then walk it again
	 * calling back: a callback never sees half a reply */
	ssize_t n = value(buf, len, 0, out, NULL, NULL, 0);
	if (n > 0 && on_bulk)
		value(buf, len, 0, out, on_bulk, arg, 1);
	return n;
}
