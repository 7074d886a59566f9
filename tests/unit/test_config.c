// SPDX-License-Identifier: MIT
/* config: option parsing and the credentials file. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testkey.h"
#include "config.h"
#include "creds.h"

/* Parse a NULL-terminated argv; returns config_parse's result. */
static int parse(struct config *cfg, struct fuse_args *args, const char **argv)
{
	int argc = 0;

	while (argv[argc])
		argc++;
	*args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	for (int i = 0; i < argc; i++)
		fuse_opt_add_arg(args, argv[i]);
	config_init(cfg);
	return config_parse(args, cfg);
}

static bool args_have(const struct fuse_args *args, const char *s)
{
	for (int i = 0; i < args->argc; i++)
		if (strstr(args->argv[i], s))
			return true;
	return false;
}

static void test_options(void)
{
	struct fuse_args args;
	struct config cfg;

	{
		const char *argv[] = { "ingestfs", "/mnt", NULL };

		CHECK(parse(&cfg, &args, argv) == 0);
		CHECK_STR(cfg.api_url, "https://services.uplynk.com");
		CHECK_STR(cfg.endpoint, "/api/v4/managed-slicer/ingest-points/tasks");
		CHECK(cfg.ttl == 30 && cfg.timeout == 10 && cfg.credentials == NULL);
		CHECK(cfg.max_response == 256u << 20);
		fuse_opt_free_args(&args);
		config_free(&cfg);
	}
	{
		const char *argv[] = {
			"ingestfs", "-f",
			"-o",	    "ttl=0.5,api_url=http://127.0.0.1:8080,allow_other",
			"-o",	    "timeout=2,credentials=/tmp/c",
			"/mnt",	    NULL
		};

		CHECK(parse(&cfg, &args, argv) == 0);
		CHECK(cfg.ttl == 0.5 && cfg.timeout == 2);
		CHECK_STR(cfg.api_url, "http://127.0.0.1:8080");
		CHECK_STR(cfg.credentials, "/tmp/c");
		/* ours are consumed; libfuse's stay */
		CHECK(args_have(&args, "allow_other"));
		CHECK(!args_have(&args, "ttl="));
		CHECK(!args_have(&args, "api_url="));
		CHECK(args_have(&args, "-f") && args_have(&args, "/mnt"));
		fuse_opt_free_args(&args);
		config_free(&cfg);
	}
	{
		/* as mount.fuse3 runs us for an fstab line */
		const char *argv[] = {
			"ingestfs",
			"ingestfs",
			"/mnt/tasks",
			"-o",
			"rw,credentials=/etc/c,ttl=30,dev,suid,noauto,nofail,_netdev,"
			"x-systemd.automount,x-systemd.idle-timeout=60,comment=x",
			NULL
		};

		CHECK(parse(&cfg, &args, argv) == 0);
		CHECK_STR(cfg.source, "ingestfs");
		CHECK_STR(cfg.mountpoint, "/mnt/tasks");
		CHECK(cfg.ttl == 30);
		CHECK(!args_have(&args, "noauto") && !args_have(&args, "nofail") &&
		      !args_have(&args, "_netdev") && !args_have(&args, "x-systemd") &&
		      !args_have(&args, "comment"));
		CHECK(args_have(&args, "rw") && args_have(&args, "suid"));
		CHECK(args_have(&args, "/mnt/tasks"));
		for (int i = 1; i < args.argc; i++)
			CHECK(strcmp(args.argv[i], "ingestfs") != 0); /* the source is gone */
		fuse_opt_free_args(&args);
		config_free(&cfg);
	}
	{
		const char *argv[] = { "ingestfs", "a", "b", "c", NULL };

		CHECK(parse(&cfg, &args, argv) < 0 && strstr(cfg.error, "too many"));
		fuse_opt_free_args(&args);
		config_free(&cfg);
	}
	{
		const char *argv[] = { "ingestfs", "--help", NULL };

		CHECK(parse(&cfg, &args, argv) == 0 && cfg.show_help);
		fuse_opt_free_args(&args);
		config_free(&cfg);
	}
	{
		const char *argv[] = { "ingestfs", "-V", NULL };

		CHECK(parse(&cfg, &args, argv) == 0 && cfg.show_version);
		fuse_opt_free_args(&args);
		config_free(&cfg);
	}
	{
		static const char *const bad[] = {
			"ttl=abc",
			"ttl=-1",
			"ttl=0",
			"ttl=1e9",
			"ttl=",
			"ttl=inf",
			"ttl=nan",
			"ttl=0x10",
			"timeout=0",
			"timeout=99999",
			"api_url=ftp://x",
			"api_url=http://",
			"api_url=http://u:p@host",
			"api_url=https://h/?q",
			"api_url=http://h x",
			"endpoint=/v4/tasks",
			"endpoint=/api/x?y",
			"max_response=12",
			"max_response=1T",
			"credentials=",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			const char *argv[] = { "ingestfs", "-o", bad[i], "/mnt", NULL };

			CHECK(parse(&cfg, &args, argv) < 0);
			CHECK(cfg.error[0] != '\0');
			fuse_opt_free_args(&args);
			config_free(&cfg);
		}
	}
	{
		const char *argv[] = { "ingestfs", "-o", "max_response=1M,endpoint=/api/v4/x",
				       "/mnt", NULL };

		CHECK(parse(&cfg, &args, argv) == 0);
		CHECK(cfg.max_response == 1u << 20);
		CHECK_STR(cfg.endpoint, "/api/v4/x");
		fuse_opt_free_args(&args);
		config_free(&cfg);
	}
}

