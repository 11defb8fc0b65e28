/* tsan_pipelines.c - every node type compiled and run from several threads at once, each
 * thread with its own pipeline instances over the shared registry, allocator, clock,
 * metrics calibration and FFTW planner lock. Built with -fsanitize=thread (tsan.engine) a
 * data race is a ThreadSanitizer report and a failure; in every other build it is a
 * concurrency smoke test whose outputs must equal a single-threaded reference run. With the
 * memory budget (RM_TSAN_BUDGET) every run has a budget of its own under one shared budget.
 *
 * Usage: tsan_pipelines [THREADS [ROUNDS]] (defaults 4 and 3). Exit 0 when every run in
 * every thread succeeded with the reference's outputs. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rm/alloc.h"
#include "rm/manifest.h"
#include "rm/pipeline.h"
#include "rm/registry.h"
#ifdef RM_TSAN_BUDGET
#include "rm/budget.h"
#endif

/* Between them these pipelines use every registered node type (main() checks). The one
 * input goes to the node "src"; outputs are every sink. */
static const char *const pipelines[] = {
    /* utility nodes */
    "{'name':'util','nodes':[{'id':'src','node_type':'PassThrough'},"
    "{'id':'g','node_type':'Gain','params':{'db':-6}},"
    "{'id':'f','node_type':'AudioFormat','params':{'format':'i16'}},"
    "{'id':'st','node_type':'ChannelMix','params':{'mode':'stereo'}},"
    "{'id':'c','node_type':'Chunk','params':{'frames':500,'partial':'pad'}},"
    "{'id':'d','node_type':'Delay','params':{'ms':1}},"
    "{'id':'t','node_type':'SilenceTrim'},"
    "{'id':'mx','node_type':'Mixer','params':{'gains_db':[0,-6]}}],"
    "'connections':[{'from':'src','to':'g'},{'from':'g','to':'f'},{'from':'f','to':'st'},"
    "{'from':'st','to':'c'},{'from':'c','to':'d'},{'from':'src','to':'t'},"
    "{'from':'t','to':'mx'},{'from':'g','to':'mx'}]}",
    /* resampling and loudness */
    "{'name':'loud','nodes':[{'id':'src','node_type':'AudioResample','params':{'rate':48000}},"
    "{'id':'n','node_type':'LoudnessNormalize','params':{'target_lufs':-20}},"
    "{'id':'m','node_type':'LoudnessMeter'}],"
    "'connections':[{'from':'src','to':'n'},{'from':'n','to':'m'}]}",
    /* codecs: libsndfile both ways, libopus both ways */
    "{'name':'codec','nodes':[{'id':'src','node_type':'PassThrough'},"
    "{'id':'wav','node_type':'AudioEncode','params':{'container':'wav'}},"
    "{'id':'flac','node_type':'AudioEncode','params':{'container':'flac'}},"
    "{'id':'dw','node_type':'AudioDecode'},{'id':'df','node_type':'AudioDecode'},"
    "{'id':'oe','node_type':'OpusEncode'},{'id':'od','node_type':'OpusDecode'}],"
    "'connections':[{'from':'src','to':'wav'},{'from':'wav','to':'dw'},"
    "{'from':'src','to':'flac'},{'from':'flac','to':'df'},"
    "{'from':'src','to':'oe'},{'from':'oe','to':'od'}]}",
    /* spectra (FFTW plans are made under the planner lock) */
    "{'name':'spectra','nodes':[{'id':'src','node_type':'PassThrough'},"
    "{'id':'s','node_type':'Spectrogram','params':{'n_fft':512,'hop':128}},"
    "{'id':'s2','node_type':'Spectrogram','params':{'n_fft':384,'window':'hamming'}},"
    "{'id':'mel','node_type':'MelSpectrogram','params':{'n_mels':40}}],"
    "'connections':[{'from':'src','to':'s'},{'from':'src','to':'s2'},{'from':'src','to':'mel'}]}",
    /* speech nodes */
    "{'name':'speech','nodes':[{'id':'src','node_type':'PassThrough'},"
    "{'id':'v','node_type':'VAD','params':{'speech_audio':true}},"
    "{'id':'dn','node_type':'Denoise','params':{'agc':true}},"
    "{'id':'ag','node_type':'AutoGain'}],"
    "'connections':[{'from':'src','to':'v'},{'from':'src','to':'dn'},{'from':'src','to':'ag'}]}",
    /* JSON */
    "{'name':'calc','nodes':[{'id':'src','node_type':'Calculator'}],'connections':[]}",
};
enum { N_PIPELINES = sizeof pipelines / sizeof pipelines[0] };

