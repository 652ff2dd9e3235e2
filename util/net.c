/* See dd_net.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "dd_net.h"

int dd_net_hostport(const char *hostport, char *buf, size_t len, const char **host,
		    const char **port)
{
	snprintf(buf, len, "%s", hostport);
	char *colon = strrchr(buf, ':');
	if (!colon || !colon[1])
		return -EINVAL;
	*colon = 0;
	*port = colon + 1;
	const char *h = buf[0] ? buf : "127.0.0.1";
	if (h[0] == '[') { /* [::1]:PORT */
		h++;
		char *rb = strchr(buf, ']');
		if (rb)
			*rb = 0;
	}
	*host = h;
	return 0;
}

int dd_net_send_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EPIPE;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}
