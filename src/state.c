// SPDX-License-Identifier: MIT
/* The state file: encoding, checking, restoring; the folder, its lock, atomic saves. */
#include "state.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "hash.h"

static const char state_magic[8] = { 'I', 'F', 'S', 'S', 'T', 'A', 'T', 'E' };

/* every task takes at least {"id":"x"} of the answer: a bound on records */
#define STATE_MIN_ITEM 10

/* ---- little-endian fields ---- */

static void put64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

/* ---- decoding ---- */

static int fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s", what);
	return -EINVAL;
}

/* The header alone, against the file's size: enough to size a read. */
static int decode_header(const unsigned char *b, size_t len, uint64_t identity, size_t max_body,
			 struct state *st, char *err, size_t errlen)
{
	uint64_t ntasks, body_len, room;

	if (len < STATE_HEADER_LEN + STATE_TRAILER_LEN)
		return fail(err, errlen, "truncated");
	if (memcmp(b, state_magic, sizeof(state_magic)) != 0)
		return fail(err, errlen, "not an ingestfs state file");
	if (get32(b + 8) != STATE_VERSION) {
		snprintf(err, errlen,
			 "format %u, from another version of ingestfs (this one reads %d)",
			 get32(b + 8), STATE_VERSION);
		return -EINVAL;
	}
	if (get32(b + 12) != STATE_HEADER_LEN)
		return fail(err, errlen, "damaged header");
	memset(st, 0, sizeof(*st));
	st->identity = get64(b + 16);
	if (st->identity != identity)
		return fail(err, errlen, "belongs to another mount (api_url, endpoint or user)");
	st->hash_key[0] = get64(b + 24);
	st->hash_key[1] = get64(b + 32);
	st->next_nodeid = get64(b + 40);
	st->newest_ns = (int64_t)get64(b + 48);
	st->saved_ns = (int64_t)get64(b + 56);
	st->fetched_ns = (int64_t)get64(b + 64);
	st->root_mtime_ns = (int64_t)get64(b + 72);
	st->views_mtime_ns = (int64_t)get64(b + 80);
	st->body_hash = get64(b + 88);
	ntasks = get64(b + 96);
	body_len = get64(b + 104);
	room = len - STATE_HEADER_LEN - STATE_TRAILER_LEN;
	if (body_len > max_body)
		return fail(err, errlen, "its answer is larger than max_response");
	if (body_len > room || ntasks > (room - body_len) / STATE_RECORD_LEN ||
	    ntasks * STATE_RECORD_LEN + body_len != room || ntasks > body_len / STATE_MIN_ITEM)
		return fail(err, errlen, "sizes do not add up (truncated or damaged)");
	if (st->next_nodeid < SNAP_FIRST_FILE_NODEID || st->next_nodeid > SNAP_LAST_FILE_NODEID + 1)
		return fail(err, errlen, "node id allocator out of range");
	st->ntasks = (size_t)ntasks;
	st->body_len = (size_t)body_len;
	return 0;
}

static int decode_records(const unsigned char *p, struct state *st, char *err, size_t errlen)
{
	st->tasks = malloc(sizeof(*st->tasks) * (st->ntasks + 1));
	if (!st->tasks) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < st->ntasks; i++, p += STATE_RECORD_LEN) {
		struct state_task *t = &st->tasks[i];

		t->key = get64(p);
		t->mtime = (int64_t)get64(p + 8);
		if (t->key > SNAP_KEY_MASK || (i > 0 && t->key <= st->tasks[i - 1].key))
			return fail(err, errlen, "task records out of order");
		for (int k = 0; k < SNAP_NKINDS; k++) {
			const unsigned char *f = p + 16 + 20 * k;

			t->file[k].nodeid = get64(f);
			t->file[k].mtime_ns = (int64_t)get64(f + 8);
			t->file[k].len = get32(f + 16);
			if (t->file[k].nodeid && (t->file[k].nodeid < SNAP_FIRST_FILE_NODEID ||
						  t->file[k].nodeid >= st->next_nodeid))
				return fail(err, errlen, "a node id beyond the allocator");
			if (t->file[k].nodeid && t->file[k].mtime_ns > st->newest_ns)
				return fail(err, errlen, "an mtime newer than the newest stamp");
		}
	}
	return 0;
}

