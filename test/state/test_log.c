/* The log and recovery at the state level, on real files: records written
 * through the WAL and io_uring, read back, cut short and corrupted. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "sutil.h"

_Static_assert(DD_STATE_WAITING == DD_WAITING && DD_STATE_DELAYED == DD_DELAYED &&
		       DD_STATE_QUEUED == DD_QUEUED && DD_STATE_RUNNING == DD_RUNNING &&
		       DD_STATE_SUCCEEDED == DD_SUCCEEDED && DD_STATE_FAILED == DD_FAILED &&
		       DD_STATE_CANCELLED == DD_CANCELLED && DD_STATE_TIMED_OUT == DD_TIMED_OUT,
	       "the log and the store number states as the API does");

struct logdir {
	char *dir;
	char wal[4200];
	int n_store;
};

static void logdir_init(struct logdir *l, const char *tag)
{
	l->dir = make_tmpdir(tag);
	snprintf(l->wal, sizeof(l->wal), "%s/wal", l->dir);
	cr_assert_eq(mkdir(l->wal, 0700), 0);
	l->n_store = 0;
}

/* A fresh, empty store to recover into. */
static struct dd_state_store *fresh_store(struct logdir *l)
{
	char path[4300];
	snprintf(path, sizeof(path), "%s/store%d", l->dir, l->n_store++);
	struct dd_state_store_opts o = {.map_initial = 1u << 20, .map_max = 1u << 30};
	struct dd_state_store *st;
	cr_assert_eq(dd_state_store_open(path, &o, &st), 0);
	return st;
}

/* Appends SUBMIT records for ids [first, first+n) and waits for the fsync;
 * their payloads are "job <id>", then @pad dots. */
static void write_padded(const char *wal, struct dd_state_wal_pos *pos, uint64_t first,
			 unsigned n, unsigned pad)
{
	struct io_uring ring;
	cr_assert_eq(io_uring_queue_init(8, &ring, 0), 0);
	struct dd_state_wal *w;
	cr_assert_eq(dd_state_wal_open(wal, 4096, true, pos, &ring, &w), 0);
	for (unsigned i = 0; i < n; i++) {
		char payload[40];
		snprintf(payload, sizeof(payload), "job %u%.*s", (unsigned)(first + i), (int)pad,
			 "................");
		struct dd_logrec r = {.type = DD_LOGREC_SUBMIT, .id = first + i, .at_rt = 1,
				   .max_attempts = 1, .priority = 2, .kind = "ok", .kind_len = 2,
				   .payload = payload, .payload_len = (uint32_t)strlen(payload)};
		cr_assert_eq(dd_state_wal_append(w, &r), 0);
		if (i % 7 == 6 || i + 1 == n) { /* several batches */
			while (dd_state_wal_busy(w)) {
				if (dd_state_wal_kick(w, 0))
					io_uring_submit(&ring);
				struct io_uring_cqe *cqe;
				cr_assert_eq(io_uring_wait_cqe(&ring, &cqe), 0);
				dd_state_wal_complete(w, cqe->user_data, cqe->res, 0);
				io_uring_cqe_seen(&ring, cqe);
				cr_assert_eq(dd_state_wal_error(w), 0);
			}
		}
	}
	pos->next_lsn = dd_state_wal_next_lsn(w);
	dd_state_wal_close(w);
	io_uring_queue_exit(&ring);
}

static void write_jobs(const char *wal, struct dd_state_wal_pos *pos, uint64_t first, unsigned n)
{
	write_padded(wal, pos, first, n, 0);
}

/* File offset and segment of the record with @lsn. */
static void locate(const char *wal, uint64_t lsn, uint64_t *seg, uint64_t *off)
{
	int dfd = open(wal, O_RDONLY | O_DIRECTORY);
	uint64_t *firsts;
	size_t n;
	cr_assert_eq(dd_state_segments(dfd, &firsts, &n), 0);
	for (size_t i = 0; i < n; i++) {
		if (firsts[i] > lsn)
			break;
		*seg = firsts[i];
	}
	struct dd_state_reader rd = {.fd = -1};
	cr_assert_eq(dd_state_reader_open(&rd, dfd, *seg, 0), 0);
	struct dd_logrec rec;
	for (;;) {
		*off = dd_state_reader_offset(&rd);
		cr_assert_eq(dd_state_reader_next(&rd, &rec, false), DD_LOGREC_OK);
		if (rec.lsn == lsn)
			break;
	}
	dd_state_reader_close(&rd);
	free(firsts);
	close(dfd);
}

static size_t jobs_in(struct dd_state_store *st)
{
	return dd_state_store_count(st);
}

static char *seg_path(const char *wal, uint64_t seg)
{
	char name[32], *p;
	dd_state_wal_name(name, sizeof(name), seg);
	cr_assert(asprintf(&p, "%s/%s", wal, name) > 0);
	return p;
}

Test(log, records_round_trip_across_segments)
{
	struct logdir l;
	logdir_init(&l, "log");
	struct dd_state_wal_pos pos = {0};
	write_jobs(l.wal, &pos, 1, 100); /* 4 KiB segments: several */
	struct dd_state_store *st = fresh_store(&l);
	struct dd_state_recovery rec;
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert_not(rec.torn);
	cr_assert_eq(rec.replayed, 100);
	cr_assert_gt(rec.segments, 1);
	cr_assert_eq(rec.pos.next_lsn, 101);
	cr_assert_eq(jobs_in(st), 100);
	struct dd_state_job job;
	void *buf;
	cr_assert_eq(dd_state_store_get(st, 42, &job, &buf), 0);
	cr_assert_eq(job.spec.payload_len, 6);
	cr_assert_eq(memcmp(job.spec.payload, "job 42", 6), 0);
	free(buf);
	/* replay is idempotent: a second pass changes nothing */
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert_eq(rec.replayed, 0);
	dd_state_store_close(st);
	drop_tmpdir(l.dir);
}

/* A batch keeps the reader's decoding rather than decoding again at apply
 * time. From a mapped segment its records point into the mapping; read
 * with pread (no_map), into the batch's own copy of the bytes, which grows,
 * and moves, as a large batch fills. Either way every field must name its
 * record's bytes, and the store must get them. */
