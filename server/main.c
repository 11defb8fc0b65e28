/* main.c - remotemedia-server: configuration, start-up, signals, drain and exit. */
#include <errno.h>
#include <grpc/grpc.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "health.h"
#include "log.h"
#include "metrics_http.h"
#include "pipeline_service.h"
#include "stream_service.h"
#include "reflection.h"
#include "rm/alloc.h"
#include "rm/clock.h"
#include "rm_version.h"
#include "self_call.h"
#include "server.h"
#include "stats.h"
#include "warm_call.h"
#include "statistics_service.h"

typedef struct second_signal {
  sigset_t sigs;
  pthread_mutex_t mu;
  rm_server_t *server; /* under mu; NULL once the server is being freed */
} second_signal_t;

/* During the drain, a second SIGTERM/SIGINT means "stop now": in-flight calls are
 * cancelled without waiting for the rest of the grace period. */
static void *second_signal_main(void *arg) {
  second_signal_t *ss = arg;
  int sig = 0;
  if (sigwait(&ss->sigs, &sig) == 0) {
    pthread_mutex_lock(&ss->mu);
    if (ss->server) {
      RM_LOG(RM_LOG_WARN, "forced_stop", "{s:s}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      rm_server_force(ss->server);
    }
    pthread_mutex_unlock(&ss->mu);
  }
  return NULL;
}

/* Waits for one of sigs, ticking the server once a second meanwhile (rm_server_tick). The
 * signal, or 0 if the wait failed. */
static int next_signal(const sigset_t *sigs, rm_server_t *server) {
  const struct timespec second = {.tv_sec = 1};
  for (;;) {
    int sig = sigtimedwait(sigs, NULL, &second);
    if (sig > 0)
      return sig;
    if (errno == EAGAIN)
      rm_server_tick(server);
    else if (errno != EINTR)
      return 0;
  }
}

/* Serves until SIGTERM/SIGINT, then drains: new calls are refused, in-flight ones get the
 * grace period (a second signal ends it early). SIGHUP reloads the token file and the TLS
 * files, as often as it comes, while serving; during the drain it is left pending. */
static void serve(rm_server_t *server, const rm_config_t *cfg, const sigset_t *sigs,
                  const rm_metrics_http_t *metrics) {
  rm_health_set_serving(1);
  if (rm_log_threshold <= RM_LOG_INFO)
    rm_log_emit_json(RM_LOG_INFO, "config", rm_config_to_json(cfg));
  /* Always printed (unless logging is off): tests and scripts read the bound port here. */
  rm_log_lifecycle("listening", "{s:s, s:i, s:s, s:b, s:b, s:s, s:i}", "address", cfg->listen,
                   "port", rm_server_port(server), "version", RM_VERSION, "tls",
                   *cfg->tls_cert != 0, "auth", *cfg->auth_token_file || *cfg->auth_tokens,
                   "grpc_core", grpc_version_string(), "metrics_port",
                   metrics ? rm_metrics_http_port(metrics) : 0);

  sigset_t waited = *sigs;
  sigaddset(&waited, SIGHUP);
  int sig = 0;
  while ((sig = next_signal(&waited, server)) == SIGHUP) {
    RM_LOG(RM_LOG_INFO, "reloading", "{s:s}", "signal", "SIGHUP");
    rm_server_reload(server);
  }
  /* refuse new calls first: a client that sees NOT_SERVING must not get a call in after; the
   * line comes once both are in effect (a reader of the log may probe at once) */
  rm_server_drain(server);
  rm_health_set_serving(0);
  rm_log_lifecycle("draining", "{s:s, s:I}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                   "grace_ms", (json_int_t)cfg->grace_ms);
  static second_signal_t ss = {.mu = PTHREAD_MUTEX_INITIALIZER};
  ss.sigs = *sigs;
  ss.server = server;
  pthread_t second;
  if (pthread_create(&second, NULL, second_signal_main, &ss) == 0)
    pthread_detach(second);
  rm_server_wait_idle(server, cfg->grace_ms);
  rm_log_lifecycle("stopping", NULL);
  rm_server_shutdown(server);
  pthread_mutex_lock(&ss.mu);
  ss.server = NULL;
  pthread_mutex_unlock(&ss.mu);
}

static void startup_failed(const char *why) {
  if (rm_log_threshold < RM_LOG_OFF)
    rm_log_emit(RM_LOG_ERROR, "startup_failed", "{s:s}", "error", why);
  else /* the log is the only output otherwise: every line of it is JSON */
    fprintf(stderr, "remotemedia-server: %s\n", why);
}

int main(int argc, char **argv) {
  rm_config_t cfg;
  rm_error_t cfg_err;
  int rc = rm_config_load(&cfg, argc, argv, &cfg_err);
  if (rc || cfg.action != RM_CONFIG_SERVE) {
    if (rc)
      fprintf(stderr, "remotemedia-server: %s\n", cfg_err.message);
    else if (cfg.action == RM_CONFIG_HELP)
      rm_config_usage(stdout);
    else
      rm_config_print_version(stdout);
    rm_config_destroy(&cfg);
    /* an unreadable file is exit 1 (as a port in use), a configuration error exit 2 */
    return rc == RM_EIO ? 1 : rc ? 2 : 0;
  }
  rm_log_threshold = (rm_log_level_t)rm_log_level_parse(cfg.log_level);

  /* Memory goes back (issue 10; figures in docs/security.md): blocks of 1 MiB and more (audio
   * buffers, responses) are mapped on their own and unmapped when freed, instead of glibc
   * raising that threshold to 32 MiB after the first big free and keeping such blocks in
   * its heaps; and heaps are bounded by the threads that allocate (two per polling thread),
   * not 8 per core. What a run leaves in the heaps is trimmed after big runs
   * (pipeline_service.c).
   * Issue 11: with a 1 MiB threshold every call of seconds of audio mapped and faulted in
   * its request, copies and response afresh (3.84 MB PassThrough: ~3200 minor faults and
   * ~77 ms of server CPU per warm call under load, against ~0 faults and ~18 ms from warm
   * heaps). Blocks under 8 MiB now come from the heaps, and a heap keeps at most 16 MiB free
   * at its top before it is trimmed, so warm memory stays within 16 MiB per heap (two heaps
   * per polling thread) while bigger blocks still go back when freed. */
  mallopt(M_MMAP_THRESHOLD, 8 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
  mallopt(M_ARENA_MAX, 2 * cfg.threads);

  /* Signals are taken synchronously by this thread only: block them before any thread
   * exists so every thread inherits the mask. A peer closing a socket must not kill us. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigset_t blocked = sigs; /* SIGHUP too (reload), but only serve() waits for it */
  sigaddset(&blocked, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &blocked, NULL);
  signal(SIGPIPE, SIG_IGN);

  rm_alloc_install_jansson();
  rm_log_set_stream(cfg.log_stream); /* checked by rm_config_load */
  rm_log_start_buffering();
  (void)rm_clock_read_cost_ns(); /* calibrate before the first call is timed */
  rm_log_route_grpc();
  grpc_init();
  rm_log_grpc_verbosity();
  int status = 1;
  rm_server_t *server = NULL;
  rm_error_t err;
  rm_metrics_http_t *metrics = NULL;
  rm_method_t methods[RM_PIPELINE_SERVICE_METHODS + RM_STREAM_SERVICE_METHODS + RM_HEALTH_METHODS +
                      RM_REFLECTION_METHODS + RM_STATISTICS_METHODS + 1];
  memset(methods, 0, sizeof methods);
  size_t k = 0;
  rm_pipeline_service_methods(&methods[k]);
  k += RM_PIPELINE_SERVICE_METHODS;
  rm_stream_service_methods(&methods[k]);
  k += RM_STREAM_SERVICE_METHODS;
  rm_health_methods(&methods[k], cfg.health_needs_token);
  k += RM_HEALTH_METHODS;
  rm_reflection_methods(&methods[k]);
  k += RM_REFLECTION_METHODS;
  rm_statistics_service_methods(&methods[k]);
  if (rm_stats_init(methods, cfg.stats_max_pipelines)) {
    startup_failed("out of memory");
    goto out;
  }

  if (rm_reflection_init()) {
    RM_LOG(RM_LOG_ERROR, "startup_failed", "{s:s}", "error",
           "embedded descriptor set is malformed");
    goto out;
  }
  if (rm_server_new(&cfg, methods, &server, &err)) {
    startup_failed(err.message);
    /* a file whose contents are invalid is a configuration error like a bad flag (2); an
     * unreadable file or a port in use is the environment's (1) */
    if (err.code == RM_EPARAM)
      status = 2;
    goto out;
  }
  if (*cfg.metrics_listen && rm_metrics_http_start(cfg.metrics_listen, server, &metrics, &err)) {
    startup_failed(err.message);
    if (err.code == RM_EPARAM)
      status = 2;
    goto out;
  }
  if (metrics && cfg.health_needs_token && rm_self_call_impossible(server))
    RM_LOG(RM_LOG_WARN, "health_probes", "{s:s, s:s}", "message",
           "/healthz on the metrics port cannot check through the gRPC port: it says only "
           "that the process answers; /readyz gives the health status",
           "reason", rm_self_call_impossible(server));
  if (rm_server_start(server, &err)) {
    startup_failed(err.message);
    rm_server_shutdown(server);
    goto out;
  }
  rm_warm_call(server);
  serve(server, &cfg, &sigs, metrics);
  status = 0;
out:
  rm_metrics_http_stop(metrics); /* before the budget it reads goes */
  rm_server_free(server);
  rm_stats_shutdown();
  rm_reflection_cleanup();
  grpc_shutdown();
  if (status == 0)
    rm_log_lifecycle("stopped", NULL);
  rm_log_stop();
  rm_config_destroy(&cfg);
  return status;
}
