/* test_log.c - the server's JSON-lines log: the per-call line builder writes exact,
 * parseable lines (numbers, escapes, fields that do not fit). */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "test_support.h"

/* Runs build() with stderr sent to a file; returns what it wrote (static storage). */
static const char *captured(void (*build)(void)) {
  static char text[1 << 20];
  FILE *f = tmpfile();
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fflush(stderr);
  int saved = dup(2);
  dup2(fileno(f), 2);
  build();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(f);
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  return text;
}

static void build_numbers(void) {
  rm_log_line_t line;
  rm_log_line_begin(&line, RM_LOG_INFO, "call");
  rm_log_line_plain(&line, "method", "/remotemedia.v1.PipelineService/ExecutePipeline");
  rm_log_line_int(&line, "zero", 0);
  rm_log_line_int(&line, "code", 16);
  rm_log_line_int(&line, "negative", -42);
  rm_log_line_int(&line, "min", LLONG_MIN);
  rm_log_line_us(&line, "duration_us", 1234567);
  rm_log_line_us(&line, "short_us", 5);
  rm_log_line_us(&line, "none_us", 0);
  rm_log_line_bool(&line, "yes", 1);
  rm_log_line_bool(&line, "no", 0);
  rm_log_line_end(&line);
}

/* Microseconds since the epoch of an RFC 3339 UTC time with microseconds. */
static long long parse_ts(const char *ts) {
  struct tm tm = {0};
  long usec = -1;
  if (sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%6ldZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec, &usec) != 7)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (long long)timegm(&tm) * 1000000 + usec;
}

