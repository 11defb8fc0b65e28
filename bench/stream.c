/* stream.c - benchmark: StreamPipeline through librmclient. (1) One session of 20 ms
 * chunks of 48 kHz mono through AudioResample(16 kHz) -> VAD at real-time pace: p50/p99 of
 * the server's processing_ns and of the client's round trip. (2) Concurrent real-time
 * sessions, doubling, until they fall behind real time (over 1 % of the chunks sent more
 * than a chunk period late) or the p99 round trip passes 20 ms: the most sessions that held.
 *
 * usage: stream (--server ADDR | --server-bin PATH [--server-cpu N]) [--client-cpu N]
 *               [--seconds S] [--session-seconds S] [--max-sessions N] [--chunk-ms N]
 * With --server-bin the program starts the server itself on a free loopback port, pinned to
 * CPU --server-cpu (default 0), and pins itself to --client-cpu (default 1): one server
 * core, clients on the other. Prints figures; never passes or fails (exit 2: bad usage or
 * no server). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <math.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rmclient.h"

static const char manifest[] =
    "{\"name\":\"bench_stream\",\"nodes\":["
    "{\"id\":\"resample\",\"node_type\":\"AudioResample\",\"params\":{\"rate\":16000}},"
    "{\"id\":\"vad\",\"node_type\":\"VAD\"}],"
    "\"connections\":[{\"from\":\"resample\",\"to\":\"vad\"}]}";

#define RATE 48000
#define RTT_LIMIT_NS 20000000LL /* a session "holds" while its p99 round trip stays below */

static struct {
  const char *server, *server_bin;
  int server_cpu, client_cpu;
  double seconds, session_seconds;
  int max_sessions, chunk_ms;
} opt = {NULL, NULL, 0, 1, 10.0, 5.0, 256, 20};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until(int64_t t) {
  struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
    ;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank quantile of v[0..n), sorting v. */
static double quantile_us(int64_t *v, size_t n, double q) {
  if (!n)
    return 0;
  qsort(v, n, sizeof *v, cmp_i64);
  size_t k = (size_t)ceil(q * (double)n);
  return (double)v[k ? k - 1 : 0] / 1e3;
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set))
    fprintf(stderr, "stream: cannot pin to CPU %d (continuing unpinned)\n", cpu);
}

/* ------------------------------------------------------------------ one session */

typedef struct session_run {
  rm_client_t *client;
  const float *audio;
  size_t n_chunks, frames_per_chunk;
  int64_t *rtt, *server; /* per chunk */
  size_t behind;         /* chunks sent more than a period after their time */
  int failed;
  char error[RM_CLIENT_MSG_MAX + 128];
} session_run_t;

static void *session_main(void *arg) {
  session_run_t *r = arg;
  rm_client_stream_t *s = NULL;
  rm_client_error_t err;
  if (rm_client_stream_open(r->client, manifest, NULL, &s, &err)) {
    r->failed = 1;
    snprintf(r->error, sizeof r->error, "open: %s %s", rm_client_status_name(err.status),
             err.message);
    return NULL;
  }
  int64_t period = (int64_t)opt.chunk_ms * 1000000, t0 = now_ns();
  for (size_t i = 0; i < r->n_chunks && !r->failed; i++) {
    int64_t due = t0 + (int64_t)i * period;
    if (now_ns() > due + period)
      r->behind++;
    sleep_until(due);
    rm_client_buffer_t b =
        rm_client_buffer_audio(r->audio + i * r->frames_per_chunk,
                               r->frames_per_chunk * sizeof(float), RATE, 1, RM_CLIENT_F32);
    int64_t sent = now_ns();
    rm_client_stream_result_t *res = NULL;
    if (rm_client_stream_send(s, NULL, &b, i + 1, &err) ||
        rm_client_stream_recv(s, &res, -1, &err)) {
      r->failed = 1;
      snprintf(r->error, sizeof r->error, "chunk %zu: %s %s", i + 1,
               rm_client_status_name(err.status), err.message);
      break;
    }
    r->rtt[i] = now_ns() - sent;
    r->server[i] = (int64_t)rm_client_stream_result_processing_ns(res);
    rm_client_stream_result_free(res);
  }
  if (!r->failed && rm_client_stream_close(s, NULL, &err)) {
    r->failed = 1;
    snprintf(r->error, sizeof r->error, "close: %s", err.message);
  }
  rm_client_stream_free(s);
  return NULL;
}

