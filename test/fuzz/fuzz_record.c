/* Fuzz target for the log record decoder (state/record.c): the one parser
 * that reads whatever a crash left on disk.
 *
 * Properties checked on every input:
 *  - decoding never reads outside the input (ASan) nor crashes;
 *  - a record that decodes re-encodes to the same bytes (so nothing the
 *    decoder accepts is misread);
 *  - the body parser alone, fed the input as any record type, holds too
 *    (the checksum would otherwise hide it from the fuzzer). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_roundtrip(const uint8_t *rec, size_t len, const struct dd_logrec *r)
{
	size_t n = dd_logrec_size(r);
	if (n != len)
		abort();
	uint8_t *buf = malloc(n);
	if (!buf)
		return;
	dd_logrec_encode(r, buf);
	if (memcmp(buf, rec, n) != 0)
		abort();
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* as a log: records one after another, as recovery reads them */
	size_t off = 0;
	while (off < size) {
		struct dd_logrec r;
		size_t used;
		if (dd_logrec_decode(data + off, size - off, &r, &used) != DD_LOGREC_OK)
			break;
		if (used == 0 || used > size - off)
			abort();
		check_roundtrip(data + off, used, &r);
		off += used;
	}
	/* as a body of each type, past the checksum */
	if (size >= 1) {
		struct dd_logrec r;
		memset(&r, 0, sizeof(r));
		uint32_t type = data[0] % 7;
		(void)dd_logrec_decode_body(type, data + 1, size - 1, &r);
	}
	return 0;
}
