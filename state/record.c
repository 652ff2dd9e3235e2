/* Log record encoding and the decoder that recovery (and the store's
 * applier) trusts with whatever is on disk: every length is checked against
 * what is there before it is used. test/state/fuzz_record.c fuzzes it. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "state.h"

#define COMMON 20u /* id, at_rt, attempt */

struct wr {
	unsigned char *p; /* NULL: only count */
	size_t n;
};

static void put(struct wr *w, const void *v, size_t len)
{
	if (w->p && len)
		memcpy(w->p + w->n, v, len);
	w->n += len;
}

static void put64(struct wr *w, uint64_t v)
{
	v = htole64(v);
	put(w, &v, 8);
}

static void put32(struct wr *w, uint32_t v)
{
	v = htole32(v);
	put(w, &v, 4);
}

static void put8(struct wr *w, uint8_t v)
{
	put(w, &v, 1);
}

struct rd {
	const unsigned char *p;
	size_t n, off;
	bool bad;
};

static const void *take(struct rd *r, size_t len)
{
	if (r->bad || len > r->n - r->off) {
		r->bad = true;
		return NULL;
	}
	const void *v = r->p + r->off;
	r->off += len;
	return v;
}

static uint64_t get64(struct rd *r)
{
	uint64_t v = 0;
	const void *s = take(r, 8);
	if (s)
		memcpy(&v, s, 8);
	return le64toh(v);
}

static uint32_t get32(struct rd *r)
{
	uint32_t v = 0;
	const void *s = take(r, 4);
	if (s)
		memcpy(&v, s, 4);
	return le32toh(v);
}

static uint8_t get8(struct rd *r)
{
	const uint8_t *s = take(r, 1);
	return s ? *s : 0;
}

uint64_t dd_logrec_dep(const struct dd_logrec *r, uint32_t i)
{
	uint64_t v;
	memcpy(&v, r->deps + (size_t)i * 8, 8);
	return le64toh(v);
}

void dd_logrec_array_range(const struct dd_logrec *r, uint32_t i, uint32_t *first,
			   uint32_t *last, uint32_t *step)
{
	uint32_t v[3];
	memcpy(v, r->array_ranges + (size_t)i * 12, 12);
	*first = le32toh(v[0]);
	*last = le32toh(v[1]);
	*step = le32toh(v[2]);
}

/* An array's ranges, as dd_logrec_array_range() reads them: well formed,
 * and not over the limits. */
static bool array_ok(const struct dd_logrec *r)
{
	uint64_t n = 0;
	uint32_t prev = 0;
	if (r->array_nranges == 0 || r->array_nranges > DD_LOGREC_ARRAY_RANGES_MAX ||
	    r->array_max > DD_LOGREC_ARRAY_MAX)
		return false;
	for (uint32_t i = 0; i < r->array_nranges; i++) {
		uint32_t a, b, st;
		dd_logrec_array_range(r, i, &a, &b, &st);
		if (st == 0 || b < a || b > DD_LOGREC_ARRAY_INDEX_MAX || (b - a) % st ||
		    (i > 0 && a <= prev))
			return false;
		prev = b;
		n += (b - a) / st + 1;
	}
	return n <= DD_LOGREC_ARRAY_MAX;
}

/* The fields of an ending, in END and FINISH bodies alike. The byte after
 * the state holds flags saying what follows the reason, in this order:
 * END_F_CUT the two output_cut counts, END_F_CPU the attempt's CPU time,
 * END_F_MEM its memory peak (a record of an older version has 0 there). */
#define END_F_CUT 1u
#define END_F_CPU 2u
#define END_F_MEM 4u
#define END_F_ALL (END_F_CUT | END_F_CPU | END_F_MEM)

static void put_end(struct wr *w, const struct dd_logrec *r)
{
	bool cut = r->output_cut[0] || r->output_cut[1];
	put8(w, r->state);
	put8(w, (uint8_t)((cut ? END_F_CUT : 0) | (r->use & DD_LOGREC_USE_CPU ? END_F_CPU : 0) |
			  (r->use & DD_LOGREC_USE_MEM ? END_F_MEM : 0)));
	put8(w, 0);
	put8(w, 0);
	put32(w, (uint32_t)r->result);
	put32(w, r->reason_len);
	put(w, r->reason, r->reason_len);
	if (cut) {
		put64(w, r->output_cut[0]);
		put64(w, r->output_cut[1]);
	}
	if (r->use & DD_LOGREC_USE_CPU)
		put64(w, r->cpu_ns);
	if (r->use & DD_LOGREC_USE_MEM)
		put64(w, r->mem_peak);
}