static int cparse(const char *text, struct creds *c, char *err)
{
	err[0] = '\0';
	return creds_parse(text, strlen(text), c, err, 200);
}

static void test_creds_parse(void)
{
	struct creds c;
	char err[200];

	CHECK(cparse("# comment\n\nuser_id = abc\n  api_key=k3y \n", &c, err) == 0);
	CHECK_STR(c.user_id, "abc");
	CHECK_STR(c.api_key, "k3y");
	CHECK(cparse("user_id = abc\napi_key = k", &c, err) == 0); /* no final newline */

	CHECK(cparse("user_id = abc\n", &c, err) < 0 && strstr(err, "api_key"));
	CHECK(c.user_id[0] == '\0'); /* wiped on failure */
	CHECK(cparse("api_key = k\n", &c, err) < 0 && strstr(err, "user_id"));
	CHECK(cparse("", &c, err) < 0);
	CHECK(cparse("user_id abc\napi_key = k\n", &c, err) < 0 && strstr(err, "line 1"));
	CHECK(cparse("user_id = abc\r\napi_key = k\r\n", &c, err) < 0 && strstr(err, "CRLF"));
	CHECK(cparse("\xef\xbb\xbfuser_id = abc\napi_key = k\n", &c, err) < 0 &&
	      strstr(err, "byte order mark"));
	CHECK(cparse("user_id = \"abc\"\napi_key = k\n", &c, err) < 0 && strstr(err, "quoted"));
	CHECK(cparse("user_id = a\nuser_id = b\napi_key = k\n", &c, err) < 0 &&
	      strstr(err, "twice"));
	CHECK(cparse("user_id =\napi_key = k\n", &c, err) < 0 && strstr(err, "empty"));
	CHECK(cparse("user = a\napi_key = k\n", &c, err) < 0 && strstr(err, "unknown key"));
	CHECK(cparse("user_id = a b\napi_key = k\n", &c, err) < 0);

	/* errors never echo the secret */
	CHECK(cparse("user_id = a\napi_key = \"s3cr3t\"\n", &c, err) < 0 && !strstr(err, "s3cr3t"));
	CHECK(cparse("user_id = a\napi_key = s3cr3t\napi_key = s3cr3t\n", &c, err) < 0 &&
	      !strstr(err, "s3cr3t"));
	/* a bare base64 secret, or a mistyped separator, is not echoed either */
	CHECK(cparse("user_id = a\nAbCdEfSECRETKEYSECRETKEY0123456789==\n", &c, err) < 0 &&
	      !strstr(err, "SECRET") && strstr(err, "line 2"));
	CHECK(cparse("user_id = a\napi_key: SECRETSECRET=\n", &c, err) < 0 &&
	      !strstr(err, "SECRET"));
	CHECK(cparse("user_id = a\nsecretsecret=x\napi_key = k\n", &c, err) < 0 &&
	      strstr(err, "unknown key"));
	CHECK(cparse("userid = a\napi_key = k\n", &c, err) < 0 && strstr(err, "'userid'"));
	{
		char big[2100];

		memset(big, 'x', sizeof(big));
		memcpy(big, "api_key = ", 10);
		big[sizeof(big) - 1] = '\0';
		CHECK(cparse(big, &c, err) < 0 && strstr(err, "longer"));
	}
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		perror(path);
	close(fd);
	chmod(path, mode);
}

