/* base64 (RFC 4648, padded), for bytes that JSON strings cannot carry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *dd_b64_encode(const void *data, size_t len)
{
	const unsigned char *p = data;
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		*o++ = B64[v >> 18];
		*o++ = B64[(v >> 12) & 63];
		*o++ = i + 1 < len ? B64[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? B64[v & 63] : '=';
	}
	*o = 0;
	return out;
}

long dd_b64_decode(const char *s, size_t n, unsigned char *out)
{
	if (n % 4)
		return -1;
	long k = 0;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;
		int pad = 0;
		for (int j = 0; j < 4; j++) {
			char c = s[i + j];
			const char *x = c ? strchr(B64, c) : NULL;
			if (c == '=' && i + 4 == n && j >= 2 && (j == 3 || s[i + 3] == '=')) {
				pad++;
				v <<= 6;
			} else if (x && !pad) {
				v = v << 6 | (uint32_t)(x - B64);
			} else {
				return -1;
			}
		}
		out[k++] = (unsigned char)(v >> 16);
		if (pad < 2)
			out[k++] = (unsigned char)(v >> 8);
		if (pad < 1)
			out[k++] = (unsigned char)v;
	}
	return k;
}
