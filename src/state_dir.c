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

#include "bigmem.h"
#include "hash.h"
#include "log.h"

struct state_dir {
	char *path;
	int fd;	  /* the folder, O_DIRECTORY */
	int lock; /* "lock", flock()ed for the daemon's life */
	uint64_t identity;
	/* the whole file in "state", when this daemon knows the snapshot it
	 * holds (its tasks carry base_pos): what a delta is written against */
	bool have_base;
	int64_t base_saved_ns;
	uint32_t base_crc;
	size_t base_body_len;
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

/* Read a whole regular file at @fd into a malloc'd buffer (one byte more). */
static int read_whole(int fd, size_t size, char **out, char *err, size_t errlen)
{
	char *buf = big_malloc(size + 1);
	size_t got = 0;

	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	while (got < size) {
		ssize_t n = pread(fd, buf + got, size - got, (off_t)got);

		if (n <= 0) {
			snprintf(err, errlen, "%s", n < 0 ? strerror(errno) : "truncated");
			free(buf);
			return n < 0 ? -errno : -EINVAL;
		}
		got += (size_t)n;
	}
	*out = buf;
	return 0;
}

/*
 * Open @name in the folder for reading: a regular file, no symbolic link,
 * never blocking on a FIFO.  The fd with its stat in *@sb, -ENOENT when
 * there is none, or -errno with one line in @err ("state" names itself
 * by being the one the caller warns about; others are named).
 */
static int open_regular(struct state_dir *d, const char *name, struct stat *sb, char *err,
			size_t errlen)
{
	const char *pre = strcmp(name, "state") ? name : NULL;
	int fd = openat(d->fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0) {
		int e = errno;

		if (e != ENOENT)
			snprintf(err, errlen, "%s%s%s", pre ? pre : "", pre ? ": " : "",
				 strerror(e));
		return -e;
	}
	if (fstat(fd, sb) < 0 || !S_ISREG(sb->st_mode)) {
		close(fd);
		snprintf(err, errlen, "%s%snot a regular file", pre ? pre : "", pre ? ": " : "");
		return -EINVAL;
	}
	return fd;
}

/*
 * The whole state that "state" (*@buf, *@len bytes) and "state.delta"
 * stand for: 0 with *@buf replaced, 1 when there is no delta (or one of
 * an earlier base) and "state" stands alone, or -errno with @err.
 */
static int load_delta(struct state_dir *d, char **buf, size_t *len, size_t max_body, char *err,
		      size_t errlen)
{
	size_t max_delta = STATE_DELTA_HEADER_LEN + *len + max_body + STATE_TRAILER_LEN;
	char *delta = NULL, *whole;
	struct stat sb;
	size_t wlen;
	int fd, ret;

	fd = open_regular(d, "state.delta", &sb, err, errlen);
	if (fd < 0)
		return fd == -ENOENT ? 1 : fd;
	if ((size_t)sb.st_size > max_delta) {
		close(fd);
		snprintf(err, errlen, "state.delta: larger than any delta of this state");
		return -EINVAL;
	}
	ret = read_whole(fd, (size_t)sb.st_size, &delta, err, errlen);
	close(fd);
	if (ret < 0)
		return ret;
	ret = state_apply_delta(*buf, *len, (unsigned char *)delta, (size_t)sb.st_size, d->identity,
				max_body, &whole, &wlen, err, errlen);
	free(delta);
	if (ret == 0) {
		free(*buf);
		*buf = whole;
		*len = wlen;
	}
	return ret;
}

int state_load(struct state_dir *d, size_t max_body, struct snap_ctx *ctx, struct snapshot **out,
	       struct state *st, char *err, size_t errlen)
{
	unsigned char head[STATE_HEADER_LEN];
	struct stat sb;
	char *buf = NULL;
	size_t got = 0;
	uint32_t base_crc = 0;
	bool alone;
	int fd, ret;

