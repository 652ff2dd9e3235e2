/* dispatchctl's connection: one request at a time, answers by tag. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "wire.h"

void ctl_close(struct ctl *c)
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

json_t *ctl_call(struct ctl *c, json_t *req)
{
	unsigned tag = ++c->tag;
	json_object_set_new(req, "tag", json_integer(tag));
	char *s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	size_t n = s ? strlen(s) : 0;
	char *req_line = s ? realloc(s, n + 2) : NULL; /* one write: one TCP segment */
	if (req_line) {
		s = req_line;
		memcpy(s + n, "\n", 2);
	}
	if (!req_line || dd_wire_send(c->fd, s, n + 1) < 0) {
		free(s);
		fprintf(stderr, "dispatchctl: lost the connection to dispatchd\n");
		return NULL;
	}
	free(s);
	for (;;) {
		size_t len;
		char *line = read_line(c, &len);
		if (!line) {
			fprintf(stderr, "dispatchctl: dispatchd closed the connection\n");
			return NULL;
		}
		json_error_t je;
		json_t *o = json_loadb(line, len, 0, &je);
		consume(c, len);
		if (!o) {
			fprintf(stderr, "dispatchctl: unreadable answer: %s\n", je.text);
			return NULL;
		}
		json_t *t = json_object_get(o, "tag");
		if (json_is_integer(t) && json_integer_value(t) == tag)
			return o;
		json_decref(o); /* an answer to nothing we still wait for */
	}
}

json_t *ctl_result(json_t *resp)
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
