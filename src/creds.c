// SPDX-License-Identifier: MIT
/* The credentials: environment or a private file. */
#include "creds.h"

#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jwt.h"

/* a PRIVATE_B64 line is about 330 bytes; room for a bigger key and quotes */
#define CREDS_LINE_MAX (CREDS_KEY_MAX + 64)

static void creds_trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

enum {
	F_CLASSIC = 1, /* a field of the classic kind */
	F_SCOPED = 2,  /* a field of the scoped kind */
	F_ENV = 4,     /* from a .env file: the value may be in matching quotes */
	F_LIST = 8,    /* blanks allowed (around commas) */
};

static const struct creds_field {
	const char *name;
	size_t off, size;
	unsigned int flags;
} creds_fields[] = {
	{ "user_id", offsetof(struct creds, user_id), CREDS_MAX, F_CLASSIC },
	{ "api_key", offsetof(struct creds, api_key), CREDS_MAX, F_CLASSIC },
	{ "KID", offsetof(struct creds, kid), CREDS_MAX, F_SCOPED | F_ENV },
	{ "SUB", offsetof(struct creds, sub), CREDS_MAX, F_SCOPED | F_ENV },
	{ "PRIVATE_B64", offsetof(struct creds, private_b64), CREDS_KEY_MAX, F_SCOPED | F_ENV },
	{ "SCP", offsetof(struct creds, scp), CREDS_SCP_MAX, F_SCOPED | F_ENV | F_LIST },
	{ "ROOT_URL", offsetof(struct creds, root_url), CREDS_MAX, F_ENV },
};

#define NFIELDS (sizeof(creds_fields) / sizeof(creds_fields[0]))

/* the line each field was on, for errors found after the last line */
struct creds_lines {
	unsigned int of[NFIELDS];
};

static const struct creds_field *creds_field(const char *k, size_t klen)
{
	for (size_t i = 0; i < NFIELDS; i++)
		if (strlen(creds_fields[i].name) == klen &&
		    memcmp(creds_fields[i].name, k, klen) == 0)
			return &creds_fields[i];
	return NULL;
}

static bool creds_is_env_name(const char *k, size_t klen)
{
	if (klen == 0 || !(k[0] >= 'A' && k[0] <= 'Z'))
		return false;
	for (size_t i = 0; i < klen; i++)
		if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return false;
	return true;
}

static int creds_unknown(const char *k, size_t klen, unsigned int lineno, char *err, size_t errlen)
{
	/* echo the key only if it looks like a key name: a bare secret on its
	 * own line must not end up in an error message */
	bool plain = klen > 0 && klen <= 20;

	for (size_t i = 0; i < klen && plain; i++)
		plain = (k[i] >= 'a' && k[i] <= 'z') || k[i] == '_' || k[i] == '-';
	if (plain)
		snprintf(err, errlen,
			 "line %u: unknown key '%.*s' (expected user_id and api_key, or the "
			 "KID, SUB, PRIVATE_B64 and SCP of a scoped key)",
			 lineno, (int)klen, k);
	else
		snprintf(err, errlen,
			 "line %u: unknown key (expected user_id and api_key, or the KID, SUB, "
			 "PRIVATE_B64 and SCP of a scoped key)",
			 lineno);
	return -EINVAL;
}

static int creds_line(const char *s, const char *e, unsigned int lineno, struct creds *c,
		      struct creds_lines *lines, char *err, size_t errlen)
{
	const struct creds_field *f;
	const char *eq, *k, *ke, *v, *ve;
	size_t klen, vlen;
	char *dst;

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
	/* shell-style .env files may say "export KID=..." */
	if (ve - k > 7 && memcmp(k, "export", 6) == 0 && (k[6] == ' ' || k[6] == '\t'))
		for (k += 6; *k == ' ' || *k == '\t'; k++)
			;
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
	f = creds_field(k, klen);
	if (!f)
		/* a downloaded .env file may carry more than ingestfs needs */
		return creds_is_env_name(k, klen) ? 0 : creds_unknown(k, klen, lineno, err, errlen);
	dst = (char *)c + f->off;
	if (dst[0]) {
		snprintf(err, errlen, "line %u: %s given twice", lineno, f->name);
		return -EINVAL;
	}
	if ((f->flags & F_ENV) && vlen >= 2 && (*v == '"' || *v == '\'') && ve[-1] == *v) {
		v++;
		ve--;
		vlen -= 2;
	}
	if (vlen == 0) {
		snprintf(err, errlen, "line %u: %s is empty", lineno, f->name);
		return -EINVAL;
	}
	if (*v == '"' || *v == '\'' || ve[-1] == '"' || ve[-1] == '\'') {
		snprintf(err, errlen,
			 (f->flags & F_ENV) ? "line %u: %s has an unmatched quote"
					    : "line %u: %s must not be quoted",
			 lineno, f->name);
		return -EINVAL;
	}
	if (vlen >= f->size) {
		snprintf(err, errlen, "line %u: %s is longer than %zu bytes", lineno, f->name,
			 f->size - 1);
		return -EINVAL;
	}
	for (const char *p = v; p < ve; p++) {
		if (((*p == ' ' || *p == '\t') && !(f->flags & F_LIST)) ||
		    (unsigned char)*p >= 0x7f) {
			snprintf(err, errlen, "line %u: %s contains a space or non-ASCII byte",
				 lineno, f->name);
			return -EINVAL;
		}
	}
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
	lines->of[f - creds_fields] = lineno;
	return 0;
}

