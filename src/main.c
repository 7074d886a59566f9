// SPDX-License-Identifier: MIT
/* ingestfs: options, start-up order, shutdown. */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "cache.h"
#include "credcheck.h"
#include "config.h"
#include "creds.h"
#include "fs.h"
#include "http.h"
#include "log.h"
#include "state.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static struct cache *volatile sig_cache; /* for the signal handlers */
static pthread_t main_thread;

static void print_help(const char *prog)
{
	printf("usage: %s [-f] [-d] [-s] [-o OPT[,OPT...]] MOUNTPOINT\n"
	       "       %s --check [-o OPT[,OPT...]]\n"
	       "\n"
	       "Mount the Uplynk ingest point task collection as a read-only folder:\n"
	       "one folder per task holding state, operation, timestamp and raw.json.\n"
	       "\n"
	       "ingestfs options:\n"
	       "    -o api_url=URL         API base URL (default: https://services.uplynk.com)\n"
	       "    -o endpoint=PATH       collection path (default:\n"
	       "                           /api/v4/managed-slicer/ingest-points/tasks)\n"
	       "    -o ttl=SECONDS         refresh interval, fractions allowed (default: 30)\n"
	       "    -o timeout=SECONDS     limit for connecting and for a stall; an answer must\n"
	       "                           also average 16 KiB/s after that long (default: 10)\n"
	       "    -o credentials=FILE    credentials file (default:\n"
	       "                           $XDG_CONFIG_HOME/ingestfs/credentials, else\n"
	       "                           ~/.config/ingestfs/credentials)\n"
	       "    -o max_response=BYTES  largest API answer accepted, after decompression,\n"
	       "                           K/M/G suffixes (default: 256M)\n"
	       "    -o insecure_http       allow plain http:// to a host that is not loopback\n"
	       "                           (requests can then be replayed and answers forged)\n"
	       "    -o state_dir=DIR       where the last answer, inode numbers and times are\n"
	       "                           kept across restarts (default: $XDG_STATE_HOME or\n"
	       "                           ~/.local/state, or /var/lib for root, + "
	       "/ingestfs/NAME;\n"
	       "                           NAME from api_url, endpoint and user); none: keep\n"
	       "                           nothing\n"
	       "    -o offline_start=yes|no  when the API cannot be reached at start, mount the\n"
	       "                           saved answer and keep retrying (default: yes)\n"
	       "    -o events_max=BYTES    size at which .events, the change feed, is rotated\n"
	       "                           to .events.1; at least 1K (default: 16M)\n"
	       "\n"
	       "general options:\n"
	       "    -h, --help             print this help and exit\n"
	       "    -V, --version          print the version and exit\n"
	       "    --check                test the credentials: one signed request, one line\n"
	       "                           (ok: N tasks from URL ...), exit 0 or 1; no mount;\n"
	       "                           libfuse's options are checked too (exit 2)\n"
	       "    -f                     stay in the foreground, log to stderr\n"
	       "    -d                     debug: foreground, log API requests and FUSE calls\n"
	       "    -s                     single-threaded\n"
	       "    -o max_idle_threads=N  idle FUSE worker threads kept (default: 10)\n"
	       "    -o OPT                 other FUSE mount options, e.g. allow_other; see "
	       "fuse(8)\n"
	       "\n"
	       "mount(8) and fstab: 'ingestfs SOURCE MOUNTPOINT -o ...' (as mount.fuse3 runs it)\n"
	       "is accepted; SOURCE is ignored, and so are noauto, nofail, _netdev, x-*.\n"
	       "\n"
	       "Credentials: a classic key (user_id = ..., api_key = ...) or a scoped key\n"
	       "(the .env file Uplynk hands out, unchanged: KID, SUB, PRIVATE_B64, SCP), in\n"
	       "the credentials file (mode 0600), or in UPLYNK_USER_ID and UPLYNK_API_KEY, or\n"
	       "UPLYNK_KID, UPLYNK_SUB, UPLYNK_PRIVATE_B64 and UPLYNK_SCP.  A read-only\n"
	       "scoped key is the safest choice.\n"
	       "Follow changes: tail -F MOUNTPOINT/.events | grep --line-buffered FAILED\n"
	       "Unmount with: fusermount3 -u MOUNTPOINT\n",
	       prog, prog);
}

static void on_sighup(int sig)
{
	if (sig_cache)
		cache_refresh_now(sig_cache);
}

/*
 * SIGTERM and SIGINT stop the refresher first, while the FUSE loop still
 * answers: a kernel notification in flight may be waiting for one of its
 * replies.  The refresher then ends the loop (on_refresher_stopped).
 */
static void on_sigterm(int sig)
{
	if (sig_cache)
		cache_request_stop(sig_cache);
}

