/* test_config.c - the server's configuration: precedence (flag > env > file > default),
 * every option's bad values with their exact messages, --help/--version, cross-option
 * checks and the redacted JSON view. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "rm_version.h"
#include "sysres.h"
#include "test_support.h"

typedef enum { K_STR, K_INT, K_BOOL, K_BYTES } kind_t;

/* Every option as the server documents it: name, environment variable, kind, bounds. */
typedef struct opt_case {
  const char *name;
  const char *env;
  kind_t kind;
  long long min, max;
} opt_case_t;

static const opt_case_t all_opts[] = {
    {"listen", "RM_LISTEN", K_STR, 0, 0},
    {"threads", "RM_THREADS", K_INT, 0, 256},
    {"workers", "RM_WORKERS", K_INT, 0, 1024},
    {"request-slots", "RM_REQUEST_SLOTS", K_INT, 1, 4096},
    {"max-message-bytes", "RM_MAX_MESSAGE_BYTES", K_INT, 1024, 2147483647},
    {"max-nodes", "RM_MAX_NODES", K_INT, 1, 1000000},
    {"max-audio-samples", "RM_MAX_AUDIO_SAMPLES", K_INT, 1, INT64_MAX},
    {"max-input-bytes", "RM_MAX_INPUT_BYTES", K_INT, 1, INT64_MAX},
    {"max-items", "RM_MAX_ITEMS", K_INT, 1, INT64_MAX},
    {"max-concurrent", "RM_MAX_CONCURRENT", K_INT, 1, 100000},
    {"max-execution-ms", "RM_MAX_EXECUTION_MS", K_INT, 1, 86400000},
    {"send-timeout-ms", "RM_SEND_TIMEOUT_MS", K_INT, 0, 86400000},
    {"inline-max-bytes", "RM_INLINE_MAX_BYTES", K_INT, 0, 2147483647},
    {"pipeline-cache", "RM_PIPELINE_CACHE", K_BOOL, 0, 1},
    {"warm-call", "RM_WARM_CALL", K_BOOL, 0, 1},
    {"grace-ms", "RM_GRACE_MS", K_INT, 0, 3600000},
    {"auth-token-file", "RM_AUTH_TOKEN_FILE", K_STR, 0, 0},
    {"auth-tokens", "RM_AUTH_TOKENS", K_STR, 0, 0},
    {"require-auth", "RM_REQUIRE_AUTH", K_BOOL, 0, 1},
    {"health-needs-token", "RM_HEALTH_NEEDS_TOKEN", K_BOOL, 0, 1},
    {"tls-cert", "RM_TLS_CERT", K_STR, 0, 0},
    {"tls-key", "RM_TLS_KEY", K_STR, 0, 0},
    {"tls-client-ca", "RM_TLS_CLIENT_CA", K_STR, 0, 0},
    {"tls-require-client-cert", "RM_TLS_REQUIRE_CLIENT_CERT", K_BOOL, 0, 1},
    {"log-level", "RM_LOG_LEVEL", K_STR, 0, 0},
    {"log-stream", "RM_LOG_STREAM", K_STR, 0, 0},
    {"metrics-listen", "RM_METRICS_LISTEN", K_STR, 0, 0},
    {"stats-max-pipelines", "RM_STATS_MAX_PIPELINES", K_INT, 0, 100000},
    {"keepalive-time-ms", "RM_KEEPALIVE_TIME_MS", K_INT, 1000, 2147483647},
    {"keepalive-timeout-ms", "RM_KEEPALIVE_TIMEOUT_MS", K_INT, 1000, 2147483647},
    {"keepalive-permit-without-calls", "RM_KEEPALIVE_PERMIT_WITHOUT_CALLS", K_BOOL, 0, 1},
    {"min-ping-interval-ms", "RM_MIN_PING_INTERVAL_MS", K_INT, 0, 2147483647},
    {"max-connection-idle-ms", "RM_MAX_CONNECTION_IDLE_MS", K_INT, 0, 2147483647},
    {"max-connection-age-ms", "RM_MAX_CONNECTION_AGE_MS", K_INT, 0, 2147483647},
    {"max-connection-age-grace-ms", "RM_MAX_CONNECTION_AGE_GRACE_MS", K_INT, 0, 2147483647},
    {"max-concurrent-streams", "RM_MAX_CONCURRENT_STREAMS", K_INT, 1, 2147483647},
    {"max-metadata-bytes", "RM_MAX_METADATA_BYTES", K_INT, 1024, 16777216},
    {"max-memory", "RM_MAX_MEMORY", K_BYTES, 0, INT64_MAX},
    {"max-core-memory", "RM_MAX_CORE_MEMORY", K_BYTES, 0, INT64_MAX},
    {"max-request-memory", "RM_MAX_REQUEST_MEMORY", K_BYTES, 1 << 20, INT64_MAX},
    {"warm-bytes", "RM_WARM_BYTES", K_BYTES, 0, 12 << 20},
    {"memory-wait-ms", "RM_MEMORY_WAIT_MS", K_INT, 0, 600000},
    {"max-sessions", "RM_MAX_SESSIONS", K_INT, 1, 100000},
    {"session-idle-timeout-ms", "RM_SESSION_IDLE_TIMEOUT_MS", K_INT, 1, 86400000},
    {"max-session-ms", "RM_MAX_SESSION_MS", K_INT, 0, 31536000000LL},
};
#define N_ALL (sizeof all_opts / sizeof all_opts[0])

