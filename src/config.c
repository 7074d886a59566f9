// SPDX-License-Identifier: MIT
/* Command-line options and the credentials file. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
};

static const struct fuse_opt config_opts[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("api_url=", KEY_API_URL),
	FUSE_OPT_KEY("ttl=", KEY_TTL),
	FUSE_OPT_KEY("timeout=", KEY_TIMEOUT),
	FUSE_OPT_KEY("credentials=", KEY_CREDENTIALS),
	FUSE_OPT_KEY("endpoint=", KEY_ENDPOINT),
	FUSE_OPT_KEY("max_response=", KEY_MAX_RESPONSE),
	FUSE_OPT_END,
};

int config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ttl = CONFIG_DEFAULT_TTL;
	cfg->timeout = CONFIG_DEFAULT_TIMEOUT;
	cfg->max_response = CONFIG_DEFAULT_MAX_RESPONSE;
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
	cfg->api_url = cfg->endpoint = cfg->credentials = cfg->source = cfg->mountpoint = NULL;
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
	case KEY_API_URL:
		if (config_check_url(val, cfg->error, sizeof(cfg->error)) < 0)
			return -1;
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

int config_parse(struct fuse_args *args, struct config *cfg)
{
	cfg->error[0] = '\0';
	if (fuse_opt_parse(args, cfg, config_opts, config_opt_proc) < 0) {
		if (!cfg->error[0])
			snprintf(cfg->error, sizeof(cfg->error), "cannot parse options");
		return -EINVAL;
	}
	/* hand the mount point back for fuse_parse_cmdline() */
	if (cfg->mountpoint && fuse_opt_add_arg(args, cfg->mountpoint) < 0)
		return -ENOMEM;
	return 0;
}

/* ---- credentials ---- */

static void creds_trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

static int creds_line(const char *s, const char *e, unsigned int lineno, struct creds *c, char *err,
		      size_t errlen)
{
	const char *eq, *k, *ke, *v, *ve;
	char *dst;
	size_t klen, vlen;

	for (const char *p = s; p < e; p++) {
		if (*p == '\r') {
			snprintf(err, errlen, "line %u: carriage return (CRLF line endings?)",
				 lineno);
			return -EINVAL;
		}
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			snprintf(err, errlen, "line %u: control character", lineno);
			return -EINVAL;
		}
	}
	k = s;
	ve = e;
	creds_trim(&k, &ve);
	if (k == ve || *k == '#')
		return 0;
	eq = memchr(k, '=', (size_t)(ve - k));
	if (!eq) {
		snprintf(err, errlen, "line %u: expected 'key = value'", lineno);
		return -EINVAL;
	}
	ke = eq;
	v = eq + 1;
	creds_trim(&k, &ke);
	creds_trim(&v, &ve);
	klen = (size_t)(ke - k);
	vlen = (size_t)(ve - v);
	if (klen == 7 && memcmp(k, "user_id", 7) == 0)
		dst = c->user_id;
	else if (klen == 7 && memcmp(k, "api_key", 7) == 0)
		dst = c->api_key;
	else {
		/* echo the key only if it looks like a key name: a bare secret
		 * on its own line must not end up in an error message */
		bool plain = klen > 0 && klen <= 20;

		for (size_t i = 0; i < klen && plain; i++)
			plain = (k[i] >= 'a' && k[i] <= 'z') || k[i] == '_' || k[i] == '-';
		if (plain)
			snprintf(err, errlen,
				 "line %u: unknown key '%.*s' (expected user_id or api_key)",
				 lineno, (int)klen, k);
		else
			snprintf(err, errlen, "line %u: unknown key (expected user_id or api_key)",
				 lineno);
		return -EINVAL;
	}
	if (dst[0]) {
		snprintf(err, errlen, "line %u: %.*s given twice", lineno, (int)klen, k);
		return -EINVAL;
	}
	if (vlen == 0) {
		snprintf(err, errlen, "line %u: %.*s is empty", lineno, (int)klen, k);
		return -EINVAL;
	}
	if (*v == '"' || *v == '\'') {
		snprintf(err, errlen, "line %u: %.*s must not be quoted", lineno, (int)klen, k);
		return -EINVAL;
	}
	if (vlen >= CREDS_MAX) {
		snprintf(err, errlen, "line %u: %.*s is longer than %d bytes", lineno, (int)klen, k,
			 CREDS_MAX - 1);
		return -EINVAL;
	}
	for (const char *p = v; p < ve; p++) {
		if (*p == ' ' || *p == '\t' || (unsigned char)*p >= 0x7f) {
			snprintf(err, errlen, "line %u: %.*s contains a space or non-ASCII byte",
				 lineno, (int)klen, k);
			return -EINVAL;
		}
	}
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
	return 0;
}

