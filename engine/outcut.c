/* The output helper: one thread per engine that cuts process jobs' output
 * files and watches the free space left for the log and store.
 *
 * A process writes straight into its file (O_APPEND), so the only way to
 * keep the tail of a stream that passes output_max is to move its newest
 * bytes back to follow the head: a copy of up to output_max / 2 (32 MiB by
 * default) per cut. That is far too long for the reactor, the low-latency
 * thread; the reactor only looks at sizes (an fstat per stream per sweep)
 * and queues a cut here. The copy runs in the kernel (copy_file_range)
 * where source and destination do not overlap, else through a buffer. A
 * cut re-reads the size after its copy and moves what was appended
 * meanwhile too; only bytes appended in the instant between that last look
 * and the ftruncate are lost without being counted.
 *
 * The free-space reserve: statvfs of the state dir every 250 ms (every
 * 20 ms while free space is below twice the reserve), here rather than
 * per job or on the reactor. Below the reserve every stream on that file
 * system is cut to its head at each sweep until space returns. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"

#define CHECK_NS 250000000ull   /* free space, normally */
#define CHECK_NEAR_NS 20000000ull /* ...below twice the reserve */
#define BUF_BYTES (1u << 20)
#define RESERVE_DEFAULT (1ull << 30)

struct req {
	struct req *next;
	struct dd_shard *s;
	struct dd_ostream *os;
	int fd; /* a dup of the stream's fd */
	uint64_t head, keep;
	bool low, last;
};

struct dd_outcut {
	struct dd_engine *e;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct req *first, *last;
	bool stop;
	/* the reserve: watched only when the output shares the state dir's
	 * file system */
	bool watch;
	uint64_t reserve;
	_Atomic bool low, near;
	uint64_t next_check;
	uint64_t said_ns; /* the last message about the reserve */
	bool said_low;
	char *buf;
};

static void check_space(struct dd_outcut *h)
{
	struct statvfs v;
	if (!h->watch || fstatvfs(h->e->state_fd, &v) < 0)
		return;
	uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize;
	bool low = avail < h->reserve;
	/* a fast writer makes it cross the line every few sweeps: say so once
	 * a minute at most */
	uint64_t now = dd_mono_ns();
	if (low != atomic_load_explicit(&h->low, memory_order_relaxed) && low != h->said_low &&
	    (!low || now - h->said_ns > 60000000000ull)) {
		h->said_low = low;
		h->said_ns = now;
		if (low)
			dd_log(h->e, LOG_WARNING,
			       "free space on the state dir's file system (%" PRIu64
			       " bytes) is below the reserve (%" PRIu64
			       "): cutting process output until it returns",
			       avail, h->reserve);
		else
			dd_log(h->e, LOG_NOTICE,
			       "free space on the state dir's file system (%" PRIu64
			       " bytes) is back above the reserve (%" PRIu64 ")",
			       avail, h->reserve);
	}
	bool was = atomic_exchange_explicit(&h->low, low, memory_order_relaxed);
	atomic_store_explicit(&h->near, avail / 2 < h->reserve, memory_order_relaxed);
	if (low && !was) {
		/* every reactor sweeps now rather than at its next turn: a fast
		 * writer takes tens of MB in one interval */
		for (unsigned i = 0; i < h->e->nshards; i++) {
			struct dd_shard *s = &h->e->shards[i];
			atomic_store_explicit(&s->out_wake, true, memory_order_release);
			dd_queue_wake_notify(&s->wake);
		}
	}
}

/* The line between head and tail. Its length grows with the number only. */
static int marker(char *buf, size_t n, uint64_t cut, bool low)
{
	return snprintf(buf, n, "\n[dispatchd: %" PRIu64 " bytes cut here%s]\n", cut,
			low ? " (free space below the reserve)" : "");
}

/* Moves [from, from + len) to @dst, like memmove: in the kernel
 * (copy_file_range) where the two do not overlap, else through a buffer,
 * in the order that reads every byte before it is overwritten. */
