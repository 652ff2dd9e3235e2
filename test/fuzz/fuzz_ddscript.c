/* Fuzz target: a batch script's "#DD" lines (daemon/ddscript.c).
 * Properties: it never reads past the text nor crashes; a refusal says
 * why; what it accepts holds no "--", each word is a string shorter than
 * the text; a script whose #DD words need no quoting reads back the same
 * once written out again. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ddscript.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char **w, **w2, why[160] = "";
	int n, n2;
	int r = dd_script_options((const char *)data, size, &w, &n, why, sizeof(why));
	if (r < 0) {
		if (r != -ENOMEM && !why[0])
			abort();
		return 0;
	}
	size_t total = 0;
	bool plain = true;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(w[i]);
		if (l > size || !strcmp(w[i], "--"))
			abort();
		total += l + 1;
		plain &= l && strcspn(w[i], " \t\r\n'\"\\#") == l;
	}
	if (plain && n) {
		/* "#!x\n#DD w1 w2 ...\n" */
		char *t = malloc(total + 16);
		size_t o = 0;
		memcpy(t, "#!x\n#DD", 7);
		o = 7;
		for (int i = 0; i < n; i++) {
			t[o++] = ' ';
			memcpy(t + o, w[i], strlen(w[i]));
			o += strlen(w[i]);
		}
		t[o++] = '\n';
		if (dd_script_options(t, o, &w2, &n2, why, sizeof(why)) < 0 || n2 != n)
			abort();
		for (int i = 0; i < n; i++)
			if (strcmp(w[i], w2[i]))
				abort();
		dd_script_free(w2, n2);
		free(t);
	}
	dd_script_free(w, n);
	return 0;
}

const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static const char *const seeds[] = {
		"#!/bin/sh\n#DD --name x --array 1-3\n#DD -o out-%j\necho hi\n#DD --late\n",
		"#!/bin/bash\n\n# comment\n#DD --name \"two words\" --env 'A=b c' --cwd a\\ b\n",
		"#DD --a\n", "#!/bin/sh\n#DD x\n", "#!/bin/sh\n#DD --name 'open\n", "#!/bin/sh\r\n#DD -J a\r\n",
		"#!/bin/sh\n#DDX --no\n#DD\t--tab\n", NULL,
	};
	return dd_fuzz_text_seeds(seeds, n);
}
