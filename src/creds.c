// SPDX-License-Identifier: MIT
/* The credentials: environment or a private file. */
#include "creds.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/*
 * Wipe "NAME=value" where it lies, since /proc/PID/environ shows that
 * memory whatever environ points to, then remove the variable.
 */
static void creds_scrub_env(const char *name)
{
	size_t n = strlen(name);
	char *v = getenv(name);

	/* the memory stays where it is: the initial block, or setenv's copy */
	unsetenv(name);
	if (v && strncmp(v - n - 1, name, n) == 0 && v[-1] == '=')
		explicit_bzero(v - n - 1, n + 1 + strlen(v));
	else if (v)
		explicit_bzero(v, strlen(v));
}

static int creds_from_env(struct creds *c)
{
	const char *user = getenv("UPLYNK_USER_ID");
	const char *key = getenv("UPLYNK_API_KEY");
	int ret = -ENOENT;

	memset(c, 0, sizeof(*c));
	if (user && key && *user && *key) {
		ret = -EINVAL;
		if (strlen(user) < CREDS_MAX && strlen(key) < CREDS_MAX) {
			strcpy(c->user_id, user);
			strcpy(c->api_key, key);
			ret = 0;
		}
	}
	creds_scrub_env("UPLYNK_API_KEY");
	creds_scrub_env("UPLYNK_USER_ID");
	return ret;
}

/*
 * Open @path for reading only if it may hold a secret: a regular file,
 * owned by us or root, private.  O_NONBLOCK: opening a FIFO would
 * otherwise wait for a writer forever.  The fd, or -errno with @err set.
 */
static int creds_open_private(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
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
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(err, errlen,
			 "credentials file %s is owned by uid %u, not by you (uid %u) or root",
			 path, (unsigned int)st.st_uid, (unsigned int)geteuid());
		ret = -EPERM;
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
	if (fcntl(fd, F_SETFL, 0) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot read credentials file %s: %s", path, strerror(errno));
		goto out_close;
	}
	return fd;

out_close:
	close(fd);
	return ret;
}

static int creds_read_file(const char *path, struct creds *c, char *err, size_t errlen)
{
	char buf[65536], perr[200];
	ssize_t n;
	size_t len = 0;
	int fd, ret;

	fd = creds_open_private(path, err, errlen);
	if (fd < 0)
		return fd;
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
