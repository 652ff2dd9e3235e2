/* The supervisor's messages and journal records, checked before anything
 * reads them (supervisor.h). Both ends run the same build, but a message
 * is bytes from a socket and a journal record bytes from the disk. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor.h"

unsigned dd_sup_spawn_nfds(const struct dd_sup_spawn *m)
{
	return 2u + !!(m->flags & DD_SUP_F_IN) + m->ncg + !!(m->flags & DD_SUP_F_MEMFD);
}

static int check_spawn(const struct dd_sup_spawn *m, size_t len, unsigned nfds)
{
	/* a uid switch without the owner's groups and environment would run
	 * as the owner with root's groups: refused */
	if (m->flags & ~DD_SUP_F_ALL || m->ncg > 4 || m->spec_len == 0 ||
	    m->spec_len > (1u << 20) || dd_sup_spawn_nfds(m) != nfds ||
	    m->shard >= DD_SUP_MAX_SHARDS || m->attempt == 0 ||
	    ((m->flags & DD_SUP_F_SETUID) && !(m->flags & DD_SUP_F_CRED)))
		return -EPROTO;
	size_t tail = len - sizeof(*m);
	size_t inl = (m->flags & DD_SUP_F_MEMFD) ? 0 : m->spec_len;
	if (!(m->flags & DD_SUP_F_MEMFD) && m->spec_len > DD_SUP_INLINE_MAX)
		return -EPROTO;
	size_t need = inl;
	if (m->flags & DD_SUP_F_CRED) {
		if (m->ngroups > DD_SUP_GROUPS_MAX || m->env_len > DD_SUP_ENV_MAX)
			return -EPROTO;
		need += (size_t)m->ngroups * 4 + m->env_len;
	} else if (m->ngroups || m->env_len) {
		return -EPROTO;
	}
	if (need != tail)
		return -EPROTO;
	if (m->flags & DD_SUP_F_CRED) {
		/* the cred's four strings, each ended by its NUL */
		const char *env = (const char *)(m + 1) + inl + (size_t)m->ngroups * 4;
		unsigned nul = 0;
		for (uint32_t i = 0; i < m->env_len; i++)
			nul += env[i] == 0;
		if (nul != 4 || (m->env_len && env[m->env_len - 1] != 0))
			return -EPROTO;
	}
	return 0;
}

int dd_sup_check(const void *msg, size_t len, unsigned nfds, uint32_t want)
{
	uint32_t type;
	if (len < sizeof(type))
		return -EPROTO;
	memcpy(&type, msg, sizeof(type));
	if (type != want)
		return -EPROTO;
	switch (type) {
	case DD_SUP_HELLO: {
		const struct dd_sup_hello *h = msg;
		if (len != sizeof(*h) || nfds || h->shard >= DD_SUP_MAX_SHARDS ||
		    (h->role != DD_SUP_ROLE_SPAWN && h->role != DD_SUP_ROLE_EVENTS))
			return -EPROTO;
		return 0;
	}
	case DD_SUP_SPAWN:
		if (len < sizeof(struct dd_sup_spawn))
			return -EPROTO;
		return check_spawn(msg, len, nfds);
	case DD_SUP_SPAWNED: {
		const struct dd_sup_spawned *r = msg;
		if (len != sizeof(*r) || nfds != (unsigned)(r->rc == 0) || (r->rc == 0 && r->pid <= 0) ||
		    r->sup_pid <= 0 ||
		    memchr(r->why, 0, sizeof(r->why)) == NULL)
			return -EPROTO;
		return 0;
	}
	case DD_SUP_CHILD: {
		const struct dd_sup_child *c = msg;
		if (len != sizeof(*c))
			return -EPROTO;
		unsigned f = c->flags;
		/* a live child comes with its pidfd, an ended one without */
		if (f & ~15u || c->attempt == 0 || c->pid <= 0 ||
		    !(f & DD_SUP_C_EXITED) != !!(f & DD_SUP_C_PIDFD) ||
		    nfds != (unsigned)(!!(f & DD_SUP_C_PIDFD) + !!(f & DD_SUP_C_OUT) + !!(f & DD_SUP_C_ERR)))
			return -EPROTO;
		return 0;
	}
	case DD_SUP_LISTED: {
		const struct dd_sup_listed *l = msg;
		return len == sizeof(*l) && !nfds && l->sup_pid > 0 ? 0 : -EPROTO;
	}
	case DD_SUP_EXIT: {
		const struct dd_sup_exit *x = msg;
		return len == sizeof(*x) && !nfds && x->attempt ? 0 : -EPROTO;
	}
	case DD_SUP_ACK: {
		const struct dd_sup_ack *a = msg;
		if (nfds || len < offsetof(struct dd_sup_ack, e) || a->n > DD_SUP_ACK_MAX ||
		    len != offsetof(struct dd_sup_ack, e) + (size_t)a->n * sizeof(a->e[0]))
			return -EPROTO;
		return 0;
	}
	case DD_SUP_SIGNAL: {
		const struct dd_sup_signal *g = msg;
		return len == sizeof(*g) && !nfds && g->sig > 0 && g->sig < 65 ? 0 : -EPROTO;
	}
	}
	return -EPROTO;
}

uint64_t dd_sup_jrec_check(const struct dd_sup_jrec *r)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a over the fields */
	const unsigned char *p = (const unsigned char *)r;
	for (size_t i = 0; i < offsetof(struct dd_sup_jrec, check); i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

int dd_sup_jrec_valid(const struct dd_sup_jrec *r)
{
	if (r->magic != DD_SUP_JMAGIC || r->check != dd_sup_jrec_check(r) || r->attempt == 0 ||
	    r->shard >= DD_SUP_MAX_SHARDS || r->pid <= 0)
		return -EPROTO;
	return 0;
}

ssize_t dd_sup_send(int fd, const void *msg, size_t len, const int *fds, unsigned nfds, int flags)
{
	struct iovec iov = {(void *)msg, len};
	union {
		char buf[CMSG_SPACE(sizeof(int) * DD_SUP_FDS_MAX)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds > DD_SUP_FDS_MAX)
		return -EINVAL;
	if (nfds) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	do
		n = sendmsg(fd, &mh, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

ssize_t dd_sup_recv(int fd, void *buf, size_t cap, int *fds, unsigned *nfds, int flags)
{
	struct iovec iov = {buf, cap};
	union {
		char buf[CMSG_SPACE(sizeof(int) * DD_SUP_FDS_MAX)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	ssize_t n;
	*nfds = 0;
	do
		n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		const unsigned char *d = CMSG_DATA(c);
		for (unsigned i = 0; i < k; i++) {
			int f;
			memcpy(&f, d + i * sizeof(int), sizeof(int));
			if (*nfds < DD_SUP_FDS_MAX)
				fds[(*nfds)++] = f;
			else
				close(f);
		}
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		/* not a message of ours: nothing of it is used */
		dd_sup_close_fds(fds, *nfds);
		*nfds = 0;
		return -EPROTO;
	}
	return n;
}

void dd_sup_close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}