/*
 * SCP: scope names separated by commas, blanks around them dropped; each
 * printable ASCII without quotes, backslashes or blanks.  Rewritten in
 * place as "a,b".
 */
static int creds_check_scopes(char *scp, unsigned int lineno, char *err, size_t errlen)
{
	char out[CREDS_SCP_MAX];
	const char *p = scp;
	size_t o = 0, n = 0;

	for (;;) {
		const char *s = p, *e = p + strcspn(p, ",");
		const char *next = *e ? e + 1 : NULL;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e == s) {
			snprintf(err, errlen, "line %u: SCP is not a list of scopes: an empty name",
				 lineno);
			return -EINVAL;
		}
		for (const char *q = s; q < e; q++) {
			if (*q <= ' ' || *q == '"' || *q == '\\' || *q == 0x7f) {
				snprintf(err, errlen,
					 "line %u: SCP is not a list of scopes: a name holds a "
					 "blank, quote or backslash",
					 lineno);
				return -EINVAL;
			}
		}
		if (++n > CREDS_SCOPES) {
			snprintf(err, errlen, "line %u: SCP names more than %d scopes", lineno,
				 CREDS_SCOPES);
			return -EINVAL;
		}
		if (o)
			out[o++] = ',';
		memcpy(out + o, s, (size_t)(e - s));
		o += (size_t)(e - s);
		if (!next)
			break;
		p = next;
	}
	out[o] = '\0';
	memcpy(scp, out, o + 1);
	return 0;
}

/* Which kind the fields make, and whether it is whole; 0 or -EINVAL. */
static int creds_check(struct creds *c, const struct creds_lines *lines, char *err, size_t errlen)
{
	bool classic = false, scoped = false;
	struct jwt_key *key;
	char kerr[160];

	for (size_t i = 0; i < NFIELDS; i++) {
		if (!((const char *)c + creds_fields[i].off)[0])
			continue;
		classic |= (creds_fields[i].flags & F_CLASSIC) != 0;
		scoped |= (creds_fields[i].flags & F_SCOPED) != 0;
	}
	if (classic && scoped) {
		snprintf(err, errlen,
			 "holds both a classic key (user_id, api_key) and a scoped key (KID, SUB, "
			 "PRIVATE_B64, SCP); keep one kind");
		return -EINVAL;
	}
	if (!classic && !scoped) {
		snprintf(err, errlen,
			 "holds no key: expected user_id and api_key lines, or the KID, SUB, "
			 "PRIVATE_B64 and SCP lines of a scoped key's .env file");
		return -EINVAL;
	}
	for (size_t i = 0; i < NFIELDS; i++) {
		const struct creds_field *f = &creds_fields[i];

		if ((f->flags & (classic ? F_CLASSIC : F_SCOPED)) && !((char *)c + f->off)[0]) {
			if (classic)
				snprintf(err, errlen, "no %s line", f->name);
			else
				snprintf(err, errlen,
					 "no %s line (a scoped key's .env file has KID, SUB, "
					 "PRIVATE_B64 and SCP)",
					 f->name);
			return -EINVAL;
		}
	}
	c->kind = classic ? CREDS_CLASSIC : CREDS_SCOPED;
	if (classic)
		return 0;
	if (creds_check_scopes(c->scp, lines->of[5], err, errlen) < 0)
		return -EINVAL;
	if (jwt_key_load(c->private_b64, strlen(c->private_b64), &key, kerr, sizeof(kerr)) < 0) {
		snprintf(err, errlen, "line %u: %s", lines->of[4], kerr);
		return -EINVAL;
	}
	jwt_key_free(key);
	return 0;
}