static const char calc_json[] = "{\"operation\":\"mean\",\"operands\":[1,2,3.5]}";
static char *texts[N_PIPELINES];              /* the manifests with double quotes */
static rm_manifest_t *manifests[N_PIPELINES]; /* main's own copies, for names and types */
static json_t *reference[N_PIPELINES];        /* outputs of the single-threaded run */
static int rounds = 3;
#ifdef RM_TSAN_BUDGET
/* With the memory budget: every run draws from a budget of its own under this one, shared
 * by every thread as the server's budget is. */
static rm_budget_t *server_budget;
#endif

/* A fingerprint of a result: per output key, item count and every item's kind, size and
 * byte sum. Equal inputs must give equal fingerprints in any thread. */
static json_t *fingerprint(const rm_result_t *r) {
  json_t *o = json_object();
  for (size_t i = 0; o && i < r->n_outputs; i++) {
    json_t *items = json_array();
    for (size_t k = 0; items && k < r->outputs[i].n_items; k++) {
      const rm_buffer_t *b = r->outputs[i].items[k];
      unsigned long long sum = 0;
      for (size_t j = 0; j < b->size; j++)
        sum = sum * 31 + b->data[j];
      json_array_append_new(items, json_pack("[iII]", (int)b->kind, (json_int_t)b->size,
                                             (json_int_t)(sum & 0x7fffffffffffffffull)));
    }
    json_object_set_new(o, r->outputs[i].key, items);
  }
  return o;
}

/* 0.5 s of 16 kHz mono f32: tone bursts and silence. */
static rm_buffer_t *make_audio(void) {
  enum { RATE = 16000, FRAMES = RATE / 2 };
  rm_buffer_t *b = rm_buffer_new_audio(NULL, RATE, 1, RM_SAMPLE_F32, FRAMES);
  if (!b)
    return NULL;
  float *s = (float *)b->data;
  for (size_t i = 0; i < FRAMES; i++) {
    int burst = (i / 1600) % 2 == 0;
    s[i] = burst ? (float)(0.4 * sin(2 * M_PI * 440.0 * (double)i / RATE)) : 0.0f;
  }
  return b;
}

/* Parses, compiles and runs pipeline i once on a new input, as the server does for each
 * request (a manifest and a buffer are never shared between threads: jansson's reference
 * counts and rm_buffer_ref are not synchronised), and returns the result's fingerprint,
 * NULL on failure. */
static json_t *run_once(size_t i) {
  rm_manifest_t *m = NULL;
  rm_pipeline_t *p = NULL;
  rm_result_t *r = NULL;
  rm_error_t err;
  json_t *fp = NULL;
  int rc = rm_manifest_from_json_text(texts[i], strlen(texts[i]), &m, &err);
  if (!rc)
    rc = rm_pipeline_new(m, NULL, &p, &err);
  rm_manifest_free(m);
  if (rc) {
    fprintf(stderr, "tsan_pipelines: %s: %s\n", manifests[i]->name, err.message);
    return NULL;
  }
  rm_input_t in = {"src",
                   strcmp(manifests[i]->name, "calc")
                       ? make_audio()
                       : rm_buffer_new_text(NULL, RM_KIND_JSON, calc_json, sizeof calc_json - 1)};
  rm_run_opts_t opts = {.metrics = 1, .end_of_stream = 1};
  if (!in.buf)
    fprintf(stderr, "tsan_pipelines: out of memory\n");
  else if (rm_pipeline_run(p, &in, 1, &opts, &r, &err))
    fprintf(stderr, "tsan_pipelines: %s: %s\n", manifests[i]->name, err.message);
  else
    fp = fingerprint(r);
  rm_result_free(r);
  rm_buffer_unref(in.buf);
  rm_pipeline_free(p);
  return fp;
}

