/* A driver for builds without libFuzzer: runs the target on valid records
 * of every type and on deterministic mutations of them (bit flips, cuts,
 * splices, length words), so that every build exercises it. With clang,
 * the same target is also built against libFuzzer (coverage-guided). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t seed_log(uint8_t *buf)
{
	static const uint64_t deps[] = {7, 9};
	/* an array's ranges, little-endian u32 triples: 0-9:3 and 20-20 */
	static const unsigned char ranges[24] = {0, 0, 0, 0, 9, 0, 0, 0, 3, 0, 0, 0,
						 20, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0};
	struct dd_logrec recs[] = {
		{.type = DD_LOGREC_SUBMIT, .lsn = 1, .id = 5, .at_rt = 11, .max_attempts = 3,
		 .priority = 2, .kind = "noop", .kind_len = 4, .payload = "hello", .payload_len = 5,
		 .deps = (const unsigned char *)deps, .ndeps = 2, .key = "k1", .key_len = 2,
		 .flags = DD_LOGREC_F_DEPKINDS, .dep_kinds = (const uint8_t *)"\1\2"},
		{.type = DD_LOGREC_START, .lsn = 2, .id = 5, .attempt = 1, .worker = 3},
		{.type = DD_LOGREC_RETRY, .lsn = 3, .id = 5, .attempt = 1, .not_before_rt = 99},
		{.type = DD_LOGREC_END, .lsn = 4, .id = 5, .state = 5, .result = -1, .reason = "timeout",
		 .reason_len = 7},
		{.type = DD_LOGREC_RESERVE, .lsn = 5, .id = 1 << 20},
		{.type = DD_LOGREC_FINISH, .lsn = 6, .id = 6, .at_rt = 30, .attempt = 1, .worker = 2,
		 .started_rt = 20, .state = 6, .result = 3, .reason = "exit 3", .reason_len = 6},
		{.type = DD_LOGREC_END, .lsn = 7, .id = 6, .state = 7, .result = 15, .reason = "c",
		 .reason_len = 1, .output_cut = {123456, 0}},
		{.type = DD_LOGREC_FINISH, .lsn = 8, .id = 7, .attempt = 2, .state = 5,
		 .output_cut = {0, 1}},
		{.type = DD_LOGREC_SUBMIT, .lsn = 9, .id = 40, .max_attempts = 1, .kind = "a",
		 .kind_len = 1, .flags = DD_LOGREC_F_ARRAY | DD_LOGREC_F_NAME, .array_max = 2,
		 .array_nranges = 2, .array_ranges = ranges, .name = "nm", .name_len = 2},
		{.type = DD_LOGREC_SUBMIT, .lsn = 10, .id = 43, .max_attempts = 1, .kind = "a",
		 .kind_len = 1, .flags = DD_LOGREC_F_ELEMENT | DD_LOGREC_F_EXEC, .array_id = 40,
		 .array_ord = 2, .array_index = 6},
	};
	size_t off = 0;
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++)
		off += dd_logrec_encode(&recs[i], buf + off);
	return off;
}

int main(int argc, char **argv)
{
	unsigned long runs = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
	uint8_t seed[2048], buf[2400];
	size_t n = seed_log(seed);
	LLVMFuzzerTestOneInput(seed, n);
	for (unsigned long i = 0; i < runs; i++) {
		size_t len = n;
		memcpy(buf, seed, n);
		switch (next() % 5) {
		case 0: /* flip bits */
			for (int k = 0, m = 1 + (int)(next() % 4); k < m; k++)
				buf[next() % len] ^= (uint8_t)(1u << (next() % 8));
			break;
		case 1: /* cut */
			len = next() % (n + 1);
			break;
		case 2: /* random bytes in a window */
			for (size_t k = next() % len, m = k + next() % 32; k < m && k < len; k++)
				buf[k] = (uint8_t)next();
			break;
		case 3: { /* a length word lies */
			uint32_t v = (uint32_t)next();
			memcpy(buf + (next() % 5) * 8 % len, &v, 4);
			break;
		}
		default: /* grow with garbage */
			len = n + next() % (sizeof(buf) - n);
			for (size_t k = n; k < len; k++)
				buf[k] = (uint8_t)next();
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("fuzz_record: %lu mutated inputs, no failure\n", runs);
	return 0;
}
