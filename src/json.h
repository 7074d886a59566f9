/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_JSON_H
#define INGESTFS_JSON_H

/*
 * The items of an API answer as cJSON reads them: the only module that
 * includes cJSON.  It owns what cJSON gets wrong for us: escapes it
 * refuses or truncates at (lone surrogates, \u0000), numbers it would
 * round (kept exactly as sent), and the text of raw.json (our own
 * printer, so layout and numbers are predictable).  The whole answer is
 * never one cJSON tree: scan.c checks it and finds each item, and each
 * item is parsed here on its own, read, and freed, so at most one item's
 * tree lives at a time.
 *
 * A struct json_item owns its tree; strings it returns are borrowed from
 * it and live until json_item_free().  No global state, no locks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_item;

/*
 * json_repair - rewrite, in place and at the same length, the escapes
 * cJSON cannot take (a lone surrogate, \u0000) to \u0001, before
 * scanning: one odd string then cannot block every update, and an id
 * holding one is refused as a control character instead of being cut
 * short into some other, valid name.  Returns how many it rewrote.
 */
size_t json_repair(char *body, size_t len);

/*
 * json_item_parse - parse the @len bytes at @text, one item that
 * scan_answer() accepted (strict JSON, nested at most a few hundred
 * levels).  0 with *@out set, -ENOMEM, or -EPROTO if cJSON refused it
 * after all (the scanner and cJSON disagree: a bug to report).
 */
int json_item_parse(const char *text, size_t len, struct json_item **out);
void json_item_free(struct json_item *it);

/* json_item_number - member @key when it is a number, as a double */
bool json_item_number(const struct json_item *it, const char *key, double *out);

/*
 * json_item_field - the text of member @key: a string as it is (borrowed),
 * any other value as its compact JSON text (malloc'd, returned in
 * *@to_free too).  *@text is NULL when the member is missing or null.
 * 0, or -ENOMEM.
 */
int json_item_field(const struct json_item *it, const char *key, const char **text, bool *is_string,
		    char **to_free);

/* json_item_print - the item as pretty JSON (two spaces), malloc'd; NULL on ENOMEM */
char *json_item_print(const struct json_item *it);

/* json_count - a number token as a count: 0 to 2^53, else -1 */
int64_t json_count(const char *tok, size_t len);

#endif
