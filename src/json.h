/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_JSON_H
#define INGESTFS_JSON_H

/*
 * Reading an API answer: the only module that includes cJSON.  It owns
 * what cJSON gets wrong for us: escapes it refuses or truncates at (lone
 * surrogates, \u0000), numbers it would round (kept exactly as sent), and
 * the text of raw.json (our own printer, so layout and numbers are
 * predictable).  The rest of the program sees an answer as a list of
 * opaque items with a few typed accessors.
 *
 * A struct json_answer owns its parse tree; items and the strings they
 * return are borrowed from it and live until json_answer_free().  Not
 * thread-safe per answer; no global state.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_answer;
struct json_item; /* one element of the answer's "items" array */

/*
 * json_answer_parse - parse @body (@len bytes) as a collection answer: a
 * JSON object with an "items" array.  @body may be rewritten in place, at
 * the same length, to repair escapes cJSON cannot take.  0 with *@out set,
 * or -EINVAL/-ENOMEM/-E2BIG with a one-line cause in @err.
 */
int json_answer_parse(char *body, size_t len, struct json_answer **out, char *err, size_t errlen);
void json_answer_free(struct json_answer *a);

/* json_answer_total_items - "total_items" when it is a plain count, else -1 */
int64_t json_answer_total_items(const struct json_answer *a);
/* json_answer_count - how many elements "items" has */
size_t json_answer_count(const struct json_answer *a);
/* json_answer_first, json_item_next - walk the items in order; NULL at the end */
const struct json_item *json_answer_first(const struct json_answer *a);
const struct json_item *json_item_next(const struct json_item *it);

bool json_item_is_object(const struct json_item *it);
/* json_item_string - the string member @key of object @it, or NULL (borrowed) */
const char *json_item_string(const struct json_item *it, const char *key);
/* json_item_number - member @key when it is a number, as a double */
bool json_item_number(const struct json_item *it, const char *key, double *out);

/*
 * json_item_field - the text of member @key: a string as it is (borrowed),
 * any other value as its compact JSON text (malloc'd, returned in
 * *@to_free too).  *@text is NULL when the member is missing or null.
 * 0, or -ENOMEM.
 */
int json_item_field(const struct json_answer *a, const struct json_item *it, const char *key,
		    const char **text, bool *is_string, char **to_free);

/* json_item_print - @it as pretty JSON (two spaces), malloc'd; NULL on ENOMEM */
char *json_item_print(const struct json_answer *a, const struct json_item *it);

#endif
