/* Recovery: bring the store up to date from the log, find where appending
 * resumes, and cut the log at the first record that cannot be trusted. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state.h"

#define APPLY_BATCH 8192

static void discard(int dirfd, uint64_t first)
{
	char from[32], to[48];
	dd_state_wal_name(from, sizeof(from), first);
	snprintf(to, sizeof(to), "%s.discarded", from);
	renameat(dirfd, from, dirfd, to);
}

/* Zeroes the segment from @off on, so that it reads as a clean end there. */
static int cut(int dirfd, uint64_t first, uint64_t off)
{
	char name[32];
	dd_state_wal_name(name, sizeof(name), first);
	int fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	off_t size = lseek(fd, 0, SEEK_END);
	int r = 0;
	if (ftruncate(fd, (off_t)off) < 0 || (size > (off_t)off && ftruncate(fd, size) < 0) ||
	    fdatasync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int dd_state_wal_prunable(int dirfd, struct dd_state_store *st, uint64_t lsn,
			  uint64_t **out, size_t *nout)
{
	uint64_t *firsts;
	size_t n;
	*out = NULL;
	*nout = 0;
	int r = dd_state_segments(dirfd, &firsts, &n);
	if (r < 0)
		return r;
	/* those before the one holding lsn + 1 are wholly at or below lsn;
	 * the last one stays */
	size_t k = dd_state_segment_of(firsts, n, lsn + 1);
	if (k == n)
		k = 0;
	/* a segment goes only once the state covering it is on the device */
	if (k && (r = dd_state_store_sync(st)) < 0)
		k = 0;
	if (k) {
		*out = firsts;
		*nout = k;
	} else {
		free(firsts);
	}
	return r;
}

int dd_state_wal_unlink(int dirfd, const uint64_t *firsts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char name[32];
		dd_state_wal_name(name, sizeof(name), firsts[i]);
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return -errno;
	}
	return 0;
}

int dd_state_wal_prune(int dirfd, struct dd_state_store *st, uint64_t lsn)
{
	uint64_t *firsts;
	size_t n;
	int r = dd_state_wal_prunable(dirfd, st, lsn, &firsts, &n);
	if (!r)
		r = dd_state_wal_unlink(dirfd, firsts, n);
	free(firsts);
	return r;
}

/* Replays the segment @rd has open (its first LSN @first) into @st from
 * the record after @ckpt on, through @batch (empty again on success). At a
 * record that cannot be trusted it stops and says where in *out
 * (out->torn). Returns 0 or a negative error. */
static int replay_segment(struct dd_state_reader *rd, uint64_t first, struct dd_state_store *st,
			  uint64_t ckpt, struct dd_state_batch *batch,
			  struct dd_state_recovery *out)
{
	uint64_t expect = first;
	int r;
	for (;;) {
		struct dd_logrec rec;
		uint64_t off = dd_state_reader_offset(rd);
		int rc = dd_state_reader_next(rd, &rec, false);
		if (rc == DD_LOGREC_EOF)
			break;
		if (rc == DD_LOGREC_OK && rec.lsn != expect)
			rc = -ERANGE;
		if (rc != DD_LOGREC_OK) {
			out->torn = true;
			out->torn_segment = first;
			out->torn_offset = off;
			snprintf(out->torn_why, sizeof(out->torn_why), "%s",
				 rc == -EAGAIN	 ? "record cut short"
				 : rc == -EBADMSG ? "checksum mismatch"
				 : rc == -ERANGE  ? "LSN out of sequence"
						  : "malformed record");
			break;
		}
		expect++;
		if (rec.lsn > ckpt) {
			if ((r = dd_state_batch_add(batch, rd, &rec)) < 0)
				return r;
			out->replayed++;
		}
		out->last_lsn = rec.lsn > out->last_lsn ? rec.lsn : out->last_lsn;
		out->pos.seg_first_lsn = first;
		out->pos.offset = dd_state_reader_offset(rd);
		if (batch->n == APPLY_BATCH && (r = dd_state_batch_apply(batch, st)) < 0)
			return r;
	}
	return dd_state_batch_apply(batch, st);
}

/* Cuts the log where recovery found it torn: the torn segment from the
 * bad record on when appending resumes in it, every later segment
 * renamed *.discarded. */
static int cut_torn(int dirfd, const uint64_t *firsts, size_t n,
		    const struct dd_state_recovery *out)
{
	size_t k = 0;
	while (k < n && firsts[k] != out->torn_segment)
		k++;
	if (k < n && out->pos.seg_first_lsn == firsts[k]) {
		int r = cut(dirfd, firsts[k], out->torn_offset);
		if (r < 0)
			return r;
		k++;
	}
	for (; k < n; k++)
		discard(dirfd, firsts[k]);
	return fsync(dirfd) < 0 ? -errno : 0;
}

int dd_state_recover(const char *wal_dir, struct dd_state_store *st,
		     struct dd_state_recovery *out)
{
	memset(out, 0, sizeof(*out));
	int dirfd = open(wal_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	uint64_t *firsts = NULL;
	size_t n = 0;
	struct dd_state_batch batch = {0};
	struct dd_state_reader rd = {.fd = -1};
	int r = dd_state_segments(dirfd, &firsts, &n);
	if (r < 0)
		goto out;
	uint64_t ckpt = dd_state_store_checkpoint(st);
	out->checkpoint = ckpt;
	out->last_lsn = ckpt;
	/* from the segment holding the first record the store lacks: those
	 * before it are wholly in the store already */
	size_t i = dd_state_segment_of(firsts, n, ckpt + 1);
	if (i == n)
		i = 0;
	bool prev_read = false;
	for (; i < n && !out->torn; i++) {
		if ((r = dd_state_reader_open(&rd, dirfd, firsts[i], 0)) < 0)
			goto out;
		out->segments++;
		if (prev_read && out->last_lsn + 1 != firsts[i]) {
			/* a gap between segments: the records in between are gone */
			out->torn = true;
			out->torn_segment = firsts[i];
			snprintf(out->torn_why, sizeof(out->torn_why),
				 "segment starts at LSN %" PRIu64 ", expected %" PRIu64, firsts[i],
				 out->last_lsn + 1);
			break;
		}
		if ((r = replay_segment(&rd, firsts[i], st, ckpt, &batch, out)) < 0)
			goto out;
		prev_read = true;
		if (out->pos.seg_first_lsn != firsts[i]) {
			/* nothing good in it: append to it from its start */
			out->pos.seg_first_lsn = firsts[i];
			out->pos.offset = 0;
		}
	}
	/* the segment may be mapped, and cut() truncates it: a mapping must
	 * not be touched past a file's end (SIGBUS), so let go of it first */
	dd_state_reader_close(&rd);
	/* the caller reports a tear, from *out */
	if (out->torn && (r = cut_torn(dirfd, firsts, n, out)) < 0)
		goto out;
	out->pos.next_lsn = out->last_lsn + 1;
	r = dd_state_wal_prune(dirfd, st, dd_state_store_checkpoint(st));
out:
	dd_state_reader_close(&rd);
	free(firsts);
	dd_state_batch_free(&batch);
	close(dirfd);
	return r;
}
