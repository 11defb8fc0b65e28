/* test_wire_request.h - the ExecuteRequest the wire layer's suites (test_wire_views.c,
 * test_wire_strings.c) take apart: pipeline "views" with node "a" (PassThrough), inputs "a"
 * (2000 B of audio), "b" (600 B binary, mime type "x/y") and "c" (100 B of audio). */
#ifndef RM_TEST_WIRE_REQUEST_H
#define RM_TEST_WIRE_REQUEST_H

#include <stdlib.h>
#include <string.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "test_support.h"

#define DESC (&remotemedia__v1__execute_request__descriptor)

static uint8_t big_audio[2000], big_bin[600], small_audio[100];

/* An ExecuteRequest with a manifest and three inputs (two above 512 bytes), packed into a new
 * block; its length in *len. */
static inline uint8_t *pack_request(size_t *len) {
  static Remotemedia__V1__NodeManifest node = REMOTEMEDIA__V1__NODE_MANIFEST__INIT;
  static Remotemedia__V1__NodeManifest *nodes[] = {&node};
  Remotemedia__V1__PipelineManifest m = REMOTEMEDIA__V1__PIPELINE_MANIFEST__INIT;
  node.id = "a";
  node.node_type = "PassThrough";
  m.name = "views";
  m.nodes = nodes;
  m.n_nodes = 1;
  for (size_t i = 0; i < sizeof big_audio; i++)
    big_audio[i] = (uint8_t)(i * 7);
  for (size_t i = 0; i < sizeof big_bin; i++)
    big_bin[i] = (uint8_t)(i * 13 + 1);
  memset(small_audio, 0x5a, sizeof small_audio);
  Remotemedia__V1__AudioBuffer a1 = REMOTEMEDIA__V1__AUDIO_BUFFER__INIT,
                               a3 = REMOTEMEDIA__V1__AUDIO_BUFFER__INIT;
  Remotemedia__V1__BinaryBuffer b2 = REMOTEMEDIA__V1__BINARY_BUFFER__INIT;
  a1.samples = (ProtobufCBinaryData){sizeof big_audio, big_audio};
  a1.sample_rate = 16000;
  a1.channels = 1;
  a1.format = REMOTEMEDIA__V1__AUDIO_FORMAT__AUDIO_FORMAT_F32;
  a3 = a1;
  a3.samples = (ProtobufCBinaryData){sizeof small_audio, small_audio};
  b2.data = (ProtobufCBinaryData){sizeof big_bin, big_bin};
  b2.mime_type = "x/y";
  Remotemedia__V1__DataBuffer d[3] = {REMOTEMEDIA__V1__DATA_BUFFER__INIT,
                                      REMOTEMEDIA__V1__DATA_BUFFER__INIT,
                                      REMOTEMEDIA__V1__DATA_BUFFER__INIT};
  d[0].kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO;
  d[0].audio = &a1;
  d[1].kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_BINARY;
  d[1].binary = &b2;
  d[2].kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO;
  d[2].audio = &a3;
  Remotemedia__V1__ExecuteRequest__InputsEntry e[3], *ep[3];
  const char *keys[] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++) {
    remotemedia__v1__execute_request__inputs_entry__init(&e[i]);
    e[i].key = (char *)keys[i];
    e[i].value = &d[i];
    ep[i] = &e[i];
  }
  Remotemedia__V1__ExecuteRequest req = REMOTEMEDIA__V1__EXECUTE_REQUEST__INIT;
  req.manifest = &m;
  req.inputs = ep;
  req.n_inputs = 3;
  *len = remotemedia__v1__execute_request__get_packed_size(&req);
  uint8_t *buf = malloc(*len);
  CU_ASSERT_FATAL(buf != NULL);
  remotemedia__v1__execute_request__pack(&req, buf);
  return buf;
}

#endif