static void batch_keeps_decoded_records(bool map)
{
	struct logdir l;
	logdir_init(&l, map ? "batch-map" : "batch-copy");
	enum { N = 3000, PAY = 3000 }; /* about 9 MB: the copy grows past 4 and 8 MB */
	char name[32], path[4300];
	dd_state_wal_name(name, sizeof(name), 1);
	snprintf(path, sizeof(path), "%s/%s", l.wal, name);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	static unsigned char payload[PAY], buf[PAY + 512];
	for (unsigned i = 0; i < N; i++) {
		char kind[16], key[16];
		memset(payload, 'a' + (int)(i % 26), sizeof(payload));
		snprintf(kind, sizeof(kind), "k%u", i);
		snprintf(key, sizeof(key), "key-%u", i);
		struct dd_logrec r = {.lsn = i + 1, .type = DD_LOGREC_SUBMIT, .id = i + 1, .at_rt = 1,
				   .max_attempts = 1, .priority = 2, .kind = kind,
				   .kind_len = (uint32_t)strlen(kind), .payload = payload,
				   .payload_len = PAY, .key = key, .key_len = (uint32_t)strlen(key)};
		cr_assert_leq(dd_logrec_size(&r), sizeof(buf));
		size_t len = dd_logrec_encode(&r, buf);
		cr_assert_eq(fwrite(buf, 1, len, f), len);
	}
	cr_assert_eq(fclose(f), 0);

	int dfd = open(l.wal, O_RDONLY | O_DIRECTORY);
	struct dd_state_reader rd = {.fd = -1, .no_map = !map};
	cr_assert_eq(dd_state_reader_open(&rd, dfd, 1, 0), 0);
	cr_assert_eq(rd.mapped, map);
	struct dd_state_batch b = {0};
	struct dd_logrec rec;
	for (unsigned i = 0; i < N; i++) {
		cr_assert_eq(dd_state_reader_next(&rd, &rec, false), DD_LOGREC_OK);
		cr_assert_eq(dd_state_batch_add(&b, &rd, &rec), 0);
	}
	cr_assert_eq(dd_state_reader_next(&rd, &rec, false), DD_LOGREC_EOF);
	if (map)
		cr_assert_eq(b.len, 0, "nothing copied from a mapping");
	else
		cr_assert_gt(b.cap, 8u << 20, "the copy grew twice");
	const char *from = map ? (const char *)rd.buf : (const char *)b.raw;
	size_t span = map ? rd.len : b.len;
	for (unsigned i = 0; i < N; i++) {
		const struct dd_logrec *r = &b.recs[i];
		char kind[16], key[16];
		snprintf(kind, sizeof(kind), "k%u", i);
		snprintf(key, sizeof(key), "key-%u", i);
		cr_assert_eq(r->lsn, i + 1);
		cr_assert_eq(r->id, i + 1);
		cr_assert(r->kind >= from && r->kind < from + span,
			  "record %u points outside the %s", i, map ? "mapping" : "batch");
		cr_assert_eq(r->kind_len, strlen(kind));
		cr_assert_eq(memcmp(r->kind, kind, r->kind_len), 0, "record %u", i);
		cr_assert_eq(r->key_len, strlen(key));
		cr_assert_eq(memcmp(r->key, key, r->key_len), 0, "record %u", i);
		cr_assert_eq(r->payload_len, PAY);
		const unsigned char *p = r->payload;
		cr_assert(p[0] == 'a' + i % 26 && p[PAY - 1] == 'a' + i % 26, "record %u", i);
	}
	struct dd_state_store *st = fresh_store(&l);
	cr_assert_eq(dd_state_batch_apply(&b, st), 0);
	cr_assert_eq(b.n, 0);
	cr_assert_eq(jobs_in(st), N);
	struct dd_state_job job;
	void *jb;
	cr_assert_eq(dd_state_store_get(st, 2999, &job, &jb), 0);
	cr_assert_eq(job.spec.payload_len, PAY);
	cr_assert_eq(((const unsigned char *)job.spec.payload)[PAY / 2], 'a' + 2998 % 26);
	cr_assert_eq(memcmp(job.spec.kind, "k2998", 5), 0);
	free(jb);
	uint64_t id;
	cr_assert_eq(dd_state_store_idem_find(st, 0, "key-17", &id), 0);
	cr_assert_eq(id, 18);
	dd_state_batch_free(&b);
	dd_state_reader_close(&rd);
	close(dfd);
	dd_state_store_close(st);
	drop_tmpdir(l.dir);
}

Test(log, batch_keeps_decoded_records_from_a_mapping)
{
	batch_keeps_decoded_records(true);
}

Test(log, batch_keeps_decoded_records_across_growth)
{
	batch_keeps_decoded_records(false);
}

Test(log, torn_tail_recovers_to_the_last_whole_record)
{
	struct logdir l;
	logdir_init(&l, "torn");
	struct dd_state_wal_pos pos = {0};
	write_jobs(l.wal, &pos, 1, 60);
	uint64_t seg, off;
	locate(l.wal, 60, &seg, &off);
	char *p = seg_path(l.wal, seg);
	cr_assert_eq(truncate(p, (off_t)off + 13), 0); /* record 60 cut mid-header */
	struct dd_state_store *st = fresh_store(&l);
	struct dd_state_recovery rec;
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert(rec.torn);
	cr_assert_eq(rec.torn_segment, seg);
	cr_assert_eq(rec.torn_offset, off);
	cr_assert_str_eq(rec.torn_why, "record cut short");
	cr_assert_eq(jobs_in(st), 59);
	cr_assert_eq(rec.pos.next_lsn, 60);

	/* the log goes on from there, and a later recovery finds no tear
	 * (into the same store: recovery deleted the segments it covers) */
	write_jobs(l.wal, &rec.pos, 1000, 5);
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert_not(rec.torn, "%s at %lu", rec.torn_why, (unsigned long)rec.torn_offset);
	cr_assert_eq(jobs_in(st), 64, "replayed %lu last %lu segs %u", (unsigned long)rec.replayed, (unsigned long)rec.last_lsn, rec.segments);
	dd_state_store_close(st);
	free(p);
	drop_tmpdir(l.dir);
}

static ino_t inode_of(const char *wal, const char *name)
{
	char path[4300];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/%s", wal, name);
	return stat(path, &sb) == 0 ? sb.st_ino : 0;
}

/* Segments the store no longer needs become spares (two at most, of the
 * segments' size; the rest are deleted), and the log's next segments are
 * those spares, renamed. A spare still holds its earlier records past the
 * new ones: recovery and the reader stop where the new ones end (the end
 * mark after each write), and never take an old record for a new one. */