static void test_transport(void)
{
	static const char *const loop[] = { "http://127.0.0.1:8080", "http://127.1.2.3/x",
					    "http://localhost", "http://LOCALHOST:1/",
					    "http://[::1]:99/api" };
	static const char *const far[] = { "http://example.com", "http://127.0.0.1.evil.net",
					   "http://128.0.0.1",	 "http://localhost.evil.net",
					   "http://[::2]",	 "http://10.0.0.1:80",
					   "http://127.0.0.256", "http://1270.0.0.1" };

	for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++)
		CHECK(config_url_is_loopback(loop[i]));
	for (size_t i = 0; i < sizeof(far) / sizeof(far[0]); i++)
		CHECK(!config_url_is_loopback(far[i]));

	/* plain http:// elsewhere only when the user says so */
	{
		const char *argv[] = { "ingestfs", "-o", "api_url=http://example.com", "/mnt",
				       NULL };
		const char *yes[] = { "ingestfs", "-o", "api_url=http://example.com,insecure_http",
				      "/mnt", NULL };
		struct fuse_args args;
		struct config cfg;

		CHECK(parse(&cfg, &args, argv) < 0 && strstr(cfg.error, "insecure_http"));
		CHECK(!cfg.insecure_http);
		fuse_opt_free_args(&args);
		config_free(&cfg);
		CHECK(parse(&cfg, &args, yes) == 0 && cfg.insecure_http);
		CHECK(!args_have(&args, "insecure_http")); /* ours, not libfuse's */
		fuse_opt_free_args(&args);
		config_free(&cfg);
	}
}

static void test_creds_load(void)
{
	char dir[] = "/tmp/ingestfs-test-XXXXXX", path[256], err[512];
	struct creds c;

	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/credentials", dir);
	unsetenv("UPLYNK_USER_ID");
	unsetenv("UPLYNK_API_KEY");

	CHECK(creds_load(path, &c, err, sizeof(err)) < 0);
	CHECK(strstr(err, "no credentials") && strstr(err, path));

	write_file(path, "user_id = u1\napi_key = k1\n", 0600);
	CHECK(creds_load(path, &c, err, sizeof(err)) == 0);
	CHECK_STR(c.user_id, "u1");
	CHECK_STR(c.api_key, "k1");

	write_file(path, "user_id = u1\napi_key = k1\n", 0644);
	CHECK(creds_load(path, &c, err, sizeof(err)) < 0 && strstr(err, "chmod 600"));
	write_file(path, "user_id = u1\napi_key = k1\n", 0604);
	CHECK(creds_load(path, &c, err, sizeof(err)) < 0);
	write_file(path, "user_id = u1\napi_key = k1\n", 0640);
	CHECK(creds_load(path, &c, err, sizeof(err)) < 0);

	/* both variables win over the file; one alone does not */
	write_file(path, "user_id = u1\napi_key = k1\n", 0600);
	setenv("UPLYNK_USER_ID", "envuser", 1);
	CHECK(creds_load(path, &c, err, sizeof(err)) == 0);
	CHECK_STR(c.user_id, "u1");
	CHECK(getenv("UPLYNK_USER_ID") == NULL); /* read, and gone */
	setenv("UPLYNK_USER_ID", "envuser", 1);
	setenv("UPLYNK_API_KEY", "envkey", 1);
	{
		char *key = getenv("UPLYNK_API_KEY");

		CHECK(creds_load(path, &c, err, sizeof(err)) == 0);
		CHECK_STR(c.user_id, "envuser");
		CHECK_STR(c.api_key, "envkey");
		/* wiped where it lay, not only unset: /proc/PID/environ shows that memory */
		CHECK(key[0] == '\0' && key[5] == '\0');
		CHECK(getenv("UPLYNK_API_KEY") == NULL && getenv("UPLYNK_USER_ID") == NULL);
	}

	/* a FIFO is refused at once instead of waiting for a writer */
	{
		char fifo[300];

		snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
		CHECK(mkfifo(fifo, 0600) == 0);
		CHECK(creds_load(fifo, &c, err, sizeof(err)) < 0 &&
		      strstr(err, "not a regular file"));
		unlink(fifo);
	}

	/* a link is followed, and what it points to is checked */
	{
		char link[300];

		snprintf(link, sizeof(link), "%s/link", dir);
		CHECK(symlink(path, link) == 0);
		CHECK(creds_load(link, &c, err, sizeof(err)) == 0 && strcmp(c.api_key, "k1") == 0);
		if (geteuid() == 0) {
			/* someone else's file, even private, is not ours to trust */
			CHECK(chown(path, 65534, 65534) == 0);
			CHECK(creds_load(path, &c, err, sizeof(err)) < 0 &&
			      strstr(err, "owned by uid 65534"));
			CHECK(creds_load(link, &c, err, sizeof(err)) < 0 &&
			      strstr(err, "owned by uid 65534"));
			CHECK(chown(path, 0, 0) == 0);
			CHECK(creds_load(path, &c, err, sizeof(err)) == 0);
		}
		unlink(link);
	}

	/* the default path follows XDG_CONFIG_HOME */
	setenv("XDG_CONFIG_HOME", dir, 1);
	{
		char *def = creds_default_path(), want[300];

		snprintf(want, sizeof(want), "%s/ingestfs/credentials", dir);
		CHECK_STR(def, want);
		free(def);
	}
	unsetenv("XDG_CONFIG_HOME");
	setenv("HOME", "/home/someone", 1);
	{
		char *def = creds_default_path();

		CHECK_STR(def, "/home/someone/.config/ingestfs/credentials");
		free(def);
	}
	unlink(path);
	rmdir(dir);
}

