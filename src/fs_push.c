// SPDX-License-Identifier: MIT
/*
 * Pushing a task folder's other files into the kernel's page cache.
 *
 * A cold `grep -r`, `tar` or `rsync` of the mount reads every file of
 * every task folder, and each first read is a round trip to this daemon:
 * 400,000 of them at 100k tasks, most of a cold pass.  A reader that has
 * read two files of one folder in a row will read the rest, and from then
 * on it reads whole folders: so on the second read of a folder, and on
 * the first read of each folder after one that went that way, the
 * folder's other small files are stored into the page cache
 * (FUSE_NOTIFY_STORE) before the read is answered, and the reader finds
 * them there.  A reader of one file per folder (`cat` or `grep -l FAILED`
 * of every folder's state) never sets that off, so it gets no pages it
 * did not ask for.  Readers are told apart by the thread id a request
 * carries (the last FS_PUSH_READERS seen), so readers at work side by
 * side each keep their own streak.  The pages are those of file node ids, whose bytes never change
 * (snapshot.h), so a pushed page is never stale.
 *
 * Deadlock: a store waits for the lock of a page that another reader may
 * be filling, whose READ another worker must answer.  So one push runs at
 * a time (the others skip theirs: a push is only a hint) and none when
 * there is a single worker (-s, max_threads=1): the waiting push then
 * never holds up the worker that answers the READ it waits for.
 */
#include "fs_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "snapshot.h"

/* bytes: larger files are left to their reads */
#define PUSH_MAX_FILE 65536

static unsigned push_kinds(const struct snap_task *t)
{
	unsigned all = 0;

	for (int k = 0; k < SNAP_NKINDS; k++)
		if (t->file[k].nodeid && t->file[k].len > 0 && t->file[k].len <= PUSH_MAX_FILE)
			all |= 1u << k;
	return all;
}

/* @pid's slot, with the lock held; a reader not seen lately takes the
 * least recently seen one's, fresh (@fresh set) */
static struct fs_push_reader *push_reader(struct fs_push *p, pid_t pid, bool *fresh)
{
	struct fs_push_reader *r, *oldest = &p->reader[0];

	*fresh = false;
	for (r = p->reader; r < p->reader + FS_PUSH_READERS; r++) {
		if (r->pid == pid) {
			r->used = ++p->tick;
			return r;
		}
		if (r->used < oldest->used)
			oldest = r;
	}
	*oldest = (struct fs_push_reader){ .pid = pid, .used = ++p->tick };
	*fresh = true;
	return oldest;
}

/* Which files of @t to push now that @pid read its @kind from the start: a
 * bit per kind.  Each reader is followed on its own, so two `tar` runs or
 * the threads of one parallel reader do not break each other's streak. */
static unsigned push_decide(struct fs *fs, pid_t pid, const struct snap_task *t,
			    enum snap_kind kind)
{
	struct fs_push *p = &fs->push;
	struct fs_push_reader *r;
	unsigned mask = 0;
	bool fresh;

	pthread_mutex_lock(&p->mu);
	r = push_reader(p, pid, &fresh);
	if (fresh) {
		r->key = t->key;
		r->read = 1u << kind;
	} else if (r->key == t->key) {
		r->read |= 1u << kind;
		if (!r->pushed && __builtin_popcount(r->read) >= 2) {
			mask = push_kinds(t) & ~r->read;
			r->pushed = true;
		}
	} else {
		/* the reader's last folder went whole: this one will too */
		bool streak = r->pushed;

		r->key = t->key;
		r->read = 1u << kind;
		r->pushed = streak;
		if (streak)
			mask = push_kinds(t) & ~r->read;
	}
	pthread_mutex_unlock(&p->mu);
	return mask;
}

void fs_push_siblings(struct fs *fs, pid_t pid, const struct snapshot *s, const struct snap_task *t,
		      enum snap_kind kind)
{
	unsigned mask;

	if (!fs->push.on || !fs->se)
		return;
	mask = push_decide(fs, pid, t, kind);
	if (!mask || pthread_mutex_trylock(&fs->push.busy) != 0)
		return;
	for (int k = 0; k < SNAP_NKINDS; k++) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(t->file[k].len);
		char *to_free;
		const char *data;
		int ret;

		if (!(mask & (1u << k)))
			continue;
		data = snap_file_read(s, t, (enum snap_kind)k, &to_free);
		if (!data)
			break; /* out of memory: a hint is not worth more */
		bv.buf[0].mem = (void *)data;
		ret = fuse_lowlevel_notify_store(fs->se, t->file[k].nodeid, 0, &bv, 0);
		free(to_free);
		if (ret == 0)
			atomic_fetch_add(&fs->push.stored, 1);
		else if (ret != -ENOENT) /* -ENOENT: the kernel has no inode for it */
			log_debug("push %s of %s: %s", snap_file_names[k], snap_task_id(s, t),
				  strerror(-ret));
	}
	pthread_mutex_unlock(&fs->push.busy);
}