static void run_init(session_run_t *r, rm_client_t *c, const float *audio, double seconds) {
  memset(r, 0, sizeof *r);
  r->client = c;
  r->audio = audio;
  r->frames_per_chunk = (size_t)(RATE * opt.chunk_ms / 1000);
  r->n_chunks = (size_t)(seconds * 1000 / opt.chunk_ms);
  if (!r->n_chunks)
    r->n_chunks = 1;
  r->rtt = calloc(r->n_chunks, sizeof *r->rtt);
  r->server = calloc(r->n_chunks, sizeof *r->server);
}

static void run_destroy(session_run_t *r) {
  free(r->rtt);
  free(r->server);
}

/* ------------------------------------------------------------------ the server */

static pid_t server_pid;

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int port = -1;
  if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) &&
      !getsockname(fd, (struct sockaddr *)&a, &len))
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

static int start_server(char *addr, size_t cap) {
  int port = free_port();
  if (port < 0)
    return -1;
  snprintf(addr, cap, "127.0.0.1:%d", port);
  server_pid = fork();
  if (server_pid < 0)
    return -1;
  if (server_pid == 0) {
    pin(opt.server_cpu);
    execl(opt.server_bin, opt.server_bin, "--listen", addr, "--log-level", "warn", (char *)NULL);
    _exit(127);
  }
  return 0;
}

static void stop_server(void) {
  if (server_pid > 0) {
    kill(server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
  }
}

/* Polls health until SERVING (readiness, never a sleep-and-hope); 0 when it is. */
static int wait_ready(rm_client_t *c) {
  int64_t end = now_ns() + 60 * 1000000000LL;
  while (now_ns() < end) {
    rm_client_health_t h;
    if (!rm_client_health_check(c, NULL, 1000, &h, NULL) && h == RM_CLIENT_HEALTH_SERVING)
      return 0;
    sleep_until(now_ns() + 50000000);
  }
  return -1;
}

/* ------------------------------------------------------------------ main */

/* n concurrent real-time sessions; prints one line; 1 when they all held. */
static int concurrent(rm_client_t *c, const float *audio, int n) {
  session_run_t *runs = calloc((size_t)n, sizeof *runs);
  pthread_t *th = calloc((size_t)n, sizeof *th);
  if (!runs || !th) {
    free(runs);
    free(th);
    return 0;
  }
  for (int i = 0; i < n; i++) {
    run_init(&runs[i], c, audio, opt.session_seconds);
    pthread_create(&th[i], NULL, session_main, &runs[i]);
  }
  size_t per = runs[0].n_chunks, total = 0, behind = 0, failed = 0;
  int64_t *rtt = calloc((size_t)n * per, sizeof *rtt), *srv = calloc((size_t)n * per, sizeof *srv);
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    behind += runs[i].behind;
    if (runs[i].failed) {
      if (!failed)
        fprintf(stderr, "  session %d: %s\n", i, runs[i].error);
      failed++;
      continue;
    }
    memcpy(rtt + total, runs[i].rtt, per * sizeof *rtt);
    memcpy(srv + total, runs[i].server, per * sizeof *srv);
    total += per;
  }
  double p99 = quantile_us(rtt, total, 0.99), p50 = quantile_us(rtt, total, 0.5);
  double s99 = quantile_us(srv, total, 0.99);
  /* one scheduling hiccup is not "falling behind": more than 1 % of the chunks late is */
  int held = !failed && behind * 100 <= total && p99 * 1e3 <= (double)RTT_LIMIT_NS;
  printf("sessions=%-4d chunks=%zu behind=%zu failed=%zu rtt_p50_us=%.1f rtt_p99_us=%.1f "
         "server_p99_us=%.1f %s\n",
         n, total, behind, failed, p50, p99, s99, held ? "held" : "FELL BEHIND");
  fflush(stdout);
  for (int i = 0; i < n; i++)
    run_destroy(&runs[i]);
  free(runs);
  free(th);
  free(rtt);
  free(srv);
  return held;
}

