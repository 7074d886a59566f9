// SPDX-License-Identifier: MIT
/* Command-line options and the credentials file. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_API_URL,
	KEY_TTL,
	KEY_TIMEOUT,
	KEY_CREDENTIALS,
	KEY_ENDPOINT,
	KEY_MAX_RESPONSE,
	KEY_INSECURE_HTTP,
	KEY_STATE_DIR,
	KEY_OFFLINE_START,
	KEY_EVENTS_MAX,
	KEY_CHECK,
};

static const struct fuse_opt config_opts[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("--check", KEY_CHECK),
	FUSE_OPT_KEY("api_url=", KEY_API_URL),
	FUSE_OPT_KEY("ttl=", KEY_TTL),
	FUSE_OPT_KEY("timeout=", KEY_TIMEOUT),
	FUSE_OPT_KEY("credentials=", KEY_CREDENTIALS),
	FUSE_OPT_KEY("endpoint=", KEY_ENDPOINT),
	FUSE_OPT_KEY("max_response=", KEY_MAX_RESPONSE),
	FUSE_OPT_KEY("events_max=", KEY_EVENTS_MAX),
	FUSE_OPT_KEY("insecure_http", KEY_INSECURE_HTTP),
	FUSE_OPT_KEY("state_dir=", KEY_STATE_DIR),
	FUSE_OPT_KEY("offline_start=", KEY_OFFLINE_START),
	FUSE_OPT_END,
};

int config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ttl = CONFIG_DEFAULT_TTL;
	cfg->timeout = CONFIG_DEFAULT_TIMEOUT;
	cfg->max_response = CONFIG_DEFAULT_MAX_RESPONSE;
	cfg->events_max = CONFIG_DEFAULT_EVENTS_MAX;
	cfg->offline_start = true;
	cfg->api_url = strdup(API_DEFAULT_URL);
	cfg->endpoint = strdup(API_DEFAULT_ENDPOINT);
	return cfg->api_url && cfg->endpoint ? 0 : -ENOMEM;
}

void config_free(struct config *cfg)
{
	free(cfg->api_url);
	free(cfg->endpoint);
	free(cfg->credentials);
	free(cfg->source);
	free(cfg->mountpoint);
	free(cfg->state_dir);
	cfg->api_url = cfg->endpoint = cfg->credentials = cfg->source = cfg->mountpoint = NULL;
	cfg->state_dir = NULL;
}

/* Options that only mean something to mount(8), fstab or systemd. */
static bool config_fstab_only(const char *opt)
{
	static const char *const names[] = {
		"noauto", "auto",  "nofail",   "_netdev", "user",  "nouser",
		"users",  "owner", "defaults", "comment", "group",
	};
	size_t len = strcspn(opt, "=");

	if (strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0)
		return true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && strncmp(opt, names[i], len) == 0)
			return true;
	return false;
}

int config_parse_seconds(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	/* strtod would also take hex, inf and nan: allow plain decimals only */
	for (const char *p = s; *p; p++)
		if (!isdigit((unsigned char)*p) && *p != '.')
			return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(v) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int config_parse_size(const char *s, size_t min, size_t max, size_t *out)
{
	unsigned long long v, mult = 1;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'K':
		mult = 1ull << 10;
		end++;
		break;
	case 'M':
		mult = 1ull << 20;
		end++;
		break;
	case 'G':
		mult = 1ull << 30;
		end++;
		break;
	default:
		break;
	}
	if (*end || v > max / mult || v * mult < min)
		return -EINVAL;
	*out = (size_t)(v * mult);
	return 0;
}

int config_check_url(const char *url, char *err, size_t errlen)
{
	const char *host, *p;

	if (strncmp(url, "https://", 8) == 0)
		host = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		host = url + 7;
	else {
		snprintf(err, errlen, "api_url must start with http:// or https://");
		return -EINVAL;
	}
	for (p = url; *p; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			snprintf(err, errlen, "api_url contains a space or control character");
			return -EINVAL;
		}
		if (*p == '?' || *p == '#') {
			snprintf(err, errlen, "api_url must not contain a query or fragment");
			return -EINVAL;
		}
	}
	if (*host == '\0' || *host == '/') {
		snprintf(err, errlen, "api_url has no host");
		return -EINVAL;
	}
	p = strchr(host, '/');
	if (memchr(host, '@', p ? (size_t)(p - host) : strlen(host))) {
		/* user:password@ would be a secret shown in .status */
		snprintf(err, errlen, "api_url must not contain user information (@)");
		return -EINVAL;
	}
	return 0;
}

