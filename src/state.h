/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_STATE_H
#define INGESTFS_STATE_H

/*
 * The state folder: what makes a restart invisible.  One file, "state",
 * holds the hash key, the node id allocator, the newest mtime stamp, the
 * last good answer as it arrived, and each file version's node id and
 * mtime (so a restart with the same answer shows every path with the same
 * st_ino, size, mtime and ctime).  No secret is in it.
 *
 * Two halves.  state.c, the format, is pure: bytes in, checked structs
 * out, nothing trusted (the fuzzer drives state_restore).  state_dir.c,
 * the folder, opens or creates the folder (mode 0700, refused when it is
 * not private, like the credentials file), holds a lock file so that two
 * daemons never share it, and saves atomically: a temporary file, fsync,
 * rename over "state", fsync of the folder, so that a kill -9 at any
 * moment leaves the old state or the new one.  Only the thread that
 * publishes snapshots (the refresher) saves; nothing here is locked.
 *
 * File layout (version 1), integers little-endian:
 *   0   "IFSSTATE"  magic
 *   8   u32 version, u32 header bytes (144)
 *   16  u64 identity: the mount's name hash (api_url, endpoint, user)
 *   24  u64 hash key[2]
 *   40  u64 next node id, i64 newest stamp (ns)
 *   56  i64 saved at, i64 answer arrived at (wall ns)
 *   72  i64 root folder mtime, i64 view folders' mtime (ns)
 *   88  u64 the answer's hash under the key (to spot it when it comes
 *       again; SipHash-1-3, and 2-4 before: an older one just never matches)
 *   96  u64 render fingerprint: a hash of the files this build makes of a
 *       fixed probe answer, so a state written by a version that renders
 *       files differently is not taken for this one's
 *   104 u64 tasks, u64 record bytes, u64 answer bytes
 *   128 u64 change feed generation, u64 its length (feed.h)
 *   144 the task records (varints; see decode_records in state.c)
 *   ... the answer's bytes
 *   end u32 CRC-32 of everything before it, u32 0
 *
 * A save after a change rewrites that whole file only now and then.  In
 * between, "state.delta" says what a whole file would say, without the
 * answer's bytes: the header and records as they would be, and ops that
 * rebuild the answer from the items of the answer in "state" (the base)
 * and literal bytes.  An unchanged item is a reference into the base, and
 * a run of them, as they mostly come, one op; so a delta is about the
 * size of the records plus what changed since the base.  When the ops
 * would pass an eighth of the base's answer, the save is whole again and
 * the delta goes.  The delta names its base (its save time and checksum):
 * one left behind by a crash during a whole save names the old base and
 * is ignored.  Delta layout (version 1), little-endian:
 *   0   "IFSDELTA"  magic
 *   8   u32 version, u32 header bytes (64)
 *   16  i64 the base's saved at, u32 the base's CRC-32, u32 the answer's CRC-32
 *   32  u64 bytes of the state header and records, u64 ops bytes
 *   48  u64 the answer's bytes, u64 how the rebuilt answer is checked: 0 by
 *       its CRC-32 at 28; 2 by the answer hash of the state header (when the
 *       answer was saved as it arrived, no escape repaired: no CRC to make);
 *       1, written before that hash was SipHash-1-3, by SipHash-2-4
 *   64  a state file's header (144) and records, as a whole save writes them
 *   ... the ops: varints, 0 n BYTES (n literal bytes), or 1 first count
 *       gaplen GAP (base items first..first+count-1 in answer order, 0
 *       from the first, with GAP between each two)
 *   end u32 CRC-32 of everything before it, u32 0
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

#define STATE_VERSION	   1
#define STATE_HEADER_LEN   144
#define STATE_TRAILER_LEN  8
#define STATE_MAX_FEED_GEN (1ULL << 48) /* the change feed generations a state may name */

