/* dd_array_parse(): Slurm's --array syntax into sorted, disjoint ranges.
 * Bytes from a socket reach it (the daemon parses what a client sent), so
 * it trusts nothing and has a fuzz target (test/fuzz/fuzz_array.c). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dispatchd.h"

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t whyn,
							 const char *fmt, ...)
{
	if (!why || !whyn)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whyn, fmt, ap);
	va_end(ap);
}

/* A decimal number at *p, at most @max, moving *p past it. Returns 0 or
 * -EINVAL (no digit, or over @max). */
static int number(const char **p, uint64_t max, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -EINVAL;
		s++;
	}
	*p = s;
	*out = v;
	return 0;
}

static uint64_t range_count(const struct dd_array_range *r)
{
	return (uint64_t)(r->last - r->first) / r->step + 1;
}

int dd_array_parse(const char *text, struct dd_array_range *ranges, unsigned max, unsigned *n,
		   uint32_t *max_running, uint64_t *count, char *why, size_t whyn)
{
	const char *p = text;
	unsigned k = 0;
	uint64_t total = 0, cap = 0;
	if (!text || !*text) {
		say(why, whyn, "an empty array: give indices such as 1-100");
		return -EINVAL;
	}
	for (;;) {
		uint64_t a, b, st = 1;
		if (number(&p, DD_ARRAY_INDEX_MAX, &a) < 0)
			goto syntax;
		b = a;
		if (*p == '-') {
			p++;
			if (number(&p, DD_ARRAY_INDEX_MAX, &b) < 0)
				goto syntax;
			if (*p == ':') {
				p++;
				if (number(&p, DD_ARRAY_INDEX_MAX, &st) < 0 || st == 0)
					goto syntax;
			}
			if (b < a) {
				say(why, whyn, "array range %llu-%llu runs backwards", (unsigned long long)a,
				    (unsigned long long)b);
				return -EINVAL;
			}
		}
		if (k == max) {
			say(why, whyn, "over %u ranges in one array", max);
			return -E2BIG;
		}
		struct dd_array_range r = {(uint32_t)a, (uint32_t)(a + (b - a) / st * st), (uint32_t)st};
		/* sorted as they come: the lists people write are short */
		unsigned at = k;
		while (at > 0 && ranges[at - 1].first > r.first) {
			ranges[at] = ranges[at - 1];
			at--;
		}
		ranges[at] = r;
		k++;
		total += range_count(&r);
		if (total > DD_ARRAY_MAX) {
			say(why, whyn, "over %u elements in one array", DD_ARRAY_MAX);
			return -E2BIG;
		}
		if (*p != ',')
			break;
		p++;
	}
	if (*p == '%') {
		p++;
		if (number(&p, DD_ARRAY_MAX, &cap) < 0 || cap == 0)
			goto syntax;
	}
	if (*p)
		goto syntax;
	for (unsigned i = 1; i < k; i++)
		if (ranges[i].first <= ranges[i - 1].last) {
			/* elements run in index order, so ranges may not interleave */
			say(why, whyn, "array indices %llu and %llu overlap: an index may appear once, "
				       "and ranges may not interleave", (unsigned long long)ranges[i - 1].first,
			    (unsigned long long)ranges[i].first);
			return -EINVAL;
		}
	*n = k;
	*max_running = (uint32_t)cap;
	*count = total;
	return 0;
syntax:
	say(why, whyn, "not an array (at byte %llu): give indices as 1-100, 0-98:2, 1,3,5-9, "
		       "each list optionally ending %%MAX", (unsigned long long)(p - text));
	return -EINVAL;
}
