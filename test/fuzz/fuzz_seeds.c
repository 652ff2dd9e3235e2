/* Seeds as text, for targets whose inputs are text. */
#include <string.h>

#include "fuzz.h"

const struct dd_fuzz_seed *dd_fuzz_text_seeds(const char *const *text, size_t *n)
{
	static struct dd_fuzz_seed s[64];
	size_t k = 0;
	while (text[k] && k < 64) {
		s[k] = (struct dd_fuzz_seed){text[k], strlen(text[k])};
		k++;
	}
	*n = k;
	return s;
}