/* one task's identity: what a restored snapshot takes over */
struct state_task {
	uint64_t key;
	int64_t mtime; /* the folder's, s */
	struct {
		uint64_t nodeid;
		int64_t mtime_ns;
		uint32_t len;
	} file[SNAP_NKINDS];
};

struct state {
	uint64_t identity;
	uint64_t hash_key[2];
	uint64_t next_nodeid;
	int64_t newest_ns;
	int64_t saved_ns;
	int64_t fetched_ns;
	int64_t root_mtime_ns;
	int64_t views_mtime_ns;
	uint64_t body_hash;
	uint64_t feed_gen, feed_len; /* the change feed as this state knows it */
	size_t ntasks;
	size_t records_len;
	struct state_task *tasks; /* malloc'd by state_decode */
	char *body;		  /* points into the decoded buffer, NUL after it */
	size_t body_len;
};

/*
 * state_decode - check and unpack @buf (the whole file, @len bytes; the
 * answer gets a NUL over the checked trailer).  @identity must match, the answer
 * may be at most @max_body bytes.  0, or -EINVAL with one line in @err.
 * On success st->tasks is malloc'd (state_release) and st->body points
 * into @buf.
 */
int state_decode(char *buf, size_t len, uint64_t identity, size_t max_body, struct state *st,
		 char *err, size_t errlen);
void state_release(struct state *st);

/* state_decode_header - the header alone, against the file's size @len */
int state_decode_header(const unsigned char *b, size_t len, uint64_t identity, size_t max_body,
			struct state *st, char *err, size_t errlen);

/* state_render_fingerprint - what this build's files look like, as a hash */
uint64_t state_render_fingerprint(void);

/* for state_dir.c: the header (STATE_HEADER_LEN bytes) and the records (malloc'd) */
void state_encode_header(unsigned char *h, const struct snapshot *s, uint64_t identity,
			 const struct snap_ctx *ctx, int64_t saved_ns, int64_t fetched_ns,
			 uint64_t body_hash, uint64_t feed_gen, uint64_t feed_len,
			 size_t records_len, size_t body_len);
unsigned char *state_encode_records(const struct snapshot *s, size_t *len);
void state_put32(unsigned char *p, uint32_t v);

#define STATE_DELTA_HEADER_LEN 64

/*
 * state_mark_base - @s was built from the answer a whole save just wrote:
 * each task's base_pos becomes 1 + its place in that answer's order.
 */
void state_mark_base(struct snapshot *s);

/*
 * state_encode_ops - the ops that rebuild @body (@len bytes, the answer
 * @s was built from) from the base's items and literal bytes: malloc'd,
 * with their length in *@oplen; NULL when they would take more than
 * @limit bytes, or no memory.
 */
unsigned char *state_encode_ops(const struct snapshot *s, const char *body, size_t len,
				size_t limit, size_t *oplen);

/* What a save writes besides a snapshot and its answer. */
struct state_meta {
	uint64_t identity;
	int64_t saved_ns, fetched_ns;
	uint64_t body_hash;
	uint64_t feed_gen, feed_len;
};

/*
 * state_encode_whole - a whole state file for @s, built from @body (@len
 * bytes), malloc'd with its length in *@out_len; NULL without memory.
 * (state_save writes the same pieces without copying the answer.)
 */
unsigned char *state_encode_whole(const struct snapshot *s, const char *body, size_t len,
				  const struct snap_ctx *ctx, const struct state_meta *m,
				  size_t *out_len);

/*
 * state_encode_delta - the same as a delta against the base saved at
 * @base_saved_ns whose trailer holds @base_crc, malloc'd (*@out_len);
 * NULL when its ops would pass @limit bytes, or without memory.
 */
unsigned char *state_encode_delta(const struct snapshot *s, const char *body, size_t len,
				  const struct snap_ctx *ctx, const struct state_meta *m,
				  int64_t base_saved_ns, uint32_t base_crc, size_t limit,
				  size_t *out_len);

