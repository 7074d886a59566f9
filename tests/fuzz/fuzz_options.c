// SPDX-License-Identifier: MIT
/* libFuzzer: the option parser, arguments split at NUL bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct config cfg;
	char *copy = malloc(size + 1);
	size_t start = 0;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	fuse_opt_add_arg(&args, "ingestfs");
	for (size_t i = 0; i <= size && args.argc < 64; i++) {
		if (copy[i] == '\0') {
			fuse_opt_add_arg(&args, copy + start);
			start = i + 1;
		}
	}
	if (config_init(&cfg) == 0) {
		if (config_parse(&args, &cfg) == 0) {
			char err[128];

			/* whatever was accepted is within its documented range */
			if (cfg.ttl < 0.1 || cfg.ttl > 86400 || cfg.timeout < 0.1 ||
			    cfg.timeout > 3600 || cfg.max_response < 1024 ||
			    config_check_url(cfg.api_url, err, sizeof(err)) < 0 ||
			    strncmp(cfg.endpoint, "/api/", 5) != 0)
				abort();
		} else if (!cfg.error[0]) {
			abort();
		}
	}
	config_free(&cfg);
	fuse_opt_free_args(&args);
	free(copy);
	return 0;
}