	*out = NULL;
	fd = open_regular(d, "state", &sb, err, errlen);
	if (fd < 0)
		return fd == -ENOENT ? 1 : fd;
	/* the header says how large the file must be, before we read it all */
	if (pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head)) {
		snprintf(err, errlen, "truncated");
		ret = -EINVAL;
		goto out;
	}
	ret = state_decode_header(head, (size_t)sb.st_size, d->identity, max_body, st, err, errlen);
	if (ret < 0)
		goto out;
	ret = read_whole(fd, (size_t)sb.st_size, &buf, err, errlen);
	if (ret < 0)
		goto out;
	got = (size_t)sb.st_size;
	d->have_base = false;
	ret = load_delta(d, &buf, &got, max_body, err, errlen);
	if (ret < 0)
		goto out;
	alone = ret == 1;
	if (alone) { /* "state" stands alone: it is the base */
		const unsigned char *t = (const unsigned char *)buf + got - STATE_TRAILER_LEN;

		base_crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 |
			   (uint32_t)t[3] << 24;
	}
	ret = state_restore(buf, got, d->identity, max_body, ctx, out, st, err, errlen);
	if (ret == 0 && alone) {
		d->base_crc = base_crc;
		state_mark_base(*out);
		d->have_base = true;
		d->base_saved_ns = st->saved_ns;
		d->base_body_len = st->body_len;
	}
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

/* One piece of a file to write. */
struct piece {
	const void *p;
	size_t len;
};

/*
 * Replace @name in the folder with the pieces and a trailer (their CRC-32
 * and 0), atomically: @name.tmp, fsync, rename, fsync of the folder.
 * 0 with the CRC in *@crc_out, or -errno with @err.
 */
static int write_file(struct state_dir *d, const char *name, const struct piece *pc, size_t n,
		      uint32_t *crc_out, char *err, size_t errlen)
{
	unsigned char trailer[STATE_TRAILER_LEN];
	uLong crc = crc32_z(0, NULL, 0);
	const char *step = "write";
	char tmp[64];
	int fd, ret = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(d->fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = -errno;
		step = "create";
		goto out;
	}
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = write_all(fd, pc[i].p, pc[i].len, &crc);
	if (ret < 0)
		goto out;
	*crc_out = (uint32_t)crc;
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
	if (renameat(d->fd, tmp, d->fd, name) < 0) {
		ret = -errno;
		goto out;
	}
	/* the rename itself is durable only once the folder is */
	step = "sync the folder for";
	ret = fsync(d->fd) < 0 ? -errno : 0;
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0) {
		snprintf(err, errlen, "cannot %s %s/%s: %s", step, d->path, name, strerror(-ret));
		unlinkat(d->fd, tmp, 0); /* gone already after a rename */
	}
	return ret;
}

int state_save(struct state_dir *d, struct snapshot *s, const char *body, size_t len,
	       uint64_t body_hash, const struct snap_ctx *ctx, int64_t fetched_ns,
	       uint64_t feed_gen, uint64_t feed_len, struct state_save_stats *stats, char *err,
	       size_t errlen)
{
	double cpu0 = clock_ms(CLOCK_THREAD_CPUTIME_ID), wall0 = clock_ms(CLOCK_MONOTONIC);
	struct state_meta m = { .identity = d->identity,
				.fetched_ns = fetched_ns,
				.body_hash = body_hash,
				.feed_gen = feed_gen,
				.feed_len = feed_len };
	unsigned char head[STATE_HEADER_LEN], *delta = NULL, *records;
	size_t records_len, delta_len = 0;
	struct timespec now;
	uint32_t crc;
	int ret;

	clock_gettime(CLOCK_REALTIME, &now);
	m.saved_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	if (d->have_base)
		delta = state_encode_delta(s, body, len, ctx, &m, d->base_saved_ns, d->base_crc,
					   d->base_body_len / 8, &delta_len);
	if (delta) {
		const struct piece pc[] = { { delta, delta_len - STATE_TRAILER_LEN } };

		/* write_file adds the same trailer again */
		ret = write_file(d, "state.delta", pc, 1, &crc, err, errlen);
		stats->bytes = delta_len;
		free(delta);
		stats->whole = false;
		goto done;
	}
	records = state_encode_records(s, &records_len);
	if (!records) {
		snprintf(err, errlen, "cannot save state: out of memory");
		return -ENOMEM;
	}
	state_encode_header(head, s, d->identity, ctx, m.saved_ns, fetched_ns, body_hash, feed_gen,
			    feed_len, records_len, len);
	{
		const struct piece pc[] = { { head, sizeof(head) },
					    { records, records_len },
					    { body, len } };

		ret = write_file(d, "state", pc, 3, &crc, err, errlen);
	}
	free(records);
	stats->bytes = sizeof(head) + records_len + len + STATE_TRAILER_LEN;
	stats->whole = true;
	if (ret == 0) {
		/* the new base; a delta of the old one is ignored if it stays */
		unlinkat(d->fd, "state.delta", 0);
		state_mark_base(s);
		d->have_base = true;
		d->base_saved_ns = m.saved_ns;
		d->base_crc = crc;
		d->base_body_len = len;
	}
done:
	if (ret < 0)
		return ret;
	stats->saves++;
	stats->whole_saves += stats->whole;
	stats->cpu_ms = clock_ms(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	stats->wall_ms = clock_ms(CLOCK_MONOTONIC) - wall0;
	return 0;
}