/* a scoped key's .env file made from @fmt and the keys that follow */
__attribute__((format(printf, 3, 4))) static int envparse(struct creds *c, char *err,
							  const char *fmt, ...)
{
	char text[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return cparse(text, c, err);
}

static void test_creds_scoped(void)
{
	EVP_PKEY *p256 = EVP_EC_gen("P-256"), *rsa = EVP_RSA_gen(1024);
	char *b64 = p256 ? private_b64(p256, 0) : NULL, *rb64 = rsa ? private_b64(rsa, 0) : NULL;
	const char *scopes[CREDS_SCOPES];
	struct creds c;
	char err[200], tail[16];

	CHECK(b64 && rb64);
	if (!b64 || !rb64)
		goto out;
	snprintf(tail, sizeof(tail), "%s", b64 + strlen(b64) - 12);

	/* the downloaded file as it comes, with lines ingestfs does not need */
	CHECK(envparse(&c, err,
		       "KID=kid-1\nSUB=sub-1\nPRIVATE_B64=%s\nSCP=ingest:read,slicer:read\n"
		       "ROOT_URL=https://services.uplynk.com\nNAME=my key\n",
		       b64) == 0);
	CHECK(c.kind == CREDS_SCOPED);
	CHECK_STR(c.kid, "kid-1");
	CHECK_STR(c.sub, "sub-1");
	CHECK_STR(c.private_b64, b64);
	CHECK_STR(c.scp, "ingest:read,slicer:read");
	CHECK_STR(c.root_url, "https://services.uplynk.com");
	CHECK_STR(creds_owner(&c), "sub-1");
	CHECK(creds_split_scopes(c.scp, scopes, CREDS_SCOPES) == 2);
	CHECK_STR(scopes[0], "ingest:read");
	CHECK_STR(scopes[1], "slicer:read");
	/* dotenv habits: quotes, export, blanks around the commas */
	CHECK(envparse(&c, err,
		       "export KID=\"kid-1\"\nSUB='sub-1'\nPRIVATE_B64=\"%s\"\n"
		       "SCP=\" a:read , b:read \"\n",
		       b64) == 0);
	CHECK_STR(c.kid, "kid-1");
	CHECK_STR(c.sub, "sub-1");
	CHECK_STR(c.scp, "a:read,b:read");
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nPRIVATE_B64=%s\nSCP=one\n", b64) == 0);
	CHECK(creds_split_scopes(c.scp, scopes, CREDS_SCOPES) == 1);
	CHECK_STR(creds_owner(&(struct creds){ .kind = CREDS_CLASSIC, .user_id = "u" }), "u");

	/* each field is needed, and not empty */
	CHECK(envparse(&c, err, "SUB=s\nPRIVATE_B64=%s\nSCP=a\n", b64) < 0 &&
	      strstr(err, "no KID line"));
	CHECK(envparse(&c, err, "KID=k\nPRIVATE_B64=%s\nSCP=a\n", b64) < 0 &&
	      strstr(err, "no SUB line"));
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nSCP=a\n%s", "") < 0 &&
	      strstr(err, "no PRIVATE_B64 line"));
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nPRIVATE_B64=%s\n", b64) < 0 &&
	      strstr(err, "no SCP line"));
	CHECK(c.kid[0] == '\0' && c.private_b64[0] == '\0'); /* wiped on failure */
	CHECK(envparse(&c, err, "KID=\nSUB=s\nPRIVATE_B64=%s\nSCP=a\n", b64) < 0 &&
	      strstr(err, "line 1: KID is empty"));
	CHECK(envparse(&c, err, "KID=k\nSUB=\"\"\nPRIVATE_B64=%s\nSCP=a\n", b64) < 0 &&
	      strstr(err, "SUB is empty"));
	CHECK(envparse(&c, err, "KID=\"k\nSUB=s\nPRIVATE_B64=%s\nSCP=a\n", b64) < 0 &&
	      strstr(err, "unmatched quote"));
	/* SCP is a list of names */
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nPRIVATE_B64=%s\nSCP=a,,b\n", b64) < 0 &&
	      strstr(err, "line 4: SCP is not a list"));
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nPRIVATE_B64=%s\nSCP=a,\n", b64) < 0 &&
	      strstr(err, "SCP is not a list"));
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nPRIVATE_B64=%s\nSCP=a b\n", b64) < 0 &&
	      strstr(err, "SCP is not a list"));
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nPRIVATE_B64=%s\nSCP=a\\b\n", b64) < 0 &&
	      strstr(err, "SCP is not a list"));
	/* PRIVATE_B64 must be a P-256 key; the error names the field, never the value */
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nPRIVATE_B64=%s\nSCP=a\n", rb64) < 0 &&
	      strstr(err, "line 3: PRIVATE_B64") && strstr(err, "P-256"));
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nPRIVATE_B64=%s\nSCP=a\n", "bm90IGEga2V5") < 0 &&
	      strstr(err, "PRIVATE_B64") && !strstr(err, "bm90"));
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nPRIVATE_B64=%s\nPRIVATE_B64=%s\nSCP=a\n", b64, b64) <
		      0 &&
	      strstr(err, "given twice") && !strstr(err, tail));
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nPRIVATE_B64=\"%s\nSCP=a\n", b64) < 0 &&
	      !strstr(err, tail));
	/* both kinds, or neither */
	CHECK(envparse(&c, err, "user_id=u\napi_key=k\nKID=k\nSUB=s\nPRIVATE_B64=%s\nSCP=a\n",
		       b64) < 0 &&
	      strstr(err, "both") && !strstr(err, tail));
	CHECK(cparse("user_id=u\nSCP=a\n", &c, err) < 0 && strstr(err, "both"));
	CHECK(cparse("# nothing\nNAME=x\n", &c, err) < 0 && strstr(err, "holds no key"));
	CHECK(cparse("ROOT_URL=https://x\n", &c, err) < 0 && strstr(err, "holds no key"));
	/* lower-case unknown keys are still typos; upper-case ones belong to the .env file */
	CHECK(envparse(&c, err, "KID=k\nSUB=s\nPRIVATE_B64=%s\nSCP=a\nkid=x\n", b64) < 0 &&
	      strstr(err, "unknown key 'kid'"));
