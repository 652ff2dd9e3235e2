/* state/ — durable job state: the write-ahead log (segment files written
 * through the shard's io_uring) and the LMDB store it is applied to.
 *
 * Private header. This component knows records and bytes, not threads: the
 * engine decides which thread calls what. The rules it needs: one thread
 * appends to a WAL and reaps its completions; one thread writes a store;
 * any thread may read a store. */
#ifndef DD_STATE_H
#define DD_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct io_uring;
struct io_uring_cqe;

uint32_t dd_state_crc32c(uint32_t crc, const void *buf, size_t n);

/* ---- log records (record.c) ----
 *
 * On disk, little-endian, every record 8-byte aligned:
 *   u32 len      whole record, header and padding included
 *   u32 crc      CRC-32C of bytes [8, len)
 *   u64 lsn      log sequence number, consecutive from 1 per shard
 *   u32 type     enum dd_logrec_type
 *   u32 blen     body bytes (len - 24 - padding)
 *   body
 * A zero len word is the clean end of a segment (files are preallocated).
 */
#define DD_LOGREC_HDR 24u
#define DD_LOGREC_ALIGN 8u
#define DD_LOGREC_MAX (64u << 20) /* larger than any valid record */

enum dd_logrec_type {
	DD_LOGREC_SUBMIT = 1, /* a job and its spec */
	DD_LOGREC_START = 2,  /* an attempt began (RUNNING) */
	DD_LOGREC_END = 3,    /* terminal state */
	DD_LOGREC_RETRY = 4,  /* a failed attempt; back to DELAYED until not_before */
	DD_LOGREC_RESERVE = 5, /* ids below r.id may be handed out: never reuse them */
	DD_LOGREC_FINISH = 6,  /* an attempt began and the job ended: START and END
			     * in one, for a job that ended before its START
			     * record went to the log (engine/durable/durable.c) */
};

enum {
	DD_LOGREC_F_STRICT = 1u, /* submit flags */
	DD_LOGREC_F_EXEC = 2u,   /* the payload is an encoded process spec */
	DD_LOGREC_F_ARRAY = 4u,  /* a job array's own job: its ranges follow */
	DD_LOGREC_F_ELEMENT = 8u, /* an element of an array: which follows */
	DD_LOGREC_F_DEPKINDS = 16u, /* a kind byte per dependency follows (else
				     * every one is afterok) */
	DD_LOGREC_F_NAME = 32u,  /* the job's name follows (u32 length, bytes) */
};
#define DD_LOGREC_NAME_MAX 128u /* dispatchd.h's DD_NAME_MAX */
#define DD_LOGREC_DEP_KINDS 4 /* dispatchd.h's enum dd_dep_kind, 0..3 */

/* Arrays as the log keeps them (dispatchd.h's limits, which this
 * component does not include). */
#define DD_LOGREC_ARRAY_RANGES_MAX 256u
#define DD_LOGREC_ARRAY_MAX (1u << 24)
#define DD_LOGREC_ARRAY_INDEX_MAX 0x7fffffffu

/* One decoded record. Pointers point into the buffer it was decoded from. */
struct dd_logrec {
	uint64_t lsn;
	uint32_t type;
	uint64_t id;
	uint64_t at_rt; /* CLOCK_REALTIME ns of the event */
	uint32_t attempt;
	/* SUBMIT */
	uint64_t not_before_rt; /* 0 = none; also RETRY */
	uint64_t timeout_ns, backoff_ns, backoff_max_ns;
	uint32_t max_attempts;
	uint8_t priority, flags;
	uint32_t uid, gid; /* owner */
	const char *kind;
	uint32_t kind_len;
	const void *payload;
	uint32_t payload_len;
	const unsigned char *deps; /* ndeps little-endian u64, maybe unaligned */
	uint32_t ndeps;
	const uint8_t *dep_kinds;  /* with DD_LOGREC_F_DEPKINDS: ndeps of them */
	const char *name;          /* with DD_LOGREC_F_NAME: not NUL-terminated */
	uint32_t name_len;
	const char *key;
	uint32_t key_len;
	/* SUBMIT with DD_LOGREC_F_ARRAY: its %MAX and ranges (array_nranges
	 * triples of little-endian u32 first, last, step, maybe unaligned;
	 * ascending, disjoint, last reached by step) */
	uint32_t array_max;
	uint32_t array_nranges;
	const unsigned char *array_ranges;
	/* SUBMIT with DD_LOGREC_F_ELEMENT: its array's id, its place in it
	 * (id = array_id + 1 + array_ord) and its index */
	uint64_t array_id;
	uint32_t array_ord, array_index;
	/* START, FINISH */
	int32_t worker;
	uint64_t started_rt; /* FINISH: when the attempt began (at_rt: ended) */
	/* END, FINISH */
	uint8_t state;
	int32_t result;
	const char *reason;
	uint32_t reason_len;
	uint64_t output_cut[2]; /* process output not kept (stdout, stderr);
				 * on disk only when non-zero */
	uint8_t use;            /* DD_LOGREC_USE_*: which of these follow */
	uint64_t cpu_ns;        /* the attempt's process tree's CPU time */
	uint64_t mem_peak;      /* ...and memory peak, bytes */
};