Test(log, retired_segments_are_reused_and_their_old_records_never_read)
{
	struct logdir l;
	logdir_init(&l, "spare");
	struct dd_state_wal_pos pos = {0};
	write_jobs(l.wal, &pos, 1, 100); /* 4 KiB segments: several */
	struct dd_state_store *st = fresh_store(&l);
	struct dd_state_recovery rec;
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert_eq(rec.pos.next_lsn, 101);
	int dfd = open(l.wal, O_RDONLY | O_DIRECTORY);
	uint64_t *firsts;
	size_t n;
	/* recovery deleted what the store covers but the last segment: write
	 * more, so that there are old segments to retire */
	write_jobs(l.wal, &rec.pos, 101, 100);
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert_not(rec.torn);
	write_jobs(l.wal, &rec.pos, 201, 100);
	cr_assert_eq(dd_state_segments(dfd, &firsts, &n), 0);
	cr_assert_geq(n, 4, "%zu segments", n);
	/* one of another size is deleted, not kept */
	char odd[32];
	dd_state_wal_name(odd, sizeof(odd), firsts[0]);
	char *oddpath = seg_path(l.wal, firsts[0]);
	cr_assert_eq(truncate(oddpath, 100), 0);
	free(oddpath);
	cr_assert_eq(dd_state_wal_retire(dfd, firsts, n - 1, 4096), 0);
	cr_assert_eq(inode_of(l.wal, odd), 0);
	ino_t spare[2] = {inode_of(l.wal, "spare-0"), inode_of(l.wal, "spare-1")};
	cr_assert(spare[0] && spare[1], "two spares kept");
	uint64_t *left;
	size_t nleft;
	cr_assert_eq(dd_state_segments(dfd, &left, &nleft), 0);
	cr_assert_eq(nleft, 1, "the others are gone");
	free(left);

	/* a fresh store: recovery replays the last segment (201..) on */
	dd_state_store_close(st);
	st = fresh_store(&l);
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert_not(rec.torn);
	cr_assert_eq(rec.pos.next_lsn, 301);
	uint64_t from = rec.last_lsn - rec.replayed + 1;
	/* into the next segment, a spare, 5 jobs: part of it written over.
	 * Larger records than before, so that the new ones end in the middle
	 * of an old one: only the end mark stops a reader there. */
	struct dd_logrec sample = {.type = DD_LOGREC_SUBMIT, .kind_len = 2, .payload_len = 7 + 12};
	uint64_t last = 300 + (4096 - rec.pos.offset) / dd_logrec_size(&sample) + 5;
	write_padded(l.wal, &rec.pos, 301, (unsigned)(last - 300), 12);
	cr_assert_eq(inode_of(l.wal, "spare-0"), 0, "taken");
	uint64_t seg, off;
	locate(l.wal, last, &seg, &off);
	cr_assert_eq(seg, last - 4, "a segment of its own");
	char name[32];
	dd_state_wal_name(name, sizeof(name), seg);
	cr_assert_eq(inode_of(l.wal, name), spare[0]);
	struct dd_state_reader rd = {.fd = -1};
	struct dd_logrec r;
	cr_assert_eq(dd_state_reader_open(&rd, dfd, seg, 0), 0);
	for (uint64_t lsn = seg; lsn <= last; lsn++) {
		cr_assert_eq(dd_state_reader_next(&rd, &r, false), DD_LOGREC_OK);
		cr_assert_eq(r.lsn, lsn);
	}
	off = dd_state_reader_offset(&rd);
	cr_assert_eq(dd_state_reader_next(&rd, &r, false), DD_LOGREC_EOF, "the end mark");
	bool old = false;
	for (size_t k = off + 8; k < off + 8 + 256 && k < rd.len; k++)
		old |= rd.buf[k] != 0;
	cr_assert(old, "old records follow it");
	dd_state_reader_close(&rd);
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert_not(rec.torn, "%s at %lu", rec.torn_why, (unsigned long)rec.torn_offset);
	cr_assert_eq(rec.pos.next_lsn, last + 1);
	/* and on, through the second spare into new segments */
	write_jobs(l.wal, &rec.pos, last + 1, 95);
	cr_assert_eq(inode_of(l.wal, "spare-1"), 0, "taken too");
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert_not(rec.torn, "%s at %lu", rec.torn_why, (unsigned long)rec.torn_offset);
	cr_assert_eq(rec.pos.next_lsn, last + 96);
	cr_assert_eq(jobs_in(st), last + 95 - from + 1);
	struct dd_state_job job;
	void *buf;
	cr_assert_eq(dd_state_store_get(st, 350, &job, &buf), 0);
	cr_assert_eq(memcmp(job.spec.payload, "job 350", 7), 0);
	cr_assert_eq(job.spec.payload_len, 7, "past the padded ones");
	free(buf);
	free(firsts);
	close(dfd);
	dd_state_store_close(st);
	drop_tmpdir(l.dir);
}

/* A spare made with another segment size (the setting changed) is of no
 * use: the log deletes it and makes a new segment. */
Test(log, a_spare_of_another_size_is_deleted_not_used)
{
	struct logdir l;
	logdir_init(&l, "spare-size");
	char path[4300];
	snprintf(path, sizeof(path), "%s/spare-0", l.wal);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 8192), 0); /* the log's segments are 4 KiB */
	close(fd);
	struct dd_state_wal_pos pos = {0};
	write_jobs(l.wal, &pos, 1, 10);
	cr_assert_eq(inode_of(l.wal, "spare-0"), 0, "deleted");
	char *seg = seg_path(l.wal, 1);
	struct stat sb;
	cr_assert_eq(stat(seg, &sb), 0);
	cr_assert_eq(sb.st_size, 4096, "a new segment, not the spare");
	free(seg);
	struct dd_state_store *st = fresh_store(&l);
	struct dd_state_recovery rec;
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert(!rec.torn && rec.replayed == 10);
	dd_state_store_close(st);
	drop_tmpdir(l.dir);
}

/* A segment whose first records are older than its name (a spare renamed
 * before anything was written into it, say) is empty, not torn. */
Test(log, a_segment_of_older_records_reads_as_empty)
{
	struct logdir l;
	logdir_init(&l, "stale");
	char name[32], path[4300];
	dd_state_wal_name(name, sizeof(name), 50);
	snprintf(path, sizeof(path), "%s/%s", l.wal, name);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	for (uint64_t lsn = 1; lsn <= 20; lsn++) {
		unsigned char b[256];
		struct dd_logrec r = {.lsn = lsn, .type = DD_LOGREC_SUBMIT, .id = lsn, .at_rt = 1,
				   .max_attempts = 1, .priority = 2, .kind = "ok", .kind_len = 2};
		size_t len = dd_logrec_encode(&r, b);
		cr_assert_eq(fwrite(b, 1, len, f), len);
	}
	cr_assert_eq(fclose(f), 0);
	struct dd_state_store *st = fresh_store(&l);
	struct dd_state_recovery rec;
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert_not(rec.torn, "%s", rec.torn_why);
	cr_assert_eq(rec.replayed, 0);
	cr_assert_eq(jobs_in(st), 0);
	cr_assert(rec.pos.seg_first_lsn == 50 && rec.pos.offset == 0, "appends from its start");
	dd_state_store_close(st);
	drop_tmpdir(l.dir);
}

Test(log, flipped_byte_stops_recovery_at_the_record_before)
{
	struct logdir l;
	logdir_init(&l, "flip");
	struct dd_state_wal_pos pos = {0};
	write_jobs(l.wal, &pos, 1, 80);
	uint64_t seg, off;
	locate(l.wal, 30, &seg, &off);
	char *p = seg_path(l.wal, seg);
	int fd = open(p, O_RDWR);
	unsigned char b;
	cr_assert_eq(pread(fd, &b, 1, (off_t)off + 30), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)off + 30), 1);
	close(fd);
	struct dd_state_store *st = fresh_store(&l);
	struct dd_state_recovery rec;
	cr_assert_eq(dd_state_recover(l.wal, st, &rec), 0);
	cr_assert(rec.torn);
	cr_assert_str_eq(rec.torn_why, "checksum mismatch");
	cr_assert_eq(rec.last_lsn, 29);
	cr_assert_eq(jobs_in(st), 29);
	/* later segments are set aside (*.discarded), not read again */
	struct dd_state_recovery again;
	cr_assert_eq(dd_state_recover(l.wal, st, &again), 0);
	cr_assert_not(again.torn);
	cr_assert_eq(jobs_in(st), 29);
	dd_state_store_close(st);
	free(p);
	drop_tmpdir(l.dir);
}

/* A job submitted, started and ended within one store transaction is
 * written once in its final state; one still running keeps its START; the
 * indexes (by state, by end time) agree; a replay changes nothing. */
/* FINISH is a START and an END in one record: folded into its SUBMIT in
 * the same transaction, or applied to the job a later one finds, it leaves
 * what the two would have; replayed, nothing changes. */