static int get_end(struct rd *r, struct dd_logrec *out)
{
	out->state = get8(r);
	uint8_t f = get8(r);
	get8(r);
	get8(r);
	out->result = (int32_t)get32(r);
	out->reason_len = get32(r);
	out->reason = take(r, out->reason_len);
	out->output_cut[0] = out->output_cut[1] = 0;
	if (f & END_F_CUT) {
		out->output_cut[0] = get64(r);
		out->output_cut[1] = get64(r);
	}
	out->use = 0;
	out->cpu_ns = out->mem_peak = 0;
	if (f & END_F_CPU) {
		out->use |= DD_LOGREC_USE_CPU;
		out->cpu_ns = get64(r);
	}
	if (f & END_F_MEM) {
		out->use |= DD_LOGREC_USE_MEM;
		out->mem_peak = get64(r);
	}
	/* a terminal state; the counts are there only when not both 0, so
	 * that a record has one encoding */
	bool terminal = out->state >= DD_STATE_SUCCEEDED && out->state <= DD_STATE_TIMED_OUT;
	return !r->bad && (!terminal || (f & ~END_F_ALL) ||
			   ((f & END_F_CUT) && !out->output_cut[0] && !out->output_cut[1]))
		       ? -EPROTO
		       : 0;
}

size_t dd_logrec_encode_body(const struct dd_logrec *r, void *buf)
{
	struct wr w = {buf, 0};
	put64(&w, r->id);
	put64(&w, r->at_rt);
	put32(&w, r->attempt);
	switch (r->type) {
	case DD_LOGREC_SUBMIT:
		put64(&w, r->not_before_rt);
		put64(&w, r->timeout_ns);
		put64(&w, r->backoff_ns);
		put64(&w, r->backoff_max_ns);
		put32(&w, r->max_attempts);
		put8(&w, r->priority);
		put8(&w, r->flags);
		put8(&w, 0);
		put8(&w, 0);
		put32(&w, r->uid);
		put32(&w, r->gid);
		put32(&w, r->kind_len);
		put32(&w, r->payload_len);
		put32(&w, r->ndeps);
		put32(&w, r->key_len);
		put(&w, r->kind, r->kind_len);
		put(&w, r->payload, r->payload_len);
		put(&w, r->deps, (size_t)r->ndeps * 8);
		put(&w, r->key, r->key_len);
		if (r->flags & DD_LOGREC_F_ARRAY) {
			put32(&w, r->array_max);
			put32(&w, r->array_nranges);
			put(&w, r->array_ranges, (size_t)r->array_nranges * 12);
		}
		if (r->flags & DD_LOGREC_F_ELEMENT) {
			put64(&w, r->array_id);
			put32(&w, r->array_ord);
			put32(&w, r->array_index);
		}
		if (r->flags & DD_LOGREC_F_DEPKINDS)
			put(&w, r->dep_kinds, r->ndeps);
		if (r->flags & DD_LOGREC_F_NAME) {
			put32(&w, r->name_len);
			put(&w, r->name, r->name_len);
		}
		break;
	case DD_LOGREC_START:
		put32(&w, (uint32_t)r->worker);
		break;
	case DD_LOGREC_FINISH: /* a START's worker and time, then an END */
		put32(&w, (uint32_t)r->worker);
		put64(&w, r->started_rt);
		put_end(&w, r);
		break;
	case DD_LOGREC_END:
		put_end(&w, r);
		break;
	case DD_LOGREC_RETRY:
		put64(&w, r->not_before_rt);
		break;
	}
	return w.n;
}

size_t dd_logrec_size(const struct dd_logrec *r)
{
	size_t n = DD_LOGREC_HDR + dd_logrec_encode_body(r, NULL);
	return (n + DD_LOGREC_ALIGN - 1) & ~(size_t)(DD_LOGREC_ALIGN - 1);
}

size_t dd_logrec_encode(const struct dd_logrec *r, void *buf)
{
	unsigned char *b = buf;
	size_t blen = dd_logrec_encode_body(r, b + DD_LOGREC_HDR);
	size_t len = (DD_LOGREC_HDR + blen + DD_LOGREC_ALIGN - 1) & ~(size_t)(DD_LOGREC_ALIGN - 1);
	memset(b + DD_LOGREC_HDR + blen, 0, len - DD_LOGREC_HDR - blen);
	struct wr w = {b, 0};
	put32(&w, (uint32_t)len);
	put32(&w, 0);
	put64(&w, r->lsn);
	put32(&w, r->type);
	put32(&w, (uint32_t)blen);
	uint32_t crc = htole32(dd_state_crc32c(0, b + 8, len - 8));
	memcpy(b + 4, &crc, 4);
	return len;
}