out:
	free(b64);
	free(rb64);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(rsa);
}

static void test_creds_env_scoped(void)
{
	EVP_PKEY *p256 = EVP_EC_gen("P-256");
	char *b64 = p256 ? private_b64(p256, 0) : NULL, err[512], *seen;
	struct creds c;

	CHECK(b64 != NULL);
	if (!b64)
		goto out;
	unsetenv("UPLYNK_USER_ID");
	unsetenv("UPLYNK_API_KEY");
	setenv("UPLYNK_KID", "kid-e", 1);
	setenv("UPLYNK_SUB", "sub-e", 1);
	setenv("UPLYNK_PRIVATE_B64", b64, 1);
	setenv("UPLYNK_SCP", "a,b", 1);
	seen = getenv("UPLYNK_PRIVATE_B64");
	CHECK(creds_load("/nonexistent", &c, err, sizeof(err)) == 0);
	CHECK(c.kind == CREDS_SCOPED);
	CHECK_STR(c.kid, "kid-e");
	CHECK_STR(c.private_b64, b64);
	/* read, wiped where it lay, and gone */
	CHECK(seen[0] == '\0' && seen[10] == '\0');
	CHECK(!getenv("UPLYNK_KID") && !getenv("UPLYNK_SUB") && !getenv("UPLYNK_PRIVATE_B64") &&
	      !getenv("UPLYNK_SCP"));
	creds_wipe(&c);

	/* the same rules as in a file */
	setenv("UPLYNK_KID", "kid-e", 1);
	setenv("UPLYNK_SUB", "sub-e", 1);
	setenv("UPLYNK_PRIVATE_B64", "bm90IGEga2V5", 1);
	setenv("UPLYNK_SCP", "a", 1);
	CHECK(creds_load("/nonexistent", &c, err, sizeof(err)) < 0 && strstr(err, "PRIVATE_B64") &&
	      !strstr(err, "bm90"));
	CHECK(!getenv("UPLYNK_PRIVATE_B64"));
	setenv("UPLYNK_KID", "kid-e\nKID=x", 1);
	setenv("UPLYNK_SUB", "sub-e", 1);
	setenv("UPLYNK_PRIVATE_B64", b64, 1);
	setenv("UPLYNK_SCP", "a", 1);
	CHECK(creds_load("/nonexistent", &c, err, sizeof(err)) < 0 &&
	      strstr(err, "UPLYNK_KID holds a line break"));

	/* both kinds at once */
	setenv("UPLYNK_USER_ID", "u", 1);
	setenv("UPLYNK_API_KEY", "k", 1);
	setenv("UPLYNK_KID", "kid-e", 1);
	setenv("UPLYNK_SUB", "sub-e", 1);
	setenv("UPLYNK_PRIVATE_B64", b64, 1);
	setenv("UPLYNK_SCP", "a", 1);
	CHECK(creds_load("/nonexistent", &c, err, sizeof(err)) < 0 && strstr(err, "both") &&
	      strstr(err, "keep one kind"));
	CHECK(!getenv("UPLYNK_API_KEY") && !getenv("UPLYNK_PRIVATE_B64"));
out:
	free(b64);
	EVP_PKEY_free(p256);
}

