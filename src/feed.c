// SPDX-License-Identifier: MIT
/* The change feed's storage: generations of an append-only log, on disk or in memory. */
#include "feed.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct store {
	uint64_t gen; /* 0: none */
	int fd;	      /* on disk; -1 in memory */
	char *mem;    /* in memory */
	size_t cap;
	uint64_t len; /* visible bytes */
};

struct feed {
	pthread_mutex_t lock;	  /* the stores' visible state; the memory buffers */
	pthread_rwlock_t replies; /* readers: from the read to its reply; the commit: writer */
	int dirfd;
	size_t max;
	struct store cur, prev;
	/* the refresher's: the batch written but not yet visible */
	uint64_t pending_len;
	bool rotating;
	struct store next;
};

static void name_of(char *buf, size_t len, uint64_t gen)
{
	snprintf(buf, len, "events.%" PRIu64, gen);
}

static void store_close(struct store *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->mem);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

/* Delete the generations that are neither @gen nor @gen - 1. */
static void drop_strays(int dirfd, uint64_t gen)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d); /* the dup shares its offset with @dirfd: start over */
	while ((e = readdir(d))) {
		char *end;
		unsigned long long g;

		if (strncmp(e->d_name, "events.", 7) != 0 || e->d_name[7] < '0' ||
		    e->d_name[7] > '9')
			continue;
		g = strtoull(e->d_name + 7, &end, 10);
		if (*end == '\0' && g != gen && g + 1 != gen)
			unlinkat(dirfd, e->d_name, 0);
	}
	closedir(d);
}

static int open_gen(int dirfd, uint64_t gen, int flags, struct store *s)
{
	char name[32];

	name_of(name, sizeof(name), gen);
	s->fd = openat(dirfd, name, flags | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->fd < 0)
		return -errno;
	s->gen = gen;
	return 0;
}

int feed_open(int dirfd, size_t max, uint64_t gen, uint64_t len, struct feed **out, char *err,
	      size_t errlen)
{
	struct feed *f = calloc(1, sizeof(*f));
	struct stat st;
	int ret;

	*out = NULL;
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_rwlockattr_t ra;

	pthread_mutex_init(&f->lock, NULL);
	pthread_rwlockattr_init(&ra);
	/* a steady stream of readers must not hold a commit off */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&f->replies, &ra);
	pthread_rwlockattr_destroy(&ra);
	f->dirfd = dirfd;
	f->max = max;
	f->cur.fd = f->prev.fd = f->next.fd = -1;
	if (gen < 1)
		gen = 1;
	f->cur.gen = gen;
	if (dirfd >= 0) {
		ret = open_gen(dirfd, gen, O_RDWR | O_CREAT, &f->cur);
		if (ret < 0 || fstat(f->cur.fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			ret = ret < 0 ? ret : -EINVAL;
			snprintf(err, errlen, "cannot open the change feed: %s", strerror(-ret));
			feed_close(f);
			return ret;
		}
		/* a batch written but never recorded goes; the next refresh writes it again */
		if ((uint64_t)st.st_size > len && ftruncate(f->cur.fd, (off_t)len) < 0) {
			ret = -errno;
			snprintf(err, errlen, "cannot cut the change feed back: %s",
				 strerror(errno));
			feed_close(f);
			return ret;
		}
		f->cur.len = (uint64_t)st.st_size < len ? (uint64_t)st.st_size : len;
		if (f->cur.len > 0) {
			/*
			 * A new mount has a new st_dev, and tail -F reads a
			 * file whose (st_dev, st_ino) changed from its start:
			 * begin a new generation so that it repeats nothing.
			 * The state still records @gen until the next save;
			 * a crash before it makes the same rotation again.
			 */
			f->prev = f->cur;
			f->cur.fd = -1;
			ret = open_gen(dirfd, ++gen, O_RDWR | O_CREAT | O_TRUNC, &f->cur);
			if (ret < 0) {
				snprintf(err, errlen, "cannot start a new change feed file: %s",
					 strerror(-ret));
				feed_close(f);
				return ret;
			}
			f->cur.len = 0;
		} else if (gen > 1 && open_gen(dirfd, gen - 1, O_RDONLY, &f->prev) == 0 &&
			   fstat(f->prev.fd, &st) == 0) {
			f->prev.len = (uint64_t)st.st_size;
		} else {
			store_close(&f->prev);
		}
		drop_strays(dirfd, gen);
	}
	f->pending_len = f->cur.len;
	*out = f;
	return 0;
}