static long long now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void test_numbers_are_exact(void) {
  long long before = now_us();
  const char *text = captured(build_numbers);
  long long after = now_us();
  /* {"ts":"YYYY-MM-DDTHH:MM:SS.uuuuuuZ",...}: the fixed part first */
  CU_ASSERT_EQUAL_FATAL(strncmp(text, "{\"ts\":\"", 7), 0);
  const char *ts = text + 7;
  RM_ASSERT_INT(strchr(ts, '"') - ts, 27);
  CU_ASSERT(ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' && ts[13] == ':' && ts[16] == ':' &&
            ts[19] == '.' && ts[26] == 'Z');
  /* the wall-clock time of the line (read once a second, then followed on the monotonic
   * clock: a slewing clock may move by half a millisecond a second) */
  long long at = parse_ts(ts);
  CU_ASSERT(at >= before - 1000 && at <= after + 1000);
  RM_ASSERT_STR(ts + 27, "\",\"level\":\"info\",\"event\":\"call\","
                         "\"method\":\"/remotemedia.v1.PipelineService/ExecutePipeline\","
                         "\"zero\":0,\"code\":16,\"negative\":-42,\"min\":-9223372036854775808,"
                         "\"duration_us\":1234.567,\"short_us\":0.005,\"none_us\":0.000,"
                         "\"yes\":true,\"no\":false}\n");
  json_error_t err;
  json_t *j = json_loads(text, 0, &err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  RM_ASSERT_INT(json_integer_value(json_object_get(j, "min")), LLONG_MIN);
  json_decref(j);
}

static void build_short(void) {
  rm_log_line_t line;
  rm_log_line_begin(&line, RM_LOG_INFO, "tick");
  rm_log_line_end(&line);
}

/* Lines a second apart (the wall clock is read again) both carry their own time. */
static void test_timestamps_follow_the_wall_clock(void) {
  for (int i = 0; i < 2; i++) {
    if (i)
      usleep(1100 * 1000);
    long long before = now_us();
    const char *text = captured(build_short);
    long long after = now_us();
    long long at = parse_ts(text + 7);
    CU_ASSERT(at >= before - 1000 && at <= after + 1000);
  }
}

static void build_escapes(void) {
  rm_log_line_t line;
  rm_log_line_begin(&line, RM_LOG_WARN, "odd \"event\"");
  rm_log_line_str(&line, "control", "a\x01\n\tb");
  rm_log_line_str(&line, "quotes", "say \"hi\" \\ bye");
  rm_log_line_str(&line, "utf8", "caf\xc3\xa9 \xe2\x82\xac");
  rm_log_line_str(&line, "broken", "x\xc3(y\xff");
  rm_log_line_str(&line, "null", NULL);
  rm_log_line_end(&line);
}

static void test_strings_are_escaped(void) {
  const char *text = captured(build_escapes);
  const char *rest = strstr(text, "\"level\"");
  CU_ASSERT_PTR_NOT_NULL_FATAL(rest);
  RM_ASSERT_STR(rest, "\"level\":\"warn\",\"event\":\"odd \\\"event\\\"\","
                      "\"control\":\"a\\u0001\\u000a\\u0009b\","
                      "\"quotes\":\"say \\\"hi\\\" \\\\ bye\","
                      "\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac\","
                      "\"broken\":\"x\\ufffd(y\\ufffd\",\"null\":\"\"}\n");
  json_error_t err;
  json_t *j = json_loads(text, 0, &err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  RM_ASSERT_STR(json_string_value(json_object_get(j, "control")), "a\x01\n\tb");
  json_decref(j);
}

static void build_every_ascii(void) {
  char all[128];
  for (int c = 1; c < 128; c++)
    all[c - 1] = (char)c;
  all[127] = '\0';
  rm_log_line_t line;
  rm_log_line_begin(&line, RM_LOG_INFO, "ascii");
  rm_log_line_str(&line, "all", all);
  rm_log_line_end(&line);
}

/* Every ASCII byte comes back as itself through a JSON parser. */
static void test_every_ascii_byte_round_trips(void) {
  const char *text = captured(build_every_ascii);
  json_error_t err;
  json_t *j = json_loads(text, 0, &err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  const char *all = json_string_value(json_object_get(j, "all"));
  CU_ASSERT_PTR_NOT_NULL_FATAL(all);
  RM_ASSERT_INT(strlen(all), 127);
  for (int c = 1; c < 128; c++)
    RM_ASSERT_INT((unsigned char)all[c - 1], c);
  json_decref(j);
}

/* The escaper checks 8 bytes at a time: an ASCII byte that needs escaping (or its plain
 * neighbours at the range edges) at every position of a 24-byte string round-trips. */
static const char edge_bytes[] = {0x01, 0x1f, 0x20, 0x21, '"', 0x23, 0x5b, '\\', 0x5d, 0x7e, 0x7f};
#define EDGE_LEN 24
static void build_edges(void) {
  for (size_t b = 0; b < sizeof edge_bytes; b++)
    for (int pos = 0; pos < EDGE_LEN; pos++) {
      char v[EDGE_LEN + 1];
      memset(v, 'a', EDGE_LEN);
      v[EDGE_LEN] = '\0';
      v[pos] = edge_bytes[b];
      rm_log_line_t line;
      rm_log_line_begin(&line, RM_LOG_INFO, "edge");
      rm_log_line_str(&line, "v", v);
      rm_log_line_end(&line);
    }
}

static void test_escapes_at_every_position(void) {
  static char copy[1 << 20];
  snprintf(copy, sizeof copy, "%s", captured(build_edges));
  size_t k = 0;
  for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    size_t b = k / EDGE_LEN, pos = k % EDGE_LEN;
    k++;
    json_error_t err;
    json_t *j = json_loads(l, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    const char *v = json_string_value(json_object_get(j, "v"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    char want[EDGE_LEN + 1];
    memset(want, 'a', EDGE_LEN);
    want[EDGE_LEN] = '\0';
    want[pos] = edge_bytes[b];
    RM_ASSERT_STR(v, want);
    json_decref(j);
  }
  RM_ASSERT_INT(k, sizeof edge_bytes * EDGE_LEN);
}

/* Malformed UTF-8 of every kind becomes U+FFFD, byte by byte; well-formed text stays. */
static void build_utf8(void) {
  rm_log_line_t line;
  rm_log_line_begin(&line, RM_LOG_INFO, "utf8");
  rm_log_line_str(&line, "bad_lead", "a\xf8\x80\x80");
  rm_log_line_str(&line, "surrogate", "\xed\xa0\x80");
  rm_log_line_str(&line, "overlong", "\xe0\x80\x80|\xc0\xaf");
  rm_log_line_str(&line, "too_high", "\xf4\x90\x80\x80");
  rm_log_line_str(&line, "cut", "\xe2\x82");
  rm_log_line_str(&line, "good", "\xf0\x9f\x98\x80 \xed\x9f\xbf \xf4\x8f\xbf\xbf \xc2\x80");
  rm_log_line_end(&line);
}

static void test_malformed_utf8_is_replaced(void) {
  const char *text = captured(build_utf8);
  const char *rest = strstr(text, "\"bad_lead\"");
  CU_ASSERT_PTR_NOT_NULL_FATAL(rest);
#define R "\\ufffd"
  RM_ASSERT_STR(rest, "\"bad_lead\":\"a" R R R "\",\"surrogate\":\"" R R R "\","
                      "\"overlong\":\"" R R R "|" R R "\",\"too_high\":\"" R R R R "\","
                      "\"cut\":\"" R R "\","
                      "\"good\":\"\xf0\x9f\x98\x80 \xed\x9f\xbf \xf4\x8f\xbf\xbf \xc2\x80\"}\n");
#undef R
}

static unsigned random_state = 12345;
static void build_random(void) {
  for (int k = 0; k < 2000; k++) {
    char bytes[40];
    size_t n = 1 + (random_state >> 8) % sizeof bytes;
    for (size_t i = 0; i < n; i++) {
      random_state = random_state * 1103515245u + 12345u;
      bytes[i] = (char)(1 + (random_state >> 16) % 255);
    }
    rm_log_line_t line;
    rm_log_line_begin(&line, RM_LOG_INFO, "random");
    rm_log_line_strn(&line, "v", bytes, n);
    rm_log_line_end(&line);
  }
}

/* Any bytes at all make a line that a strict JSON parser (jansson checks UTF-8) accepts. */
static void test_any_bytes_make_valid_json(void) {
  static char copy[1 << 20];
  const char *text = captured(build_random);
  snprintf(copy, sizeof copy, "%s", text);
  int lines = 0;
  for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    json_error_t err;
    json_t *j = json_loads(l, 0, &err);
    CU_ASSERT_PTR_NOT_NULL(j);
    if (!j)
      fprintf(stderr, "not JSON: %s (%s)\n", l, err.text);
    json_decref(j);
    lines++;
  }
  RM_ASSERT_INT(lines, 2000);
}

static void build_overflow(void) {
  static char big[3000];
  memset(big, 'x', sizeof big - 1);
  rm_log_line_t line;
  rm_log_line_begin(&line, RM_LOG_INFO, "call");
  rm_log_line_str(&line, "before", "kept");
  rm_log_line_str(&line, "big", big); /* does not fit: dropped whole */
  rm_log_line_int(&line, "after", 7);
  for (int i = 0; i < 200; i++) /* fill up: the last ones are dropped whole */
    rm_log_line_us(&line, "filler_us", 123456789);
  rm_log_line_plain(&line, "late", "dropped");
  rm_log_line_end(&line);
}

static void test_fields_that_do_not_fit_are_dropped_whole(void) {
  const char *text = captured(build_overflow);
  size_t len = strlen(text);
  CU_ASSERT(len <= sizeof(((rm_log_line_t *)0)->buf));
  CU_ASSERT_EQUAL(text[len - 1], '\n');
  CU_ASSERT_PTR_NULL(strstr(text, "\"big\""));
  CU_ASSERT_PTR_NULL(strstr(text, "\"late\""));
  json_error_t err;
  json_t *j = json_loads(text, 0, &err); /* still one valid object */
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  RM_ASSERT_STR(json_string_value(json_object_get(j, "before")), "kept");
  RM_ASSERT_INT(json_integer_value(json_object_get(j, "after")), 7);
  json_decref(j);
  /* every filler that was written is whole */
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"filler_us\":123456.789}\n"));
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_numbers_are_exact),
                                         RM_TEST(test_timestamps_follow_the_wall_clock),
                                         RM_TEST(test_strings_are_escaped),
                                         RM_TEST(test_every_ascii_byte_round_trips),
                                         RM_TEST(test_escapes_at_every_position),
                                         RM_TEST(test_malformed_utf8_is_replaced),
                                         RM_TEST(test_any_bytes_make_valid_json),
                                         RM_TEST(test_fields_that_do_not_fit_are_dropped_whole),
                                         {NULL, NULL}};
  rm_test_suite("log", cases);
  return rm_test_run();
}