/* A dotted quad in 127.0.0.0/8. */
static bool config_is_127(const char *h, size_t len)
{
	unsigned int part[4], n = 0;
	char buf[16], *end;
	const char *p = buf;

	if (len >= sizeof(buf))
		return false;
	memcpy(buf, h, len);
	buf[len] = '\0';
	while (n < 4) {
		if (!isdigit((unsigned char)*p))
			return false;
		part[n] = (unsigned int)strtoul(p, &end, 10);
		if (part[n++] > 255 || end - p > 3)
			return false;
		if (*end == '\0')
			break;
		if (*end != '.')
			return false;
		p = end + 1;
	}
	return n == 4 && part[0] == 127;
}

bool config_url_is_loopback(const char *url)
{
	const char *host = strstr(url, "://"), *end;
	size_t len;

	if (!host)
		return false;
	host += 3;
	end = host + strcspn(host, "/");
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));

		return close && close - host == 4 && memcmp(host, "[::1", 4) == 0;
	}
	len = strcspn(host, ":/");
	return (len == 9 && strncasecmp(host, "localhost", 9) == 0) || config_is_127(host, len);
}

static int config_set_str(char **dst, const char *val)
{
	char *s = strdup(val);

	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int config_opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct config *cfg = data;
	const char *val = strchr(arg, '=');

	val = val ? val + 1 : "";
	switch (key) {
	case KEY_HELP:
		cfg->show_help = true;
		return 0;
	case KEY_VERSION:
		cfg->show_version = true;
		return 0;
	case KEY_CHECK:
		cfg->check = true;
		return 0;
	case KEY_API_URL:
		if (config_check_url(val, cfg->error, sizeof(cfg->error)) < 0)
			return -1;
		cfg->api_url_given = true;
		return config_set_str(&cfg->api_url, val) ? -1 : 0;
	case KEY_ENDPOINT:
		if (strncmp(val, "/api/", 5) != 0 || strpbrk(val, "?# \t\r\n")) {
			snprintf(cfg->error, sizeof(cfg->error),
				 "invalid endpoint '%.100s': must be a path starting with /api/",
				 val);
			return -1;
		}
		return config_set_str(&cfg->endpoint, val) ? -1 : 0;
	case KEY_TTL:
		if (config_parse_seconds(val, 0.1, 86400, &cfg->ttl) < 0) {
			snprintf(cfg->error, sizeof(cfg->error),
				 "invalid ttl '%.40s': expected seconds from 0.1 to 86400", val);
			return -1;
		}
		return 0;
	case KEY_TIMEOUT:
		if (config_parse_seconds(val, 0.1, 3600, &cfg->timeout) < 0) {
			snprintf(cfg->error, sizeof(cfg->error),
				 "invalid timeout '%.40s': expected seconds from 0.1 to 3600", val);
			return -1;
		}
		return 0;
	case KEY_CREDENTIALS:
		if (*val == '\0') {
			snprintf(cfg->error, sizeof(cfg->error), "credentials= needs a file name");
			return -1;
		}
		return config_set_str(&cfg->credentials, val) ? -1 : 0;
	case KEY_INSECURE_HTTP:
		cfg->insecure_http = true;
		return 0;
	case KEY_STATE_DIR:
		if (*val == '\0') {
			snprintf(cfg->error, sizeof(cfg->error),
				 "state_dir= needs a folder name, or none");
			return -1;
		}
		cfg->no_state = strcmp(val, "none") == 0;
		free(cfg->state_dir);
		cfg->state_dir = NULL;
		return cfg->no_state || config_set_str(&cfg->state_dir, val) == 0 ? 0 : -1;
	case KEY_OFFLINE_START:
		if (strcmp(val, "yes") != 0 && strcmp(val, "no") != 0) {
			snprintf(cfg->error, sizeof(cfg->error),
				 "invalid offline_start '%.40s': expected yes or no", val);
			return -1;
		}
		cfg->offline_start = strcmp(val, "yes") == 0;
		return 0;
	case KEY_EVENTS_MAX:
		if (config_parse_size(val, 1024, 1ull << 40, &cfg->events_max) < 0) {
			snprintf(cfg->error, sizeof(cfg->error),
				 "invalid events_max '%.40s': expected bytes (K, M, G suffixes) "
				 "from 1K",
				 val);
			return -1;
		}
		return 0;
	case KEY_MAX_RESPONSE:
		if (config_parse_size(val, 1024, 4ull << 30, &cfg->max_response) < 0) {
			snprintf(cfg->error, sizeof(cfg->error),
				 "invalid max_response '%.40s': expected bytes (K, M, G suffixes) "
				 "from 1K to 4G",
				 val);
			return -1;
		}
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (!cfg->mountpoint)
			return config_set_str(&cfg->mountpoint, arg) ? -1 : 0;
		if (cfg->source) {
			snprintf(cfg->error, sizeof(cfg->error),
				 "too many arguments: '%.60s'; expected [SOURCE] MOUNTPOINT", arg);
			return -1;
		}
		/* mount.fuse3 passes SOURCE MOUNTPOINT: the first was the source */
		cfg->source = cfg->mountpoint;
		cfg->mountpoint = NULL;
		return config_set_str(&cfg->mountpoint, arg) ? -1 : 0;
	case FUSE_OPT_KEY_OPT:
		return config_fstab_only(arg) ? 0 : 1;
	default:
		return 1; /* not ours: keep for libfuse */
	}
}