static int usage(void) {
  fprintf(stderr, "usage: stream (--server ADDR | --server-bin PATH [--server-cpu N]) "
                  "[--client-cpu N] [--seconds S] [--session-seconds S] [--max-sessions N] "
                  "[--chunk-ms N]\n");
  return 2;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--server"))
      opt.server = v;
    else if (!strcmp(k, "--server-bin"))
      opt.server_bin = v;
    else if (!strcmp(k, "--server-cpu"))
      opt.server_cpu = atoi(v);
    else if (!strcmp(k, "--client-cpu"))
      opt.client_cpu = atoi(v);
    else if (!strcmp(k, "--seconds"))
      opt.seconds = atof(v);
    else if (!strcmp(k, "--session-seconds"))
      opt.session_seconds = atof(v);
    else if (!strcmp(k, "--max-sessions"))
      opt.max_sessions = atoi(v);
    else if (!strcmp(k, "--chunk-ms"))
      opt.chunk_ms = atoi(v);
    else
      return usage();
  }
  if ((argc - 1) % 2 || !opt.server == !opt.server_bin || opt.chunk_ms < 1 ||
      opt.max_sessions < 1 || !(opt.seconds > 0) || !(opt.session_seconds > 0))
    return usage();
  char addr[64];
  if (opt.server_bin) {
    if (start_server(addr, sizeof addr))
      return 2;
    opt.server = addr;
  }
  pin(opt.client_cpu);
  rm_client_options_t co = {.target = opt.server, .wait_for_ready = 1};
  rm_client_t *c = NULL;
  rm_client_error_t err;
  if (rm_client_new(&co, &c, &err) || wait_ready(c)) {
    fprintf(stderr, "stream: no server at %s\n", opt.server);
    rm_client_free(c);
    stop_server();
    return 2;
  }
  double longest = opt.seconds > opt.session_seconds ? opt.seconds : opt.session_seconds;
  size_t frames = (size_t)(longest * RATE) + RATE;
  float *audio = malloc(frames * sizeof *audio);
  if (!audio)
    return 2;
  unsigned seed = 1;
  for (size_t i = 0; i < frames; i++) { /* a tone with noise, speech-like bursts */
    double burst = (i / (RATE / 2)) % 2 ? 0.5 : 0.02;
    audio[i] = (float)(burst * sin(2 * M_PI * 220.0 * (double)i / RATE) +
                       0.01 * ((double)rand_r(&seed) / RAND_MAX - 0.5));
  }

  printf("bench stream: %d ms chunks of 48 kHz mono f32, AudioResample(16 kHz) -> VAD, "
         "server %s%s\n",
         opt.chunk_ms, opt.server, opt.server_bin ? " (started here, pinned)" : "");
  session_run_t one;
  run_init(&one, c, audio, opt.seconds);
  session_main(&one);
  if (one.failed) {
    fprintf(stderr, "stream: %s\n", one.error);
  } else {
    printf("one session, %.1f s at real-time pace: %zu chunks, behind=%zu\n", opt.seconds,
           one.n_chunks, one.behind);
    double s50 = quantile_us(one.server, one.n_chunks, 0.5);
    double s99 = quantile_us(one.server, one.n_chunks, 0.99);
    double r50 = quantile_us(one.rtt, one.n_chunks, 0.5);
    double r99 = quantile_us(one.rtt, one.n_chunks, 0.99);
    printf("  server processing_ns: p50 %.1f us  p99 %.1f us\n", s50, s99);
    printf("  client round trip:    p50 %.1f us  p99 %.1f us\n", r50, r99);
  }
  run_destroy(&one);

  printf("concurrent real-time sessions, %.1f s each (held: <= 1 %% of chunks late, p99 round "
         "trip <= 20 ms):\n",
         opt.session_seconds);
  int best = 0;
  for (int n = 1; n <= opt.max_sessions; n *= 2) {
    if (!concurrent(c, audio, n))
      break;
    best = n;
  }
  printf("real-time sessions held: %d (next doubling fell behind or hit --max-sessions %d)\n", best,
         opt.max_sessions);
  free(audio);
  rm_client_free(c);
  stop_server();
  return 0;
}
