// SPDX-License-Identifier: MIT
/* The state folder: its name and checks, the lock, loading and atomic saves. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "hash.h"

struct state_dir {
	char *path;
	int fd;	  /* the folder, O_DIRECTORY */
	int lock; /* "lock", flock()ed for the daemon's life */
	uint64_t identity;
};

uint64_t state_dir_name(const char *api_url, const char *endpoint, const char *user, char *name,
			size_t namelen)
{
	static const uint64_t key[2] = { 0x696e676573746673ULL, 0x7374617465646972ULL };
	const char *host = strstr(api_url, "://");
	uint64_t part[3];
	size_t n = 0;
	uint64_t h;

	/* each part hashed alone, then the three: no separator can be forged */
	part[0] = hash_siphash24(key, api_url, strlen(api_url));
	part[1] = hash_siphash24(key, endpoint, strlen(endpoint));
	part[2] = hash_siphash24(key, user, strlen(user));
	h = hash_siphash24(key, part, sizeof(part));
	host = host ? host + 3 : api_url;
	/* the host, for a name people recognise; characters a path needs kept safe */
	for (; *host && *host != '/' && *host != ':' && n < 64 && n + 18 < namelen; host++) {
		char c = *host;

		name[n++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					    (c >= '0' && c <= '9') || c == '.' || c == '-'
				    ? c
				    : '_';
	}
	if (n == 0 || name[0] == '.')
		name[n ? 0 : n++] = '_';
	snprintf(name + n, namelen - n, "-%016llx", (unsigned long long)h);
	return h;
}

/* mkdir -p for the parents of a default path, private where we create them */
static int make_parents(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	return 0;
}

static char *default_path(const char *name)
{
	const char *base = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char *path = NULL;
	int n;

	if (geteuid() == 0)
		n = asprintf(&path, "/var/lib/ingestfs/%s", name);
	else if (base && base[0] == '/')
		n = asprintf(&path, "%s/ingestfs/%s", base, name);
	else if (home && home[0] == '/')
		n = asprintf(&path, "%s/.local/state/ingestfs/%s", home, name);
	else
		return NULL;
	return n < 0 ? NULL : path;
}

static int check_private(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state folder %s is not a folder", path);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "state folder %s is owned by uid %u, not by you (uid %u)",
			 path, (unsigned int)st.st_uid, (unsigned int)geteuid());
		return -EPERM;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "state folder %s is accessible by group or others (mode %03o); run: "
			 "chmod 700 %s",
			 path, (unsigned int)(st.st_mode & 0777), path);
		return -EPERM;
	}
	return 0;
}

int state_dir_open(const char *path, const char *api_url, const char *endpoint, const char *user,
		   struct state_dir **out, char *err, size_t errlen)
{
	struct state_dir *d = calloc(1, sizeof(*d));
	char name[96];
	int ret = -ENOMEM;

	*out = NULL;
	if (!d)
		goto out_nomem;
	d->fd = d->lock = -1;
	d->identity = state_dir_name(api_url, endpoint, user, name, sizeof(name));
	d->path = path ? strdup(path) : default_path(name);
	if (!d->path) {
		if (path)
			goto out_nomem;
		snprintf(err, errlen, "no state folder: HOME is not set; give -o state_dir=DIR");
		ret = -EINVAL;
		goto out_free;
	}
	if (!path && (ret = make_parents(d->path)) < 0) {
		snprintf(err, errlen, "cannot create state folder %s: %s", d->path, strerror(-ret));
		goto out_free;
	}
	if (mkdir(d->path, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		snprintf(err, errlen, "cannot create state folder %s: %s", d->path,
			 strerror(errno));
		goto out_free;
	}
	d->fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open state folder %s: %s", d->path, strerror(errno));
		goto out_free;
	}
	ret = check_private(d->fd, d->path, err, errlen);
	if (ret < 0)
		goto out_free;
	d->lock = openat(d->fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (d->lock < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot create %s/lock: %s", d->path, strerror(errno));
		goto out_free;
	}
	if (flock(d->lock, LOCK_EX | LOCK_NB) < 0) {
		ret = -errno;
		if (errno == EWOULDBLOCK)
			snprintf(err, errlen,
				 "state folder %s is in use by another ingestfs; give each mount "
				 "its own state_dir",
				 d->path);
		else
			snprintf(err, errlen, "cannot lock %s/lock: %s", d->path, strerror(errno));
		goto out_free;
	}
	*out = d;
	return 0;

out_nomem:
	snprintf(err, errlen, "out of memory");
out_free:
	state_dir_close(d);
	return ret;
}

void state_dir_close(struct state_dir *d)
{
	if (!d)
		return;
	if (d->lock >= 0)
		close(d->lock);
	if (d->fd >= 0)
		close(d->fd);
	free(d->path);
	free(d);
}

const char *state_dir_path(const struct state_dir *d)
{
	return d->path;
}

int state_dir_fd(const struct state_dir *d)
{
	return d->fd;
}

uint64_t state_dir_identity(const struct state_dir *d)
{
	return d->identity;
}

/* ---- load and save ---- */

int state_load(struct state_dir *d, size_t max_body, struct snap_ctx *ctx, struct snapshot **out,
	       struct state *st, char *err, size_t errlen)
{
	unsigned char head[STATE_HEADER_LEN];
	struct stat sb;
	char *buf = NULL;
	size_t got = 0;
	int fd, ret;