int creds_parse(const char *buf, size_t len, struct creds *c, char *err, size_t errlen)
{
	const char *p = buf, *end = buf + len;
	struct creds_lines lines = { { 0 } };
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
		if (le - p > CREDS_LINE_MAX) {
			snprintf(err, errlen, "line %u: longer than %d bytes", lineno,
				 CREDS_LINE_MAX);
			goto out_wipe;
		}
		if (creds_line(p, le, lineno, c, &lines, err, errlen) < 0)
			goto out_wipe;
		p = nl ? nl + 1 : end;
	}
	if (creds_check(c, &lines, err, errlen) < 0)
		goto out_wipe;
	return 0;

out_wipe:
	creds_wipe(c);
	return -EINVAL;
}

const char *creds_owner(const struct creds *c)
{
	return c->kind == CREDS_SCOPED ? c->sub : c->user_id;
}

size_t creds_split_scopes(char *scp, const char **out, size_t max)
{
	size_t n = 0;

	while (*scp && n < max) {
		out[n++] = scp;
		scp += strcspn(scp, ",");
		if (*scp)
			*scp++ = '\0';
	}
	return n;
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

static const char *const creds_env_classic[] = { "UPLYNK_USER_ID", "UPLYNK_API_KEY" };
static const char *const creds_env_scoped[] = { "UPLYNK_KID", "UPLYNK_SUB", "UPLYNK_PRIVATE_B64",
						"UPLYNK_SCP" };

static bool creds_env_whole(const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *v = getenv(names[i]);

		if (!v || !*v)
			return false;
	}
	return true;
}

/* The scoped variables, through the file parser so that one set of rules applies. */
static int creds_env_scoped_parse(struct creds *c, char *err, size_t errlen)
{
	static const char *const field[] = { "KID", "SUB", "PRIVATE_B64", "SCP" };
	size_t cap = 64, len = 0;
	char perr[200], *text;
	int ret = -EINVAL;

	for (size_t i = 0; i < 4; i++)
		cap += strlen(getenv(creds_env_scoped[i])) + 16;
	text = malloc(cap);
	if (!text) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < 4; i++) {
		const char *v = getenv(creds_env_scoped[i]);

		if (strpbrk(v, "\r\n")) {
			snprintf(err, errlen, "%s holds a line break", creds_env_scoped[i]);
			goto out;
		}
		len += (size_t)snprintf(text + len, cap - len, "%s=%s\n", field[i], v);
	}
	ret = creds_parse(text, len, c, perr, sizeof(perr));
	if (ret < 0)
		snprintf(err, errlen, "UPLYNK_KID, UPLYNK_SUB, UPLYNK_PRIVATE_B64, UPLYNK_SCP: %s",
			 perr);
out:
	explicit_bzero(text, cap);
	free(text);
	return ret;
}

/*
 * A whole set of variables: 0 with @c filled, -ENOENT when there is none,
 * else -errno with @err.  All of them are scrubbed in every case.
 */
static int creds_from_env(struct creds *c, char *err, size_t errlen)
{
	bool classic = creds_env_whole(creds_env_classic, 2);
	bool scoped = creds_env_whole(creds_env_scoped, 4);
	int ret = -ENOENT;

	memset(c, 0, sizeof(*c));
	if (classic && scoped) {
		snprintf(err, errlen,
			 "both UPLYNK_USER_ID/UPLYNK_API_KEY and UPLYNK_KID/UPLYNK_SUB/"
			 "UPLYNK_PRIVATE_B64/UPLYNK_SCP are set; keep one kind");
		ret = -EINVAL;
	} else if (classic) {
		const char *user = getenv("UPLYNK_USER_ID"), *key = getenv("UPLYNK_API_KEY");

		ret = -EINVAL;
		if (strlen(user) < CREDS_MAX && strlen(key) < CREDS_MAX) {
			strcpy(c->user_id, user);
			strcpy(c->api_key, key);
			c->kind = CREDS_CLASSIC;
			ret = 0;
		} else {
			snprintf(err, errlen,
				 "UPLYNK_USER_ID or UPLYNK_API_KEY is longer than %d bytes",
				 CREDS_MAX - 1);
		}
	} else if (scoped) {
		ret = creds_env_scoped_parse(c, err, errlen);
	}
	for (size_t i = 0; i < 2; i++)
		creds_scrub_env(creds_env_classic[i]);
	for (size_t i = 0; i < 4; i++)
		creds_scrub_env(creds_env_scoped[i]);
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

	ret = creds_from_env(c, err, errlen);
	if (ret != -ENOENT)
		return ret;
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
			 "(mode 0600) with user_id and api_key lines, or point -o credentials= at "
			 "a scoped key's .env file",
			 path);
	free(def);
	return ret;
}

void creds_wipe(struct creds *c)
{
	explicit_bzero(c, sizeof(*c));
}
