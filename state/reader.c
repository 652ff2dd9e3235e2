/* Reads log segments back, for recovery and for the applier that follows
 * the log into the store. */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

static void unmap(struct dd_state_reader *r)
{
	if (r->mapped)
		munmap(r->buf, r->len);
	else
		free(r->buf);
	r->buf = NULL;
	r->mapped = false;
	r->cap = r->len = r->pos = 0;
}

/* A segment is read through a mapping of the whole file: its records are
 * decoded where the page cache has them, and a batch keeps them there,
 * where reading meant a copy into a buffer and another into the batch (a
 * tenth of the applier's time). Segments have their full size from the
 * start (posix_fallocate), so the mapping covers every record the writer
 * will put in them. Without a mapping (an empty file, no address space)
 * the reader reads with pread instead. */
size_t dd_state_segment_of(const uint64_t *firsts, size_t n, uint64_t lsn)
{
	size_t i = n;
	for (size_t k = 0; k < n && firsts[k] <= lsn; k++)
		i = k;
	return i;
}

int dd_state_reader_open(struct dd_state_reader *r, int dirfd, uint64_t seg_first,
			 uint64_t last_lsn)
{
	char name[32];
	dd_state_wal_name(name, sizeof(name), seg_first);
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (r->fd >= 0)
		close(r->fd);
	if (r->mapped)
		unmap(r);
	r->dirfd = dirfd;
	r->fd = fd;
	r->seg_first = seg_first;
	r->base = 0;
	r->len = r->pos = 0;
	r->last_lsn = last_lsn;
	struct stat sb;
	if (!r->no_map && fstat(fd, &sb) == 0 && sb.st_size > 0 &&
	    (uint64_t)sb.st_size <= SIZE_MAX) {
		void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (m != MAP_FAILED) {
			unmap(r); /* the read buffer, if any */
			madvise(m, (size_t)sb.st_size, MADV_SEQUENTIAL);
			r->buf = m;
			r->len = (size_t)sb.st_size;
			r->mapped = true;
		}
	}
	return 0;
}

void dd_state_reader_close(struct dd_state_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	unmap(r);
	r->fd = -1;
}

/* Makes at least @want bytes from buf[pos] available if the file has them. */
static int fill(struct dd_state_reader *r, size_t want)
{
	if (r->mapped)
		return 0; /* all of the file is there already */
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

int dd_state_reader_next(struct dd_state_reader *r, struct dd_logrec *rec, bool fresh)
{
	if (fresh && !r->mapped) { /* a mapping shows what was written since */
		r->base += r->pos;
		r->len = r->pos = 0;
	}
	for (bool filled = false;; filled = true) {
		size_t used, have = r->len - r->pos;
		int rc = dd_logrec_decode(have ? r->buf + r->pos : NULL, have, rec, &used);
		if (rc == DD_LOGREC_OK && rec->lsn < r->seg_first)
			return DD_LOGREC_EOF; /* a spare's earlier life (spare.c): no more */
		if (rc == DD_LOGREC_OK) {
			r->pos += used;
			r->last_len = used;
			r->last_lsn = rec->lsn;
			return rc;
		}
		bool short_read = rc == -EAGAIN || (rc == DD_LOGREC_EOF && have == 0);
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

/* Moves the pointers of a decoded record by @delta bytes: from where its
 * bytes were to where they are now. Fields without bytes stay NULL. */
static void rebase(struct dd_logrec *rec, ptrdiff_t delta)
{
	if (rec->kind)
		rec->kind += delta;
	if (rec->payload)
		rec->payload = (const unsigned char *)rec->payload + delta;
	if (rec->deps)
		rec->deps += delta;
	if (rec->key)
		rec->key += delta;
	if (rec->reason)
		rec->reason += delta;
	if (rec->dep_kinds)
		rec->dep_kinds += delta;
	if (rec->name)
		rec->name += delta;
	if (rec->array_ranges)
		rec->array_ranges += delta;
}

/* Room for one more record in b->recs. */
static int recs_room(struct dd_state_batch *b)
{
	if (b->n < b->capn)
		return 0;
	size_t capn = b->capn ? b->capn * 2 : 4096;
	struct dd_logrec *nrecs = realloc(b->recs, capn * sizeof(*nrecs));
	if (!nrecs)
		return -ENOMEM;
	b->recs = nrecs;
	b->capn = capn;
	return 0;
}

int dd_state_batch_add(struct dd_state_batch *b, const struct dd_state_reader *r,
		       const struct dd_logrec *rec)
{
	size_t len = r->last_len;
	if (recs_room(b) < 0)
		return -ENOMEM;
	if (r->mapped) {
		b->recs[b->n++] = *rec; /* it points into the mapping */
		b->last_lsn = r->last_lsn;
		return 0;
	}
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : (4u << 20);
		while (cap < b->len + len)
			cap *= 2;
		uintptr_t old = (uintptr_t)b->raw;
		unsigned char *nr = realloc(b->raw, cap);
		if (!nr)
			return -ENOMEM;
		/* the records decoded so far point into the old bytes (rare:
		 * the buffer settles at the largest batch's size) */
		if (old && (uintptr_t)nr != old)
			for (size_t i = 0; i < b->n; i++)
				rebase(&b->recs[i], (ptrdiff_t)((uintptr_t)nr - old));
		b->raw = nr;
		b->cap = cap;
	}
	const unsigned char *from = r->buf + r->pos - len;
	memcpy(b->raw + b->len, from, len);
	b->recs[b->n] = *rec;
	rebase(&b->recs[b->n], (ptrdiff_t)((uintptr_t)(b->raw + b->len) - (uintptr_t)from));
	b->len += len;
	b->n++;
	b->last_lsn = r->last_lsn;
	return 0;
}

int dd_state_batch_apply(struct dd_state_batch *b, struct dd_state_store *st)
{
	if (b->n == 0)
		return 0;
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