Test(store, finish_record_is_a_start_and_an_end)
{
	struct logdir l;
	logdir_init(&l, "finish");
	struct dd_state_store *st = fresh_store(&l);
	struct dd_logrec recs[] = {
		{.type = DD_LOGREC_SUBMIT, .lsn = 1, .id = 9, .at_rt = 10, .max_attempts = 1,
		 .priority = 2, .kind = "k", .kind_len = 1},
		{.type = DD_LOGREC_SUBMIT, .lsn = 2, .id = 10, .at_rt = 11, .max_attempts = 1,
		 .priority = 2, .kind = "k", .kind_len = 1},
		{.type = DD_LOGREC_FINISH, .lsn = 3, .id = 9, .at_rt = 15, .attempt = 1, .worker = 3,
		 .started_rt = 12, .state = 5},
		/* the next transaction: job 10's SUBMIT is in the store by then */
		{.type = DD_LOGREC_FINISH, .lsn = 4, .id = 10, .at_rt = 25, .attempt = 1, .worker = 1,
		 .started_rt = 20, .state = 6, .result = 768, .reason = "exit 3", .reason_len = 6},
	};
	for (int pass = 0; pass < 2; pass++) { /* the second: a replay */
		cr_assert_eq(dd_state_store_apply(st, recs, 3), 0);
		cr_assert_eq(dd_state_store_apply(st, recs + 3, 1), 0);
		struct dd_state_job j;
		void *buf;
		cr_assert_eq(dd_state_store_get(st, 9, &j, &buf), 0);
		cr_assert(j.state == 5 && j.attempt == 1 && j.worker == 3 && j.started_rt == 12 &&
				  j.ended_rt == 15 && j.reason[0] == 0,
			  "job 9: state %u worker %d started %lu ended %lu", j.state, j.worker,
			  (unsigned long)j.started_rt, (unsigned long)j.ended_rt);
		free(buf);
		cr_assert_eq(dd_state_store_get(st, 10, &j, &buf), 0);
		cr_assert(j.state == 6 && j.attempt == 1 && j.worker == 1 && j.started_rt == 20 &&
				  j.ended_rt == 25 && j.result == 768,
			  "job 10: state %u worker %d started %lu ended %lu", j.state, j.worker,
			  (unsigned long)j.started_rt, (unsigned long)j.ended_rt);
		cr_assert_str_eq(j.reason, "exit 3");
		free(buf);
		uint64_t ids[4];
		size_t n;
		cr_assert_eq(dd_state_store_list(st, 6, 0, ids, 4, &n), 0);
		cr_assert(n == 1 && ids[0] == 10);
		for (uint8_t s = 1; s <= 4; s++) {
			cr_assert_eq(dd_state_store_list(st, s, 0, ids, 4, &n), 0);
			cr_assert_eq(n, 0, "no stale index entry in state %u", s);
		}
	}
	/* both are in the end-time index: retention removes both */
	cr_assert_eq(dd_state_store_trim(st, 100, 0, 0, 100, NULL, NULL), 2);
	cr_assert_eq(dd_state_store_count(st), 0);
	dd_state_store_close(st);
	drop_tmpdir(l.dir);
}

Test(store, changes_in_the_same_transaction_fold_into_the_submit)
{
	struct logdir l;
	logdir_init(&l, "fold");
	struct dd_state_store *st = fresh_store(&l);
	struct dd_logrec recs[] = {
		{.type = DD_LOGREC_SUBMIT, .lsn = 1, .id = 7, .at_rt = 10, .max_attempts = 2,
		 .priority = 2, .kind = "k", .kind_len = 1, .uid = 1000, .gid = 100},
		{.type = DD_LOGREC_SUBMIT, .lsn = 2, .id = 8, .at_rt = 11, .max_attempts = 1,
		 .priority = 2, .kind = "k", .kind_len = 1},
		{.type = DD_LOGREC_START, .lsn = 3, .id = 7, .at_rt = 12, .attempt = 1, .worker = 3},
		{.type = DD_LOGREC_RETRY, .lsn = 4, .id = 7, .at_rt = 13, .attempt = 1,
		 .not_before_rt = 20},
		{.type = DD_LOGREC_START, .lsn = 5, .id = 8, .at_rt = 14, .attempt = 1, .worker = 1},
		{.type = DD_LOGREC_START, .lsn = 6, .id = 7, .at_rt = 21, .attempt = 2, .worker = 0},
		{.type = DD_LOGREC_END, .lsn = 7, .id = 7, .at_rt = 22, .attempt = 2, .state = 6,
		 .result = 768, .reason = "exit 3", .reason_len = 6},
	};
	for (int pass = 0; pass < 2; pass++) { /* the second: a replay */
		cr_assert_eq(dd_state_store_apply(st, recs, 7), 0);
		struct dd_state_job j;
		void *buf;
		cr_assert_eq(dd_state_store_get(st, 7, &j, &buf), 0);
		cr_assert_eq(j.state, 6, "FAILED");
		cr_assert_eq(j.attempt, 2);
		cr_assert_eq(j.result, 768);
		cr_assert_str_eq(j.reason, "exit 3");
		cr_assert_eq(j.spec.uid, 1000);
		cr_assert_eq(j.spec.max_attempts, 2);
		free(buf);
		cr_assert_eq(dd_state_store_get(st, 8, &j, &buf), 0);
		cr_assert_eq(j.state, 4, "RUNNING");
		cr_assert_eq(j.worker, 1);
		free(buf);
		uint64_t ids[4];
		size_t n;
		cr_assert_eq(dd_state_store_list(st, 6, 0, ids, 4, &n), 0);
		cr_assert(n == 1 && ids[0] == 7);
		cr_assert_eq(dd_state_store_list(st, 4, 0, ids, 4, &n), 0);
		cr_assert(n == 1 && ids[0] == 8);
		for (uint8_t s = 1; s <= 3; s++) {
			cr_assert_eq(dd_state_store_list(st, s, 0, ids, 4, &n), 0);
			cr_assert_eq(n, 0, "no stale index entry in state %u", s);
		}
	}
	/* the end-time index has it: retention by count removes it */
	uint64_t gone_exec[100];
	size_t nexec = 9;
	cr_assert_eq(dd_state_store_trim(st, 100, 0, 0, 100, gone_exec, &nexec), 1);
	cr_assert_eq(nexec, 0, "job 7 was not a process job");
	cr_assert_eq(dd_state_store_count(st), 1);
	dd_state_store_close(st);
	drop_tmpdir(l.dir);
}

/* A job's life for cursors_agree: submitted, then maybe started, retried,
 * ended; every fifth has an idempotency key. */
#define AGREE_JOBS 6000u

