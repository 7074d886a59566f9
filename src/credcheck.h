/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_CREDCHECK_H
#define INGESTFS_CREDCHECK_H

#include <stddef.h>

#include "config.h"
#include "creds.h"

/*
 * check_credentials - ingestfs --check: one signed request for @cfg's
 * collection with @creds, parsed as a mount would parse it.  0 with
 * "ok: N tasks from URL (KIND key, MS ms)" in @line, or -errno with the
 * line a mount would have failed with.  Needs http_global_init().
 */
int check_credentials(const struct config *cfg, const struct creds *creds, char *line,
		      size_t linelen);

#endif