static void *worker(void *arg) {
  size_t t = (size_t)arg, failures = 0;
  for (int k = 0; k < rounds; k++) {
    for (size_t j = 0; j < N_PIPELINES; j++) {
      size_t i = (j + t) % N_PIPELINES; /* threads start on different pipelines */
#ifdef RM_TSAN_BUDGET
      rm_budget_t *mine = rm_budget_new(256u << 20, server_budget);
      rm_budget_t *previous = rm_budget_enter(mine);
      json_t *fp = run_once(i);
      rm_budget_leave(previous);
      rm_budget_free(mine); /* freed with fp's last block */
#else
      json_t *fp = run_once(i);
#endif
      if (!fp || !json_equal(fp, reference[i])) {
        fprintf(stderr, "tsan_pipelines: thread %zu: %s differs from the reference\n", t,
                manifests[i]->name);
        failures++;
      }
      json_decref(fp);
    }
  }
  return (void *)failures;
}

/* Every registered type appears in some pipeline. */
static int covers_registry(void) {
  int ok = 1;
  for (size_t t = 0; t < rm_registry_count(); t++) {
    const char *name = rm_registry_at(t)->name;
    int found = 0;
    for (size_t i = 0; i < N_PIPELINES && !found; i++)
      for (size_t n = 0; n < manifests[i]->n_nodes && !found; n++)
        found = !strcmp(manifests[i]->nodes[n].type, name);
    if (!found) {
      fprintf(stderr, "tsan_pipelines: no pipeline uses node type %s\n", name);
      ok = 0;
    }
  }
  return ok;
}

int main(int argc, char **argv) {
  size_t threads = argc > 1 ? strtoul(argv[1], NULL, 10) : 4;
  rounds = argc > 2 ? atoi(argv[2]) : 3;
  if (threads < 1 || threads > 64 || rounds < 1)
    return fprintf(stderr, "usage: tsan_pipelines [THREADS [ROUNDS]]\n"), 2;
  rm_alloc_install_jansson(); /* as the server does, before any thread */
  int status = 0;
  for (size_t i = 0; i < N_PIPELINES; i++) {
    char *text = texts[i] = rm_strdup(pipelines[i]);
    for (char *c = text; c && *c; c++)
      if (*c == '\'')
        *c = '"';
    rm_error_t err;
    if (!text || rm_manifest_from_json_text(text, strlen(text), &manifests[i], &err))
      return fprintf(stderr, "tsan_pipelines: manifest %zu: %s\n", i, err.message), 1;
    if (!(reference[i] = run_once(i)))
      status = 1;
  }
  if (status || !covers_registry())
    return 1;
#ifdef RM_TSAN_BUDGET
  if (!(server_budget = rm_budget_new(0, NULL)))
    return 1;
#endif
  pthread_t tid[64];
  size_t started = 0;
  for (; started < threads; started++)
    if (pthread_create(&tid[started], NULL, worker, (void *)started))
      break;
  size_t failures = started == threads ? 0 : 1;
  for (size_t t = 0; t < started; t++) {
    void *f;
    pthread_join(tid[t], &f);
    failures += (size_t)f;
  }
  for (size_t i = 0; i < N_PIPELINES; i++) {
    json_decref(reference[i]);
    rm_manifest_free(manifests[i]);
    rm_free(texts[i]);
  }
#ifdef RM_TSAN_BUDGET
  /* every byte the runs charged came back to the shared budget */
  printf("tsan_pipelines: shared budget peak %zu bytes, %zu in use at the end\n",
         rm_budget_peak(server_budget), rm_budget_used(server_budget));
  if (rm_budget_used(server_budget) || !rm_budget_peak(server_budget))
    failures++;
  rm_budget_free(server_budget);
#endif
  printf("tsan_pipelines: %zu threads x %d rounds x %d pipelines: %zu failures\n", threads, rounds,
         (int)N_PIPELINES, failures);
  return failures ? 1 : 0;
}