static char cfg_path[64];

static void clear_env(void) {
  for (size_t i = 0; i < N_ALL; i++)
    unsetenv(all_opts[i].env);
  unsetenv("RM_CONFIG");
}

/* Writes text (single quotes for double) to the suite's config file; returns its path. */
static const char *write_file(const char *json) {
  char *text = rm_test_unquote(json);
  FILE *f = fopen(cfg_path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
  rm_free(text);
  return cfg_path;
}

/* rm_config_load over a NULL-terminated argument list (argv[0] added). */
static int load(rm_config_t *cfg, rm_error_t *err, const char *const *args) {
  char *argv[32] = {"remotemedia-server"};
  int argc = 1;
  while (args && args[argc - 1] && argc < 31) {
    argv[argc] = (char *)args[argc - 1];
    argc++;
  }
  rm_error_clear(err);
  return rm_config_load(cfg, argc, argv, err);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Loads args, expects code and the exact message (and field), and destroys cfg. */
static void expect_fail(const char *const *args, int code, const char *field, const char *msg,
                        unsigned line) {
  rm_config_t cfg;
  rm_error_t err;
  int rc = load(&cfg, &err, args);
  rm__test_err(rc, &err, code, "", field, msg, line, __FILE__);
  rm_config_destroy(&cfg);
}
#define EXPECT_FAIL(args, code, field, msg) expect_fail((args), (code), (field), (msg), __LINE__)

static void test_defaults(void) {
  rm_config_t cfg;
  rm_error_t err;
  RM_ASSERT_INT(load(&cfg, &err, NULL), 0);
  RM_ASSERT_INT(cfg.action, RM_CONFIG_SERVE);
  RM_ASSERT_STR(cfg.listen, "127.0.0.1:50051");
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  RM_ASSERT_INT(cfg.threads, n > 0 ? (n + 1) / 2 : 1); /* 0 = one per two cores, rounded up */
  RM_ASSERT_INT(cfg.workers, 2 * cfg.threads);
  RM_ASSERT_INT(cfg.request_slots, 64);
  RM_ASSERT_INT(cfg.max_message_bytes, 67108864);
  RM_ASSERT_INT(cfg.max_nodes, 256);
  RM_ASSERT_INT(cfg.max_concurrent, 64);
  RM_ASSERT_INT(cfg.pipeline_cache, 1);
  RM_ASSERT_INT(cfg.tls_require_client_cert, 0);
  RM_ASSERT_INT(cfg.keepalive_time_ms, 7200000);
  RM_ASSERT_INT(cfg.max_connection_age_grace_ms, 30000);
  RM_ASSERT_STR(cfg.log_level, "info");
  RM_ASSERT_STR(cfg.auth_tokens, "");
  CU_ASSERT_PTR_NULL(cfg.config_file);
  rm_config_destroy(&cfg);
  CU_ASSERT_PTR_NULL(cfg.listen);
}

/* One option of each type set by the file, the environment and a flag, peeled off one
 * source at a time. */
static void test_precedence_flag_env_file_default(void) {
  static const struct {
    const char *file_json; /* fragment of the file's object */
    const char *env, *env_value;
    const char *flag, *flag_value;
    const char *key;               /* JSON view key */
    long long f, e, a, d;          /* file, env, argv, default (integers and bools) */
    const char *fs, *es, *as, *ds; /* the same for strings */
  } cases[] = {
      {"'max_nodes': 5", "RM_MAX_NODES", "6", "--max-nodes", "7", "max_nodes", 5, 6, 7, 256},
      {"'threads': 3", "RM_THREADS", "4", "--threads", "5", "threads", 3, 4, 5, -1},
      {"'keepalive_time_ms': 2000", "RM_KEEPALIVE_TIME_MS", "3000", "--keepalive-time-ms", "4000",
       "keepalive_time_ms", 2000, 3000, 4000, 7200000},
      {"'pipeline_cache': false", "RM_PIPELINE_CACHE", "true", "--pipeline-cache", "false",
       "pipeline_cache", 0, 1, 0, 1},
      {"'keepalive_permit_without_calls': false", "RM_KEEPALIVE_PERMIT_WITHOUT_CALLS", "yes",
       "--keepalive-permit-without-calls", "off", "keepalive_permit_without_calls", 0, 1, 0, 1},
      {"'log_level': 'debug'", "RM_LOG_LEVEL", "warn", "--log-level", "error", "log_level", 0, 0, 0,
       0, "debug", "warn", "error", "info"},
      {"'listen': '0.0.0.0:1'", "RM_LISTEN", "0.0.0.0:2", "--listen", "0.0.0.0:3", "listen", 0, 0,
       0, 0, "0.0.0.0:1", "0.0.0.0:2", "0.0.0.0:3", "127.0.0.1:50051"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char json[200];
    snprintf(json, sizeof json, "{%s}", cases[i].file_json);
    write_file(json);
    for (int stage = 0; stage < 4; stage++) { /* 0: all three, 1: file+env, 2: file, 3: none */
      clear_env();
      if (stage <= 2)
        setenv("RM_CONFIG", cfg_path, 1);
      if (stage <= 1)
        setenv(cases[i].env, cases[i].env_value, 1);
      rm_config_t cfg;
      rm_error_t err;
      char flag[100];
      snprintf(flag, sizeof flag, "%s=%s", cases[i].flag, cases[i].flag_value);
      int rc = load(&cfg, &err, stage == 0 ? ARGS(flag) : NULL);
      RM_ASSERT_INT(rc, 0);
      if (rc) {
        fprintf(stderr, "case %zu stage %d: %s\n", i, stage, err.message);
        rm_config_destroy(&cfg);
        continue;
      }
      json_t *view = rm_config_to_json(&cfg);
      json_t *v = json_object_get(view, cases[i].key);
      if (cases[i].fs) {
        const char *want[] = {cases[i].as, cases[i].es, cases[i].fs, cases[i].ds};
        RM_ASSERT_STR(json_string_value(v), want[stage]);
      } else {
        long long want[] = {cases[i].a, cases[i].e, cases[i].f, cases[i].d};
        long long got = json_is_boolean(v) ? json_is_true(v) : json_integer_value(v);
        if (want[stage] >= 0) /* threads' default depends on the machine */
          RM_ASSERT_INT(got, want[stage]);
      }
      json_decref(view);
      rm_config_destroy(&cfg);
    }
  }
  clear_env();
}

static void test_config_flag_beats_rm_config_and_space_form(void) {
  write_file("{'max_nodes': 9}");
  setenv("RM_CONFIG", "/nonexistent/not-read.json", 1);
  rm_config_t cfg;
  rm_error_t err;
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--config", cfg_path, "--max-nodes", "10")), 0);
  RM_ASSERT_INT(cfg.max_nodes, 10);
  RM_ASSERT_STR(cfg.config_file, cfg_path);
  rm_config_destroy(&cfg);
  write_file("{'max_nodes': 9, 'grace_ms': 5}");
  char flag[100];
  snprintf(flag, sizeof flag, "--config=%s", cfg_path);
  RM_ASSERT_INT(load(&cfg, &err, ARGS(flag)), 0);
  RM_ASSERT_INT(cfg.max_nodes, 9);
  RM_ASSERT_INT(cfg.grace_ms, 5);
  rm_config_destroy(&cfg);
  clear_env();
}

/* A config file named by nothing (a template's empty variable) is an error, not "no file":
 * the server would serve on its defaults. */
static void test_an_empty_config_file_name_is_an_error(void) {
  rm_config_t cfg;
  rm_error_t err;
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--max-nodes", "10", "--config")), RM_EPARAM);
  RM_ASSERT_STR(err.field, "config");
  RM_ASSERT_STR(err.message, "option --config needs a file");
  rm_config_destroy(&cfg);
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--config=")), RM_EPARAM);
  RM_ASSERT_STR(err.message, "option --config needs a file");
  rm_config_destroy(&cfg);
  setenv("RM_CONFIG", "", 1);
  RM_ASSERT_INT(load(&cfg, &err, NULL), RM_EPARAM);
  RM_ASSERT_STR(err.message, "RM_CONFIG is set but empty");
  rm_config_destroy(&cfg);
  write_file("{'max_nodes': 9}"); /* a flag naming a file still wins over it */
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--config", cfg_path)), 0);
  RM_ASSERT_INT(cfg.max_nodes, 9);
  rm_config_destroy(&cfg);
  clear_env();
}

/* Every integer option: not a number, below its minimum, above its maximum, from a flag,
 * the environment and the file; every boolean: a word that is not one. */
static void test_every_option_rejects_bad_values(void) {
  for (size_t i = 0; i < N_ALL; i++) {
    const opt_case_t *o = &all_opts[i];
    char key[64], flag[80], msg[300], src[80], below[32], above[32], json[200];
    snprintf(key, sizeof key, "%s", o->name);
    for (char *c = key; *c; c++)
      if (*c == '-')
        *c = '_';
    snprintf(flag, sizeof flag, "--%s", o->name);
    if (o->kind == K_BYTES) /* test_memory_options */
      continue;
    if (o->kind == K_BOOL) {
      snprintf(msg, sizeof msg, "--%s: %s must be true or false, got 'maybe'", o->name, o->name);
      EXPECT_FAIL(ARGS(flag, "=maybe") /* "=maybe" is a stray argument */, RM_EPARAM, "",
                  "unexpected argument '=maybe' (see --help)");
      snprintf(src, sizeof src, "--%s=maybe", o->name);
      EXPECT_FAIL(ARGS(src), RM_EPARAM, o->name, msg);
      setenv(o->env, "maybe", 1);
      snprintf(msg, sizeof msg, "%s: %s must be true or false, got 'maybe'", o->env, o->name);
      EXPECT_FAIL(NULL, RM_EPARAM, o->name, msg);
      unsetenv(o->env);
      snprintf(json, sizeof json, "{'%s': 1}", key);
      write_file(json);
      snprintf(src, sizeof src, "--config=%s", cfg_path);
      snprintf(msg, sizeof msg, "config file %s: '%s' must be a boolean", cfg_path, key);
      EXPECT_FAIL(ARGS(src), RM_EPARAM, o->name, msg);
      continue;
    }
    if (o->kind == K_STR) {
      snprintf(json, sizeof json, "{'%s': 5}", key);
      write_file(json);
      snprintf(src, sizeof src, "--config=%s", cfg_path);
      snprintf(msg, sizeof msg, "config file %s: '%s' must be a string", cfg_path, key);
      EXPECT_FAIL(ARGS(src), RM_EPARAM, o->name, msg);
      snprintf(msg, sizeof msg, "option --%s needs a value", o->name);
      EXPECT_FAIL(ARGS(flag), RM_EPARAM, o->name, msg);
      continue;
    }
    snprintf(below, sizeof below, "%lld", o->min - 1);
    if (o->max == INT64_MAX)
      snprintf(above, sizeof above, "9223372036854775808"); /* out of range for strtoll */
    else
      snprintf(above, sizeof above, "%lld", o->max + 1);
    const char *bad[] = {"abc", "12x", "", below, above};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
      snprintf(msg, sizeof msg, "--%s: %s must be an integer in %lld..%lld, got '%s'", o->name,
               o->name, o->min, o->max, bad[b]);
      EXPECT_FAIL(ARGS(flag, bad[b]), RM_EPARAM, o->name, msg);
      setenv(o->env, bad[b], 1);
      snprintf(msg, sizeof msg, "%s: %s must be an integer in %lld..%lld, got '%s'", o->env,
               o->name, o->min, o->max, bad[b]);
      EXPECT_FAIL(NULL, RM_EPARAM, o->name, msg);
      unsetenv(o->env);
    }
    snprintf(json, sizeof json, "{'%s': %s}", key, below);
    write_file(json);
    snprintf(src, sizeof src, "--config=%s", cfg_path);
    snprintf(msg, sizeof msg, "config file %s: %s must be an integer in %lld..%lld, got '%s'",
             cfg_path, o->name, o->min, o->max, below);
    EXPECT_FAIL(ARGS(src), RM_EPARAM, o->name, msg);
    snprintf(json, sizeof json, "{'%s': '5'}", key);
    write_file(json);
    snprintf(msg, sizeof msg, "config file %s: '%s' must be an integer", cfg_path, key);
    EXPECT_FAIL(ARGS(src), RM_EPARAM, o->name, msg);
    snprintf(msg, sizeof msg, "option --%s needs a value", o->name);
    EXPECT_FAIL(ARGS(flag), RM_EPARAM, o->name, msg);
  }
  clear_env();
}

static void test_bounds_are_accepted(void) {
  rm_config_t cfg;
  rm_error_t err;
  RM_ASSERT_INT(load(&cfg, &err,
                     ARGS("--threads=256", "--workers=1024", "--request-slots=1", "--grace-ms=0",
                          "--max-audio-samples=9223372036854775807")),
                0);
  RM_ASSERT_INT(cfg.threads, 256);
  RM_ASSERT_INT(cfg.workers, 1024);
  RM_ASSERT_INT(cfg.request_slots, 1);
  RM_ASSERT_INT(cfg.grace_ms, 0);
  CU_ASSERT_EQUAL(cfg.max_audio_samples, (uint64_t)INT64_MAX);
  rm_config_destroy(&cfg);
  /* a bare boolean flag means true; every spelling of both values */
  static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
  for (int i = 0; i < 4; i++) {
    char a[64], b[64];
    snprintf(a, sizeof a, "--tls-require-client-cert=%s", yes[i]);
    snprintf(b, sizeof b, "--pipeline-cache=%s", no[i]);
    RM_ASSERT_INT(load(&cfg, &err,
                       ARGS("--keepalive-permit-without-calls=false", a, b,
                            "--keepalive-permit-without-calls")),
                  RM_EPARAM); /* require-client-cert needs a CA: the check runs after parsing */
    RM_ASSERT_STR(err.message, "tls-require-client-cert needs tls-client-ca");
    rm_config_destroy(&cfg);
    RM_ASSERT_INT(load(&cfg, &err, ARGS(b, "--keepalive-permit-without-calls")), 0);
    RM_ASSERT_INT(cfg.pipeline_cache, 0);
    RM_ASSERT_INT(cfg.keepalive_permit_without_calls, 1);
    rm_config_destroy(&cfg);
  }
}

static void test_unknown_options_and_arguments(void) {
  EXPECT_FAIL(ARGS("--nope"), RM_EPARAM, "nope", "unknown option '--nope' (see --help)");
  EXPECT_FAIL(ARGS("--nope=3"), RM_EPARAM, "nope", "unknown option '--nope' (see --help)");
  EXPECT_FAIL(ARGS("--max_nodes=3"), RM_EPARAM, "max_nodes",
              "unknown option '--max_nodes' (see --help)");
  EXPECT_FAIL(ARGS("serve"), RM_EPARAM, "", "unexpected argument 'serve' (see --help)");
  EXPECT_FAIL(ARGS("-x"), RM_EPARAM, "", "unexpected argument '-x' (see --help)");
  EXPECT_FAIL(ARGS("--pipeline-cache", "false"), RM_EPARAM, "pipeline-cache",
              "unexpected argument 'false': a boolean option takes its value after '=' "
              "(--pipeline-cache=false)");
  EXPECT_FAIL(ARGS("--require-auth", "--threads", "2", "x"), RM_EPARAM, "",
              "unexpected argument 'x' (see --help)");
}

static void test_config_file_errors(void) {
  char src[100], msg[300];
  snprintf(src, sizeof src, "--config=%s", cfg_path);
  write_file("{'max_nodes': 5, 'nope': 1}");
  snprintf(msg, sizeof msg, "config file %s: unknown key 'nope'", cfg_path);
  EXPECT_FAIL(ARGS(src), RM_EPARAM, "nope", msg);
  rm_config_t cfg;
  rm_error_t err;
  write_file("{'max-nodes': 5}"); /* keys use '_'; the flag spelling is accepted too */
  RM_ASSERT_INT(load(&cfg, &err, ARGS(src)), 0);
  RM_ASSERT_INT(cfg.max_nodes, 5);
  rm_config_destroy(&cfg);
  write_file("{'config': 'other.json'}");
  snprintf(msg, sizeof msg, "config file %s: unknown key 'config'", cfg_path);
  EXPECT_FAIL(ARGS(src), RM_EPARAM, "config", msg);
  write_file("[1, 2]");
  snprintf(msg, sizeof msg, "config file %s: must hold a JSON object", cfg_path);
  EXPECT_FAIL(ARGS(src), RM_EPARAM, "config", msg);
  write_file("{'max_nodes': 5, 'max_nodes': 6}");
  snprintf(msg, sizeof msg, "config file %s: duplicate object key near '\"max_nodes\"' (line 1)",
           cfg_path);
  EXPECT_FAIL(ARGS(src), RM_EPARAM, "config", msg);
  write_file("{'max_nodes': }");
  snprintf(msg, sizeof msg, "config file %s: unexpected token near '}' (line 1)", cfg_path);
  EXPECT_FAIL(ARGS(src), RM_EPARAM, "config", msg);
  write_file("{'listen': 'nocolon'}");
  EXPECT_FAIL(ARGS(src), RM_EPARAM, "listen", "listen must be host:port, got 'nocolon'");

  int rc = load(&cfg, &err, ARGS("--config=/nonexistent/rm.json"));
  RM_ASSERT_INT(rc, RM_EIO);
  RM_ASSERT_STR(err.field, "config");
  RM_ASSERT_STR(err.message,
                "config file /nonexistent/rm.json cannot be read: No such file or directory");
  rm_config_destroy(&cfg);
  rc = load(&cfg, &err, ARGS("--config=/tmp"));
  RM_ASSERT_INT(rc, RM_EIO);
  RM_ASSERT_STR(err.message, "config file /tmp cannot be read: a directory");
  rm_config_destroy(&cfg);
}

/* The config file is read like the token and PEM files: a FIFO without a writer or a link to
 * /dev/zero is refused at once (it blocked or grew memory without bound), and so is a file
 * above RM_OPERATOR_FILE_MAX bytes. */
static void test_config_file_must_be_a_bounded_regular_file(void) {
  char other[80], src[100], msg[300];
  snprintf(other, sizeof other, "%s.other", cfg_path);
  snprintf(src, sizeof src, "--config=%s", other);
  unlink(other);
  RM_ASSERT_INT(mkfifo(other, 0600), 0);
  snprintf(msg, sizeof msg, "config file %s cannot be read: not a regular file", other);
  EXPECT_FAIL(ARGS(src), RM_EIO, "config", msg);
  RM_ASSERT_INT(unlink(other), 0);
  RM_ASSERT_INT(symlink("/dev/zero", other), 0);
  EXPECT_FAIL(ARGS(src), RM_EIO, "config", msg);
  RM_ASSERT_INT(unlink(other), 0);

  /* {"max_nodes": 7} padded with blanks to the cap: read; a byte more: refused */
  FILE *f = fopen(other, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("{\"max_nodes\": 7}", f);
  for (long i = (long)strlen("{\"max_nodes\": 7}"); i < RM_OPERATOR_FILE_MAX; i++)
    fputc(' ', f);
  fclose(f);
  rm_config_t cfg;
  rm_error_t err;
  RM_ASSERT_INT(load(&cfg, &err, ARGS(src)), 0);
  RM_ASSERT_INT(cfg.max_nodes, 7);
  rm_config_destroy(&cfg);
  f = fopen(other, "a");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputc('\n', f);
  fclose(f);
  snprintf(msg, sizeof msg, "config file %s is larger than the 1048576 bytes allowed", other);
  EXPECT_FAIL(ARGS(src), RM_EPARAM, "config", msg);
  unlink(other);
}

static void test_cross_option_checks(void) {
  EXPECT_FAIL(ARGS("--log-level=loud"), RM_EPARAM, "log-level",
              "log-level must be debug, info, warn, error or off, got 'loud'");
  EXPECT_FAIL(ARGS("--tls-cert=a.pem"), RM_EPARAM, "tls-key",
              "tls-cert and tls-key go together: give both or neither");
  EXPECT_FAIL(ARGS("--tls-key=a.pem"), RM_EPARAM, "tls-cert",
              "tls-cert and tls-key go together: give both or neither");
  EXPECT_FAIL(ARGS("--tls-client-ca=ca.pem"), RM_EPARAM, "tls-client-ca",
              "tls-client-ca needs tls-cert and tls-key");
  EXPECT_FAIL(ARGS("--tls-cert=a", "--tls-key=b", "--tls-require-client-cert"), RM_EPARAM,
              "tls-require-client-cert", "tls-require-client-cert needs tls-client-ca");
  EXPECT_FAIL(ARGS("--listen", "localhost"), RM_EPARAM, "listen",
              "listen must be host:port, got 'localhost'");
  EXPECT_FAIL(ARGS("--max-memory=2048"), RM_EPARAM, "max-memory",
              "max-memory must be 0 (what the container allows) or at least 1M, got 2048 bytes");
  EXPECT_FAIL(ARGS("--max-memory=1048575"), RM_EPARAM, "max-memory",
              "max-memory must be 0 (what the container allows) or at least 1M, got 1048575 "
              "bytes");
  rm_config_t cfg;
  rm_error_t err;
  EXPECT_FAIL(ARGS("--max-core-memory=4096"), RM_EPARAM, "max-core-memory",
              "max-core-memory must be 0 (none) or at least 1M, got 4096 bytes");
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--max-memory=1M")), 0);
  RM_ASSERT_INT(cfg.max_memory, 1 << 20);
  rm_config_destroy(&cfg);
  RM_ASSERT_INT(load(&cfg, &err,
                     ARGS("--tls-cert=a", "--tls-key=b", "--tls-client-ca=c",
                          "--tls-require-client-cert", "--threads=3")),
                0);
  RM_ASSERT_INT(cfg.workers, 6); /* two per polling thread */
  rm_config_destroy(&cfg);
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--threads=3", "--workers=1")), 0);
  RM_ASSERT_INT(cfg.workers, 1);
  rm_config_destroy(&cfg);
}

static const char *captured_text(void (*print)(FILE *)) {
  static char text[16384];
  FILE *f = tmpfile();
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  print(f);
  rewind(f);
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  return text;
}

/* issue 10 defect 7: --listen is host:port (port 0-65535 in digits), [IPv6]:port or unix:PATH;
 * anything else is a configuration error naming the option, never a wrapped port. */
static void test_listen_is_validated(void) {
  static const char *const good[] = {
      "127.0.0.1:0",         "127.0.0.1:65535",   "0.0.0.0:50051", "localhost:50051",
      "my-host_1.example:1", "[::1]:50051",       "[::]:0",        "[::ffff:127.0.0.1]:80",
      "unix:/tmp/rm.sock",   "unix:relative.sock"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    rm_config_t cfg;
    rm_error_t err;
    int rc = load(&cfg, &err, ARGS("--listen", good[i]));
    if (rc)
      fprintf(stderr, "\n  %s: %s\n", good[i], err.message);
    RM_ASSERT_INT(rc, 0);
    RM_ASSERT_STR(cfg.listen, good[i]);
    rm_config_destroy(&cfg);
  }
  static const struct {
    const char *listen, *msg;
  } bad[] = {
      {"127.0.0.1:99999", "listen must be host:port with a port of 0 to 65535 in digits, got "
                          "'127.0.0.1:99999'"},
      {"127.0.0.1:65536", "listen must be host:port with a port of 0 to 65535 in digits, got "
                          "'127.0.0.1:65536'"},
      {"127.0.0.1:abc", "listen must be host:port with a port of 0 to 65535 in digits, got "
                        "'127.0.0.1:abc'"},
      {"127.0.0.1:", "listen must be host:port with a port of 0 to 65535 in digits, got "
                     "'127.0.0.1:'"},
      {"127.0.0.1:-1", "listen must be host:port with a port of 0 to 65535 in digits, got "
                       "'127.0.0.1:-1'"},
      {"127.0.0.1:000050051", "listen must be host:port with a port of 0 to 65535 in digits, got "
                              "'127.0.0.1:000050051'"},
      {"127.0.0.1:80x", "listen must be host:port with a port of 0 to 65535 in digits, got "
                        "'127.0.0.1:80x'"},
      {"nocolon", "listen must be host:port, got 'nocolon'"},
      {"", "listen must be host:port, got ''"},
      {"::1:50051", "listen must be host:port, [IPv6]:port or unix:PATH (IPv6 addresses in "
                    "brackets), got '::1:50051'"},
      {":50051", "listen must be host:port, [IPv6]:port or unix:PATH (IPv6 addresses in "
                 "brackets), got ':50051'"},
      {"[::1]", "listen must be host:port, [IPv6]:port or unix:PATH (IPv6 addresses in "
                "brackets), got '[::1]'"},
      {"[]:1", "listen must be host:port, [IPv6]:port or unix:PATH (IPv6 addresses in "
               "brackets), got '[]:1'"},
      {"[::1:50051", "listen must be host:port, [IPv6]:port or unix:PATH (IPv6 addresses in "
                     "brackets), got '[::1:50051'"},
      {"[1.2.3.4]:1", "listen must be host:port, [IPv6]:port or unix:PATH (IPv6 addresses in "
                      "brackets), got '[1.2.3.4]:1'"},
      {"a b:1", "listen must be host:port, [IPv6]:port or unix:PATH (IPv6 addresses in "
                "brackets), got 'a b:1'"},
      {"unix:", "listen must be host:port, [IPv6]:port or unix:PATH with a path of 1 to 107 "
                "bytes, got 'unix:'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    EXPECT_FAIL(ARGS("--listen", bad[i].listen), RM_EPARAM, "listen", bad[i].msg);
  char longpath[200] = "unix:/";
  memset(longpath + 6, 'p', 106); /* '/' and 106 bytes: a 107-byte path fits sun_path */
  rm_config_t cfg;
  rm_error_t err;
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--listen", longpath)), 0);
  rm_config_destroy(&cfg);
  longpath[112] = 'p'; /* 108 bytes: does not */
  longpath[113] = '\0';
  rm_config_t cfg2;
  int rc = load(&cfg2, &err, ARGS("--listen", longpath));
  RM_ASSERT_INT(rc, RM_EPARAM);
  RM_ASSERT_STR(err.field, "listen");
  rm_config_destroy(&cfg2);
  setenv("RM_LISTEN", "127.0.0.1:99999", 1); /* the environment is checked the same way */
  EXPECT_FAIL(NULL, RM_EPARAM, "listen",
              "listen must be host:port with a port of 0 to 65535 in digits, got "
              "'127.0.0.1:99999'");
  unsetenv("RM_LISTEN");
}

/* issue 10 defect 9: --max-metadata-bytes, 16 KiB by default; the core's limit is 4 x. */
static void test_max_metadata_bytes(void) {
  rm_config_t cfg;
  rm_error_t err;
  RM_ASSERT_INT(load(&cfg, &err, NULL), 0);
  RM_ASSERT_INT(cfg.max_metadata_bytes, 16384);
  RM_ASSERT_INT(rm_config_metadata_hard_limit(&cfg), 65536);
  rm_config_destroy(&cfg);
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--max-metadata-bytes", "4096")), 0);
  RM_ASSERT_INT(rm_config_metadata_hard_limit(&cfg), 16384);
  rm_config_destroy(&cfg);
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--max-metadata-bytes", "16777216")), 0);
  RM_ASSERT_INT(rm_config_metadata_hard_limit(&cfg), 67108864); /* fits the core's int */
  rm_config_destroy(&cfg);
}

static void test_help_and_version(void) {
  const struct {
    const char *const *args;
    rm_config_action_t action;
  } cases[] = {
      {ARGS("--help"), RM_CONFIG_HELP},
      {ARGS("-h"), RM_CONFIG_HELP},
      {ARGS("--version"), RM_CONFIG_VERSION},
      {ARGS("--bogus", "--help"), RM_CONFIG_HELP}, /* before any other check */
      {ARGS("--max-nodes=0", "--version", "--help"), RM_CONFIG_VERSION}, /* the first wins */
      {ARGS("--config=/nonexistent.json", "--help"), RM_CONFIG_HELP},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rm_config_t cfg;
    rm_error_t err;
    RM_ASSERT_INT(load(&cfg, &err, cases[i].args), 0);
    RM_ASSERT_INT(cfg.action, cases[i].action);
    rm_config_destroy(&cfg);
  }
  RM_ASSERT_STR(captured_text(rm_config_print_version), "remotemedia-server " RM_VERSION "\n");
  const char *usage = captured_text(rm_config_usage);
  CU_ASSERT_EQUAL(strncmp(usage, "usage: remotemedia-server [options]\n", 36), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(usage, "  --max-nodes=N  (RM_MAX_NODES)\n      most nodes in one "
                                       "pipeline [default: 256]\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(usage, "  --auth-tokens=TEXT  (RM_AUTH_TOKENS)\n"));
  for (size_t i = 0; i < N_ALL; i++) { /* every option is documented */
    char line[100];
    snprintf(line, sizeof line, "  --%s=%s  (%s)\n", all_opts[i].name,
             all_opts[i].kind == K_BOOL    ? "BOOL"
             : all_opts[i].kind == K_STR   ? "TEXT"
             : all_opts[i].kind == K_BYTES ? "BYTES"
                                           : "N",
             all_opts[i].env);
    CU_ASSERT_PTR_NOT_NULL(strstr(usage, line));
  }
}

/* Sizes with suffixes; the server-wide default from the machine (the cgroup limit less
 * max(1/8, 64 MiB), else half of physical memory); a request's budget capped at it. */
static void test_memory_options(void) {
  rm_config_t cfg;
  rm_error_t err;
  RM_ASSERT_INT(load(&cfg, &err, NULL), 0);
  int cgroup = 0;
  uint64_t mem = rm_sysres_memory("", &cgroup);
  uint64_t margin = mem / 8 > (64u << 20) ? mem / 8 : (64u << 20);
  if (!cgroup || margin > mem / 2)
    margin = mem / 2;
  CU_ASSERT_EQUAL(cfg.max_memory, mem - margin);
  CU_ASSERT_EQUAL(cfg.max_request_memory, (uint64_t)256 << 20);
  rm_config_destroy(&cfg);
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--max-memory", "512MiB", "--max-request-memory=64m")), 0);
  CU_ASSERT_EQUAL(cfg.max_memory, (uint64_t)512 << 20);
  CU_ASSERT_EQUAL(cfg.max_request_memory, (uint64_t)64 << 20);
  rm_config_destroy(&cfg);
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--max-memory=2G", "--max-request-memory=3GB")), 0);
  CU_ASSERT_EQUAL(cfg.max_memory, (uint64_t)2 << 30);
  CU_ASSERT_EQUAL(cfg.max_request_memory, (uint64_t)2 << 30); /* never above the server's */
  rm_config_destroy(&cfg);
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--max-memory=1048576K")), 0);
  CU_ASSERT_EQUAL(cfg.max_memory, (uint64_t)1 << 30);
  rm_config_destroy(&cfg);
  static const char *bad[] = {"12X", "-1", "M", "1MiBs", "", "9999999999G"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char flag[64], msg[200];
    snprintf(flag, sizeof flag, "--max-memory=%s", bad[i]);
    snprintf(msg, sizeof msg,
             "--max-memory: max-memory must be a size in 0..9223372036854775807 bytes (suffix K, "
             "M or G for KiB, MiB, GiB), got '%s'",
             bad[i]);
    EXPECT_FAIL(ARGS(flag), RM_EPARAM, "max-memory", msg);
  }
  EXPECT_FAIL(ARGS("--max-request-memory=1K"), RM_EPARAM, "max-request-memory",
              "--max-request-memory: max-request-memory must be a size in "
              "1048576..9223372036854775807 bytes (suffix K, M or G for KiB, MiB, GiB), got '1K'");
}

/* warm-bytes (issue 11): 8 MiB by default, 0..12 MiB (the heaps keep at most 16 MiB free, so
 * more would be trimmed as soon as it is freed), never more than max-memory / 8. */
static void test_warm_bytes(void) {
  rm_config_t cfg;
  rm_error_t err;
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--max-memory=1G")), 0);
  CU_ASSERT_EQUAL(cfg.warm_bytes, (uint64_t)8 << 20);
  rm_config_destroy(&cfg);
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--warm-bytes=0")), 0);
  CU_ASSERT_EQUAL(cfg.warm_bytes, 0);
  rm_config_destroy(&cfg);
  setenv("RM_WARM_BYTES", "12M", 1);
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--max-memory=1G")), 0);
  CU_ASSERT_EQUAL(cfg.warm_bytes, (uint64_t)12 << 20);
  rm_config_destroy(&cfg);
  unsetenv("RM_WARM_BYTES");
  RM_ASSERT_INT(load(&cfg, &err, ARGS("--max-memory=16M")), 0); /* capped at 1/8 */
  CU_ASSERT_EQUAL(cfg.warm_bytes, (uint64_t)2 << 20);
  rm_config_destroy(&cfg);
  EXPECT_FAIL(ARGS("--warm-bytes=13M"), RM_EPARAM, "warm-bytes",
              "--warm-bytes: warm-bytes must be a size in 0..12582912 bytes (suffix K, M or G for "
              "KiB, MiB, GiB), got '13M'");
  EXPECT_FAIL(ARGS("--warm-bytes=-1"), RM_EPARAM, "warm-bytes",
              "--warm-bytes: warm-bytes must be a size in 0..12582912 bytes (suffix K, M or G for "
              "KiB, MiB, GiB), got '-1'");
}

static void test_json_view_redacts_secrets(void) {
  write_file("{'grace_ms': 42}");
  rm_config_t cfg;
  rm_error_t err;
  char src[100];
  snprintf(src, sizeof src, "--config=%s", cfg_path);
  RM_ASSERT_INT(load(&cfg, &err,
                     ARGS(src, "--auth-tokens=s3cret,other", "--auth-token-file=/etc/tokens",
                          "--max-nodes=7")),
                0);
  json_t *v = rm_config_to_json(&cfg);
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  RM_ASSERT_STR(json_string_value(json_object_get(v, "auth_tokens")), "<redacted>");
  RM_ASSERT_STR(json_string_value(json_object_get(v, "auth_token_file")), "/etc/tokens");
  RM_ASSERT_STR(json_string_value(json_object_get(v, "config_file")), cfg_path);
  RM_ASSERT_INT(json_integer_value(json_object_get(v, "max_nodes")), 7);
  RM_ASSERT_INT(json_integer_value(json_object_get(v, "grace_ms")), 42);
  CU_ASSERT(json_is_true(json_object_get(v, "pipeline_cache")));
  RM_ASSERT_INT(json_object_size(v), N_ALL + 1); /* every option, and the file */
  char *text = json_dumps(v, 0);
  CU_ASSERT_PTR_NULL(strstr(text, "s3cret"));
  free(text);
  json_decref(v);
  rm_config_destroy(&cfg);
  /* no tokens: nothing to redact, the empty string shows auth is off */
  RM_ASSERT_INT(load(&cfg, &err, NULL), 0);
  v = rm_config_to_json(&cfg);
  RM_ASSERT_STR(json_string_value(json_object_get(v, "auth_tokens")), "");
  CU_ASSERT_PTR_NULL(json_object_get(v, "config_file"));
  json_decref(v);
  rm_config_destroy(&cfg);
}

static void test_null_error_is_accepted(void) {
  char *argv[] = {"remotemedia-server", "--max-nodes=0", NULL};
  rm_config_t cfg;
  RM_ASSERT_INT(rm_config_load(&cfg, 2, argv, NULL), RM_EPARAM);
  rm_config_destroy(&cfg);
}

static int suite_init(void) {
  snprintf(cfg_path, sizeof cfg_path, "/tmp/rm_test_config_XXXXXX");
  int fd = mkstemp(cfg_path);
  if (fd < 0)
    return 1;
  close(fd);
  clear_env();
  return 0;
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_defaults),
                                         RM_TEST(test_precedence_flag_env_file_default),
                                         RM_TEST(test_config_flag_beats_rm_config_and_space_form),
                                         RM_TEST(test_an_empty_config_file_name_is_an_error),
                                         RM_TEST(test_every_option_rejects_bad_values),
                                         RM_TEST(test_bounds_are_accepted),
                                         RM_TEST(test_unknown_options_and_arguments),
                                         RM_TEST(test_config_file_errors),
                                         RM_TEST(test_config_file_must_be_a_bounded_regular_file),
                                         RM_TEST(test_cross_option_checks),
                                         RM_TEST(test_help_and_version),
                                         RM_TEST(test_memory_options),
                                         RM_TEST(test_warm_bytes),
                                         RM_TEST(test_json_view_redacts_secrets),
                                         RM_TEST(test_null_error_is_accepted),
                                         RM_TEST(test_listen_is_validated),
                                         RM_TEST(test_max_metadata_bytes),
                                         {NULL, NULL}};
  if (suite_init())
    return 1;
  rm_test_suite("config", cases);
  int rc = rm_test_run();
  unlink(cfg_path);
  return rc;
}
