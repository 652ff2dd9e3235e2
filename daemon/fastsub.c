/* The submit_batch fast path (fastsub.h): a scanner for one request shape.
 * Every function returns false to decline; declining is always safe, since
 * the full decoder then runs on the same line. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastsub.h"

struct scan {
	const char *p, *end;
};

/* A plain string's bytes, between its quotes. */
struct span {
	const char *s;
	size_t len;
};

static void skip_ws(struct scan *sc)
{
	while (sc->p < sc->end &&
	       (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
		sc->p++;
}

static bool take(struct scan *sc, char ch)
{
	skip_ws(sc);
	if (sc->p == sc->end || *sc->p != ch)
		return false;
	sc->p++;
	return true;
}

static bool peek(struct scan *sc, char ch)
{
	skip_ws(sc);
	return sc->p < sc->end && *sc->p == ch;
}

/* "...": printable ASCII, no escape. UTF-8, control bytes and escapes are
 * the full decoder's to check and unescape. */
static bool plain_string(struct scan *sc, struct span *out)
{
	if (!take(sc, '"'))
		return false;
	const char *s = sc->p;
	while (sc->p < sc->end) {
		unsigned char ch = (unsigned char)*sc->p;
		if (ch == '"') {
			out->s = s;
			out->len = (size_t)(sc->p - s);
			sc->p++;
			return true;
		}
		if (ch < 0x20 || ch >= 0x80 || ch == '\\')
			return false;
		sc->p++;
	}
	return false;
}

/* A JSON integer of at most 18 digits (no overflow to think about); a
 * fraction or exponent makes it a real, which the full decoder judges. */
static bool integer(struct scan *sc, int64_t *out)
{
	skip_ws(sc);
	bool neg = sc->p < sc->end && *sc->p == '-';
	const char *d = sc->p + neg, *q = d;
	int64_t v = 0;
	while (q < sc->end && *q >= '0' && *q <= '9' && q - d < 19)
		v = v * 10 + (*q++ - '0');
	size_t nd = (size_t)(q - d);
	if (nd == 0 || nd > 18 || (nd > 1 && *d == '0'))
		return false;
	if (q < sc->end && (*q == '.' || *q == 'e' || *q == 'E' || (*q >= '0' && *q <= '9')))
		return false;
	sc->p = q;
	*out = neg ? -v : v;
	return true;
}

static bool span_is(const struct span *s, const char *lit)
{
	return s->len == strlen(lit) && !memcmp(s->s, lit, s->len);
}

/* A NUL-terminated copy in fs->strs, which the caller sized so that it
 * never moves during a parse. */
static const char *keep(struct dd_fastsub *fs, const struct span *s)
{
	char *d = fs->strs + fs->strs_len;
	memcpy(d, s->s, s->len);
	d[s->len] = 0;
	fs->strs_len += s->len + 1;
	return d;
}

enum { K_QUEUE = 1, K_PAYLOAD = 2, K_PRIORITY = 4, K_DURABILITY = 8, K_KEY = 16 };

static bool job_priority(struct scan *sc, struct dd_job_spec *s)
{
	static const char *const names[] = {"urgent", "high", "normal", "low"};
	struct span v;
	int64_t p;
	if (peek(sc, '"')) {
		if (!plain_string(sc, &v))
			return false;
		for (int i = 0; i < 4; i++)
			if (span_is(&v, names[i])) {
				s->priority = i;
				return true;
			}
		return false;
	}
	if (!integer(sc, &p) || p < 0 || p > 3)
		return false;
	s->priority = (int)p;
	return true;
}

static bool job_durability(struct scan *sc, struct dd_job_spec *s)
{
	struct span v;
	char name[16];
	enum dd_durability d;
	if (!plain_string(sc, &v) || v.len >= sizeof(name))
		return false;
	memcpy(name, v.s, v.len);
	name[v.len] = 0;
	if (dd_durability_parse(name, &d) < 0)
		return false;
	s->durability = d;
	return true;
}

/* One job object, as dd_proto_job() would decode it. @prev: the job
 * before, whose queue name is reused when it is the same. */
static bool job(struct dd_fastsub *fs, struct scan *sc, struct dd_job_spec *s,
		const struct dd_job_spec *prev)
{
	memset(s, 0, sizeof(*s));
	s->priority = DD_PRIO_NORMAL;
	s->node = s->shard = -1;
	s->kind = "default";
	if (!take(sc, '{'))
		return false;
	unsigned seen = 0;
	if (take(sc, '}'))
		return true;
	do {
		struct span k, v;
		if (!plain_string(sc, &k) || !take(sc, ':'))
			return false;
		unsigned bit = span_is(&k, "queue")	 ? K_QUEUE
			       : span_is(&k, "payload")	 ? K_PAYLOAD
			       : span_is(&k, "priority")	 ? K_PRIORITY
			       : span_is(&k, "durability") ? K_DURABILITY
			       : span_is(&k, "key")	 ? K_KEY
							 : 0;
		if (!bit || (seen & bit)) /* unknown, or given twice */
			return false;
		seen |= bit;
		switch (bit) {
		case K_QUEUE:
			if (!plain_string(sc, &v) || v.len == 0 || v.len > 63)
				return false;
			if (prev && strlen(prev->kind) == v.len && !memcmp(prev->kind, v.s, v.len))
				s->kind = prev->kind;
			else
				s->kind = keep(fs, &v);
			break;
		case K_PAYLOAD:
			if (!plain_string(sc, &v) || v.len > DD_PAYLOAD_MAX)
				return false;
			s->payload = v.s;
			s->payload_len = v.len;
			break;
		case K_PRIORITY:
			if (!job_priority(sc, s))
				return false;
			break;
		case K_DURABILITY:
			if (!job_durability(sc, s))
				return false;
			break;
		case K_KEY:
			if (!plain_string(sc, &v) || v.len == 0 || v.len > DD_KEY_MAX)
				return false;
			s->idem_key = keep(fs, &v);
			break;
		}
	} while (take(sc, ','));
	return take(sc, '}');
}

static bool grow_specs(struct dd_fastsub *fs)
{
	size_t cap = fs->cap ? fs->cap * 2 : 64;
	struct dd_job_spec *s = realloc(fs->specs, cap * sizeof(*s));
	if (!s)
		return false;
	fs->specs = s;
	fs->cap = cap;
	return true;
}

static bool jobs(struct dd_fastsub *fs, struct scan *sc, size_t max_jobs)
{
	if (!take(sc, '[') || peek(sc, ']')) /* an empty batch: the full path */
		return false;
	do {
		if (fs->n == max_jobs || (fs->n == fs->cap && !grow_specs(fs)))
			return false;
		if (!job(fs, sc, &fs->specs[fs->n], fs->n ? &fs->specs[fs->n - 1] : NULL))
			return false;
		fs->n++;
	} while (take(sc, ','));
	return take(sc, ']');
}

static bool tag(struct dd_fastsub *fs, struct scan *sc)
{
	struct span v;
	int64_t i;
	if (peek(sc, '"')) {
		if (!plain_string(sc, &v))
			return false;
		fs->tag = json_stringn(v.s, v.len);
	} else {
		if (!integer(sc, &i))
			return false;
		fs->tag = json_integer((json_int_t)i);
	}
	return fs->tag != NULL;
}

int dd_fastsub_parse(struct dd_fastsub *fs, const char *line, size_t len, size_t max_jobs)
{
	json_decref(fs->tag);
	fs->tag = NULL;
	fs->n = 0;
	fs->strs_len = 0;
	/* Each copy comes from distinct bytes of the line plus its NUL, and
	 * a job takes at least two bytes ("{}"): 2 * len bounds them all. */
	if (len > SIZE_MAX / 4)
		return 0;
	if (fs->strs_cap < 2 * len + 16) {
		char *s = realloc(fs->strs, 2 * len + 16);
		if (!s)
			return 0;
		fs->strs = s;
		fs->strs_cap = 2 * len + 16;
	}
	struct scan sc = {line, line + len};
	bool op = false, have_jobs = false, have_tag = false;
	if (!take(&sc, '{'))
		goto decline;
	do {
		struct span k, v;
		if (!plain_string(&sc, &k) || !take(&sc, ':'))
			goto decline;
		if (span_is(&k, "op") && !op) {
			if (!plain_string(&sc, &v) || !span_is(&v, "submit_batch"))
				goto decline;
			op = true;
		} else if (span_is(&k, "tag") && !have_tag) {
			if (!tag(fs, &sc))
				goto decline;
			have_tag = true;
		} else if (span_is(&k, "jobs") && !have_jobs) {
			if (!jobs(fs, &sc, max_jobs))
				goto decline;
			have_jobs = true;
		} else {
			goto decline; /* unknown, or given twice */
		}
	} while (take(&sc, ','));
	if (!take(&sc, '}') || !op || !have_jobs)
		goto decline;
	skip_ws(&sc);
	if (sc.p != sc.end)
		goto decline;
	return 1;
decline:
	json_decref(fs->tag);
	fs->tag = NULL;
	fs->n = 0;
	return 0;
}

void dd_fastsub_free(struct dd_fastsub *fs)
{
	json_decref(fs->tag);
	free(fs->specs);
	free(fs->strs);
	memset(fs, 0, sizeof(*fs));
}