#define DD_LOGREC_USE_CPU 1u
#define DD_LOGREC_USE_MEM 2u
uint64_t dd_logrec_dep(const struct dd_logrec *r, uint32_t i);
/* Range @i of an array's SUBMIT. */
void dd_logrec_array_range(const struct dd_logrec *r, uint32_t i, uint32_t *first,
			   uint32_t *last, uint32_t *step);
/* Bytes the record takes on disk. */
size_t dd_logrec_size(const struct dd_logrec *r);
/* Writes r (with r->lsn) at buf, which has dd_logrec_size(r) bytes. For SUBMIT,
 * deps are read from r->deps as little-endian bytes. Returns the size. */
size_t dd_logrec_encode(const struct dd_logrec *r, void *buf);

enum {
	DD_LOGREC_OK = 0,
	DD_LOGREC_EOF = 1, /* a zero length word: clean end of the written log */
};
/* Decodes the record at buf (avail bytes readable). On DD_LOGREC_OK fills
 * *out and *used. Returns DD_LOGREC_OK, DD_LOGREC_EOF, -EAGAIN (the record runs
 * past avail: a torn tail), -EBADMSG (checksum mismatch) or -EPROTO (a
 * malformed header or body). Never reads outside [buf, buf + avail). */
int dd_logrec_decode(const void *buf, size_t avail, struct dd_logrec *out, size_t *used);
/* Decodes a body alone (the store keeps SUBMIT bodies). */
int dd_logrec_decode_body(uint32_t type, const void *body, size_t blen, struct dd_logrec *out);
/* Encodes the body of r alone; returns its size (buf may be NULL to size). */
size_t dd_logrec_encode_body(const struct dd_logrec *r, void *buf);
const char *dd_logrec_type_name(uint32_t type);

/* ---- write-ahead log (wal.c) ----
 *
 * Segment files "<dir>/<first lsn, 16 hex digits>.wal", preallocated to the
 * segment size (unwritten space reads as zeros: DD_LOGREC_EOF). The owner
 * thread appends records to a batch buffer; dd_state_wal_kick() puts the
 * oldest unwritten batch on the ring as write -> fdatasync (linked; plus an
 * fsync of the directory after a new segment), one batch in flight while
 * the next fills. Completions move the written and synced LSNs forward. */
#define DD_WAL_TAG 0x57414c0000000000ull /* user_data of the WAL's SQEs */
#define DD_WAL_TAG_MASK 0xffffff0000000000ull

struct dd_state_wal;

struct dd_state_wal_pos {
	uint64_t seg_first_lsn; /* segment to append to; 0 = start a new one */
	uint64_t offset;        /* its first free byte */
	uint64_t next_lsn;      /* LSN of the next record */
};

/* Opens for appending at @pos (from dd_state_recover()). @sync: fdatasync
 * each batch (durability fsync) or only write it (buffered).
 * Returns 0 or -errno. */
int dd_state_wal_open(const char *dir, uint64_t segment_bytes, bool sync,
		      const struct dd_state_wal_pos *pos, struct io_uring *ring,
		      struct dd_state_wal **out);