/* only there to interrupt the main thread's wait: no SA_RESTART */
static void on_wakeup(int sig)
{
}

static atomic_bool loop_done;

/*
 * The main thread may be just between checking the exit flag and waiting,
 * where one signal would be lost: keep poking it until its loop is over.
 */
static void on_refresher_stopped(void *arg)
{
	struct timespec pause = { 0, 50 * 1000 * 1000 };

	fuse_session_exit(arg);
	while (!atomic_load(&loop_done)) {
		pthread_kill(main_thread, SIGUSR1);
		nanosleep(&pause, NULL);
	}
}

static int set_handler(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = flags;
	return sigaction(sig, &sa, NULL);
}

/*
 * Our own handlers instead of libfuse's, which would end the loop at once;
 * installed before the first fetch, so SIGTERM or SIGINT cancel it and
 * SIGHUP only asks for an early refresh, and before the refresher starts,
 * whose stop callback signals us.
 */
static int install_signals(struct cache *cache)
{
	sig_cache = cache;
	main_thread = pthread_self();
	atomic_store(&loop_done, false);
	if (set_handler(SIGPIPE, SIG_IGN, 0) < 0 || set_handler(SIGUSR1, on_wakeup, 0) < 0 ||
	    set_handler(SIGHUP, on_sighup, SA_RESTART) < 0 ||
	    set_handler(SIGTERM, on_sigterm, SA_RESTART) < 0 ||
	    set_handler(SIGINT, on_sigterm, SA_RESTART) < 0)
		return -1;
	return 0;
}

static int run_loop(struct fuse_session *se, const struct fuse_cmdline_opts *opts)
{
	struct fuse_loop_config *lc;
	int ret;

	if (opts->singlethread)
		return fuse_session_loop(se);
	lc = fuse_loop_cfg_create();
	if (!lc)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lc, (unsigned int)opts->clone_fd);
	fuse_loop_cfg_set_idle_threads(
		lc, opts->max_idle_threads == UINT_MAX ? 10 : opts->max_idle_threads);
	fuse_loop_cfg_set_max_threads(lc, opts->max_threads);
	ret = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return ret;
}

/* Mount, serve until unmounted or signalled, and tear down in order. */
static int serve(struct fuse_session *se, struct fs *fs, const struct fuse_cmdline_opts *opts,
		 struct cache *cache)
{
	struct cache_notify notify;
	int ret = EXIT_FAIL, loop;

	if (fuse_session_mount(se, opts->mountpoint) < 0)
		return EXIT_FAIL;
	if (fuse_daemonize(opts->foreground) < 0)
		goto out_unmount;
	if (!opts->foreground)
		log_init(true, opts->debug);

	fs_set_session(fs, se);
	notify = fs_notify(fs);
	notify.stopped = on_refresher_stopped;
	notify.stop_arg = se;
	if (cache_start(cache, &notify) < 0) {
		log_err("cannot start the refresher thread");
		goto out_unmount;
	}
	loop = run_loop(se, opts);
	atomic_store(&loop_done, true);
	cache_stop(cache);
	/* 0, or the signal that ended the loop: both are a clean stop */
	ret = loop < 0 ? EXIT_FAIL : EXIT_OK;
	if (loop < 0)
		log_err("FUSE loop failed: %s", strerror(-loop));

out_unmount:
	fuse_session_unmount(se);
	return ret;
}

/* The credentials, and the API URL a scoped key's ROOT_URL gives; 0 or -1 (said). */
static int load_creds(struct config *cfg, struct creds *creds)
{
	char err[512];

	if (creds_load(cfg->credentials, creds, err, sizeof(err)) < 0) {
		fprintf(stderr, "ingestfs: %s\n", err);
		return -1;
	}
	if (config_take_root_url(cfg, creds->root_url) < 0) {
		fprintf(stderr, "ingestfs: %s\n", cfg->error);
		creds_wipe(creds);
		return -1;
	}
	return 0;
}

/*
 * ingestfs --check: libfuse's own options (allow_other, max_threads...)
 * are checked as a mount would, by a session that is never mounted, so a
 * typo in an fstab line shows here too.  -1 when libfuse refused one (it
 * has said which).
 */
static int check_fuse_options(struct fuse_args *args)
{
	struct fuse_cmdline_opts opts;
	struct fuse_session *se;

	memset(&opts, 0, sizeof(opts));
	if (fuse_parse_cmdline(args, &opts) != 0)
		return -1;
	free(opts.mountpoint);
	se = fuse_session_new(args, fs_ops(), sizeof(*fs_ops()), NULL);
	if (!se)
		return -1;
	fuse_session_destroy(se);
	return 0;
}

