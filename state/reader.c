/* Reads log segments back, for recovery and for the applier that follows
 * the log into the store. */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state.h"

#define CHUNK (1u << 20)

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int dd_state_segments(int dirfd, uint64_t **firsts, size_t *n)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d);
	uint64_t *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		char *end;
		if (strlen(de->d_name) != 20 || strcmp(de->d_name + 16, ".wal"))
			continue;
		uint64_t first = strtoull(de->d_name, &end, 16);
		if (end != de->d_name + 16 || first == 0)
			continue;
		if (cnt == cap) {
			uint64_t *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[cnt++] = first;
	}
	closedir(d);
	if (r < 0) {
		free(v);
		return r;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_u64);
	*firsts = v;
	*n = cnt;
	return 0;
}

int dd_state_reader_open(struct dd_state_reader *r, int dirfd, uint64_t seg_first,
			 uint64_t last_lsn)
{
	char name[32];
	dd_state_wal_name(name, sizeof(name), seg_first);
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (r->fd >= 0)
		close(r->fd);
	r->dirfd = dirfd;
	r->fd = fd;
	r->seg_first = seg_first;
	r->base = 0;
	r->len = r->pos = 0;
	r->last_lsn = last_lsn;
	return 0;
}

void dd_state_reader_close(struct dd_state_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf);
	r->fd = -1;
	r->buf = NULL;
	r->cap = r->len = r->pos = 0;
}

/* Makes at least @want bytes from buf[pos] available if the file has them. */
static int fill(struct dd_state_reader *r, size_t want)
{
	if (r->pos) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->base += r->pos;
		r->len -= r->pos;
		r->pos = 0;
	}
	size_t need = want > CHUNK ? want : CHUNK;
	if (r->cap < need) {
		unsigned char *nb = realloc(r->buf, need);
		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->cap = need;
	}
	while (r->len < want) {
		ssize_t got = pread(r->fd, r->buf + r->len, r->cap - r->len, (off_t)(r->base + r->len));
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (got == 0)
			break;
		r->len += (size_t)got;
	}
	return 0;
}

int dd_state_reader_next(struct dd_state_reader *r, struct dd_rec *rec, bool fresh)
{
	if (fresh) {
		r->base += r->pos;
		r->len = r->pos = 0;
	}
	for (bool filled = false;; filled = true) {
		size_t used, have = r->len - r->pos;
		int rc = dd_rec_decode(have ? r->buf + r->pos : NULL, have, rec, &used);
		if (rc == DD_REC_OK) {
			r->pos += used;
			r->last_len = used;
			r->last_lsn = rec->lsn;
			return rc;
		}
		bool short_read = rc == -EAGAIN || (rc == DD_REC_EOF && have == 0);
		if (!short_read || filled)
			return rc;
		/* the record (or its length word) runs past what is buffered */
		size_t want = 4;
		if (have >= 4) {
			uint32_t len;
			memcpy(&len, r->buf + r->pos, 4);
			want = le32toh(len);
		}
		int fr = fill(r, want);
		if (fr < 0)
			return fr;
	}
}

uint64_t dd_state_reader_offset(const struct dd_state_reader *r)
{
	return r->base + r->pos;
}

int dd_state_batch_add(struct dd_state_batch *b, const struct dd_state_reader *r)
{
	size_t len = r->last_len;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : (4u << 20);
		while (cap < b->len + len)
			cap *= 2;
		unsigned char *nr = realloc(b->raw, cap);
		if (!nr)
			return -ENOMEM;
		b->raw = nr;
		b->cap = cap;
	}
	memcpy(b->raw + b->len, r->buf + r->pos - len, len);
	b->len += len;
	b->n++;
	b->last_lsn = r->last_lsn;
	return 0;
}

int dd_state_batch_apply(struct dd_state_batch *b, struct dd_state_store *st)
{
	if (b->n == 0)
		return 0;
	if (b->n > b->capn) {
		struct dd_rec *nr = realloc(b->recs, b->n * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		b->recs = nr;
		b->capn = b->n;
	}
	size_t off = 0;
	for (size_t i = 0; i < b->n; i++) {
		size_t used;
		/* checked once already by the reader: cannot fail */
		if (dd_rec_decode(b->raw + off, b->len - off, &b->recs[i], &used) != DD_REC_OK)
			return -EIO;
		off += used;
	}
	int rc = dd_state_store_apply(st, b->recs, b->n);
	if (rc == 0)
		b->n = b->len = 0;
	return rc;
}

void dd_state_batch_free(struct dd_state_batch *b)
{
	free(b->raw);
	free(b->recs);
	memset(b, 0, sizeof(*b));
}
