/* A mutation driver for builds without libFuzzer, shared by the daemon's
 * and the engine's fuzz targets: each target lists seeds (dd_fuzz_seeds);
 * this feeds them and deterministic mutations of them (bit flips, byte
 * sets, cuts, splices, repeats, insertions) to LLVMFuzzerTestOneInput. A
 * clang build also links the same targets against libFuzzer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define MAX 8192

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t mutate(uint8_t *buf, size_t len, const struct dd_fuzz_seed *seeds, size_t nseeds)
{
	static const char *const tokens[] = {"\"", "{", "}", "[", "]", ",", ":", "null", "-1",
					     "1e999", "\\u0000", "\xff", "=", "\n", "[x]", "0"};
	unsigned k = 1 + (unsigned)(next() % 4);
	while (k--) {
		size_t pos = len ? next() % len : 0;
		switch (next() % 7) {
		case 0:
			if (len)
				buf[pos] ^= (uint8_t)(1u << (next() % 8));
			break;
		case 1:
			if (len)
				buf[pos] = (uint8_t)next();
			break;
		case 2:
			len = pos;
			break;
		case 3: { /* splice another seed in */
			const struct dd_fuzz_seed *sd = &seeds[next() % nseeds];
			const uint8_t *s = sd->data;
			size_t sl = sd->len, from = sl ? next() % sl : 0, n = sl - from;
			if (pos + n > MAX)
				n = MAX - pos;
			memcpy(buf + pos, s + from, n);
			if (pos + n > len)
				len = pos + n;
			break;
		}
		case 4: { /* repeat a range */
			size_t n = len - pos < 64 ? len - pos : 64;
			if (len + n <= MAX) {
				memmove(buf + pos + n, buf + pos, len - pos);
				len += n;
			}
			break;
		}
		default: { /* insert a token */
			const char *t = tokens[next() % (sizeof(tokens) / sizeof(tokens[0]))];
			size_t n = strlen(t);
			if (len + n <= MAX) {
				memmove(buf + pos + n, buf + pos, len - pos);
				memcpy(buf + pos, t, n);
				len += n;
			}
		}
		}
	}
	return len;
}

int main(int argc, char **argv)
{
	unsigned long runs = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	size_t nseeds = 0;
	const struct dd_fuzz_seed *seeds = dd_fuzz_seeds(&nseeds);
	static uint8_t buf[MAX];
	for (size_t i = 0; i < nseeds; i++)
		LLVMFuzzerTestOneInput(seeds[i].data, seeds[i].len);
	for (unsigned long r = 0; r < runs; r++) {
		const struct dd_fuzz_seed *sd = &seeds[next() % nseeds];
		size_t len = sd->len < MAX ? sd->len : MAX;
		memcpy(buf, sd->data, len);
		len = mutate(buf, len, seeds, nseeds);
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("%lu mutated inputs and %zu seeds: no crash\n", runs, nseeds);
	return 0;
}

