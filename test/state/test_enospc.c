/* A full disk, for real: the state dir on a small tmpfs (16 MiB, filled
 * but for 3 MiB). Submissions fail
 * with an error that names the cause, nothing acknowledged is lost, and
 * service resumes by itself once space is freed. Needs mount(2) (root);
 * skipped, and reported as skipped, without it. */
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sutil.h"

#define MAX_IDS 20000

static void nap_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Fills the file system, then gives back @leave bytes. */
static int fill(const char *dir, size_t leave)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/filler", dir);
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	static char buf[1 << 16];
	off_t size = 0;
	ssize_t w;
	while ((w = write(fd, buf, sizeof(buf))) > 0)
		size += w;
	cr_assert_eq(errno, ENOSPC);
	cr_assert_eq(ftruncate(fd, size > (off_t)leave ? size - (off_t)leave : 0), 0);
	return fd;
}

Test(enospc, full_disk_is_an_error_then_service_resumes, .timeout = 120)
{
	char *mnt = make_tmpdir("enospc");
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=16m,mode=0700") < 0) {
		int err = errno;
		rmdir(mnt);
		cr_skip_test("cannot mount a tmpfs to fill (%s): needs root", strerror(err));
	}
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s/state", mnt);
	struct dd_config cfg;
	config_for(&cfg, dir, DD_DURABILITY_FSYNC);
	cfg.segment_bytes = 1u << 20;
	cfg.map_initial = 1u << 20;
	struct dd_engine *e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	/* Up and running first (log segment made, ids reserved): filling the
	 * disk while it starts would fail its start-up instead. */
	struct dd_job_spec first = job("ok");
	uint64_t first_id;
	cr_assert_eq(dd_submit(e, &first, 0, &first_id), 0);
	cr_assert_eq(dd_wait_durable(e, first_id, 5000 * MS), 0);
	/* ...and its records in the store: a store commit that lands after the
	 * fill finds the disk full before any job of the loop below goes in
	 * (seen under AddressSanitizer) */
	struct dd_stats st;
	for (int k = 0; k < 500; k++) {
		dd_stats(e, &st);
		if (st.shard[0].applied_lsn >= st.shard[0].durable_lsn)
			break;
		nap_ms(10);
	}
	cr_assert_geq(st.shard[0].applied_lsn, st.shard[0].durable_lsn, "the store caught up");
	int filler = fill(mnt, 3u << 20);

	static char payload[16384];
	uint64_t *acked = malloc(MAX_IDS * sizeof(*acked));
	size_t nacked = 0, nsub = 0;
	int err = 0, first_werr = 0;
	for (int i = 0; i < MAX_IDS && !err; i++) {
		struct dd_job_spec s = job("ok");
		s.payload = payload;
		s.payload_len = sizeof(payload);
		uint64_t id;
		err = dd_submit(e, &s, DD_SUBMIT_BLOCK, &id);
		if (err)
			break;
		nsub++;
		int r = dd_wait_durable(e, id, 5000 * MS);
		if (r == 0)
			acked[nacked++] = id;
		else if (!first_werr)
			first_werr = r;
		cr_assert(r == 0 || r == -ENOSPC, "durable wait: %s", dd_strerror(r));
	}
	cr_assert_eq(err, -ENOSPC, "submit ended with: %s", dd_strerror(err));
	cr_assert_str_eq(dd_strerror(err), "No space left on device");
	/* The log or the store may be first to find the disk full (the store
	 * writes in its own time): either way submissions stop with ENOSPC;
	 * at least one job went in before. */
	cr_assert_geq(nacked, 1, "some jobs went in before the disk filled: %zu acked of %zu, "
				 "first wait error %s", nacked, nsub, dd_strerror(first_werr));

	/* give the space back: the engine finds out by itself */
	cr_assert_eq(ftruncate(filler, 0), 0);
	close(filler);
	uint64_t id = 0;
	int r = -1;
	for (int k = 0; k < 200 && r != 0; k++) {
		struct dd_job_spec s = job("ok");
		r = dd_submit(e, &s, 0, &id);
		if (r)
			nap_ms(50);
	}
	dd_stats(e, &st);
	cr_assert_eq(r, 0, "still refused after space returned: %s (state error: %s; durable %lu, "
			   "applied %lu)", dd_strerror(r), dd_strerror(st.total.state_error),
		     (unsigned long)st.shard[0].durable_lsn, (unsigned long)st.shard[0].applied_lsn);
	cr_assert_eq(dd_wait_durable(e, id, 5000 * MS), 0);
	struct dd_job_info info;
	cr_assert_eq(dd_wait(e, id, 5000 * MS, &info), 0);
	cr_assert_eq(info.state, DD_SUCCEEDED);
	dd_engine_destroy(e);

	/* nothing acknowledged was lost, nothing is corrupt */
	e = open_engine(dir, DD_DURABILITY_FSYNC, &cfg);
	struct dd_recovery rec;
	dd_engine_recovery(e, &rec);
	cr_assert_eq(rec.torn, 0);
	for (size_t i = 0; i < nacked; i++)
		cr_assert_eq(dd_job_get(e, acked[i], &info), 0, "job %zu of %zu lost", i, nacked);
	dd_engine_destroy(e);
	free(acked);
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
	free(mnt);
}