/* Frees; the caller first waits until !dd_state_wal_busy(). NULL: nothing. */
void dd_state_wal_close(struct dd_state_wal *w);
/* Appends r, giving it the next LSN (r->lsn). Returns 0 or -ENOMEM. */
int dd_state_wal_append(struct dd_state_wal *w, struct dd_logrec *r);
/* Queues the next batch's SQEs if none is in flight and one is waiting
 * (or a failed write is due for another try at @now_ns). Returns true if it
 * queued SQEs (the caller submits the ring). */
bool dd_state_wal_kick(struct dd_state_wal *w, uint64_t now_ns);
/* A CQE whose user_data has DD_WAL_TAG. */
void dd_state_wal_complete(struct dd_state_wal *w, uint64_t user_data, int res, uint64_t now_ns);
bool dd_state_wal_busy(const struct dd_state_wal *w); /* in flight or unwritten */
bool dd_state_wal_inflight(const struct dd_state_wal *w);
uint64_t dd_state_wal_written(const struct dd_state_wal *w); /* highest LSN in the page cache */
uint64_t dd_state_wal_synced(const struct dd_state_wal *w);  /* highest LSN on the device */
uint64_t dd_state_wal_next_lsn(const struct dd_state_wal *w);
/* The last write or sync error (-ENOSPC, -EIO...), 0 once a batch went
 * through again. An fsync failure (-EIO) is sticky: after it the page cache
 * cannot be trusted, so the log refuses further batches. */
int dd_state_wal_error(const struct dd_state_wal *w);
/* Bytes waiting to be written. */
size_t dd_state_wal_pending(const struct dd_state_wal *w);
/* Last write+sync round trip, ns (for telemetry). */
uint64_t dd_state_wal_last_io_ns(const struct dd_state_wal *w);

/* Segment file name for a first LSN, into buf (at least 32 bytes). */
void dd_state_wal_name(char *buf, size_t n, uint64_t first_lsn);

/* ---- LMDB store (store_open.c, store_apply.c, store_read.c, store_retain.c) ----
 *
 * One environment per shard: jobs by id, an index by state, an index of
 * ended jobs by end time (retention), idempotency keys (by owner uid and
 * key), and meta (schema version, checkpoint LSN, next id). One thread writes (the applier);
 * any thread reads. */
struct dd_state_store;

/* A job's reason text, its NUL included, at most (dispatchd.h's
 * DD_REASON_MAX); a longer one is cut to fit. */
#define DD_STATE_REASON_MAX 256

/* Job states as the log and the store keep them (one byte): dispatchd.h's
 * numbers (enum dd_state), which this component does not include. Plain
 * numbers, not an enum, so that the engine compares them with its own
 * without a cast. */
#define DD_STATE_WAITING 1
#define DD_STATE_DELAYED 2
#define DD_STATE_QUEUED 3
#define DD_STATE_RUNNING 4
#define DD_STATE_SUCCEEDED 5 /* the first terminal state */
#define DD_STATE_FAILED 6
#define DD_STATE_CANCELLED 7
#define DD_STATE_TIMED_OUT 8 /* the last */

/* A job as stored: its SUBMIT record plus what changed since. */
struct dd_state_job {
	struct dd_logrec spec; /* pointers valid until the next call on the store
			     * from this thread (they point into *buf) */
	uint8_t state;
	uint32_t attempt;
	int32_t result;
	int32_t worker;
	uint64_t started_rt, ended_rt;
	char reason[DD_STATE_REASON_MAX];
	uint64_t output_cut[2]; /* of the last attempt (struct dd_logrec) */
	uint8_t use;            /* likewise, and its accounting */
	uint64_t cpu_ns, mem_peak;
};

struct dd_state_store_opts {
	size_t map_initial; /* bytes; the map doubles when full... */
	size_t map_max;     /* ...up to this */
	/* Retention keeps no ended job (a retain count of 0): a job that
	 * ends in the batch that brought its SUBMIT is then never written,
	 * where it would be written and trimmed a moment later. Process
	 * jobs are written all the same: trimming removes their output. */
	bool keep_no_ended;
	/* Where the store's messages go (a syslog level, one line), or NULL:
	 * nowhere. */
	void (*log)(int level, const char *msg, void *arg);
	void *log_arg;
};

int dd_state_store_open(const char *dir, const struct dd_state_store_opts *o,
			struct dd_state_store **out);