/*
 * state_apply_delta - the whole state file that @delta (@dlen bytes)
 * stands for, on top of @base (@blen bytes, a whole state file, checked
 * here; its answer may be rewritten in place, as a parse does): 0 with
 * the bytes malloc'd in *@out (*@olen), for state_restore(); 1 when the
 * delta names another base (a leftover: use @base alone); -EINVAL (not a
 * delta of this mount, damaged, or ops that do not rebuild the answer
 * recorded) or -ENOMEM with one line in @err.  What the fuzzer calls.
 */
int state_apply_delta(char *base, size_t blen, const unsigned char *delta, size_t dlen,
		      uint64_t identity, size_t max_body, char **out, size_t *olen, char *err,
		      size_t errlen);

/*
 * state_restore - decode @buf and rebuild the snapshot it describes, with
 * the node ids and times it recorded (checked against the answer: same
 * tasks, same files, same sizes, node ids unique).  On success *@out holds
 * the snapshot, @st the header fields (tasks and body are gone: @buf may
 * be freed), and @ctx took the hash key, allocator and newest stamp.  On
 * failure @ctx is untouched.  What the fuzzer calls.
 */
int state_restore(char *buf, size_t len, uint64_t identity, size_t max_body, struct snap_ctx *ctx,
		  struct snapshot **out, struct state *st, char *err, size_t errlen);

/* ---- the folder ---- */

struct state_dir;

/*
 * state_dir_name - the folder name for a mount: the API host, a dash and
 * 16 hex digits of a hash of @api_url, @endpoint and @user.  Returns the
 * hash (the file's identity); the name goes to @name (at least 96 bytes).
 */
uint64_t state_dir_name(const char *api_url, const char *endpoint, const char *user, char *name,
			size_t namelen);

/*
 * state_dir_open - open @path (NULL: the default, $XDG_STATE_HOME or
 * ~/.local/state + /ingestfs/NAME, or /var/lib/ingestfs/NAME for root),
 * creating it with mode 0700; refuse a folder that is not a folder, not
 * owned by the effective user, or open to group or others; take its lock.
 * 0 with *@out, or -errno with one line in @err.
 */
int state_dir_open(const char *path, const char *api_url, const char *endpoint, const char *user,
		   struct state_dir **out, char *err, size_t errlen);
void state_dir_close(struct state_dir *d);
const char *state_dir_path(const struct state_dir *d);
uint64_t state_dir_identity(const struct state_dir *d);
/* state_dir_fd - the folder, for the change feed's files (feed.h) */
int state_dir_fd(const struct state_dir *d);

/*
 * state_load - read the saved state and state_restore() it.  0 with *@out
 * and @st, 1 when nothing is saved, or -errno with one line in @err (the
 * caller warns and starts afresh).  The file is sized up before it is
 * read: one larger than a save for @max_body could write is refused.
 */
int state_load(struct state_dir *d, size_t max_body, struct snap_ctx *ctx, struct snapshot **out,
	       struct state *st, char *err, size_t errlen);

/* what the last save cost, for .status and the benchmark */
struct state_save_stats {
	uint64_t saves;
	uint64_t whole_saves; /* of them, the whole file (the others: a delta) */
	size_t bytes;
	bool whole;    /* the last: the whole file */
	double cpu_ms; /* the saving thread's CPU time */
	double wall_ms;
};

/*
 * state_save - replace the state with @s, the answer @body it was built
 * from (arrived at @fetched_ns, hash @body_hash as it arrived), and @ctx's
 * allocator, and the change feed's (@feed_gen, @feed_len), atomically: a
 * delta when the base this daemon wrote or loaded allows one, else the
 * whole file (then @s's tasks are marked as the base's).  0 or -errno
 * with one line in @err; the old state is then still in place.
 */
int state_save(struct state_dir *d, struct snapshot *s, const char *body, size_t len,
	       uint64_t body_hash, const struct snap_ctx *ctx, int64_t fetched_ns,
	       uint64_t feed_gen, uint64_t feed_len, struct state_save_stats *stats, char *err,
	       size_t errlen);

#endif