	*out = NULL;
	fd = openat(d->fd, "state", O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -errno;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		ret = -EINVAL;
		goto out;
	}
	/* the header says how large the file must be, before we read it all */
	if (pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head)) {
		snprintf(err, errlen, "truncated");
		ret = -EINVAL;
		goto out;
	}
	ret = state_decode_header(head, (size_t)sb.st_size, d->identity, max_body, st, err, errlen);
	if (ret < 0)
		goto out;
	buf = malloc((size_t)sb.st_size + 1);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t n = pread(fd, buf + got, (size_t)sb.st_size - got, (off_t)got);

		if (n <= 0) {
			ret = n < 0 ? -errno : -EINVAL;
			snprintf(err, errlen, "%s", n < 0 ? strerror(errno) : "truncated");
			goto out;
		}
		got += (size_t)n;
	}
	ret = state_restore(buf, got, d->identity, max_body, ctx, out, st, err, errlen);
out:
	free(buf);
	close(fd);
	return ret;
}

static int write_all(int fd, const void *p, size_t len, uLong *crc)
{
	const char *c = p;

	*crc = crc32_z(*crc, p, len);
	while (len) {
		ssize_t n = write(fd, c, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static double clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int state_save(struct state_dir *d, const struct snapshot *s, const char *body, size_t len,
	       uint64_t body_hash, const struct snap_ctx *ctx, int64_t fetched_ns,
	       uint64_t feed_gen, uint64_t feed_len, struct state_save_stats *stats, char *err,
	       size_t errlen)
{
	double cpu0 = clock_ms(CLOCK_THREAD_CPUTIME_ID), wall0 = clock_ms(CLOCK_MONOTONIC);
	unsigned char head[STATE_HEADER_LEN], trailer[STATE_TRAILER_LEN];
	size_t records_len;
	unsigned char *records = state_encode_records(s, &records_len);
	uLong crc = crc32_z(0, NULL, 0);
	struct timespec now;
	const char *step = "write";
	int fd = -1, ret;

	if (!records) {
		snprintf(err, errlen, "cannot save state: out of memory");
		return -ENOMEM;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	state_encode_header(head, s, d->identity, ctx,
			    (int64_t)now.tv_sec * 1000000000 + now.tv_nsec, fetched_ns, body_hash,
			    feed_gen, feed_len, records_len, len);
	fd = openat(d->fd, "state.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		    0600);
	if (fd < 0) {
		ret = -errno;
		step = "create";
		goto out;
	}
	if ((ret = write_all(fd, head, sizeof(head), &crc)) < 0 ||
	    (ret = write_all(fd, records, records_len, &crc)) < 0 ||
	    (ret = write_all(fd, body, len, &crc)) < 0)
		goto out;
	state_put32(trailer, (uint32_t)crc);
	state_put32(trailer + 4, 0);
	if ((ret = write_all(fd, trailer, sizeof(trailer), &crc)) < 0)
		goto out;
	step = "sync";
	if (fsync(fd) < 0) {
		ret = -errno;
		goto out;
	}
	close(fd);
	fd = -1;
	step = "rename";
	if (renameat(d->fd, "state.tmp", d->fd, "state") < 0) {
		ret = -errno;
		goto out;
	}
	/* the rename itself is durable only once the folder is */
	step = "sync the folder for";
	ret = fsync(d->fd) < 0 ? -errno : 0;
out:
	free(records);
	if (fd >= 0)
		close(fd);
	if (ret < 0) {
		snprintf(err, errlen, "cannot %s %s/state: %s", step, d->path, strerror(-ret));
		unlinkat(d->fd, "state.tmp", 0); /* gone already after a rename */
		return ret;
	}
	stats->saves++;
	stats->bytes = STATE_HEADER_LEN + records_len + len + STATE_TRAILER_LEN;
	stats->cpu_ms = clock_ms(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	stats->wall_ms = clock_ms(CLOCK_MONOTONIC) - wall0;
	return 0;
}