static size_t agree_records(struct dd_logrec *recs, char (*keys)[16])
{
	uint32_t x = 12345; /* a fixed xorshift: the same records every run */
	size_t n = 0;
	uint64_t lsn = 1;
	for (uint32_t i = 0; i < AGREE_JOBS; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		/* ids mostly grow, some come late (lanes reorder submissions) */
		uint64_t id = 2 * (uint64_t)i + 2; /* 0 is no job id */
		if (x % 8 == 0 && i > 64)
			id = 2 * (uint64_t)(i - 64) + 1; /* odd: each once, below the newest */
		struct dd_logrec s = {.type = DD_LOGREC_SUBMIT, .lsn = lsn++, .id = id, .at_rt = 1,
				   .max_attempts = 2, .priority = 2, .kind = "k", .kind_len = 1,
				   .payload = "frame-000017.png", .payload_len = 16};
		if (i % 5 == 0) {
			snprintf(keys[i], 16, "key-%u", i);
			s.key = keys[i];
			s.key_len = (uint32_t)strlen(keys[i]);
		}
		recs[n++] = s;
		unsigned fate = x % 5; /* 0 queued, 1 running, 2 retried, 3 ended, 4 finished */
		if (fate == 4) {
			recs[n++] = (struct dd_logrec){.type = DD_LOGREC_FINISH, .lsn = lsn++, .id = id,
						    .at_rt = 4 + i, .attempt = 1, .worker = 1,
						    .started_rt = 2, .state = (uint8_t)(5 + x % 2)};
			continue;
		}
		if (fate >= 1)
			recs[n++] = (struct dd_logrec){.type = DD_LOGREC_START, .lsn = lsn++, .id = id,
						    .at_rt = 2, .attempt = 1, .worker = 1};
		if (fate == 2)
			recs[n++] = (struct dd_logrec){.type = DD_LOGREC_RETRY, .lsn = lsn++, .id = id,
						    .at_rt = 3, .attempt = 1,
						    .not_before_rt = 99};
		if (fate == 3)
			recs[n++] = (struct dd_logrec){.type = DD_LOGREC_END, .lsn = lsn++, .id = id,
						    .at_rt = 4 + i, .attempt = 1,
						    .state = (uint8_t)(5 + x % 2)};
	}
	return n;
}

/* The store's write cursors stay on their leaf between records; whether
 * a job's changes are folded into its submit (one transaction), found
 * again later (one record per transaction), or folded together in the
 * transaction after their submit's (transactions of 3 records: a submit
 * ends one, its start and end begin the next), in an order with late ids,
 * every job, index and key must come out the same, and retention must
 * remove all of it. */
Test(store, one_transaction_and_one_per_record_agree)
{
	struct logdir l;
	logdir_init(&l, "agree");
	struct dd_state_store *a = fresh_store(&l), *b = fresh_store(&l), *c = fresh_store(&l);
	struct dd_logrec *recs = calloc(4 * AGREE_JOBS, sizeof(*recs));
	char(*keys)[16] = calloc(AGREE_JOBS, 16);
	size_t n = agree_records(recs, keys);
	cr_assert_eq(dd_state_store_apply(a, recs, n), 0);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(dd_state_store_apply(b, &recs[i], 1), 0);
	cr_assert_eq(dd_state_store_apply(b, recs, n), 0, "a replay changes nothing");
	for (size_t i = 0; i < n; i += 3)
		cr_assert_eq(dd_state_store_apply(c, &recs[i], n - i < 3 ? n - i : 3), 0);
	struct dd_state_store *all[] = {a, b, c};
	for (int k = 0; k < 3; k++)
		cr_assert_eq(dd_state_store_count(all[k]), AGREE_JOBS);
	size_t ended = 0;
	for (size_t i = 0; i < n; i++) {
		if (recs[i].type != DD_LOGREC_SUBMIT)
			continue;
		struct dd_state_job ja, jb;
		void *ba, *bb;
		int ga = dd_state_store_get(a, recs[i].id, &ja, &ba);
		cr_assert_eq(ga, 0, "get %lu: %d", (unsigned long)recs[i].id, ga);
		for (int k = 1; k < 3; k++) {
			cr_assert_eq(dd_state_store_get(all[k], recs[i].id, &jb, &bb), 0);
			cr_assert(ja.state == jb.state && ja.attempt == jb.attempt &&
					  ja.ended_rt == jb.ended_rt && ja.worker == jb.worker &&
					  ja.spec.not_before_rt == jb.spec.not_before_rt &&
					  jb.spec.payload_len == 16,
				  "job %lu, store %d: %u/%u", (unsigned long)recs[i].id, k,
				  ja.state, jb.state);
			free(bb);
		}
		cr_assert_eq(ja.spec.payload_len, 16);
		ended += ja.state >= 5;
		free(ba);
		if (recs[i].key_len) {
			for (int k = 0; k < 3; k++) {
				uint64_t id = 0;
				cr_assert_eq(dd_state_store_idem_find(all[k], recs[i].uid, recs[i].key, &id), 0);
				cr_assert_eq(id, recs[i].id);
			}
		}
	}
	cr_assert_gt(ended, AGREE_JOBS / 8);
	uint64_t *ia = calloc(AGREE_JOBS, sizeof(uint64_t)), *ib = calloc(AGREE_JOBS, 8);
	size_t total = 0;
	for (uint8_t s = 1; s <= 7; s++) {
		size_t na, nb;
		cr_assert_eq(dd_state_store_list(a, s, 0, ia, AGREE_JOBS, &na), 0);
		for (int k = 1; k < 3; k++) {
			cr_assert_eq(dd_state_store_list(all[k], s, 0, ib, AGREE_JOBS, &nb), 0);
			cr_assert_eq(na, nb, "state %u, store %d", s, k);
			cr_assert(memcmp(ia, ib, na * sizeof(uint64_t)) == 0,
				  "state %u, store %d: the same ids", s, k);
		}
		total += na;
	}
	cr_assert_eq(total, AGREE_JOBS, "every job in the state index once");
	/* retention by count, in small budgets: the ended jobs go, keys too */
	struct dd_state_store **both = all;
	for (int k = 0; k < 3; k++) {
		long gone = 0, g;
		while ((g = dd_state_store_trim(both[k], 1, 0, 0, 97, NULL, NULL)) > 0)
			gone += g;
		cr_assert_eq(g, 0, "store %d: trim: %ld after %ld", k, g, gone);
		cr_assert_eq((size_t)gone, ended);
		cr_assert_eq(dd_state_store_count(both[k]), AGREE_JOBS - ended);
		size_t ns;
		for (uint8_t s = 5; s <= 7; s++) {
			cr_assert_eq(dd_state_store_list(both[k], s, 0, ia, AGREE_JOBS, &ns), 0);
			cr_assert_eq(ns, 0, "no ended job left in state %u", s);
		}
		for (size_t i = 0; i < n; i++) {
			if (recs[i].type != DD_LOGREC_SUBMIT || !recs[i].key_len)
				continue;
			struct dd_state_job j;
			void *buf;
			uint64_t id;
			bool kept = dd_state_store_get(both[k], recs[i].id, &j, &buf) == 0;
			if (kept)
				free(buf);
			cr_assert_eq(dd_state_store_idem_find(both[k], recs[i].uid, recs[i].key, &id),
				     kept ? 0 : -ENOENT, "the key goes with its job");
		}
		dd_state_store_close(both[k]);
	}
	free(ia);
	free(ib);
	free(keys);
	free(recs);
	drop_tmpdir(l.dir);
}

