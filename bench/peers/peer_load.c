/* peer-load: the std-r --via-daemon workload against a peer queue —
 * beanstalkd (put / reserve + delete) or Redis as a list queue (LPUSH /
 * BLMPOP) — so that dispatchd and the systems people use today are
 * measured with the same shape in the same run (bench/peers/run).
 *
 * The shape, as std-r --via-daemon's: producer connections each keep
 * --depth batches of --batch jobs in flight (closed loop: and no more than
 * depth x batch jobs produced but not yet consumed), or send a batch every
 * batch/rate seconds (open loop, --rate). Every job carries the same
 * payload size; its first 16 bytes are the job's intended send time in
 * hex. Consumer connections (--consumers, as many as dispatchd has
 * workers) take jobs and finish them (beanstalkd: delete), each asking for
 * up to --batch at a time — the peer's own batching, as its documentation
 * recommends for throughput: beanstalkd by pipelining commands, Redis by
 * variadic LPUSH and BLMPOP with COUNT.
 *
 * Measured: jobs consumed per second in the window; the acknowledgement
 * latency of a batch (intended send -> the server's last reply for it,
 * which with fsync-on-write comes after the fsync); and a job's latency
 * from intended send to a consumer having it.
 *
 * A batch sent inside the window is owed its answers even when they come
 * after the window: the producer stops sending at the window's end but
 * keeps reading for up to --ack-wait seconds, else a server slower than
 * the window (beanstalkd -f 0: a batch's answers take seconds) would have
 * no acknowledgement measured at all. Batches still unanswered then are
 * counted (unacked_batches), and a histogram with nothing in it is
 * reported as none (JSON null), never as 0. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "dd_clock.h" /* std-r's clock too */
#include "dd_net.h"
#include "reply.h"
#include "telemetry.h"

#define MAX_CONNS 64
#define MAX_INFLIGHT 4096

enum proto { BEANSTALK, REDIS };

static struct {
	enum proto proto;
	const char *host;
	int port;
	unsigned producers, consumers, batch, depth, payload;
	double rate, duration_s, warmup_s, ack_wait_s;
	const char *json, *label;
} opt = {.host = "127.0.0.1", .producers = 1, .consumers = 2, .batch = 1000, .depth = 8,
	 .payload = 16, .duration_s = 4, .warmup_s = 1, .ack_wait_s = 60};

static uint64_t start_ns, from_ns, to_ns;
static _Atomic uint64_t produced, consumed, consumed_in_window, errors;
/* batches whose intended send is in the window, and those of them never
 * answered in full */
static _Atomic uint64_t window_batches, unacked_batches;
static _Atomic bool stop;

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
	struct dd_tel_hist hist; /* this connection's latencies */
};

static int conn_open(struct conn *c)
{
	memset(c, 0, sizeof(*c));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
	if (inet_pton(AF_INET, opt.host, &a.sin_addr) != 1)
		return -1;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->cap = 4 << 20;
	return (c->buf = malloc(c->cap)) ? 0 : -1;
}

/* More bytes into the buffer, waiting until @deadline (CLOCK_MONOTONIC
 * ns; 0: for ever). 0, 1 when the deadline passed first, or -1 when the
 * peer is gone. */
static int fill_until(struct conn *c, uint64_t deadline)
{
	if (c->len == c->cap)
		return -1; /* a reply larger than 4 MiB: not one of ours */
	if (deadline) {
		uint64_t now = dd_mono_ns();
		if (now >= deadline)
			return 1;
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		uint64_t ms = (deadline - now + 999999) / 1000000;
		int r = poll(&pfd, 1, ms > 1000 ? 1000 : (int)ms);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0)
			return dd_mono_ns() >= deadline ? 1 : 0;
	}
	ssize_t k;
	do
		k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	while (k < 0 && errno == EINTR);
	if (k <= 0)
		return -1;
	c->len += (size_t)k;
	return 0;
}

static int fill(struct conn *c)
{
	return fill_until(c, 0);
}

