/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_CREDS_H
#define INGESTFS_CREDS_H

/*
 * The user id and API key: read from the environment or a private file,
 * held in a struct creds that the caller wipes (creds_wipe) as soon as it
 * has handed them on.  Nothing here ever prints a value; error text names
 * the file, the line and the problem.  No global state beyond the
 * environment variables it scrubs.
 */

#include <stddef.h>

#define CREDS_MAX 256 /* longest user id or key, bytes, with the NUL */

struct creds {
	char user_id[CREDS_MAX];
	char api_key[CREDS_MAX]; /* secret: never printed; creds_wipe() clears */
};

/*
 * creds_parse - parse a credentials file's text: "key = value" lines,
 * '#' comments, keys user_id and api_key, each exactly once.  Error text
 * names the line and the problem, never a value.  0 or -EINVAL.
 */
int creds_parse(const char *buf, size_t len, struct creds *c, char *err, size_t errlen);

/*
 * creds_load - UPLYNK_USER_ID and UPLYNK_API_KEY when both are set, else
 * the file @path (NULL: the default path).  Either way both variables are
 * then wiped and removed from the environment, so /proc/PID/environ does
 * not show the key.  The file must be a regular file (a symbolic link is
 * followed, as ssh does for its keys: the target is what is checked),
 * owned by the effective user or root, and not accessible by group or
 * others; it is opened without blocking, so a FIFO cannot hang start-up.
 * 0, or -errno with one line in @err.
 */
int creds_load(const char *path, struct creds *c, char *err, size_t errlen);

/* creds_default_path - $XDG_CONFIG_HOME or ~/.config + /ingestfs/credentials */
char *creds_default_path(void);

void creds_wipe(struct creds *c);

#endif
