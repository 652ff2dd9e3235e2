/* The write-ahead log: batches of records appended in memory and written
 * through io_uring, one batch in flight while the next fills (pipelined
 * group commit). Durability is released by the fsync's completion, never
 * by the write's. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dd_clock.h"
#include "state.h"

#define BATCH_MIN (256u << 10)
/* Each write ends with a zero length word after its records, where the
 * next write begins: a reader stops there even in a spare segment, whose
 * older records follow (spare.c). Records are 8-byte aligned, so a
 * segment's free end is 0 or at least 8 bytes. */
#define END_MARK 8
#define RETRY_NS 100000000ull /* a failed write is tried again after 100 ms */

enum { OP_WRITE = 1, OP_SYNC = 2, OP_DIRSYNC = 3 };

struct segment {
	int fd;
	uint64_t first_lsn;
	uint64_t size;     /* preallocated bytes */
	uint64_t reserved; /* bytes handed to batches */
	bool fresh;        /* its directory entry is not yet synced */
	int refs;          /* batches pointing at it, plus 1 while current */
};

struct batch {
	struct batch *next;
	struct segment *seg;
	uint64_t off;    /* file offset of buf[0] */
	unsigned char *buf;
	size_t len, cap;
	size_t done;     /* bytes already written (short writes) */
	uint64_t last_lsn;
	bool sealed;     /* no more appends: the segment is full */
};

struct dd_state_wal {
	struct io_uring *ring;
	int dirfd;
	bool sync;
	uint64_t seg_bytes;
	uint64_t seg_bytes_set; /* as configured: seg_bytes grows for one huge record */
	struct segment *cur;
	struct batch *head, *tail; /* head: oldest (maybe in flight) */
	struct batch *spare;
	bool inflight;
	unsigned ops_left; /* CQEs still due for the batch in flight */
	int res_write, res_sync, res_dirsync;
	size_t write_len;
	uint64_t next_lsn, written, synced;
	int err;
	bool fatal;
	uint64_t retry_at;
	uint64_t io_start, last_io_ns;
	size_t pending;
};

void dd_state_wal_name(char *buf, size_t n, uint64_t first_lsn)
{
	snprintf(buf, n, "%016" PRIx64 ".wal", first_lsn);
}

static void seg_put(struct segment *s)
{
	if (s && --s->refs == 0) {
		close(s->fd);
		free(s);
	}
}

static int seg_open(struct dd_state_wal *w, uint64_t first_lsn, uint64_t offset, bool create,
		    struct segment **out)
{
	char name[32];
	dd_state_wal_name(name, sizeof(name), first_lsn);
	struct segment *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	/* a spare first: its blocks are written, so writes into it change no
	 * extent and its fdatasync needs no journal commit (spare.c) */
	bool spare = create && w->seg_bytes == w->seg_bytes_set &&
		     (s->fd = dd_state_wal_take_spare(w->dirfd, name, w->seg_bytes)) >= 0;
	if (!spare)
		s->fd = openat(w->dirfd, name,
			       O_RDWR | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0),
			       0600);
	if (s->fd < 0) {
		int r = -errno;
		free(s);
		return r;
	}
	s->first_lsn = first_lsn;
	s->size = w->seg_bytes;
	s->reserved = offset;
	s->refs = 1;
	s->fresh = create;
	if (create && !spare) {
		/* 0600 whatever the umask. Preallocate: space runs out here, not
		 * in the middle of a write, and the rest of the file reads as
		 * zeros (a clean end). */
		int r = fchmod(s->fd, 0600) < 0 ? errno : posix_fallocate(s->fd, 0, (off_t)w->seg_bytes);
		if (r) {
			close(s->fd);
			unlinkat(w->dirfd, name, 0);
			free(s);
			return -r;
		}
	} else {
		off_t end = lseek(s->fd, 0, SEEK_END);
		if (end > 0 && (uint64_t)end > s->size)
			s->size = (uint64_t)end;
	}
	*out = s;
	return 0;
}

int dd_state_wal_open(const char *dir, uint64_t segment_bytes, bool sync,
		      const struct dd_state_wal_pos *pos, struct io_uring *ring,
		      struct dd_state_wal **out)
{
	struct dd_state_wal *w = calloc(1, sizeof(*w));
	int r;
	if (!w)
		return -ENOMEM;
	w->ring = ring;
	w->sync = sync;
	w->seg_bytes = w->seg_bytes_set = segment_bytes;
	w->next_lsn = pos->next_lsn ? pos->next_lsn : 1;
	w->written = w->synced = w->next_lsn - 1;
	w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		r = -errno;
		free(w);
		return r;
	}
	if (pos->seg_first_lsn) {
		if ((r = seg_open(w, pos->seg_first_lsn, pos->offset, false, &w->cur)) < 0) {
			dd_state_wal_close(w);
			return r;
		}
	}
	*out = w;
	return 0;
}