int creds_parse(const char *buf, size_t len, struct creds *c, char *err, size_t errlen)
{
	const char *p = buf, *end = buf + len;
	unsigned int lineno = 0;

	memset(c, 0, sizeof(*c));
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
		snprintf(err, errlen, "line 1: starts with a UTF-8 byte order mark");
		return -EINVAL;
	}
	if (memchr(buf, '\0', len)) {
		snprintf(err, errlen, "contains a NUL byte");
		return -EINVAL;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		lineno++;
		if (le - p > 1024) {
			snprintf(err, errlen, "line %u: longer than 1024 bytes", lineno);
			goto out_wipe;
		}
		if (creds_line(p, le, lineno, c, err, errlen) < 0)
			goto out_wipe;
		p = nl ? nl + 1 : end;
	}
	if (!c->user_id[0] || !c->api_key[0]) {
		snprintf(err, errlen, "no %s line", !c->user_id[0] ? "user_id" : "api_key");
		goto out_wipe;
	}
	return 0;

out_wipe:
	creds_wipe(c);
	return -EINVAL;
}

char *creds_default_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	char *path;

	if (xdg && xdg[0] == '/') {
		if (asprintf(&path, "%s/ingestfs/credentials", xdg) < 0)
			return NULL;
		return path;
	}
	if (!home || home[0] != '/') {
		struct passwd *pw = getpwuid(getuid());

		home = pw ? pw->pw_dir : "/";
	}
	if (asprintf(&path, "%s/.config/ingestfs/credentials", home) < 0)
		return NULL;
	return path;
}

static int creds_from_env(struct creds *c)
{
	const char *user = getenv("UPLYNK_USER_ID");
	const char *key = getenv("UPLYNK_API_KEY");

	if (!user || !key || !*user || !*key)
		return -ENOENT;
	if (strlen(user) >= CREDS_MAX || strlen(key) >= CREDS_MAX)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	strcpy(c->user_id, user);
	strcpy(c->api_key, key);
	return 0;
}

static int creds_read_file(const char *path, struct creds *c, char *err, size_t errlen)
{
	char buf[65536], perr[200];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot read credentials file %s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "credentials file %s is not a regular file", path);
		ret = -EINVAL;
		goto out_close;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "credentials file %s is accessible by group or others (mode %03o); run: "
			 "chmod 600 %s",
			 path, (unsigned int)(st.st_mode & 0777), path);
		ret = -EPERM;
		goto out_close;
	}
	while ((n = read(fd, buf + len, sizeof(buf) - len)) > 0) {
		len += (size_t)n;
		if (len == sizeof(buf)) {
			snprintf(err, errlen, "credentials file %s is larger than 64 KiB", path);
			ret = -EFBIG;
			goto out_wipe;
		}
	}
	if (n < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot read credentials file %s: %s", path, strerror(errno));
		goto out_wipe;
	}
	ret = creds_parse(buf, len, c, perr, sizeof(perr));
	if (ret < 0)
		snprintf(err, errlen, "credentials file %s: %s", path, perr);
out_wipe:
	explicit_bzero(buf, sizeof(buf));
out_close:
	close(fd);
	return ret;
}

int creds_load(const char *path, struct creds *c, char *err, size_t errlen)
{
	char *def = NULL;
	int ret;

	ret = creds_from_env(c);
	if (ret == 0)
		return 0;
	if (ret == -EINVAL) {
		snprintf(err, errlen, "UPLYNK_USER_ID or UPLYNK_API_KEY is longer than %d bytes",
			 CREDS_MAX - 1);
		return ret;
	}
	if (!path) {
		def = creds_default_path();
		if (!def) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		path = def;
	}
	ret = creds_read_file(path, c, err, errlen);
	if (ret == -ENOENT)
		snprintf(err, errlen,
			 "no credentials: set UPLYNK_USER_ID and UPLYNK_API_KEY, or create %s "
			 "(mode 0600) with user_id and api_key lines",
			 path);
	free(def);
	return ret;
}

void creds_wipe(struct creds *c)
{
	explicit_bzero(c, sizeof(*c));
}
