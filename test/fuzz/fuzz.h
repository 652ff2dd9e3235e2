/* What a fuzz target gives the mutation driver (fuzz_driver.c). */
#ifndef DD_TEST_FUZZ_H
#define DD_TEST_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct dd_fuzz_seed {
	const void *data;
	size_t len;
};
/* The target's seeds (static storage); *n receives the count. */
const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n);
/* The input as a C string in @text (@n bytes); false when it does not
 * fit. For the parsers of short texts. */
static inline bool dd_fuzz_cstr(const uint8_t *data, size_t size, char *text, size_t n)
{
	if (size >= n)
		return false;
	for (size_t i = 0; i < size; i++)
		text[i] = (char)data[i];
	text[size] = 0;
	return true;
}
/* Text seeds: NULL-terminated strings into seed structs. */
const struct dd_fuzz_seed *dd_fuzz_text_seeds(const char *const *text, size_t *n);

#endif
