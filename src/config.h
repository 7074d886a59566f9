/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_CONFIG_H
#define INGESTFS_CONFIG_H

#include <fuse_opt.h>
#include <stdbool.h>
#include <stddef.h>

#define CONFIG_DEFAULT_TTL	    30.0
#define CONFIG_DEFAULT_TIMEOUT	    10.0
#define CONFIG_DEFAULT_MAX_RESPONSE (256u << 20)
#define CONFIG_DEFAULT_EVENTS_MAX   (16u << 20)

struct config {
	char *api_url;	     /* malloc'd; validated http(s) URL without userinfo */
	bool api_url_given;  /* by -o api_url=, which a ROOT_URL does not override */
	char *endpoint;	     /* malloc'd; starts with /api/ */
	char *credentials;   /* malloc'd path, or NULL for the default */
	double ttl;	     /* seconds between refreshes */
	double timeout;	     /* seconds for one API request, connect included */
	size_t max_response; /* bytes */
	size_t events_max;   /* bytes of .events before it rotates */
	bool insecure_http;  /* plain http:// allowed to a host that is not loopback */
	char *state_dir;     /* malloc'd path, or NULL for the default */
	bool no_state;	     /* state_dir=none */
	bool offline_start;  /* serve the saved answer when the API is down at start */
	char *source;	     /* mount(8)'s "device" field, when given; malloc'd */
	char *mountpoint;    /* malloc'd, or NULL when none was given */
	bool show_help;
	bool show_version;
	bool check;	 /* --check: one signed request, one line, no mount */
	char error[256]; /* why config_parse failed; one line */
};

/* config_init - defaults; config_free releases the strings */
int config_init(struct config *cfg);
void config_free(struct config *cfg);

/*
 * config_parse - take ingestfs' own options (-o api_url=..., ttl, timeout,
 * credentials, endpoint, max_response, insecure_http, state_dir,
 * offline_start, events_max; -h/--help, -V/--version, --check) out of
 * @args, leaving libfuse's for fuse_parse_cmdline().  Also takes the
 * positional arguments ([SOURCE] MOUNTPOINT, as mount.fuse3 passes them)
 * and drops fstab-only options (noauto, nofail, _netdev, x-*, ...) that
 * libfuse would refuse.  Returns 0, or -EINVAL with a one-line cause in
 * cfg->error.
 */
int config_parse(struct fuse_args *args, struct config *cfg);

/*
 * config_take_root_url - the origin (scheme, host, port) of a scoped key's
 * ROOT_URL becomes the API base URL, unless -o api_url= was given or
 * @root_url is "".  The same rules as for api_url apply.  0, or -EINVAL
 * with cfg->error.
 */
int config_take_root_url(struct config *cfg, const char *root_url);

/* config_parse_seconds - decimal seconds in [@min, @max]; 0 or -EINVAL */
int config_parse_seconds(const char *s, double min, double max, double *out);
/* config_parse_size - bytes with optional K/M/G (binary) suffix; 0 or -EINVAL */
int config_parse_size(const char *s, size_t min, size_t max, size_t *out);
/* config_check_url - 0 when @url is an http(s) URL we accept, else -EINVAL */
int config_check_url(const char *url, char *err, size_t errlen);
/* config_url_is_loopback - the host of @url is localhost, 127.0.0.0/8 or [::1] */
bool config_url_is_loopback(const char *url);

#endif