/* ingestfs --check: one request, one line, 0 or 1; nothing mounted. */
static int run_check(struct config *cfg)
{
	struct creds creds;
	char line[512];
	int ret;

	if (load_creds(cfg, &creds) < 0)
		return EXIT_FAIL;
	if (http_global_init() < 0) {
		fprintf(stderr, "ingestfs: cannot initialise libcurl\n");
		creds_wipe(&creds);
		return EXIT_FAIL;
	}
	ret = check_credentials(cfg, &creds, line, sizeof(line));
	creds_wipe(&creds);
	http_global_cleanup();
	if (ret < 0) {
		fprintf(stderr, "ingestfs: %s\n", line);
		return EXIT_FAIL;
	}
	printf("%s\n", line);
	return EXIT_OK;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	struct config cfg;
	struct creds creds;
	struct fuse_session *se;
	struct state_dir *state = NULL;
	struct cache *cache;
	struct fs *fs;
	char err[512];
	int ret = EXIT_USAGE;

	memset(&opts, 0, sizeof(opts));
	/* no core dump and no ptrace by the same user: memory holds the key */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#ifdef __GLIBC__
	/* big buffers (answers, arenas) always from mmap, so freeing returns them */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
	if (config_init(&cfg) < 0) {
		fprintf(stderr, "ingestfs: out of memory\n");
		return EXIT_FAIL;
	}
	if (config_parse(&args, &cfg) < 0) {
		fprintf(stderr, "ingestfs: %s\n", cfg.error);
		goto out_free_args;
	}
	if (cfg.show_help) {
		print_help(argv[0]);
		ret = EXIT_OK;
		goto out_free_args;
	}
	if (cfg.show_version) {
		printf("ingestfs %s (libfuse %s)\n", INGESTFS_VERSION, fuse_pkgversion());
		ret = EXIT_OK;
		goto out_free_args;
	}
	if (cfg.check) {
		log_init(false, false);
		if (check_fuse_options(&args) < 0)
			goto out_free_args;
		ret = run_check(&cfg);
		goto out_free_args;
	}
	if (fuse_parse_cmdline(&args, &opts) != 0)
		goto out_free_args;
	if (!opts.mountpoint) {
		fprintf(stderr, "ingestfs: no mount point given; see ingestfs --help\n");
		goto out_free_args;
	}
	/* read-only always wins: it comes after anything the user passed */
	if (fuse_opt_insert_arg(&args, 1, "-ofsname=ingestfs,subtype=ingestfs") < 0 ||
	    fuse_opt_add_arg(&args, "-oro,default_permissions") < 0)
		goto out_free_args;
	log_init(false, opts.debug);

	fs = fs_new(getuid(), getgid());
	if (!fs)
		goto out_free_args;
	/* a push may wait on a page that another worker's READ fills (fs_push.c) */
	fs_set_push(fs, !opts.singlethread && opts.max_threads >= 2);
	/* libfuse checks its options here, before credentials or network */
	se = fuse_session_new(&args, fs_ops(), sizeof(*fs_ops()), fs);
	if (!se)
		goto out_fs; /* a usage error: libfuse has said which option */

	ret = EXIT_FAIL;
	if (load_creds(&cfg, &creds) < 0)
		goto out_session;
	/* the folder is named after the user, so it comes after the credentials */
	if (!cfg.no_state && state_dir_open(cfg.state_dir, cfg.api_url, cfg.endpoint,
					    creds_owner(&creds), &state, err, sizeof(err)) < 0) {
		fprintf(stderr, "ingestfs: %s\n", err);
		creds_wipe(&creds);
		goto out_session;
	}
	if (http_global_init() < 0) {
		fprintf(stderr, "ingestfs: cannot initialise libcurl\n");
		creds_wipe(&creds);
		state_dir_close(state);
		goto out_session;
	}
	cache = cache_new(&cfg, &creds, state);
	creds_wipe(&creds);
	if (!cache) {
		fprintf(stderr, "ingestfs: out of memory\n");
		goto out_http;
	}
	fs_set_cache(fs, cache);
	if (install_signals(cache) < 0) {
		fprintf(stderr, "ingestfs: cannot install signal handlers: %s\n", strerror(errno));
		goto out_cache;
	}
	/* the first fetch comes before mounting, so a bad start mounts nothing */
	if (cache_first_fetch(cache, err, sizeof(err)) < 0) {
		fprintf(stderr, "ingestfs: %s\n", err);
		goto out_signals;
	}
	if (cache_stop_requested(cache)) {
		fprintf(stderr, "ingestfs: stopped by a signal before mounting\n");
		goto out_signals;
	}
	ret = serve(se, fs, &opts, cache);

out_signals:
	sig_cache = NULL;
out_cache:
	cache_free(cache);
out_http:
	http_global_cleanup();
out_session:
	fuse_session_destroy(se);
out_fs:
	fs_free(fs);
out_free_args:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	config_free(&cfg);
	return ret;
}