static void consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

static void fail(const char *what, const char *detail)
{
	if (atomic_fetch_add(&errors, 1) == 0)
		fprintf(stderr, "peer-load: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

/* The payload: intended send time in 16 hex digits, padded to size. */
static void payload(char *p, uint64_t intended)
{
	char hex[17];
	snprintf(hex, sizeof(hex), "%016" PRIx64, intended);
	memcpy(p, hex, 16);
	memset(p + 16, 'x', opt.payload - 16);
}

static uint64_t payload_time(const char *p, size_t n)
{
	if (n < 16)
		return 0;
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char ch = p[i];
		int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
		if (d < 0)
			return 0;
		v = v << 4 | (uint64_t)d;
	}
	return v;
}

static void got_job(struct conn *c, const char *p, size_t n)
{
	uint64_t t = dd_mono_ns(), intended = payload_time(p, n);
	atomic_fetch_add_explicit(&consumed, 1, memory_order_relaxed);
	if (t >= from_ns && t < to_ns)
		atomic_fetch_add_explicit(&consumed_in_window, 1, memory_order_relaxed);
	if (intended >= from_ns && intended < to_ns && t >= intended)
		dd_tel_hist_record(&c->hist, t - intended);
}

/* ---- producers ---------------------------------------------------------- */

/* The batch request with payload slots at known offsets. */
struct batch {
	char *req;
	size_t len;
	size_t *slot; /* offset of each job's payload */
};

static int batch_build(struct batch *b)
{
	size_t per = 64 + opt.payload, cap = 64 + (size_t)opt.batch * per;
	b->req = malloc(cap);
	b->slot = calloc(opt.batch, sizeof(size_t));
	if (!b->req || !b->slot)
		return -1;
	size_t k = 0;
	if (opt.proto == REDIS)
		k += (size_t)snprintf(b->req + k, cap - k, "*%u\r\n$5\r\nLPUSH\r\n$1\r\nq\r\n",
				      opt.batch + 2);
	for (unsigned i = 0; i < opt.batch; i++) {
		if (opt.proto == REDIS)
			k += (size_t)snprintf(b->req + k, cap - k, "$%u\r\n", opt.payload);
		else
			k += (size_t)snprintf(b->req + k, cap - k, "put 1024 0 60 %u\r\n", opt.payload);
		b->slot[i] = k;
		k += opt.payload;
		memcpy(b->req + k, "\r\n", 2);
		k += 2;
	}
	b->len = k;
	return 0;
}

/* Replies that end one batch: beanstalkd answers each put, Redis the whole
 * LPUSH. */
static unsigned replies_per_batch(void)
{
	return opt.proto == REDIS ? 1 : opt.batch;
}

/* One reply off @c: 1 = one more reply, 0 = need bytes, -1 = broken. */
static int take_reply(struct conn *c)
{
	ssize_t n;
	if (opt.proto == REDIS) {
		struct resp_reply r;
		n = resp_parse(c->buf, c->len, &r, NULL, NULL);
		if (n > 0 && r.type != ':') {
			char msg[128];
			snprintf(msg, sizeof(msg), "%.*s", (int)(r.str_len < 100 ? r.str_len : 100),
				 r.str ? r.str : "");
			fail("redis refused LPUSH", msg);
		}
	} else {
		struct bs_reply r;
		n = bs_parse(c->buf, c->len, &r);
		if (n > 0 && r.kind != BS_INSERTED)
			fail("beanstalkd refused a put", r.word);
	}
	if (n < 0) {
		fail("malformed reply from the server", NULL);
		return -1;
	}
	if (n == 0)
		return 0;
	consume(c, (size_t)n);
	return 1;
}

/* The last answer to a batch meant for @intended has come. */
static void acked_one(struct conn *c, uint64_t intended)
{
	if (intended >= from_ns && intended < to_ns)
		dd_tel_hist_record(&c->hist, dd_mono_ns() - intended);
}

static void *producer(void *arg)
{
	struct conn *c = arg;
	struct batch b;
	uint64_t *sent_at = calloc(MAX_INFLIGHT, sizeof(uint64_t));
	if (batch_build(&b) < 0 || !sent_at) {
		fail("out of memory", NULL);
		return NULL;
	}
	unsigned per = replies_per_batch(), got = 0;
	unsigned depth = opt.depth < MAX_INFLIGHT ? opt.depth : MAX_INFLIGHT;
	double interval = opt.rate > 0 ? 1e9 * opt.batch * opt.producers / opt.rate : 0;
	uint64_t batches = 0, acked = 0;
	uint64_t ack_deadline = to_ns + (uint64_t)(opt.ack_wait_s * 1e9);
	while (!atomic_load(&stop)) {
		uint64_t now = dd_mono_ns();
		if (now >= to_ns) {
			/* the window is over: nothing more is sent, but the
			 * answers owed to what was sent are still read */
			if (batches == acked || now >= ack_deadline)
				break;
			int r = take_reply(c);
			if (r < 0)
				break;
			if (r == 0) {
				int f = fill_until(c, ack_deadline);
				if (f < 0)
					fail("the server closed the connection", NULL);
				if (f != 0)
					break;
				continue;
			}
			if (++got == per) {
				got = 0;
				acked_one(c, sent_at[acked % MAX_INFLIGHT]);
				acked++;
			}
			continue;
		}
		uint64_t outstanding = atomic_load(&produced) - atomic_load(&consumed);
		bool may = opt.rate > 0 ? now >= start_ns + (uint64_t)((double)batches * interval)
					: batches - acked < depth &&
						  outstanding < (uint64_t)depth * opt.batch * opt.producers;
		if (may && batches - acked < MAX_INFLIGHT) {
			uint64_t intended =
				opt.rate > 0 ? start_ns + (uint64_t)((double)batches * interval) : now;
			for (unsigned i = 0; i < opt.batch; i++)
				payload(b.req + b.slot[i], intended);
			if (dd_net_send_all(c->fd, b.req, b.len) < 0) {
				fail("the server closed the connection", NULL);
				break;
			}
			sent_at[batches % MAX_INFLIGHT] = intended;
			if (intended >= from_ns && intended < to_ns)
				atomic_fetch_add(&window_batches, 1);
			atomic_fetch_add(&produced, opt.batch);
			batches++;
			continue;
		}
		if (batches == acked) {
			usleep(50);
			continue;
		}
		int r = take_reply(c);
		if (r < 0)
			break;
		if (r == 0) {
			if (fill(c) < 0) {
				fail("the server closed the connection", NULL);
				break;
			}
			continue;
		}
		if (++got == per) {
			got = 0;
			acked_one(c, sent_at[acked % MAX_INFLIGHT]);
			acked++;
		}
	}
	for (uint64_t i = acked; i < batches; i++) {
		uint64_t s = sent_at[i % MAX_INFLIGHT];
		if (s >= from_ns && s < to_ns)
			atomic_fetch_add(&unacked_batches, 1);
	}
	free(b.req);
	free(b.slot);
	free(sent_at);
	return NULL;
}

/* ---- consumers ---------------------------------------------------------- */

static void on_pop(int depth, const char *p, size_t n, void *arg)
{
	if (depth == 2) /* [key, [values...]]: the values */
		got_job(arg, p, n);
}

static void *redis_consumer(struct conn *c)
{
	char req[128];
	int n = snprintf(req, sizeof(req),
			 "*7\r\n$6\r\nBLMPOP\r\n$3\r\n0.1\r\n$1\r\n1\r\n$1\r\nq\r\n$5\r\nRIGHT\r\n"
			 "$5\r\nCOUNT\r\n$%d\r\n%u\r\n", snprintf(NULL, 0, "%u", opt.batch), opt.batch);
	while (!atomic_load(&stop)) {
		if (dd_net_send_all(c->fd, req, (size_t)n) < 0)
			break;
		for (;;) {
			struct resp_reply r;
			ssize_t k = resp_parse(c->buf, c->len, &r, on_pop, c);
			if (k < 0) {
				fail("malformed reply to BLMPOP", NULL);
				return NULL;
			}
			if (k > 0) {
				if (r.type == '-')
					fail("redis refused BLMPOP", NULL);
				consume(c, (size_t)k);
				break;
			}
			if (fill(c) < 0)
				return NULL;
		}
	}
	return NULL;
}

/* Pipelined: the deletes for the last round's jobs, one blocking reserve
 * (up to 1 s) and batch-1 that return at once when the queue is empty. */
static void *beanstalk_consumer(struct conn *c)
{
	size_t cap = (size_t)opt.batch * 40 + 64, len = 0;
	char *req = malloc(cap);
	uint64_t *ids = calloc(opt.batch, sizeof(uint64_t));
	unsigned nids = 0;
	if (!req || !ids) {
		fail("out of memory", NULL);
		return NULL;
	}
	while (!atomic_load(&stop)) {
		len = 0;
		for (unsigned i = 0; i < nids; i++)
			len += (size_t)snprintf(req + len, cap - len, "delete %" PRIu64 "\r\n", ids[i]);
		unsigned deletes = nids;
		len += (size_t)snprintf(req + len, cap - len, "reserve-with-timeout 1\r\n");
		for (unsigned i = 1; i < opt.batch; i++)
			len += (size_t)snprintf(req + len, cap - len, "reserve-with-timeout 0\r\n");
		if (dd_net_send_all(c->fd, req, len) < 0)
			break;
		nids = 0;
		unsigned want = deletes + opt.batch, timed_out = 0;
		for (unsigned got = 0; got < want;) {
			struct bs_reply r;
			ssize_t k = bs_parse(c->buf, c->len, &r);
			if (k < 0) {
				fail("malformed reply from beanstalkd", NULL);
				return NULL;
			}
			if (k == 0) {
				if (fill(c) < 0)
					return NULL;
				continue;
			}
			if (r.kind == BS_RESERVED) {
				got_job(c, r.body, r.body_len);
				ids[nids++] = r.id;
			} else if (r.kind == BS_TIMED_OUT) {
				timed_out++;
			} else if (r.kind == BS_ERROR) {
				fail("beanstalkd refused", r.word);
			}
			consume(c, (size_t)k);
			got++;
		}
		if (timed_out == opt.batch)
			usleep(100); /* empty: do not spin the server */
	}
	free(req);
	free(ids);
	return NULL;
}

static void *consumer(void *arg)
{
	return opt.proto == REDIS ? redis_consumer(arg) : beanstalk_consumer(arg);
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: peer-load --beanstalkd|--redis --port P [options]\n"
		"  --host ADDR       IPv4 address (default 127.0.0.1)\n"
		"  --producers N     producer connections (default 1)\n"
		"  --consumers N     consumer connections (default 2)\n"
		"  --batch N         jobs per batch, and per consumer request (default 1000)\n"
		"  --depth N         closed loop: batches in flight per producer (default 8)\n"
		"  --rate R          open loop: jobs/s over all producers (default: closed)\n"
		"  --payload N       bytes per job, at least 16 (default 16)\n"
		"  --duration S      measured seconds (default 4)\n"
		"  --warmup S        seconds before measuring (default 1)\n"
		"  --ack-wait S      after the window, how long the producers still read\n"
		"                    the answers owed to batches sent in it (default 60)\n"
		"  --label TEXT      name in the report (default: the protocol)\n"
		"  --json FILE       write the result as JSON\n");
}

