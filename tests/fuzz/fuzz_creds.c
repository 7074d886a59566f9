// SPDX-License-Identifier: MIT
/* libFuzzer: the credentials file parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "creds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct creds c;
	char err[256];

	err[0] = '\0';
	if (creds_parse((const char *)data, size, &c, err, sizeof(err)) == 0) {
		/* both present, bounded, no blanks: what the signer may rely on */
		if (!c.user_id[0] || !c.api_key[0] || strlen(c.api_key) >= CREDS_MAX ||
		    strpbrk(c.user_id, " \t\r\n") || strpbrk(c.api_key, " \t\r\n"))
			abort();
		creds_wipe(&c);
	} else {
		if (!err[0] || strchr(err, '\n'))
			abort(); /* a failure always says why, on one line */
		for (size_t i = 0; i < sizeof(c); i++)
			if (((const char *)&c)[i])
				abort(); /* nothing half-parsed stays behind */
	}
	return 0;
}