int state_decode(char *buf, size_t len, uint64_t identity, size_t max_body, struct state *st,
		 char *err, size_t errlen)
{
	const unsigned char *b = (const unsigned char *)buf;
	int ret = decode_header(b, len, identity, max_body, st, err, errlen);

	if (ret < 0)
		return ret;
	if (get32(b + len - 4) != 0 ||
	    get32(b + len - 8) != (uint32_t)crc32_z(0, b, len - STATE_TRAILER_LEN))
		return fail(err, errlen, "checksum mismatch (damaged)");
	ret = decode_records(b + STATE_HEADER_LEN, st, err, errlen);
	if (ret < 0) {
		state_release(st);
		return ret;
	}
	st->body = buf + STATE_HEADER_LEN + st->ntasks * STATE_RECORD_LEN;
	st->body[st->body_len] = '\0'; /* over the trailer: already checked */
	return 0;
}

void state_release(struct state *st)
{
	free(st->tasks);
	st->tasks = NULL;
	st->body = NULL;
}

/* Give @s, parsed from st->body, the identities @st recorded. */
static int adopt(struct snapshot *s, const struct state *st, char *err, size_t errlen)
{
	int ret;

	if (s->ntasks != st->ntasks) {
		snprintf(err, errlen, "records %zu tasks, its answer %zu", st->ntasks, s->ntasks);
		return -EINVAL;
	}
	for (size_t i = 0; i < s->ntasks; i++) {
		struct snap_task *t = &s->tasks[i];
		const struct state_task *r = &st->tasks[i];

		if (t->key != r->key)
			return fail(err, errlen, "its tasks do not match its answer");
		for (int k = 0; k < SNAP_NKINDS; k++)
			if (!t->file[k].nodeid != !r->file[k].nodeid ||
			    (t->file[k].nodeid && t->file[k].len != r->file[k].len))
				return fail(err, errlen, "its files do not match its answer");
	}
	for (size_t i = 0; i < s->ntasks; i++) {
		struct snap_task *t = &s->tasks[i];
		const struct state_task *r = &st->tasks[i];

		t->mtime = r->mtime;
		for (int k = 0; k < SNAP_NKINDS; k++) {
			t->file[k].nodeid = r->file[k].nodeid;
			t->file[k].mtime_ns = r->file[k].mtime_ns;
		}
	}
	s->mtime_ns = st->root_mtime_ns;
	s->views_mtime_ns = st->views_mtime_ns;
	ret = snapshot_reindex(s);
	if (ret == -EINVAL)
		snprintf(err, errlen, "two files share one node id");
	else if (ret < 0)
		snprintf(err, errlen, "out of memory");
	return ret;
}

int state_restore(char *buf, size_t len, uint64_t identity, size_t max_body, struct snap_ctx *ctx,
		  struct snapshot **out, struct state *st, char *err, size_t errlen)
{
	struct snap_ctx scratch;
	struct snapshot *s;
	char perr[160];
	int ret;

	*out = NULL;
	ret = state_decode(buf, len, identity, max_body, st, err, errlen);
	if (ret < 0)
		return ret;
	/* parsed as if new; adopt() then puts the recorded identities on */
	memset(&scratch, 0, sizeof(scratch));
	memcpy(scratch.hash_key, st->hash_key, sizeof(scratch.hash_key));
	scratch.now_ns = st->newest_ns;
	scratch.newest_ns = st->newest_ns;
	scratch.next_nodeid = st->next_nodeid;
	ret = snapshot_parse(st->body, st->body_len, NULL, &scratch, &s, perr, sizeof(perr));
	if (ret < 0) {
		snprintf(err, errlen, "its answer does not parse: %s", perr);
		state_release(st);
		return ret == -ENOMEM ? ret : -EINVAL;
	}
	ret = adopt(s, st, err, errlen);
	state_release(st);
	if (ret < 0) {
		snapshot_put(s);
		return ret;
	}
	memcpy(ctx->hash_key, st->hash_key, sizeof(ctx->hash_key));
	ctx->next_nodeid = st->next_nodeid;
	if (ctx->newest_ns < st->newest_ns)
		ctx->newest_ns = st->newest_ns;
	*out = s;
	return 0;
}

/* ---- encoding ---- */

