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
		/* one kind, whole, bounded, no blanks: what the signers may rely on */
		if (c.kind == CREDS_CLASSIC) {
			if (!c.user_id[0] || !c.api_key[0] || strlen(c.api_key) >= CREDS_MAX ||
			    strpbrk(c.user_id, " \t\r\n") || strpbrk(c.api_key, " \t\r\n") ||
			    c.kid[0] || c.sub[0] || c.scp[0] || c.private_b64[0])
				abort();
		} else if (c.kind == CREDS_SCOPED) {
			const char *scopes[CREDS_SCOPES];
			char scp[CREDS_SCP_MAX];

			if (!c.kid[0] || !c.sub[0] || !c.private_b64[0] || !c.scp[0] ||
			    c.user_id[0] || c.api_key[0] || strpbrk(c.scp, " \t\"\\") ||
			    strpbrk(c.kid, " \t\r\n") || strpbrk(c.sub, " \t\r\n"))
				abort();
			memcpy(scp, c.scp, sizeof(scp));
			if (creds_split_scopes(scp, scopes, CREDS_SCOPES) < 1)
				abort();
		} else {
			abort();
		}
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
