/* CRC-32C (Castagnoli), as used by ext4, iSCSI and RocksDB's log.
 * With SSE 4.2 the crc32 instruction does 8 bytes a cycle or so; without it
 * a table does one byte at a time. The choice is made once, at first use. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "state.h"

static uint32_t table[256];
static int have_sse42;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		table[i] = c;
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
#else
	have_sse42 = 0;
#endif
}

static uint32_t by_table(uint32_t crc, const unsigned char *p, size_t n)
{
	while (n--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t by_insn(uint32_t crc, const unsigned char *p,
							    size_t n)
{
	uint64_t c = crc;
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		n -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (n--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}
#endif

uint32_t dd_state_crc32c(uint32_t crc, const void *buf, size_t n)
{
	pthread_once(&once, init);
	crc = ~crc;
#if defined(__x86_64__)
	if (have_sse42)
		return ~by_insn(crc, buf, n);
#endif
	return ~by_table(crc, buf, n);
}
