/* bench-wal: how the log's batches should reach the device. Measures, on
 * the file system of DIR, a write followed by fdatasync (linked in one
 * io_uring, as state/wal.c does) for batch sizes from 4 KiB to 1 MiB, with
 * the file opened buffered (page cache) and with O_DIRECT (aligned, padded
 * to 4 KiB), each into a preallocated file. Prints batches/s, MB/s and the
 * P50/P99 of a batch's round trip; median of -r runs.
 *
 * usage: bench-wal [-d DIR] [-r RUNS] [-t SECONDS] */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dd_clock.h"
#include "telemetry.h"

#define FILE_BYTES (256u << 20)

struct result {
	double batches_per_s, mb_per_s;
	uint64_t p50, p99;
};

static int run(const char *dir, bool direct, size_t batch, double secs, struct result *out)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/.bench-wal-%d", dir, (int)getpid());
	int fd = open(path, O_CREAT | O_TRUNC | O_RDWR | (direct ? O_DIRECT : 0), 0600);
	if (fd < 0)
		return -errno;
	unlink(path);
	int r = posix_fallocate(fd, 0, FILE_BYTES);
	if (r) {
		close(fd);
		return -r;
	}
	void *buf;
	if (posix_memalign(&buf, 4096, batch)) {
		close(fd);
		return -ENOMEM;
	}
	memset(buf, 0x5a, batch);
	struct io_uring ring;
	if ((r = io_uring_queue_init(8, &ring, 0)) < 0) {
		free(buf);
		close(fd);
		return r;
	}
	struct dd_tel_hist *h = calloc(1, sizeof(*h));
	uint64_t off = 0, n = 0, end = dd_mono_ns() + (uint64_t)(secs * 1e9), t0 = dd_mono_ns();
	while (dd_mono_ns() < end && h) {
		uint64_t s = dd_mono_ns();
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_write(sqe, fd, buf, (unsigned)batch, off);
		sqe->flags |= IOSQE_IO_LINK;
		sqe = io_uring_get_sqe(&ring);
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		io_uring_submit(&ring);
		for (int k = 0; k < 2; k++) {
			struct io_uring_cqe *cqe;
			io_uring_wait_cqe(&ring, &cqe);
			if (cqe->res < 0)
				r = cqe->res;
			io_uring_cqe_seen(&ring, cqe);
		}
		if (r < 0)
			break;
		dd_tel_hist_record(h, dd_mono_ns() - s);
		n++;
		off = (off + batch) % (FILE_BYTES - batch);
	}
	double el = (double)(dd_mono_ns() - t0) / 1e9;
	if (h) {
		out->batches_per_s = (double)n / el;
		out->mb_per_s = (double)n * (double)batch / el / 1e6;
		out->p50 = dd_tel_hist_quantile(h, 0.5);
		out->p99 = dd_tel_hist_quantile(h, 0.99);
	}
	free(h);
	io_uring_queue_exit(&ring);
	free(buf);
	close(fd);
	return h ? r : -ENOMEM;
}

static int cmp_d(const void *a, const void *b)
{
	double x = ((const struct result *)a)->mb_per_s, y = ((const struct result *)b)->mb_per_s;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	int runs = 3, c;
	double secs = 1;
	while ((c = getopt(argc, argv, "d:r:t:h")) != -1) {
		if (c == 'd')
			dir = optarg;
		else if (c == 'r')
			runs = atoi(optarg);
		else if (c == 't')
			secs = atof(optarg);
		else {
			fprintf(stderr, "usage: bench-wal [-d DIR] [-r RUNS] [-t SECONDS]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (runs < 1 || runs > 99 || secs <= 0)
		return 2;
	static const size_t sizes[] = {4096, 65536, 262144, 1048576};
	printf("bench-wal  %s  write+fdatasync linked in io_uring, median of %d x %.1f s\n", dir,
	       runs, secs);
	printf("%-9s %8s %12s %10s %10s %10s\n", "mode", "batch", "batches/s", "MB/s", "p50 us",
	       "p99 us");
	for (int d = 0; d < 2; d++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			struct result res[99];
			for (int k = 0; k < runs; k++) {
				int r = run(dir, d, sizes[i], secs, &res[k]);
				if (r < 0) {
					printf("%-9s %7zuK  unavailable: %s\n", d ? "O_DIRECT" : "buffered",
					       sizes[i] >> 10, strerror(-r));
					goto next;
				}
			}
			qsort(res, (size_t)runs, sizeof(res[0]), cmp_d);
			struct result *m = &res[runs / 2];
			printf("%-9s %7zuK %12.0f %10.1f %10.1f %10.1f\n", d ? "O_DIRECT" : "buffered",
			       sizes[i] >> 10, m->batches_per_s, m->mb_per_s, m->p50 / 1e3, m->p99 / 1e3);
next:;
		}
	return 0;
}
