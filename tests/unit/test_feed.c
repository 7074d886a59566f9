// SPDX-License-Identifier: MIT
/* feed: the change feed's generations, on disk and in memory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "feed.h"

static char *all(struct feed *f, uint64_t gen)
{
	static char buf[4096];
	ssize_t n = feed_read(f, gen, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return n < 0 ? NULL : buf;
}

static void run(int dirfd)
{
	char err[160];
	struct feed *f;
	uint64_t gen, len, prev;

	CHECK(feed_open(dirfd, 20, 1, 0, &f, err, sizeof(err)) == 0);
	/* appended, not visible until committed */
	CHECK(feed_append(f, "a1\na2\n", 6, err, sizeof(err)) == 0);
	feed_visible(f, &gen, &len, &prev);
	CHECK(gen == 1 && len == 0);
	feed_pending(f, &gen, &len);
	CHECK(gen == 1 && len == 6);
	feed_commit(f);
	CHECK_STR(all(f, 1), "a1\na2\n");
	CHECK(feed_append(f, "b1\nb2\n", 6, err, sizeof(err)) == 0);
	feed_commit(f);
	/* 12 + 12 > 20: a new generation, whole batch in it */
	CHECK(feed_append(f, "c1\nc2\nc3\nc4\n", 12, err, sizeof(err)) == 0);
	CHECK_STR(all(f, 1), "a1\na2\nb1\nb2\n");
	feed_pending(f, &gen, &len);
	CHECK(gen == 2 && len == 12);
	feed_commit(f);
	feed_visible(f, &gen, &len, &prev);
	CHECK(gen == 2 && len == 12 && prev == 12);
	CHECK_STR(all(f, 2), "c1\nc2\nc3\nc4\n");
	CHECK_STR(all(f, 1), "a1\na2\nb1\nb2\n");
	CHECK(feed_append(f, "d1\nd2\nd3\nd4\n", 12, err, sizeof(err)) == 0);
	feed_commit(f);
	CHECK(feed_read(f, 1, err, 10, 0) == -ESTALE); /* two generations back: gone */
	CHECK_STR(all(f, 3), "d1\nd2\nd3\nd4\n");
	/* a batch written but never committed (a crash before the state save) */
	CHECK(feed_append(f, "e1\n", 3, err, sizeof(err)) == 0);
	feed_close(f);
	if (dirfd < 0)
		return;
	CHECK(faccessat(dirfd, "events.1", F_OK, 0) != 0);
	CHECK(feed_open(dirfd, 20, 3, 12, &f, err, sizeof(err)) == 0);
	{
		struct stat st;

		/* the unrecorded batch is cut off */
		CHECK(fstatat(dirfd, "events.3", &st, 0) == 0 && st.st_size == 12);
	}
	/* a new mount starts a fresh generation; the recorded one is .events.1 */
	feed_visible(f, &gen, &len, &prev);
	CHECK(gen == 4 && len == 0 && prev == 12);
	CHECK_STR(all(f, 4), "");
	CHECK_STR(all(f, 3), "d1\nd2\nd3\nd4\n");
	CHECK(feed_read(f, 2, err, 10, 0) == -ESTALE);
	CHECK(faccessat(dirfd, "events.2", F_OK, 0) != 0);
	/* written into the new generation, never recorded (a crash before the save) */
	CHECK(feed_append(f, "f1\nf2\nf3\nf4\nf5\n", 15, err, sizeof(err)) == 0);
	feed_close(f);
	CHECK(feed_open(dirfd, 20, 3, 12, &f, err, sizeof(err)) == 0);
	{
		struct stat st;

		CHECK(fstatat(dirfd, "events.4", &st, 0) == 0 && st.st_size == 0);
	}
	CHECK(faccessat(dirfd, "events.5", F_OK, 0) != 0);
	CHECK_STR(all(f, 4), "");
	CHECK_STR(all(f, 3), "d1\nd2\nd3\nd4\n");
	/* recorded: a restart with an empty generation does not rotate again */
	CHECK(feed_append(f, "g1\n", 3, err, sizeof(err)) == 0);
	CHECK(feed_commit(f) == 1);
	feed_close(f);
	CHECK(feed_open(dirfd, 20, 4, 0, &f, err, sizeof(err)) == 0);
	feed_visible(f, &gen, &len, &prev);
	CHECK(gen == 4 && len == 0 && prev == 12);
	CHECK(faccessat(dirfd, "events.5", F_OK, 0) != 0);
	feed_close(f);
}

int main(void)
{
	char dir[] = "/tmp/ingestfs-feed-XXXXXX";
	int dirfd;

	run(-1);
	CHECK(mkdtemp(dir) != NULL);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	CHECK(dirfd >= 0);
	run(dirfd);
	for (int g = 1; g < 6; g++) {
		char name[32];

		snprintf(name, sizeof(name), "events.%d", g);
		unlinkat(dirfd, name, 0);
	}
	close(dirfd);
	rmdir(dir);
	return check_done("test_feed");
}