/* plain http:// only to loopback, unless the user says so */
static int config_check_transport(struct config *cfg, const char *what)
{
	if (strncmp(cfg->api_url, "http://", 7) == 0 && !cfg->insecure_http &&
	    !config_url_is_loopback(cfg->api_url)) {
		/* a captured signature replays for minutes, and the answer is forgeable */
		snprintf(cfg->error, sizeof(cfg->error),
			 "%s %.80s is plain http:// to a host that is not loopback; use "
			 "https://, or -o insecure_http if you really mean it",
			 what, cfg->api_url);
		return -EINVAL;
	}
	return 0;
}

int config_take_root_url(struct config *cfg, const char *root_url)
{
	const char *host = strstr(root_url, "://");
	char *origin;

	if (!root_url[0] || cfg->api_url_given)
		return 0;
	if (config_check_url(root_url, cfg->error, sizeof(cfg->error)) < 0) {
		snprintf(cfg->error, sizeof(cfg->error),
			 "ROOT_URL of the credentials is not an http(s) URL ingestfs accepts; "
			 "give -o api_url= instead");
		return -EINVAL;
	}
	/* the API's paths are absolute: of ROOT_URL only the origin counts */
	host += 3;
	origin = strndup(root_url, (size_t)(host - root_url) + strcspn(host, "/"));
	if (!origin) {
		snprintf(cfg->error, sizeof(cfg->error), "out of memory");
		return -ENOMEM;
	}
	free(cfg->api_url);
	cfg->api_url = origin;
	return config_check_transport(cfg, "ROOT_URL");
}

int config_parse(struct fuse_args *args, struct config *cfg)
{
	cfg->error[0] = '\0';
	if (fuse_opt_parse(args, cfg, config_opts, config_opt_proc) < 0) {
		if (!cfg->error[0])
			snprintf(cfg->error, sizeof(cfg->error), "cannot parse options");
		return -EINVAL;
	}
	if (config_check_transport(cfg, "api_url") < 0)
		return -EINVAL;
	/* hand the mount point back for fuse_parse_cmdline() */
	if (cfg->mountpoint && fuse_opt_add_arg(args, cfg->mountpoint) < 0)
		return -ENOMEM;
	return 0;
}