static void test_root_url(void)
{
	const char *argv[] = { "ingestfs", "/mnt", NULL };
	const char *given[] = { "ingestfs", "-o", "api_url=http://127.0.0.1:9", "/mnt", NULL };
	struct fuse_args args;
	struct config cfg;

	/* the origin of ROOT_URL, unless api_url= was given */
	CHECK(parse(&cfg, &args, argv) == 0);
	CHECK(config_take_root_url(&cfg, "") == 0);
	CHECK_STR(cfg.api_url, "https://services.uplynk.com");
	CHECK(config_take_root_url(&cfg, "https://example.net:8443/api/v4/") == 0);
	CHECK_STR(cfg.api_url, "https://example.net:8443");
	CHECK(config_take_root_url(&cfg, "http://127.0.0.1:7") == 0);
	CHECK_STR(cfg.api_url, "http://127.0.0.1:7");
	CHECK(config_take_root_url(&cfg, "http://example.net") < 0 &&
	      strstr(cfg.error, "ROOT_URL") && strstr(cfg.error, "insecure_http"));
	CHECK(config_take_root_url(&cfg, "ftp://example.net") < 0 && strstr(cfg.error, "ROOT_URL"));
	fuse_opt_free_args(&args);
	config_free(&cfg);
	CHECK(parse(&cfg, &args, given) == 0);
	CHECK(config_take_root_url(&cfg, "https://example.net") == 0);
	CHECK_STR(cfg.api_url, "http://127.0.0.1:9");
	fuse_opt_free_args(&args);
	config_free(&cfg);
}

int main(void)
{
	test_options();
	test_creds_parse();
	test_creds_load();
	test_creds_scoped();
	test_creds_env_scoped();
	test_root_url();
	test_transport();
	return check_done("test_config");
}
