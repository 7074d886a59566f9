/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_SCAN_H
#define INGESTFS_SCAN_H

/*
 * The strict JSON scanner: one pass over an API answer, before anything
 * is built from it.  It checks the whole answer against RFC 8259 (exact
 * number grammar, no raw control bytes in strings, valid escapes and
 * UTF-8, nothing after the value), and indexes the elements of the top
 * level's "items" array: where each lies in the body, how many values it
 * holds, how deep it nests, how large its pretty-printed text can get and
 * where its id, state, operation and timestamp values are.  What the
 * builder needs to decide, before it allocates anything, which items it
 * can afford to parse.
 *
 * A defect inside one item (a raw control byte, a number like 01) marks
 * that item only; a defect anywhere else, or broken structure, fails the
 * whole answer.  No recursion, whatever the depth.  Includes nothing of
 * the project; allocates only its depth stack, freed before it returns.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the members of an item the builder reads without parsing it */
enum scan_field { SCAN_ID, SCAN_STATE, SCAN_OPERATION, SCAN_TIMESTAMP, SCAN_NFIELDS };

/* A value token: its bytes in the body; type is 0 when absent. */
struct scan_span {
	uint32_t off, len;
	char type; /* '"' string, '{', '[', '0' number, 't' true, 'f' false, 'n' null */
};

struct scan_item {
	uint32_t off, len;		      /* the item's bytes in the body */
	uint32_t idx;			      /* its position in "items", from 1 */
	uint32_t nvalues;		      /* values in it, itself included */
	uint32_t depth;			      /* deepest nesting: a scalar is 1, {"a": 1} is 2 */
	uint64_t pretty;		      /* bytes its pretty-printed text can take at most */
	struct scan_span field[SCAN_NFIELDS]; /* first member of each name */
	const char *defect;		      /* NULL, or why it is not strict JSON */
};

struct scan_result {
	size_t items;		/* elements of "items" */
	struct scan_span total; /* the value of "total_items" */
};

/*
 * scan_answer - check @body (@len bytes, at most 4 GiB) and call @fn for
 * each element of the top-level object's first "items" member, in order.
 * 0, or -EINVAL (not strict JSON, not an object, no "items" array) or
 * -ENOMEM with a one-line cause in @err; @fn may have been called before
 * a failure.
 */
int scan_answer(const char *body, size_t len, void (*fn)(void *arg, const struct scan_item *it),
		void *arg, struct scan_result *res, char *err, size_t errlen);

/*
 * scan_answer_known - scan_answer, but before each element of "items"
 * that starts with '{', @known is asked whether the bytes at @off are an
 * item it has seen whole and accepted before (it compares them); when it
 * returns their length, that item is neither scanned nor passed to @fn
 * but counted with position @idx, and scanning goes on after it.  Sound
 * because a complete JSON value ends where its own bytes say.
 */
int scan_answer_known(const char *body, size_t len,
		      void (*fn)(void *arg, const struct scan_item *it),
		      size_t (*known)(void *arg, uint32_t off, uint32_t idx), void *arg,
		      struct scan_result *res, char *err, size_t errlen);

/*
 * scan_string - decode the string token @tok (@len bytes, quotes
 * included, as scan_answer() delimited it) into @out, which has room for
 * @len bytes.  Returns the decoded length.  Escapes of lone surrogates
 * decode to U+FFFD; in a token with defects, a bad escape decodes to
 * something, never out of bounds.
 */
size_t scan_string(const char *tok, size_t len, char *out);

#endif