void dd_state_wal_close(struct dd_state_wal *w)
{
	if (!w)
		return;
	for (struct batch *b = w->head, *n; b; b = n) {
		n = b->next;
		seg_put(b->seg);
		free(b->buf);
		free(b);
	}
	if (w->spare) {
		free(w->spare->buf);
		free(w->spare);
	}
	seg_put(w->cur);
	if (w->dirfd >= 0)
		close(w->dirfd);
	free(w);
}

static struct batch *batch_new(struct dd_state_wal *w, size_t need)
{
	struct batch *b = w->spare;
	w->spare = NULL;
	if (!b && !(b = calloc(1, sizeof(*b))))
		return NULL;
	if (b->cap < need) {
		size_t cap = need > BATCH_MIN ? need : BATCH_MIN;
		unsigned char *nb = realloc(b->buf, cap);
		if (!nb) {
			free(b->buf);
			free(b);
			return NULL;
		}
		b->buf = nb;
		b->cap = cap;
	}
	b->next = NULL;
	b->len = b->done = 0;
	b->sealed = false;
	return b;
}

/* The batch the next record of @size bytes goes into. */
static int batch_for(struct dd_state_wal *w, size_t size, struct batch **out)
{
	struct batch *t = w->tail;
	/* The open batch: not in flight (the head while inflight is closed) */
	bool open = t && !t->sealed && !(w->inflight && t == w->head);
	if (open && t->seg == w->cur && t->off + t->len + size <= w->cur->size) {
		if (t->len + size + END_MARK > t->cap) {
			size_t want = t->len + size + END_MARK;
			size_t cap = t->cap * 2 > want ? t->cap * 2 : want;
			unsigned char *nb = realloc(t->buf, cap);
			if (!nb)
				return -ENOMEM;
			t->buf = nb;
			t->cap = cap;
		}
		*out = t;
		return 0;
	}
	if (open)
		t->sealed = true;
	if (!w->cur || w->cur->reserved + size > w->cur->size) {
		/* A new segment, named after its first record. */
		struct segment *s;
		uint64_t saved = w->seg_bytes;
		if (size > w->seg_bytes)
			w->seg_bytes = size; /* one record larger than a segment */
		int r = seg_open(w, w->next_lsn, 0, true, &s);
		w->seg_bytes = saved;
		if (r < 0) {
			/* no room for a segment: an error until a retry finds room */
			w->err = r;
			w->retry_at = dd_mono_ns() + RETRY_NS;
			return r;
		}
		if (!w->inflight && !w->head)
			w->err = 0;
		seg_put(w->cur);
		w->cur = s;
	}
	struct batch *b = batch_new(w, size + END_MARK);
	if (!b)
		return -ENOMEM;
	b->seg = w->cur;
	b->seg->refs++;
	b->off = w->cur->reserved;
	if (w->tail)
		w->tail->next = b;
	else
		w->head = b;
	w->tail = b;
	*out = b;
	return 0;
}

int dd_state_wal_append(struct dd_state_wal *w, struct dd_logrec *r)
{
	size_t size = dd_logrec_size(r);
	struct batch *b;
	int rc = batch_for(w, size, &b);
	if (rc < 0)
		return rc;
	r->lsn = w->next_lsn++;
	dd_logrec_encode(r, b->buf + b->len);
	b->len += size;
	b->last_lsn = r->lsn;
	b->seg->reserved += size;
	w->pending += size;
	return 0;
}

/* After a failed segment creation: try again, so that the error clears
 * by itself once space returns. */
static void retry_segment(struct dd_state_wal *w, uint64_t now_ns)
{
	struct segment *s;
	w->retry_at = now_ns + RETRY_NS;
	if (seg_open(w, w->next_lsn, 0, true, &s) < 0)
		return;
	seg_put(w->cur);
	w->cur = s;
	w->err = 0;
}

