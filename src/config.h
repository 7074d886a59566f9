/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_CONFIG_H
#define INGESTFS_CONFIG_H

#include <fuse_opt.h>
#include <stdbool.h>
#include <stddef.h>

#define CONFIG_DEFAULT_TTL	    30.0
#define CONFIG_DEFAULT_TIMEOUT	    10.0
#define CONFIG_DEFAULT_MAX_RESPONSE (256u << 20)

struct config {
	char *api_url;	     /* malloc'd; validated http(s) URL without userinfo */
	char *endpoint;	     /* malloc'd; starts with /api/ */
	char *credentials;   /* malloc'd path, or NULL for the default */
	double ttl;	     /* seconds between refreshes */
	double timeout;	     /* seconds for one API request, connect included */
	size_t max_response; /* bytes */
	char *source;	     /* mount(8)'s "device" field, when given; malloc'd */
	char *mountpoint;    /* malloc'd, or NULL when none was given */
	bool show_help;
	bool show_version;
	char error[256]; /* why config_parse failed; one line */
};

/* config_init - defaults; config_free releases the strings */
int config_init(struct config *cfg);
void config_free(struct config *cfg);

/*
 * config_parse - take ingestfs' own options (-o api_url=..., ttl, timeout,
 * credentials, endpoint, max_response; -h/--help, -V/--version) out of
 * @args, leaving libfuse's for fuse_parse_cmdline().  Also takes the
 * positional arguments ([SOURCE] MOUNTPOINT, as mount.fuse3 passes them)
 * and drops fstab-only options (noauto, nofail, _netdev, x-*, ...) that
 * libfuse would refuse.  Returns 0, or -EINVAL with a one-line cause in
 * cfg->error.
 */
int config_parse(struct fuse_args *args, struct config *cfg);

/* config_parse_seconds - decimal seconds in [@min, @max]; 0 or -EINVAL */
int config_parse_seconds(const char *s, double min, double max, double *out);
/* config_parse_size - bytes with optional K/M/G (binary) suffix; 0 or -EINVAL */
int config_parse_size(const char *s, size_t min, size_t max, size_t *out);
/* config_check_url - 0 when @url is an http(s) URL we accept, else -EINVAL */
int config_check_url(const char *url, char *err, size_t errlen);

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
 * the file @path (NULL: the default path).  Refuses a file that group or
 * others may access.  0, or -errno with one line in @err.
 */
int creds_load(const char *path, struct creds *c, char *err, size_t errlen);

/* creds_default_path - $XDG_CONFIG_HOME or ~/.config + /ingestfs/credentials */
char *creds_default_path(void);

void creds_wipe(struct creds *c);

#endif
