#ifndef DD_DAEMON_B64_H
#define DD_DAEMON_B64_H

#include <stddef.h>

/* A malloc'd, NUL-terminated encoding of @len bytes, or NULL. */
char *dd_b64_encode(const void *data, size_t len);
/* Decodes @slen characters into @out (room for slen / 4 * 3); returns the
 * byte count, or -1 if it is not padded base64. */
long dd_b64_decode(const char *s, size_t slen, unsigned char *out);

#endif