bool dd_state_wal_kick(struct dd_state_wal *w, uint64_t now_ns)
{
	struct batch *b = w->head;
	if (!b && w->err && !w->fatal && !w->inflight && now_ns >= w->retry_at)
		retry_segment(w, now_ns);
	if (w->inflight || !b || w->fatal || (w->err && now_ns < w->retry_at))
		return false;
	unsigned need = 1 + (w->sync ? 1 : 0) + (b->seg->fresh ? 1 : 0);
	if (io_uring_sq_space_left(w->ring) < need)
		return false;
	struct io_uring_sqe *sqe = io_uring_get_sqe(w->ring);
	w->write_len = b->len - b->done;
	if (b->off + b->len + END_MARK <= b->seg->size) {
		memset(b->buf + b->len, 0, END_MARK); /* room for it: batch_for() */
		w->write_len += END_MARK;
	}
	io_uring_prep_write(sqe, b->seg->fd, b->buf + b->done, (unsigned)w->write_len,
			    b->off + b->done);
	sqe->user_data = DD_WAL_TAG | OP_WRITE;
	w->ops_left = 1;
	w->res_write = w->res_sync = w->res_dirsync = 0;
	if (w->sync) {
		sqe->flags |= IOSQE_IO_LINK;
		sqe = io_uring_get_sqe(w->ring);
		io_uring_prep_fsync(sqe, b->seg->fd, IORING_FSYNC_DATASYNC);
		sqe->user_data = DD_WAL_TAG | OP_SYNC;
		w->ops_left++;
		if (b->seg->fresh) {
			/* the new file's name must be durable before its records */
			sqe->flags |= IOSQE_IO_LINK;
			sqe = io_uring_get_sqe(w->ring);
			io_uring_prep_fsync(sqe, w->dirfd, 0);
			sqe->user_data = DD_WAL_TAG | OP_DIRSYNC;
			w->ops_left++;
		}
	}
	/* a batch in flight takes no more records: its bytes are on their way */
	b->sealed = true;
	w->inflight = true;
	w->io_start = now_ns;
	return true;
}

static void batch_done(struct dd_state_wal *w)
{
	struct batch *b = w->head;
	w->head = b->next;
	if (!w->head)
		w->tail = NULL;
	w->pending -= b->len;
	seg_put(b->seg);
	if (!w->spare && b->cap <= 4 * BATCH_MIN) {
		w->spare = b;
	} else {
		free(b->buf);
		free(b);
	}
}

void dd_state_wal_complete(struct dd_state_wal *w, uint64_t user_data, int res, uint64_t now_ns)
{
	switch (user_data & 0xff) {
	case OP_WRITE: w->res_write = res; break;
	case OP_SYNC: w->res_sync = res; break;
	case OP_DIRSYNC: w->res_dirsync = res; break;
	}
	if (--w->ops_left)
		return;
	w->inflight = false;
	w->last_io_ns = now_ns - w->io_start;
	struct batch *b = w->head;
	int err = 0;
	if (w->res_write < 0) {
		err = w->res_write;
	} else if ((size_t)w->res_write < w->write_len) {
		/* short write (disk filling up): the rest goes next time; the
		 * linked fsync was cancelled */
		b->done += (size_t)w->res_write;
		if (b->done > b->len)
			b->done = b->len; /* the records went, not all of the end mark */
		err = -ENOSPC;
	} else {
		b->done = b->len;
		if (w->res_sync < 0 && w->res_sync != -ECANCELED) {
			err = w->res_sync;
			w->fatal = true; /* fsyncgate: dirty pages may be gone */
		} else if (w->res_dirsync < 0 && w->res_dirsync != -ECANCELED) {
			err = w->res_dirsync;
		} else if (w->res_sync == -ECANCELED || w->res_dirsync == -ECANCELED) {
			err = -EIO;
		}
	}
	if (err) {
		w->err = err;
		w->retry_at = now_ns + RETRY_NS;
		if (b->done == b->len && !w->fatal) {
			/* written but not synced: sync it again next time */
			b->done = 0;
		}
		return;
	}
	w->err = 0;
	w->written = b->last_lsn;
	if (w->sync) {
		w->synced = b->last_lsn;
		b->seg->fresh = false;
	}
	batch_done(w);
}

bool dd_state_wal_busy(const struct dd_state_wal *w)
{
	return w->inflight || w->head;
}

bool dd_state_wal_inflight(const struct dd_state_wal *w)
{
	return w->inflight;
}

uint64_t dd_state_wal_written(const struct dd_state_wal *w)
{
	return w->written;
}

uint64_t dd_state_wal_synced(const struct dd_state_wal *w)
{
	return w->sync ? w->synced : w->written;
}

uint64_t dd_state_wal_next_lsn(const struct dd_state_wal *w)
{
	return w->next_lsn;
}

int dd_state_wal_error(const struct dd_state_wal *w)
{
	return w->err;
}

size_t dd_state_wal_pending(const struct dd_state_wal *w)
{
	return w->pending;
}

uint64_t dd_state_wal_last_io_ns(const struct dd_state_wal *w)
{
	return w->last_io_ns;
}