void feed_close(struct feed *f)
{
	if (!f)
		return;
	store_close(&f->cur);
	store_close(&f->prev);
	store_close(&f->next);
	pthread_rwlock_destroy(&f->replies);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static int write_at(struct feed *f, struct store *s, const char *buf, size_t n, uint64_t off)
{
	if (s->fd < 0) {
		pthread_mutex_lock(&f->lock);
		if (off + n > s->cap) {
			size_t cap = s->cap ? s->cap : 4096;
			char *p;

			while (cap < off + n)
				cap *= 2;
			p = realloc(s->mem, cap);
			if (!p) {
				pthread_mutex_unlock(&f->lock);
				return -ENOMEM;
			}
			s->mem = p;
			s->cap = cap;
		}
		memcpy(s->mem + off, buf, n);
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	for (size_t done = 0; done < n;) {
		ssize_t w = pwrite(s->fd, buf + done, n - done, (off_t)(off + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		done += (size_t)w;
	}
	return fsync(s->fd) < 0 ? -errno : 0;
}

int feed_append(struct feed *f, const char *buf, size_t n, char *err, size_t errlen)
{
	int ret;

	if (!n)
		return 0;
	if (!f->rotating && f->pending_len > 0 && f->pending_len + n > f->max) {
		/* the next generation; readers keep the current one until the commit */
		store_close(&f->next);
		f->next.gen = f->cur.gen + 1;
		if (f->dirfd >= 0 && (ret = open_gen(f->dirfd, f->next.gen,
						     O_RDWR | O_CREAT | O_TRUNC, &f->next)) < 0) {
			snprintf(err, errlen, "cannot start a new change feed file: %s",
				 strerror(-ret));
			return ret;
		}
		f->rotating = true;
		f->pending_len = 0;
	}
	ret = write_at(f, f->rotating ? &f->next : &f->cur, buf, n, f->pending_len);
	if (ret < 0) {
		snprintf(err, errlen, "cannot write the change feed: %s", strerror(-ret));
		return ret;
	}
	f->pending_len += n;
	return 0;
}

void feed_pending(const struct feed *f, uint64_t *gen, uint64_t *len)
{
	*gen = f->rotating ? f->next.gen : f->cur.gen;
	*len = f->pending_len;
}

int feed_commit(struct feed *f)
{
	uint64_t gone = 0;
	int ret;

	pthread_rwlock_wrlock(&f->replies);
	pthread_mutex_lock(&f->lock);
	ret = f->rotating ? 2 : f->pending_len != f->cur.len;
	if (f->rotating) {
		gone = f->prev.gen;
		store_close(&f->prev);
		f->prev = f->cur;
		f->cur = f->next;
		memset(&f->next, 0, sizeof(f->next));
		f->next.fd = -1;
		f->rotating = false;
	}
	f->cur.len = f->pending_len;
	pthread_mutex_unlock(&f->lock);
	pthread_rwlock_unlock(&f->replies);
	if (gone && f->dirfd >= 0) {
		char name[32];

		name_of(name, sizeof(name), gone);
		unlinkat(f->dirfd, name, 0);
	}
	return ret;
}

void feed_abandon(struct feed *f)
{
	if (f->rotating && f->dirfd >= 0) {
		char name[32];

		name_of(name, sizeof(name), f->next.gen);
		unlinkat(f->dirfd, name, 0);
	}
	pthread_mutex_lock(&f->lock);
	store_close(&f->next);
	f->rotating = false;
	f->pending_len = f->cur.len;
	pthread_mutex_unlock(&f->lock);
}

void feed_hold(struct feed *f)
{
	pthread_rwlock_rdlock(&f->replies);
}

void feed_release(struct feed *f)
{
	pthread_rwlock_unlock(&f->replies);
}

void feed_visible(struct feed *f, uint64_t *gen, uint64_t *len, uint64_t *prev_len)
{
	pthread_mutex_lock(&f->lock);
	*gen = f->cur.gen;
	*len = f->cur.len;
	*prev_len = f->prev.gen ? f->prev.len : 0;
	pthread_mutex_unlock(&f->lock);
}

ssize_t feed_read(struct feed *f, uint64_t gen, char *buf, size_t size, uint64_t off)
{
	struct store *s;
	ssize_t n = 0;

	pthread_mutex_lock(&f->lock);
	s = gen == f->cur.gen ? &f->cur : gen && gen == f->prev.gen ? &f->prev : NULL;
	if (!s) {
		n = -ESTALE;
	} else if (off < s->len) {
		if (size > s->len - off)
			size = (size_t)(s->len - off);
		if (s->fd < 0) {
			memcpy(buf, s->mem + off, size);
			n = (ssize_t)size;
		} else {
			n = pread(s->fd, buf, size, (off_t)off);
			if (n < 0)
				n = -errno;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return n;
}