/* Opens the store at @path with LMDB itself, as an older version left it. */
static void raw_open(const char *path, MDB_env **env, MDB_txn **t, MDB_dbi *meta, MDB_dbi *bystate)
{
	cr_assert_eq(mdb_env_create(env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(*env, 8), 0);
	cr_assert_eq(mdb_env_set_mapsize(*env, 1u << 30), 0);
	cr_assert_eq(mdb_env_open(*env, path, 0, 0600), 0);
	cr_assert_eq(mdb_txn_begin(*env, NULL, 0, t), 0);
	cr_assert_eq(mdb_dbi_open(*t, "meta", 0, meta), 0);
	cr_assert_eq(mdb_dbi_open(*t, "bystate", 0, bystate), 0);
}

static void raw_set_schema(MDB_txn *t, MDB_dbi meta, uint64_t v)
{
	MDB_val k = {6, "schema"}, d = {8, &v};
	cr_assert_eq(mdb_put(t, meta, &k, &d, 0), 0);
}

/* Schema 4: succeeded jobs have no entry in ended; retention walks the
 * jobs table from a floor for them, merged by end time with ended (the
 * jobs that failed). By count and by age it removes the oldest first of
 * both; the floor passes over live jobs, and one of those that succeeds
 * later (below the floor) gets an entry, so it is removed too; the count
 * of live jobs survives a reopen. */
Test(store, retention_finds_succeeded_jobs_in_the_jobs_table)
{
	struct logdir l;
	logdir_init(&l, "floor");
	struct dd_state_store *st = fresh_store(&l);
	struct dd_logrec recs[200];
	size_t n = 0;
	uint64_t lsn = 1;
	for (uint64_t id = 1; id <= 100; id++)
		recs[n++] = (struct dd_logrec){.type = DD_LOGREC_SUBMIT, .lsn = lsn++, .id = id, .at_rt = 1,
					    .max_attempts = 1, .priority = 2, .kind = "k",
					    .kind_len = 1};
	for (uint64_t id = 1; id <= 100; id++)
		if (id != 10 && id != 20) /* those two stay queued */
			recs[n++] = (struct dd_logrec){.type = DD_LOGREC_FINISH, .lsn = lsn++, .id = id,
						    .at_rt = 1000 + id, .started_rt = 999 + id,
						    .attempt = 1, .worker = 0,
						    .state = id % 7 ? 5 : 6}; /* some failed */
	cr_assert_eq(dd_state_store_apply(st, recs, n), 0);
	struct dd_state_job j;
	void *buf;
#define GONE(id) (dd_state_store_get(st, (id), &j, &buf) == -ENOENT)
#define KEPT(id) (dd_state_store_get(st, (id), &j, &buf) == 0 && (free(buf), 1))
	/* 98 ended: keep the newest 50, so ids 1..50 but the two live ones go */
	cr_assert_eq(dd_state_store_trim(st, 0, 0, 50, 1000, NULL, NULL), 48);
	cr_assert(GONE(1) && GONE(7) && GONE(49) && GONE(50) && KEPT(51) && KEPT(10) && KEPT(20));
	/* by age: those ended before 1070 go (51..69, succeeded and failed) */
	cr_assert_eq(dd_state_store_trim(st, 1170, 100, SIZE_MAX, 1000, NULL, NULL), 19);
	cr_assert(GONE(63) && GONE(69) && KEPT(70) && KEPT(10));
	/* job 10 succeeds now, below the floor that passed it */
	struct dd_logrec fin = {.type = DD_LOGREC_FINISH, .lsn = lsn++, .id = 10, .at_rt = 5000,
			     .started_rt = 4999, .attempt = 1, .state = 5};
	cr_assert_eq(dd_state_store_apply(st, &fin, 1), 0);
	cr_assert_eq(dd_state_store_trim(st, 0, 0, 0, 1000, NULL, NULL), 32, "70..100, and 10");
	cr_assert(GONE(10) && GONE(100) && KEPT(20));
	cr_assert_eq(dd_state_store_count(st), 1);
	dd_state_store_close(st);

	char path[4300];
	snprintf(path, sizeof(path), "%s/store0", l.dir);
	struct dd_state_store_opts o = {.map_initial = 1u << 20, .map_max = 1u << 30};
	cr_assert_eq(dd_state_store_open(path, &o, &st), 0);
	cr_assert_eq(dd_state_store_trim(st, 0, 0, 0, 1000, NULL, NULL), 0, "20 is live");
	fin = (struct dd_logrec){.type = DD_LOGREC_FINISH, .lsn = lsn++, .id = 20, .at_rt = 6000,
			      .started_rt = 5999, .attempt = 1, .state = 5};
	cr_assert_eq(dd_state_store_apply(st, &fin, 1), 0);
	cr_assert_eq(dd_state_store_trim(st, 0, 0, 0, 1000, NULL, NULL), 1);
	cr_assert_eq(dd_state_store_count(st), 0);
#undef GONE
#undef KEPT
	dd_state_store_close(st);
	drop_tmpdir(l.dir);
}

/* A store whose retention keeps no ended job (keep_no_ended) does not
 * write a job that ends in the batch of its SUBMIT, keyed or not; a
 * process job it writes all the same (trimming removes its output), and a
 * job still live, or one that ends in a later batch, as any store does.
 * A replay of the batch changes nothing, and the next id is still known. */
Test(store, a_store_keeping_no_ended_job_never_writes_one_that_ends_in_its_batch)
{
	struct logdir l;
	logdir_init(&l, "noended");
	char path[4300];
	snprintf(path, sizeof(path), "%s/store", l.dir);
	struct dd_state_store_opts o = {.map_initial = 1u << 20, .map_max = 1u << 30,
					.keep_no_ended = true};
	struct dd_state_store *st;
	cr_assert_eq(dd_state_store_open(path, &o, &st), 0);
	struct dd_logrec recs[12];
	size_t n = 0;
	uint64_t lsn = 1;
	for (uint64_t id = 1; id <= 6; id++)
		recs[n++] = (struct dd_logrec){.type = DD_LOGREC_SUBMIT, .lsn = lsn++, .id = id, .at_rt = 1,
					    .max_attempts = 1, .priority = 2, .kind = "k",
					    .kind_len = 1};
	recs[4].key = "five"; /* job 5 has an idempotency key */
	recs[4].key_len = 4;
	recs[3].flags = DD_LOGREC_F_EXEC; /* job 4 is a process job */
	for (uint64_t id = 1; id <= 5; id++) {
		if (id == 3)
			continue; /* job 3 stays queued */
		recs[n++] = (struct dd_logrec){.type = DD_LOGREC_FINISH, .lsn = lsn++, .id = id,
					    .at_rt = 100 + id, .started_rt = 99 + id, .attempt = 1,
					    .state = id == 2 ? 6 : 5}; /* job 2 fails */
	}
	recs[n++] = (struct dd_logrec){.type = DD_LOGREC_START, .lsn = lsn++, .id = 6, .at_rt = 50,
				    .attempt = 1, .worker = 1}; /* job 6 runs on */
	struct dd_state_job j;
	void *buf;
#define GONE(id) (dd_state_store_get(st, (id), &j, &buf) == -ENOENT)
#define HAS(id, st_) (dd_state_store_get(st, (id), &j, &buf) == 0 && (free(buf), j.state == (st_)))
	for (int pass = 0; pass < 2; pass++) { /* the second: a replay */
		cr_assert_eq(dd_state_store_apply(st, recs, n), 0);
		cr_assert(GONE(1) && GONE(2) && GONE(5), "ended in their batch: not written");
		cr_assert(HAS(3, 3) && HAS(4, 5) && HAS(6, 4), "queued, process job, running");
		cr_assert_eq(dd_state_store_count(st), 3);
		cr_assert_eq(dd_state_store_checkpoint(st), lsn - 1);
		cr_assert_eq(dd_state_store_next_seq(st), 7, "ids are not reused");
	}
	/* an end in a later batch is written, and trimmed as usual */
	struct dd_logrec fin = {.type = DD_LOGREC_FINISH, .lsn = lsn++, .id = 3, .at_rt = 200,
			     .started_rt = 199, .attempt = 1, .state = 5};
	cr_assert_eq(dd_state_store_apply(st, &fin, 1), 0);
	cr_assert(HAS(3, 5));
	uint64_t gone_exec[4];
	size_t nexec = 0;
	cr_assert_eq(dd_state_store_trim(st, 0, 0, 0, 100, gone_exec, &nexec), 2, "jobs 3 and 4");
	cr_assert(nexec == 1 && gone_exec[0] == 4, "job 4's output is the caller's to remove");
	cr_assert(GONE(3) && GONE(4) && HAS(6, 4));
	/* Only an id above all in the table is passed over: job 6 is there
	 * (running), and a SUBMIT of it again with its end is applied to it,
	 * not skipped, which would leave it running in the store for good.
	 * Lanes may log id 10 after 11: 11 is passed over, 10 is written. */
	struct dd_logrec more[] = {
		{.type = DD_LOGREC_SUBMIT, .lsn = lsn++, .id = 6, .at_rt = 1, .max_attempts = 1,
		 .priority = 2, .kind = "k", .kind_len = 1},
		{.type = DD_LOGREC_FINISH, .lsn = lsn++, .id = 6, .at_rt = 300, .started_rt = 50,
		 .attempt = 1, .state = 5},
		{.type = DD_LOGREC_SUBMIT, .lsn = lsn++, .id = 11, .at_rt = 1, .max_attempts = 1,
		 .priority = 2, .kind = "k", .kind_len = 1},
		{.type = DD_LOGREC_SUBMIT, .lsn = lsn++, .id = 10, .at_rt = 1, .max_attempts = 1,
		 .priority = 2, .kind = "k", .kind_len = 1},
		{.type = DD_LOGREC_FINISH, .lsn = lsn++, .id = 11, .at_rt = 301, .started_rt = 300,
		 .attempt = 1, .state = 5},
		{.type = DD_LOGREC_FINISH, .lsn = lsn++, .id = 10, .at_rt = 302, .started_rt = 300,
		 .attempt = 1, .state = 5},
	};
	cr_assert_eq(dd_state_store_apply(st, more, 6), 0);
	cr_assert(HAS(6, 5), "job 6 ended in the store");
	cr_assert(GONE(11) && HAS(10, 5));
#undef GONE
#undef HAS
	dd_state_store_close(st);
	drop_tmpdir(l.dir);
}

static void count_pause(void *arg)
{
	(*(unsigned *)arg)++;
}

/* The pause hook runs inside a long transaction, after every N records;
 * without one set (as in recovery) nothing is called. */
Test(store, pause_hook_runs_every_n_records_of_a_transaction)
{
	struct logdir l;
	logdir_init(&l, "pause");
	struct dd_state_store *st = fresh_store(&l);
	enum { N = 1000 };
	struct dd_logrec *recs = calloc(N, sizeof(*recs));
	for (unsigned i = 0; i < N; i++)
		recs[i] = (struct dd_logrec){.type = DD_LOGREC_SUBMIT, .lsn = i + 1, .id = i + 1,
					  .at_rt = 1, .max_attempts = 1, .priority = 2,
					  .kind = "k", .kind_len = 1};
	unsigned calls = 0;
	dd_state_store_set_pause(st, count_pause, &calls, 100);
	cr_assert_eq(dd_state_store_apply(st, recs, 500), 0);
	cr_assert_eq(calls, 4, "after records 100, 200, 300, 400");
	dd_state_store_set_pause(st, NULL, NULL, 0);
	cr_assert_eq(dd_state_store_apply(st, recs + 500, 500), 0);
	cr_assert_eq(calls, 4);
	cr_assert_eq(jobs_in(st), N);
	free(recs);
	dd_state_store_close(st);
	drop_tmpdir(l.dir);
}

/* A schema-2 store listed succeeded jobs in bystate; schema 3 does not.
 * Schemas 2 and 3 put every ended job in ended; schema 4 leaves out the
 * succeeded ones written after it (retention finds them in the jobs table,
 * above a floor). Opening a schema-2 store removes those bystate entries
 * (in several transactions: more than one chunk's worth here), starts the
 * floor above the jobs already there, and records schema 4; listing,
 * retention and the other states' entries are as if it had been written at
 * 4. Schemas it does not know are refused. */
Test(store, schema_2_store_is_upgraded_on_open)
{
	struct logdir l;
	logdir_init(&l, "schema");
	struct dd_state_store *st = fresh_store(&l);
	char path[4300];
	snprintf(path, sizeof(path), "%s/store0", l.dir);
	struct dd_logrec recs[120];
	size_t n = 0;
	for (uint64_t id = 1; id <= 60; id++) {
		recs[n++] = (struct dd_logrec){.type = DD_LOGREC_SUBMIT, .lsn = n + 1, .id = id, .at_rt = 1,
					    .max_attempts = 1, .priority = 2, .kind = "k",
					    .kind_len = 1};
		recs[n++] = (struct dd_logrec){.type = DD_LOGREC_END, .lsn = n + 1, .id = id,
					    .at_rt = 2 + id, .attempt = 1,
					    .state = id % 6 ? 5 : 6}; /* 50 succeeded, 10 failed */
	}
	cr_assert_eq(dd_state_store_apply(st, recs, n), 0);
	dd_state_store_close(st);

	MDB_env *env;
	MDB_txn *t;
	MDB_dbi meta, bystate;
	raw_open(path, &env, &t, &meta, &bystate);
	MDB_stat ms;
	cr_assert_eq(mdb_stat(t, bystate, &ms), 0);
	cr_assert_eq(ms.ms_entries, 10, "schema 3 indexes only the failed ones");
	MDB_dbi ended;
	cr_assert_eq(mdb_dbi_open(t, "ended", 0, &ended), 0);
	cr_assert_eq(mdb_stat(t, ended, &ms), 0);
	cr_assert_eq(ms.ms_entries, 10, "schema 4 has ended entries only for the failed ones");
	for (uint64_t id = 1; id <= 60; id++) { /* as schemas 2 and 3 wrote them */
		unsigned char k[16];
		for (int b = 0; b < 8; b++) {
			k[b] = (unsigned char)((2 + id) >> (56 - 8 * b));
			k[8 + b] = (unsigned char)(id >> (56 - 8 * b));
		}
		MDB_val key = {16, k}, d = {0, ""};
		cr_assert_eq(mdb_put(t, ended, &key, &d, 0), 0);
	}
	for (uint64_t id = 1; id <= 70060; id++) { /* as schema 2 wrote them, and more */
		if (id <= 60 && id % 6 == 0)
			continue;
		unsigned char k[9] = {5};
		for (int b = 0; b < 8; b++)
			k[1 + b] = (unsigned char)(id >> (56 - 8 * b));
		MDB_val key = {9, k}, d = {0, ""};
		cr_assert_eq(mdb_put(t, bystate, &key, &d, 0), 0);
	}
	raw_set_schema(t, meta, 2);
	cr_assert_eq(mdb_txn_commit(t), 0);
	mdb_env_close(env);

	struct dd_state_store_opts o = {.map_initial = 1u << 20, .map_max = 1u << 30};
	int orc = dd_state_store_open(path, &o, &st);
	cr_assert_eq(orc, 0, "open: %d", orc);
	uint64_t ids[64];
	size_t got;
	cr_assert_eq(dd_state_store_list(st, 5, 0, ids, 64, &got), 0);
	cr_assert_eq(got, 50);
	cr_assert_eq(dd_state_store_list(st, 6, 0, ids, 64, &got), 0);
	cr_assert_eq(got, 10);
	cr_assert_eq(dd_state_store_trim(st, 100, 0, 0, 1000, NULL, NULL), 60);
	dd_state_store_close(st);

	raw_open(path, &env, &t, &meta, &bystate);
	cr_assert_eq(mdb_stat(t, bystate, &ms), 0);
	cr_assert_eq(ms.ms_entries, 0, "nothing left behind in bystate");
	MDB_val k = {6, "schema"}, d;
	cr_assert_eq(mdb_get(t, meta, &k, &d), 0);
	uint64_t schema;
	memcpy(&schema, d.mv_data, 8);
	cr_assert_eq(schema, 5);
	for (uint64_t bad = 1; bad <= 6; bad += 5) { /* older than 2, newer than 5 */
		raw_set_schema(t, meta, bad);
		cr_assert_eq(mdb_txn_commit(t), 0);
		mdb_env_close(env);
		cr_assert_eq(dd_state_store_open(path, &o, &st), -EPROTONOSUPPORT, "schema %lu",
			     (unsigned long)bad);
		raw_open(path, &env, &t, &meta, &bystate);
	}
	mdb_txn_abort(t);
	mdb_env_close(env);
	drop_tmpdir(l.dir);
}

/* The bytes of output a process job's last attempt lost (output_cut) go
 * with its END and FINISH records into the store; a record without them
 * (an older version's, or a job that lost nothing) reads as 0, both in
 * the log and in the store, where a later end replaces them. */
Test(store, output_cut_is_durable)
{
	struct dd_logrec end = {.type = DD_LOGREC_END, .lsn = 3, .id = 4, .at_rt = 12, .attempt = 1,
			     .state = 6, .result = 256, .reason = "exit 1", .reason_len = 6,
			     .output_cut = {123456789012ull, 7}};
	unsigned char buf[256], plain[256];
	size_t len = dd_logrec_encode(&end, buf);
	struct dd_logrec back;
	size_t used;
	cr_assert_eq(dd_logrec_decode(buf, len, &back, &used), DD_LOGREC_OK);
	cr_assert(back.output_cut[0] == 123456789012ull && back.output_cut[1] == 7);
	struct dd_logrec none = end;
	none.output_cut[0] = none.output_cut[1] = 0;
	size_t plen = dd_logrec_encode(&none, plain);
	cr_assert_eq(plen + 16, len, "no counts on disk when none was cut");
	cr_assert_eq(dd_logrec_decode(plain, plen, &back, &used), DD_LOGREC_OK);
	cr_assert(back.output_cut[0] == 0 && back.output_cut[1] == 0);
	/* the flag without counts is not an encoding the writer makes */
	/* body: id, at, attempt (20); state, flags, 2 spare, result, reason length (12) */
	const size_t blen = 20 + 12 + 6;
	cr_assert_eq(dd_logrec_decode_body(DD_LOGREC_END, plain + DD_LOGREC_HDR, blen, &back), 0);
	unsigned char bad[64];
	memcpy(bad, plain + DD_LOGREC_HDR, blen);
	bad[21] = 1;
	cr_assert_eq(dd_logrec_decode_body(DD_LOGREC_END, bad, blen, &back), -EPROTO);

	struct logdir l;
	logdir_init(&l, "cut");
	struct dd_state_store *st = fresh_store(&l);
	struct dd_logrec recs[] = {
		{.type = DD_LOGREC_SUBMIT, .lsn = 1, .id = 4, .at_rt = 10, .max_attempts = 2,
		 .priority = 2, .flags = DD_LOGREC_F_EXEC, .kind = "k", .kind_len = 1},
		{.type = DD_LOGREC_START, .lsn = 2, .id = 4, .at_rt = 11, .attempt = 1, .worker = 0},
	};
	cr_assert_eq(dd_state_store_apply(st, recs, 2), 0);
	cr_assert_eq(dd_state_store_apply(st, &end, 1), 0); /* a later batch */
	struct dd_state_job j;
	void *jb;
	cr_assert_eq(dd_state_store_get(st, 4, &j, &jb), 0);
	cr_assert_eq(j.state, 6);
	cr_assert_str_eq(j.reason, "exit 1");
	cr_assert(j.output_cut[0] == 123456789012ull && j.output_cut[1] == 7);
	free(jb);
	/* in the same batch as its submit */
	struct dd_logrec both[] = {
		{.type = DD_LOGREC_SUBMIT, .lsn = 4, .id = 5, .at_rt = 10, .max_attempts = 1,
		 .priority = 2, .flags = DD_LOGREC_F_EXEC, .kind = "k", .kind_len = 1},
		{.type = DD_LOGREC_FINISH, .lsn = 5, .id = 5, .at_rt = 12, .started_rt = 11,
		 .attempt = 1, .state = 5, .output_cut = {0, 99}},
		{.type = DD_LOGREC_SUBMIT, .lsn = 6, .id = 6, .at_rt = 10, .max_attempts = 1,
		 .priority = 2, .flags = DD_LOGREC_F_EXEC, .kind = "k", .kind_len = 1},
		{.type = DD_LOGREC_FINISH, .lsn = 7, .id = 6, .at_rt = 12, .started_rt = 11,
		 .attempt = 1, .state = 5},
	};
	cr_assert_eq(dd_state_store_apply(st, both, 4), 0);
	cr_assert_eq(dd_state_store_get(st, 5, &j, &jb), 0);
	cr_assert(j.state == 5 && j.output_cut[0] == 0 && j.output_cut[1] == 99);
	free(jb);
	cr_assert_eq(dd_state_store_get(st, 6, &j, &jb), 0);
	cr_assert(j.state == 5 && j.output_cut[0] == 0 && j.output_cut[1] == 0);
	free(jb);
	/* retention hands back each process job's attempts */
	uint64_t ids[8];
	uint32_t att[8];
	size_t nexec = 0;
	cr_assert_eq(dd_state_store_trim_exec(st, 100, 0, 0, 8, ids, att, &nexec), 3);
	cr_assert_eq(nexec, 3);
	for (size_t i = 0; i < nexec; i++)
		cr_assert_eq(att[i], 1, "job %llu: %u attempts", (unsigned long long)ids[i], att[i]);
	dd_state_store_close(st);
	drop_tmpdir(l.dir);
}

/* Segment i holds [firsts[i], firsts[i + 1]); the last one holds the rest;
 * an LSN before the first segment's has none. */
Test(log, segment_of_an_lsn)
{
	const uint64_t firsts[] = {1, 100, 250};
	struct {
		uint64_t lsn;
		size_t want;
	} cases[] = {{0, 3}, {1, 0}, {99, 0}, {100, 1}, {249, 1}, {250, 2}, {UINT64_MAX, 2}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_assert_eq(dd_state_segment_of(firsts, 3, cases[i].lsn), cases[i].want,
			     "LSN %lu", (unsigned long)cases[i].lsn);
	cr_assert_eq(dd_state_segment_of(firsts, 0, 5), 0, "no segment at all");
	const uint64_t late[] = {5};
	cr_assert_eq(dd_state_segment_of(late, 1, 4), 1, "the log starts after it");
	cr_assert_eq(dd_state_segment_of(late, 1, 5), 0);
}
