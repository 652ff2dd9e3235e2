/* dispatchctl's connection: one request at a time, answers by tag. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "b64.h"
#include "ctl.h"
#include "dd_net.h"
#include "wire.h"

void dd_ctl_close(struct ctl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

/* The next line from the daemon (NUL-terminated in c->buf), or NULL. */
static char *read_line(struct ctl *c, size_t *len)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			*nl = 0;
			*len = (size_t)(nl - c->buf);
			return c->buf;
		}
		if (c->cap - c->len < 65536) {
			size_t cap = c->cap ? c->cap * 2 : 131072;
			char *p = realloc(c->buf, cap);
			if (!p)
				return NULL;
			c->buf = p;
			c->cap = cap;
		}
		ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return NULL;
		c->len += (size_t)k;
	}
}

static void consume(struct ctl *c, size_t len)
{
	memmove(c->buf, c->buf + len + 1, c->len - len - 1);
	c->len -= len + 1;
}

/* Writes the @n bytes of @s (a request line with its newline) in one
 * write where it can; with @fd >= 0, passes it (SCM_RIGHTS) with the
 * first byte, so that it reaches the daemon with the request. Returns 0
 * or -1. */
static int send_line(int sock, const char *s, size_t n, int fd)
{
	if (fd >= 0) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} ctl;
		memset(&ctl, 0, sizeof(ctl));
		struct iovec iov = {.iov_base = (void *)s, .iov_len = n};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
				    .msg_controllen = sizeof(ctl.b)};
		struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &fd, sizeof(int));
		ssize_t k;
		while ((k = sendmsg(sock, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
			;
		if (k <= 0)
			return -1;
		s += k;
		n -= (size_t)k;
	}
	return n && dd_net_send_all(sock, s, n) < 0 ? -1 : 0;
}

unsigned dd_ctl_send(struct ctl *c, json_t *req, int fd)
{
	unsigned tag = ++c->tag;
	json_object_set_new(req, "tag", json_integer(tag));
	char *s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	size_t n = s ? strlen(s) : 0;
	char *line = s ? realloc(s, n + 2) : NULL;
	if (line)
		memcpy(line + n, "\n", 2);
	int rc = line ? send_line(c->fd, line, n + 1, fd) : -1;
	free(line ? line : s);
	if (rc < 0) {
		fprintf(stderr, "dispatchctl: lost the connection to dispatchd\n");
		return 0;
	}
	return tag;
}

bool dd_ctl_pending(const struct ctl *c)
{
	return c->len && memchr(c->buf, '\n', c->len);
}

json_t *dd_ctl_recv(struct ctl *c)
{
	size_t len;
	char *line = read_line(c, &len);
	if (!line) {
		fprintf(stderr, "dispatchctl: dispatchd closed the connection\n");
		return NULL;
	}
	json_error_t je;
	json_t *o = json_loadb(line, len, 0, &je);
	consume(c, len);
	if (!o)
		fprintf(stderr, "dispatchctl: unreadable answer: %s\n", je.text);
	return o;
}

json_t *dd_ctl_call_fd(struct ctl *c, json_t *req, int fd)
{
	unsigned tag = dd_ctl_send(c, req, fd);
	if (!tag)
		return NULL;
	for (;;) {
		json_t *o = dd_ctl_recv(c);
		if (!o)
			return NULL;
		json_t *t = json_object_get(o, "tag");
		if (json_is_integer(t) && json_integer_value(t) == tag)
			return o;
		json_decref(o); /* an answer to nothing we still wait for */
	}
}

json_t *dd_ctl_call(struct ctl *c, json_t *req)
{
	return dd_ctl_call_fd(c, req, -1);
}

json_t *dd_ctl_result(json_t *resp)
{
	if (!resp)
		return NULL;
	if (json_is_true(json_object_get(resp, "ok")))
		return json_object_get(resp, "result");
	/* the daemon's message says what it is about ("job 42: no such job") */
	json_t *e = json_object_get(resp, "error");
	fprintf(stderr, "dispatchctl: %s\n", json_string_value(json_object_get(e, "message")));
	return NULL;
}

int dd_ctl_pump(struct ctl *c, json_int_t id, const char *stream, json_int_t attempt, json_int_t *off,
	     FILE *out, void (*seen)(void *arg, const unsigned char *p, size_t n), void *arg)
{
	json_t *req = json_pack("{s:s, s:I, s:s, s:I}", "op", "output", "id", id, "stream", stream,
				"offset", *off);
	if (attempt)
		json_object_set_new(req, "attempt", json_integer(attempt));
	json_t *resp = dd_ctl_call(c, req), *r = dd_ctl_result(resp);
	if (!r) {
		json_decref(resp);
		return -1;
	}
	const char *b64 = json_string_value(json_object_get(r, "data"));
	size_t n = b64 ? strlen(b64) : 0;
	unsigned char *buf = malloc(n / 4 * 3 + 3);
	long k = buf ? dd_b64_decode(b64, n, buf) : -1;
	if (k > 0) {
		fwrite(buf, 1, (size_t)k, out);
		fflush(out);
		if (seen)
			seen(arg, buf, (size_t)k);
	}
	free(buf);
	*off = json_integer_value(json_object_get(r, "offset"));
	int eof = json_is_true(json_object_get(r, "eof"));
	json_decref(resp);
	return k < 0 ? -1 : eof;
}
