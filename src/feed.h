/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_FEED_H
#define INGESTFS_FEED_H

/*
 * The change feed's storage: generations of an append-only log, in the
 * state folder (files events.GEN) or, without one, in memory.  The mount
 * shows generation GEN as .events and GEN - 1 as .events.1; older ones are
 * deleted.
 *
 * Two steps per refresh, so that a crash never leaves a torn or repeated
 * line:
 *   feed_append()  writes a batch of whole lines (and fsyncs it) where
 *                  readers do not see it yet, starting a new generation
 *                  when the current one would pass the bound;
 *   feed_commit()  makes it visible, after the state file recorded the
 *                  new (generation, length).
 * At start, feed_open() is given the (generation, length) the state file
 * recorded: it cuts the file back to that length and deletes any newer
 * generation, so a batch written before a crash but never recorded is
 * gone; the refresh after start then writes it again from the diff
 * between the saved answer and the new one.  A non-empty generation then
 * becomes .events.1 and the mount starts a fresh .events: a new mount has
 * a new st_dev, and tail -F reads such a "replaced" file from its start.
 *
 * Locking: one mutex guards the visible lengths; appends and commits come
 * from the refresher only, reads from any thread, each with its reply
 * between feed_hold() and feed_release().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct feed;

/*
 * feed_open - the feed in the folder @dirfd (-1: in memory), rotating at
 * @max bytes, at generation @gen (>= 1) and length @len as last recorded.
 * 0 or -errno with one line in @err.
 */
int feed_open(int dirfd, size_t max, uint64_t gen, uint64_t len, struct feed **out, char *err,
	      size_t errlen);
void feed_close(struct feed *f);

/* feed_append - write @n bytes of whole lines, not yet visible; 0 or -errno */
int feed_append(struct feed *f, const char *buf, size_t n, char *err, size_t errlen);
/* feed_pending - the (generation, length) feed_commit() will make visible */
void feed_pending(const struct feed *f, uint64_t *gen, uint64_t *len);
/*
 * feed_commit - make the appended batch visible; deletes the generation
 * before .events.1.  Returns 0 when nothing was pending, 1 when the feed
 * grew, 2 when it also started a new generation.
 */
int feed_commit(struct feed *f);
/* feed_abandon - forget a batch that will not be shown (its snapshot was not swapped in) */
void feed_abandon(struct feed *f);

/*
 * feed_hold, feed_release - around a read of the feed and the reply that
 * carries it to the kernel.  A commit waits for the replies in flight: a
 * reply made before the feed grew but taken in after the kernel learnt
 * the new size would otherwise leave a page cached with zeros where the
 * new lines are (the kernel zero-fills a short read and, the size having
 * changed meanwhile, keeps the page).
 */
void feed_hold(struct feed *f);
void feed_release(struct feed *f);

/* feed_visible - the visible generation and the lengths of it and the one before */
void feed_visible(struct feed *f, uint64_t *gen, uint64_t *len, uint64_t *prev_len);

/*
 * feed_read - up to @size bytes of generation @gen at @off into @buf;
 * bytes read (0 at the visible end), -ESTALE for a generation no longer
 * kept, or -errno.
 */
ssize_t feed_read(struct feed *f, uint64_t gen, char *buf, size_t size, uint64_t off);

#endif