void dd_state_store_close(struct dd_state_store *st);
/* Applies n records in one transaction (MDB_NOMETASYNC: data synced, the
 * newest meta page may be lost, never torn) and sets the checkpoint LSN to
 * the last one. Idempotent: a record already reflected changes nothing.
 * Grows the map when full. Returns 0, -ENOSPC (map at its limit or disk
 * full), -EIO, -ENOMEM. */
int dd_state_store_apply(struct dd_state_store *st, const struct dd_logrec *recs, size_t n);
/* Has dd_state_store_apply() call @fn(@arg) after every @every records
 * (NULL: never), from within its transaction: the caller's chance to let
 * other threads have the CPU during a long one. */
void dd_state_store_set_pause(struct dd_state_store *st, void (*fn)(void *), void *arg,
			      unsigned every);
uint64_t dd_state_store_checkpoint(struct dd_state_store *st); /* applied LSN */
uint64_t dd_state_store_next_seq(struct dd_state_store *st);
/* Forces everything committed so far onto the device (meta page included). */
int dd_state_store_sync(struct dd_state_store *st);
/* Any thread. *buf (malloc'd, caller frees) holds what job->spec points to.
 * Returns 0 or -ENOENT. */
int dd_state_store_get(struct dd_state_store *st, uint64_t id, struct dd_state_job *job,
		       void **buf);
/* The job @owner's idempotency @key names. Keys are per owner: the same
 * key of two owners names two jobs. Returns 0 or -ENOENT. */
int dd_state_store_idem_find(struct dd_state_store *st, uint32_t owner, const char *key,
			     uint64_t *id);
/* Ids in @state greater than @after, ascending, at most @max. */
int dd_state_store_list(struct dd_state_store *st, uint8_t state, uint64_t after, uint64_t *ids,
			size_t max, size_t *n);
/* Calls fn for every job not in a terminal state (recovery). */
int dd_state_store_scan_live(struct dd_state_store *st,
			     int (*fn)(const struct dd_state_job *job, void *arg), void *arg);
/* Calls fn for every job with an id in [@lo, @hi], ascending (the
 * elements of an array, at recovery). */
int dd_state_store_scan_range(struct dd_state_store *st, uint64_t lo, uint64_t hi,
			      int (*fn)(const struct dd_state_job *job, void *arg), void *arg);
/* Removes up to @budget ended jobs that are older than @max_age_ns (0: no
 * age limit) or beyond the newest @max_count (SIZE_MAX: no count limit), in
 * one transaction. @exec_ids (room for @budget, or NULL) receives the ids
 * of the process jobs among them, *nexec their count, once committed (so
 * the caller can remove their output files). Returns how many went, or a
 * negative error. */
long dd_state_store_trim(struct dd_state_store *st, uint64_t now_rt, uint64_t max_age_ns,
			 size_t max_count, unsigned budget, uint64_t *exec_ids, size_t *nexec);
/* The same, also filling @exec_attempts (room for @budget, or NULL) with
 * each such job's attempts, whose output files go with it. */
long dd_state_store_trim_exec(struct dd_state_store *st, uint64_t now_rt, uint64_t max_age_ns,
			      size_t max_count, unsigned budget, uint64_t *exec_ids,
			      uint32_t *exec_attempts, size_t *nexec);
size_t dd_state_store_map_size(struct dd_state_store *st);
size_t dd_state_store_count(struct dd_state_store *st); /* jobs held */

/* ---- reading the log back (reader.c) ---- */

struct dd_state_reader {
	int dirfd;
	int fd;               /* current segment, -1 none */
	uint64_t seg_first;   /* its first LSN */
	uint64_t base;        /* file offset of buf[0] */
	unsigned char *buf;   /* the segment mapped, or a read buffer */
	size_t cap, len, pos; /* decoded up to buf[pos] */
	uint64_t last_lsn;    /* last record returned */
	size_t last_len;      /* its bytes, just before buf[pos] */
	bool mapped;          /* buf is the whole segment, mapped (len bytes) */
	bool no_map;          /* set before opening: always read with pread */
};

/* Segments in @dir, ascending first LSN, into *firsts (malloc'd). */
int dd_state_segments(int dirfd, uint64_t **firsts, size_t *n);
/* The index in @firsts (@n first LSNs, ascending, as dd_state_segments()
 * gives them) of the segment that holds @lsn: segment i holds
 * [firsts[i], firsts[i + 1]), the last one everything from its first on.
 * @n when none does (no segment, or the log starts after @lsn). */
