/* The device's own floor for durable acknowledgements: a raw loop of
 * 4 KiB appends, each followed by fdatasync, in the state directory, so the
 * same filesystem and device. Nothing that waits for an fsync per batch can
 * acknowledge faster than this. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dd_clock.h"
#include "floor.h"
#include "telemetry.h"

int fsync_floor_measure(const char *dir, double seconds, struct fsync_floor *out)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/.fsync-floor-%d", dir, (int)getpid());
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	struct dd_tel_hist *h = calloc(1, sizeof(*h));
	char buf[4096];
	int r = 0;
	memset(buf, 0xa5, sizeof(buf));
	if (!h) {
		r = -ENOMEM;
		goto out;
	}
	uint64_t end = dd_mono_ns() + (uint64_t)(seconds * 1e9), off = 0;
	while (dd_mono_ns() < end) {
		uint64_t t0 = dd_mono_ns();
		if (pwrite(fd, buf, sizeof(buf), (off_t)off) != (ssize_t)sizeof(buf) || fdatasync(fd) < 0) {
			r = errno ? -errno : -EIO;
			break;
		}
		dd_tel_hist_record(h, dd_mono_ns() - t0);
		off += sizeof(buf);
	}
	out->count = h->count;
	out->p50_ns = dd_tel_hist_quantile(h, 0.5);
	out->p99_ns = dd_tel_hist_quantile(h, 0.99);
	out->max_ns = h->max;
out:
	free(h);
	close(fd);
	unlink(path);
	return r;
}