static int parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{"beanstalkd", no_argument, 0, 'b'}, {"redis", no_argument, 0, 'r'},
		{"host", required_argument, 0, 'H'}, {"port", required_argument, 0, 'p'},
		{"producers", required_argument, 0, 'P'}, {"consumers", required_argument, 0, 'C'},
		{"batch", required_argument, 0, 'B'}, {"depth", required_argument, 0, 'D'},
		{"rate", required_argument, 0, 'R'}, {"payload", required_argument, 0, 'L'},
		{"duration", required_argument, 0, 'd'}, {"warmup", required_argument, 0, 'w'},
		{"ack-wait", required_argument, 0, 'A'},
		{"label", required_argument, 0, 'l'}, {"json", required_argument, 0, 'j'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	int c, proto = -1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		char *end = NULL;
		long v = 0;
		double d = 0;
		if (strchr("pPCBDL", c)) {
			v = strtol(optarg, &end, 10);
			if (*end || end == optarg || v < 1 || v > 1000000) {
				fprintf(stderr, "peer-load: bad number '%s'\n", optarg);
				return 2;
			}
		} else if (strchr("RdwA", c)) {
			d = strtod(optarg, &end);
			if (*end || end == optarg || !(d >= 0) || d > 1e9) {
				fprintf(stderr, "peer-load: bad number '%s'\n", optarg);
				return 2;
			}
		}
		switch (c) {
		case 'b': proto = BEANSTALK; break;
		case 'r': proto = REDIS; break;
		case 'H': opt.host = optarg; break;
		case 'p': opt.port = (int)v; break;
		case 'P': opt.producers = (unsigned)v; break;
		case 'C': opt.consumers = (unsigned)v; break;
		case 'B': opt.batch = (unsigned)v; break;
		case 'D': opt.depth = (unsigned)v; break;
		case 'L': opt.payload = (unsigned)v; break;
		case 'R': opt.rate = d; break;
		case 'd': opt.duration_s = d; break;
		case 'w': opt.warmup_s = d; break;
		case 'A': opt.ack_wait_s = d; break;
		case 'l': opt.label = optarg; break;
		case 'j': opt.json = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (proto < 0 || !opt.port || optind < argc || opt.payload < 16 || opt.duration_s <= 0 ||
	    opt.producers + opt.consumers > MAX_CONNS) {
		usage(stderr);
		return 2;
	}
	opt.proto = (enum proto)proto;
	if (!opt.label)
		opt.label = proto == REDIS ? "redis" : "beanstalkd";
	return 0;
}

/* {p50, p99, p999, max, count} in ns; the figures are null when nothing
 * was recorded. */
static json_t *summary(const struct dd_tel_hist *h)
{
	if (!h->count)
		return json_pack("{sn sn sn sn sI}", "p50", "p99", "p999", "max", "count",
				 (json_int_t)0);
	return json_pack("{sI sI sI sI sI}", "p50", (json_int_t)dd_tel_hist_quantile(h, 0.5), "p99",
			 (json_int_t)dd_tel_hist_quantile(h, 0.99), "p999",
			 (json_int_t)dd_tel_hist_quantile(h, 0.999), "max", (json_int_t)h->max,
			 "count", (json_int_t)h->count);
}

/* "p50 ... p99 ... max ..." in µs, or "none" for an empty histogram. */
static void print_summary(const char *what, const struct dd_tel_hist *h, const char *tail)
{
	if (!h->count) {
		printf("  %-19s none%s\n", what, tail);
		return;
	}
	printf("  %-19s p50 %9.2f µs  p99 %9.2f µs  max %9.2f µs%s\n", what,
	       dd_tel_hist_quantile(h, 0.5) / 1e3, dd_tel_hist_quantile(h, 0.99) / 1e3,
	       h->max / 1e3, tail);
}

int main(int argc, char **argv)
{
	int rc = parse(argc, argv);
	if (rc)
		return rc;
	static struct conn conns[MAX_CONNS];
	unsigned n = opt.producers + opt.consumers;
	for (unsigned i = 0; i < n; i++)
		if (conn_open(&conns[i]) < 0) {
			fprintf(stderr, "peer-load: cannot connect to %s:%d: %s\n", opt.host, opt.port,
				strerror(errno));
			return 1;
		}
	start_ns = dd_mono_ns() + 1000000;
	from_ns = start_ns + (uint64_t)(opt.warmup_s * 1e9);
	to_ns = from_ns + (uint64_t)(opt.duration_s * 1e9);
	pthread_t t[MAX_CONNS];
	for (unsigned i = 0; i < n; i++)
		pthread_create(&t[i], NULL, i < opt.producers ? producer : consumer, &conns[i]);
	/* the producers stop at the window's end; the consumers then drain */
	for (unsigned i = 0; i < opt.producers; i++)
		pthread_join(t[i], NULL);
	uint64_t drain_until = dd_mono_ns() + 5000000000ull;
	while (atomic_load(&consumed) < atomic_load(&produced) && dd_mono_ns() < drain_until)
		usleep(1000);
	atomic_store(&stop, true);
	for (unsigned i = 0; i < opt.consumers; i++) /* a blocked BLMPOP/reserve returns soon */
		shutdown(conns[opt.producers + i].fd, SHUT_RDWR);
	for (unsigned i = opt.producers; i < n; i++)
		pthread_join(t[i], NULL);

	struct dd_tel_hist *ack = calloc(1, sizeof(*ack)), *job = calloc(1, sizeof(*job));
	if (!ack || !job)
		return 1;
	for (unsigned i = 0; i < n; i++)
		dd_tel_hist_merge(i < opt.producers ? ack : job, &conns[i].hist);
	double rate = (double)atomic_load(&consumed_in_window) / opt.duration_s;
	printf("peer-load  %s  producers=%u consumers=%u batch=%u depth=%u payload=%u\n", opt.label,
	       opt.producers, opt.consumers, opt.batch, opt.depth, opt.payload);
	printf("  jobs/s              %12.0f   (consumed in the %.1f s window)\n", rate,
	       opt.duration_s);
	char tail[160];
	snprintf(tail, sizeof(tail),
		 "  (%" PRIu64 " of the window's %" PRIu64 " batches; %" PRIu64 " unanswered)",
		 ack->count, atomic_load(&window_batches), atomic_load(&unacked_batches));
	print_summary("batch ack", ack, tail);
	print_summary("job latency", job, "  (intended send -> consumer has it)");
	printf("  produced / consumed %12" PRIu64 " / %" PRIu64 "   errors %" PRIu64 "\n",
	       atomic_load(&produced), atomic_load(&consumed), atomic_load(&errors));
	if (opt.json) {
		json_t *j = json_pack("{ss ss sI sI sI sI sI sf sI sI sI}", "peer", opt.label, "protocol",
				      opt.proto == REDIS ? "redis" : "beanstalkd", "producers",
				      (json_int_t)opt.producers, "consumers", (json_int_t)opt.consumers,
				      "batch", (json_int_t)opt.batch, "depth", (json_int_t)opt.depth,
				      "payload", (json_int_t)opt.payload, "jobs_per_sec", rate,
				      "produced", (json_int_t)atomic_load(&produced), "consumed",
				      (json_int_t)atomic_load(&consumed), "errors",
				      (json_int_t)atomic_load(&errors));
		json_object_set_new(j, "batch_ack_ns", summary(ack));
		json_object_set_new(j, "window_batches", json_integer((json_int_t)atomic_load(&window_batches)));
		json_object_set_new(j, "unacked_batches",
				    json_integer((json_int_t)atomic_load(&unacked_batches)));
		json_object_set_new(j, "ack_wait_s", json_real(opt.ack_wait_s));
		json_object_set_new(j, "job_latency_ns", summary(job));
		if (json_dump_file(j, opt.json, JSON_INDENT(2)) < 0) {
			fprintf(stderr, "peer-load: cannot write %s\n", opt.json);
			rc = 1;
		}
		json_decref(j);
	}
	free(ack);
	free(job);
	return rc || atomic_load(&errors) ? 1 : 0;
}