static void encode_header(unsigned char *h, const struct snapshot *s, uint64_t identity,
			  const struct snap_ctx *ctx, int64_t fetched_ns, uint64_t body_hash,
			  size_t body_len)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	memset(h, 0, STATE_HEADER_LEN);
	memcpy(h, state_magic, sizeof(state_magic));
	put32(h + 8, STATE_VERSION);
	put32(h + 12, STATE_HEADER_LEN);
	put64(h + 16, identity);
	put64(h + 24, ctx->hash_key[0]);
	put64(h + 32, ctx->hash_key[1]);
	put64(h + 40, ctx->next_nodeid);
	put64(h + 48, (uint64_t)ctx->newest_ns);
	put64(h + 56, (uint64_t)((int64_t)now.tv_sec * 1000000000 + now.tv_nsec));
	put64(h + 64, (uint64_t)fetched_ns);
	put64(h + 72, (uint64_t)s->mtime_ns);
	put64(h + 80, (uint64_t)s->views_mtime_ns);
	put64(h + 88, body_hash);
	put64(h + 96, s->ntasks);
	put64(h + 104, body_len);
}

static unsigned char *encode_records(const struct snapshot *s)
{
	unsigned char *r = malloc(s->ntasks * STATE_RECORD_LEN + 1), *p = r;

	if (!r)
		return NULL;
	for (size_t i = 0; i < s->ntasks; i++, p += STATE_RECORD_LEN) {
		const struct snap_task *t = &s->tasks[i];

		put64(p, t->key);
		put64(p + 8, (uint64_t)t->mtime);
		for (int k = 0; k < SNAP_NKINDS; k++) {
			unsigned char *f = p + 16 + 20 * k;

			put64(f, t->file[k].nodeid);
			put64(f + 8, (uint64_t)t->file[k].mtime_ns);
			put32(f + 16, t->file[k].nodeid ? t->file[k].len : 0);
		}
	}
	return r;
}

/* ---- the folder ---- */

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
	size_t ulen = strlen(api_url), elen = strlen(endpoint), n = 0, total;
	char *all;
	uint64_t h;

	/* the hash: api_url NUL endpoint NUL user */
	total = ulen + elen + strlen(user) + 3;
	all = malloc(total);
	if (all) {
		memcpy(all, api_url, ulen + 1);
		memcpy(all + ulen + 1, endpoint, elen + 1);
		memcpy(all + ulen + elen + 2, user, strlen(user) + 1);
		h = hash_siphash24(key, all, total);
		free(all);
	} else {
		h = hash_siphash24(key, api_url, ulen) ^ hash_siphash24(key, endpoint, elen) ^
		    (hash_siphash24(key, user, strlen(user)) << 1);
	}
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
		ret = fail(err, errlen, "not a regular file");
		goto out;
	}
	/* the header says how large the file must be, before we read it all */
	if (pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head)) {
		ret = fail(err, errlen, "truncated");
		goto out;
	}
	ret = decode_header(head, (size_t)sb.st_size, d->identity, max_body, st, err, errlen);
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
	       struct state_save_stats *stats, char *err, size_t errlen)
{
	double cpu0 = clock_ms(CLOCK_THREAD_CPUTIME_ID), wall0 = clock_ms(CLOCK_MONOTONIC);
	unsigned char head[STATE_HEADER_LEN], trailer[STATE_TRAILER_LEN];
	unsigned char *records = encode_records(s);
	uLong crc = crc32_z(0, NULL, 0);
	const char *step = "write";
	int fd = -1, ret;

	if (!records) {
		snprintf(err, errlen, "cannot save state: out of memory");
		return -ENOMEM;
	}
	encode_header(head, s, d->identity, ctx, fetched_ns, body_hash, len);
	fd = openat(d->fd, "state.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		    0600);
	if (fd < 0) {
		ret = -errno;
		step = "create";
		goto out;
	}
	if ((ret = write_all(fd, head, sizeof(head), &crc)) < 0 ||
	    (ret = write_all(fd, records, s->ntasks * STATE_RECORD_LEN, &crc)) < 0 ||
	    (ret = write_all(fd, body, len, &crc)) < 0)
		goto out;
	put32(trailer, (uint32_t)crc);
	put32(trailer + 4, 0);
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
	stats->bytes = STATE_HEADER_LEN + s->ntasks * STATE_RECORD_LEN + len + STATE_TRAILER_LEN;
	stats->cpu_ms = clock_ms(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	stats->wall_ms = clock_ms(CLOCK_MONOTONIC) - wall0;
	return 0;
}