size_t dd_state_segment_of(const uint64_t *firsts, size_t n, uint64_t lsn);
int dd_state_reader_open(struct dd_state_reader *r, int dirfd, uint64_t seg_first,
			 uint64_t last_lsn);
void dd_state_reader_close(struct dd_state_reader *r);
/* Next record of the current segment: DD_LOGREC_OK, DD_LOGREC_EOF (end of the
 * written part: zeros, or a record older than the segment, left from its
 * life before it was a spare), or the decoder's error. *rec points into the reader's
 * buffer until the next call. @fresh: drop what is buffered and read the
 * file again first (it may have been read before the writer got there). */
int dd_state_reader_next(struct dd_state_reader *r, struct dd_logrec *rec, bool fresh);
/* File offset just after the last record returned. */
uint64_t dd_state_reader_offset(const struct dd_state_reader *r);

/* Records copied out of a reader, applied to a store in one transaction:
 * a reader's buffer moves as it reads on, a batch's bytes do not. The
 * reader's decoding is kept with them (recs[i] points into raw), so a
 * record is checked and decoded once, not again at apply time. */
struct dd_state_batch {
	unsigned char *raw;
	size_t len, cap;
	struct dd_logrec *recs;
	size_t n, capn;
	uint64_t last_lsn;
};
/* Adds the record the reader returned last, @rec as it decoded it: from
 * a mapped segment as it is (the batch must then be applied or emptied
 * before the reader moves to another segment or closes), else copied.
 * Returns 0 or -ENOMEM. */
int dd_state_batch_add(struct dd_state_batch *b, const struct dd_state_reader *r,
		       const struct dd_logrec *rec);
/* Applies and empties the batch. Returns dd_state_store_apply()'s result. */
int dd_state_batch_apply(struct dd_state_batch *b, struct dd_state_store *st);
void dd_state_batch_free(struct dd_state_batch *b);

/* ---- recovery (recover.c) ---- */

struct dd_state_recovery {
	uint64_t checkpoint;  /* LSN the store was at */
	uint64_t replayed;    /* records applied from the log */
	uint64_t last_lsn;    /* last good record */
	unsigned segments;    /* segment files read */
	bool torn;            /* stopped early at a bad record */
	uint64_t torn_segment, torn_offset;
	char torn_why[96];
	struct dd_state_wal_pos pos; /* where appending resumes */
};

/* Brings @st up to date from the log in @wal_dir: replays every record
 * after the store's checkpoint, stops at the first torn or corrupt record
 * (which is cut off, along with any later segment, renamed *.discarded),
 * deletes segments the store covers. Returns 0 or a negative error. */
int dd_state_recover(const char *wal_dir, struct dd_state_store *st,
		     struct dd_state_recovery *out);
/* Deletes segments wholly at or below @lsn (after syncing the store). */
int dd_state_wal_prune(int dirfd, struct dd_state_store *st, uint64_t lsn);
/* dd_state_wal_prune() in two steps, for a caller that deletes elsewhere:
 * the segments it would delete, oldest first (*firsts malloc'd, NULL when
 * there are none), with the store synced when there are any; ... */
int dd_state_wal_prunable(int dirfd, struct dd_state_store *st, uint64_t lsn,
			  uint64_t **firsts, size_t *n);
/* ... and their deletion. Returns 0 or the first error but ENOENT. */
int dd_state_wal_unlink(int dirfd, const uint64_t *firsts, size_t n);

/* ---- spare segments (spare.c) ---- */

#define DD_WAL_SPARES 2 /* segments kept for reuse, named spare-0, spare-1 */
/* dd_state_wal_unlink(), but a segment of @seg_bytes becomes a spare while
 * fewer than DD_WAL_SPARES are kept (0: none is). Any thread. */
int dd_state_wal_retire(int dirfd, const uint64_t *firsts, size_t n, uint64_t seg_bytes);
/* Renames a spare of @seg_bytes to @name (which must not exist) and returns
 * it open for writing, or -ENOENT when there is none (-EEXIST: @name is
 * there). It still holds older records: see dd_state_reader_next(). */
int dd_state_wal_take_spare(int dirfd, const char *name, uint64_t seg_bytes);

#endif
