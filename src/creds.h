/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_CREDS_H
#define INGESTFS_CREDS_H

/*
 * The credentials: a classic API key (user id + secret, msg/sig signing)
 * or a scoped API key (the .env file Uplynk hands out: KID, SUB,
 * PRIVATE_B64, SCP, optionally ROOT_URL; ES256 tokens, see jwt.h).  Read
 * from the environment or a private file into a struct creds that the
 * caller wipes (creds_wipe) as soon as it has handed them on.  Nothing
 * here ever prints a value; error text names the file, the line, the
 * field and the problem.  No global state beyond the environment
 * variables it scrubs.
 */

#include <stddef.h>

#define CREDS_MAX     256  /* longest user id, key, KID, SUB or ROOT_URL, with the NUL */
#define CREDS_KEY_MAX 4096 /* longest PRIVATE_B64, with the NUL */
#define CREDS_SCP_MAX 1024 /* longest SCP, with the NUL */
#define CREDS_SCOPES  64   /* most scopes in SCP */

enum creds_kind {
	CREDS_CLASSIC = 1, /* user_id, api_key: msg/sig in the query */
	CREDS_SCOPED,	   /* KID, SUB, PRIVATE_B64, SCP: a JWT in a header */
};

struct creds {
	enum creds_kind kind;
	char user_id[CREDS_MAX];
	char api_key[CREDS_MAX]; /* secret: never printed; creds_wipe() clears */
	char kid[CREDS_MAX];
	char sub[CREDS_MAX];
	char scp[CREDS_SCP_MAX];	 /* the scopes, comma-separated, blanks removed */
	char private_b64[CREDS_KEY_MAX]; /* secret, as above; a P-256 key (checked) */
	char root_url[CREDS_MAX];	 /* ROOT_URL of the .env file, or "" */
};

/*
 * creds_parse - parse a credentials file's text: "key = value" lines, '#'
 * comments.  Either user_id and api_key, or (the .env file of a scoped
 * key, unchanged: KEY=value lines, values optionally in matching quotes,
 * an optional "export ") KID, SUB, PRIVATE_B64 and SCP, each exactly once;
 * other upper-case keys of a .env file are ignored.  Both kinds in one
 * file, or neither, is an error.  For a scoped key PRIVATE_B64 must hold a
 * P-256 private key and SCP a list of scope names.  Error text names the
 * line, the field and the problem, never a value.  0 or -EINVAL.
 */
int creds_parse(const char *buf, size_t len, struct creds *c, char *err, size_t errlen);

/*
 * creds_load - from the environment when a whole set is there: classic
 * UPLYNK_USER_ID and UPLYNK_API_KEY, or scoped UPLYNK_KID, UPLYNK_SUB,
 * UPLYNK_PRIVATE_B64 and UPLYNK_SCP (both sets at once is an error); else
 * from the file @path (NULL: the default path).  Either way every one of
 * these variables is then wiped and removed from the environment, so
 * /proc/PID/environ does not show a key.  The file must be a regular file
 * (a symbolic link is followed, as ssh does for its keys: the target is
 * what is checked), owned by the effective user or root, and not
 * accessible by group or others; it is opened without blocking, so a FIFO
 * cannot hang start-up.  0, or -errno with one line in @err.
 */
int creds_load(const char *path, struct creds *c, char *err, size_t errlen);

/* creds_default_path - $XDG_CONFIG_HOME or ~/.config + /ingestfs/credentials */
char *creds_default_path(void);

/* creds_owner - whose data the key reads: the user id, or a scoped key's SUB */
const char *creds_owner(const struct creds *c);

/*
 * creds_split_scopes - point @out at the NUL-separated scopes of @scp (a
 * copy of struct creds' scp, changed in place); the count, at most @max.
 */
size_t creds_split_scopes(char *scp, const char **out, size_t max);

void creds_wipe(struct creds *c);

#endif