int dd_logrec_decode_body(uint32_t type, const void *body, size_t blen, struct dd_logrec *out)
{
	struct rd r = {body, blen, 0, false};
	out->type = type;
	out->id = get64(&r);
	out->at_rt = get64(&r);
	out->attempt = get32(&r);
	switch (type) {
	case DD_LOGREC_SUBMIT:
		out->not_before_rt = get64(&r);
		out->timeout_ns = get64(&r);
		out->backoff_ns = get64(&r);
		out->backoff_max_ns = get64(&r);
		out->max_attempts = get32(&r);
		out->priority = get8(&r);
		out->flags = get8(&r);
		get8(&r);
		get8(&r);
		out->uid = get32(&r);
		out->gid = get32(&r);
		out->kind_len = get32(&r);
		out->payload_len = get32(&r);
		out->ndeps = get32(&r);
		out->key_len = get32(&r);
		if (r.bad || out->ndeps > (blen >> 3))
			return -EPROTO;
		out->kind = take(&r, out->kind_len);
		out->payload = take(&r, out->payload_len);
		out->deps = take(&r, (size_t)out->ndeps * 8);
		out->key = take(&r, out->key_len);
		if (!r.bad && (out->kind_len == 0 || out->priority > 3 || out->max_attempts == 0 ||
			       memchr(out->kind, 0, out->kind_len) ||
			       (out->key_len && memchr(out->key, 0, out->key_len))))
			return -EPROTO;
		if (out->flags & ~(DD_LOGREC_F_STRICT | DD_LOGREC_F_EXEC | DD_LOGREC_F_ARRAY |
				   DD_LOGREC_F_ELEMENT | DD_LOGREC_F_DEPKINDS | DD_LOGREC_F_NAME) ||
		    (out->flags & DD_LOGREC_F_ARRAY && out->flags & DD_LOGREC_F_ELEMENT))
			return -EPROTO;
		if (out->flags & DD_LOGREC_F_ARRAY) {
			out->array_max = get32(&r);
			out->array_nranges = get32(&r);
			if (r.bad || out->array_nranges > DD_LOGREC_ARRAY_RANGES_MAX)
				return -EPROTO;
			out->array_ranges = take(&r, (size_t)out->array_nranges * 12);
			if (r.bad || !array_ok(out))
				return -EPROTO;
		}
		if (out->flags & DD_LOGREC_F_ELEMENT) {
			out->array_id = get64(&r);
			out->array_ord = get32(&r);
			out->array_index = get32(&r);
			if (r.bad || out->array_ord >= DD_LOGREC_ARRAY_MAX ||
			    out->array_index > DD_LOGREC_ARRAY_INDEX_MAX ||
			    out->array_id >= out->id || out->id - out->array_id - 1 != out->array_ord)
				return -EPROTO;
		}
		if (out->flags & DD_LOGREC_F_DEPKINDS) {
			out->dep_kinds = take(&r, out->ndeps);
			for (uint32_t i = 0; !r.bad && i < out->ndeps; i++)
				if (out->dep_kinds[i] >= DD_LOGREC_DEP_KINDS)
					return -EPROTO;
		}
		if (out->flags & DD_LOGREC_F_NAME) {
			out->name_len = get32(&r);
			if (r.bad || out->name_len == 0 || out->name_len > DD_LOGREC_NAME_MAX)
				return -EPROTO;
			out->name = take(&r, out->name_len);
			if (!r.bad && memchr(out->name, 0, out->name_len))
				return -EPROTO;
		}
		break;
	case DD_LOGREC_START:
		out->worker = (int32_t)get32(&r);
		break;
	case DD_LOGREC_FINISH:
		out->worker = (int32_t)get32(&r);
		out->started_rt = get64(&r);
		if (get_end(&r, out) < 0)
			return -EPROTO;
		break;
	case DD_LOGREC_END:
		if (get_end(&r, out) < 0)
			return -EPROTO;
		break;
	case DD_LOGREC_RETRY:
		out->not_before_rt = get64(&r);
		break;
	case DD_LOGREC_RESERVE:
		break;
	default:
		return -EPROTO;
	}
	if (r.bad || r.off != blen || out->id == 0)
		return -EPROTO;
	return 0;
}

int dd_logrec_decode(const void *buf, size_t avail, struct dd_logrec *out, size_t *used)
{
	const unsigned char *b = buf;
	uint32_t len, crc, type, blen;
	uint64_t lsn;
	if (avail < 4)
		return avail == 0 ? DD_LOGREC_EOF : -EAGAIN;
	memcpy(&len, b, 4);
	len = le32toh(len);
	if (len == 0)
		return DD_LOGREC_EOF;
	if (len < DD_LOGREC_HDR || len % DD_LOGREC_ALIGN || len > DD_LOGREC_MAX)
		return -EPROTO;
	if (len > avail)
		return -EAGAIN;
	memcpy(&crc, b + 4, 4);
	if (le32toh(crc) != dd_state_crc32c(0, b + 8, len - 8))
		return -EBADMSG;
	memcpy(&lsn, b + 8, 8);
	memcpy(&type, b + 16, 4);
	memcpy(&blen, b + 20, 4);
	blen = le32toh(blen);
	if (blen > len - DD_LOGREC_HDR || len - DD_LOGREC_HDR - blen >= DD_LOGREC_ALIGN)
		return -EPROTO;
	memset(out, 0, sizeof(*out));
	int r = dd_logrec_decode_body(le32toh(type), b + DD_LOGREC_HDR, blen, out);
	if (r < 0)
		return r;
	out->lsn = le64toh(lsn);
	*used = len;
	return DD_LOGREC_OK;
}

const char *dd_logrec_type_name(uint32_t type)
{
	switch (type) {
	case DD_LOGREC_SUBMIT: return "submit";
	case DD_LOGREC_START: return "start";
	case DD_LOGREC_END: return "end";
	case DD_LOGREC_FINISH: return "finish";
	case DD_LOGREC_RETRY: return "retry";
	case DD_LOGREC_RESERVE: return "reserve";
	default: return "unknown";
	}
}