static int move(struct dd_outcut *h, int fd, uint64_t dst, uint64_t from, uint64_t len)
{
	bool up = dst > from;
	while (len) {
		uint64_t gap = up ? dst - from : from - dst;
		if (!gap)
			return 0;
		size_t want = len < BUF_BYTES ? (size_t)len : BUF_BYTES;
		if (gap < want)
			want = (size_t)gap;
		/* moving up, the last chunk first */
		uint64_t src = up ? from + len - want : from, to = up ? dst + len - want : dst;
		loff_t in = (loff_t)src, out = (loff_t)to;
		ssize_t k = copy_file_range(fd, &in, fd, &out, want, 0);
		if (k < 0 && errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP &&
		    errno != ENOSYS)
			return -errno;
		if (k < 0) {
			k = pread(fd, h->buf, want, (off_t)src);
			if (k < 0)
				return -errno;
			if (k > 0 && pwrite(fd, h->buf, (size_t)k, (off_t)to) != k)
				return -EIO;
		}
		if (k == 0)
			return -EIO; /* the file is shorter than it was */
		if (up && (size_t)k != want)
			return -EIO;
		if (!up)
			from += (uint64_t)k, dst += (uint64_t)k;
		len -= (uint64_t)k;
	}
	return 0;
}

static void cut(struct dd_outcut *h, struct req *q)
{
	struct dd_ostream *os = q->os;
	char self[64], mark[128];
	struct stat st;
	/* pwrite and copy_file_range need a file description without
	 * O_APPEND: a second open of the same file, not a dup */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", q->fd);
	int fd = open(self, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		goto out;
	uint64_t size = (uint64_t)st.st_size;
	/* free space may have fallen below the reserve since the cut was
	 * queued: then it keeps nothing after the head, and copies nothing */
	if (!q->low && dd_outcut_low(h)) {
		q->low = true;
		q->keep = 0;
		if (q->head > DD_OUTPUT_LOW_HEAD)
			q->head = DD_OUTPUT_LOW_HEAD;
	}
	if (!os->head && !os->mark_len)
		os->head = q->head < size ? q->head : size;
	uint64_t base = os->head + os->mark_len; /* where the kept tail begins */
	if (size <= base + q->keep)
		goto out;
	/* head, marker, then the newest @keep bytes: the tail moves first,
	 * down or (when the marker grows past what was dropped) up, and the
	 * marker is written once nothing still to be moved lies under it */
	uint64_t from = size - q->keep, dropped = os->cut + (from - base);
	bool low = os->low_cut || q->low;
	uint64_t mlen = (uint64_t)marker(mark, sizeof(mark), dropped, low);
	uint64_t dst = os->head + mlen;
	/* Moving up past the end would race with the process's appends:
	 * while it runs, wait until more has been written and the tail moves
	 * down. */
	if (dst > from && !q->last)
		goto out;
	if (move(h, fd, dst, from, size - from) < 0)
		goto out;
	/* what the process appended during the copy follows it, until a look
	 * finds nothing new: what is appended after the last look and before
	 * the truncation is lost (a running process is not stopped for a
	 * cut), so the rounds go on while it writes (bounded: a writer that
	 * never pauses is cut at the next look); 4 rounds lost bytes of a
	 * fast writer under ThreadSanitizer (output::cut_while_running) */
	for (int i = 0; i < 64 && dst <= from && fstat(fd, &st) == 0 &&
			(uint64_t)st.st_size > size; i++) {
		uint64_t more = (uint64_t)st.st_size - size;
		if (move(h, fd, dst + (size - from), size, more) < 0)
			goto out;
		size += more;
	}
	if (pwrite(fd, mark, mlen, (off_t)os->head) != (ssize_t)mlen ||
	    ftruncate(fd, (off_t)(dst + (size - from))) < 0)
		goto out;
	os->mark_len = mlen;
	os->cut = dropped;
	os->low_cut = low;
out:
	if (fd >= 0)
		close(fd);
}

static void *helper_main(void *arg)
{
	struct dd_outcut *h = arg;
	pthread_mutex_lock(&h->mu);
	for (;;) {
		uint64_t now = dd_mono_ns();
		if (now >= h->next_check) {
			pthread_mutex_unlock(&h->mu);
			check_space(h);
			pthread_mutex_lock(&h->mu);
			h->next_check = now + dd_outcut_interval(h);
		}
		struct req *q = h->first;
		if (!q) {
			if (h->stop)
				break;
			uint64_t until = h->next_check;
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t wait = until > now ? until - now : 0;
			ts.tv_sec += (time_t)(wait / 1000000000ull);
			ts.tv_nsec += (long)(wait % 1000000000ull);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&h->cv, &h->mu, &ts);
			continue;
		}
		if (!(h->first = q->next))
			h->last = NULL;
		pthread_mutex_unlock(&h->mu);
		if (!h->stop)
			cut(h, q);
		close(q->fd);
		/* release pairs with the reactor's acquire in dd_output_cap() */
		atomic_store_explicit(&q->os->busy, false, memory_order_release);
		if (q->last) {
			/* its job ends at the reactor's next sweep: wake it */
			atomic_store_explicit(&q->s->out_wake, true, memory_order_release);
			dd_queue_wake_notify(&q->s->wake);
		}
		free(q);
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

bool dd_outcut_low(const struct dd_outcut *h)
{
	return atomic_load_explicit(&h->low, memory_order_relaxed);
}

uint64_t dd_outcut_interval(const struct dd_outcut *h)
{
	return h && atomic_load_explicit(&h->near, memory_order_relaxed) ? CHECK_NEAR_NS : CHECK_NS;
}

int dd_outcut_queue(struct dd_outcut *h, struct dd_shard *s, struct dd_ostream *os, int fd,
		    uint64_t head, uint64_t keep, bool low, bool last)
{
	struct req *q = malloc(sizeof(*q));
	if (!q)
		return -ENOMEM;
	*q = (struct req){.s = s, .os = os, .head = head, .keep = keep, .low = low,
			  .last = last};
	if ((q->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		free(q);
		return -errno;
	}
	atomic_store_explicit(&os->busy, true, memory_order_relaxed);
	pthread_mutex_lock(&h->mu);
	if (h->last)
		h->last->next = q;
	else
		h->first = q;
	h->last = q;
	/* A running process's cut waits for the helper's next look (at most
	 * one sweep interval): waking the helper from here would let it take
	 * the reactor's CPU mid-sweep (measured: docs/BENCHMARKS.md, "Measured
	 * choices: output helper wake"). An ended process's job
	 * waits for its cut, and the reserve does not wait. */
	if (last || low)
		pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	return 0;
}

/* The reserve applies when the output dir is on the state dir's file
 * system (same st_dev). */
static void resolve_reserve(struct dd_outcut *h)
{
	const struct dd_config *c = &h->e->cfg;
	struct stat a, b;
	struct statvfs v;
	/* the state dir as the engine opened it (trust.c), not its name */
	if (h->e->state_fd < 0 || !c->output_reserve || fstat(h->e->state_fd, &a) < 0 ||
	    stat(h->e->output_dir, &b) < 0 || a.st_dev != b.st_dev ||
	    fstatvfs(h->e->state_fd, &v) < 0)
		return;
	h->reserve = c->output_reserve;
	if (h->reserve == DD_RESERVE_AUTO) {
		uint64_t five = (uint64_t)v.f_blocks * v.f_frsize / 20;
		h->reserve = five < RESERVE_DEFAULT ? five : RESERVE_DEFAULT;
	}
	h->watch = h->reserve > 0;
}

int dd_outcut_start(struct dd_engine *e, struct dd_outcut **out)
{
	struct dd_outcut *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->e = e;
	if (!(h->buf = malloc(BUF_BYTES))) {
		free(h);
		return -ENOMEM;
	}
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	resolve_reserve(h);
	check_space(h);
	h->next_check = dd_mono_ns() + dd_outcut_interval(h);
	int r = pthread_create(&h->thread, NULL, helper_main, h);
	if (r) {
		dd_outcut_stop(h);
		return -r;
	}
	h->started = true;
	pthread_setname_np(h->thread, "dd-output");
	*out = h;
	return 0;
}

/* After the reactors have stopped: queued cuts are dropped (their files
 * stay as they are), so no proc is touched once this returns. */
void dd_outcut_stop(struct dd_outcut *h)
{
	if (!h)
		return;
	if (h->started) {
		pthread_mutex_lock(&h->mu);
		h->stop = true;
		pthread_cond_signal(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->thread, NULL);
	}
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h->buf);
	free(h);
}
