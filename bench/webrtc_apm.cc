/* webrtc_apm.cc - the C face of WebRTC's AudioProcessing for the speech benchmark (see
 * webrtc_apm.h). */
#include "webrtc_apm.h"

#include <webrtc/modules/audio_processing/include/audio_processing.h>

struct bench_apm {
  webrtc::AudioProcessing *apm;
  int rate;
};

extern "C" bench_apm_t *bench_apm_new(int rate, int ns_level, int vad, int agc) {
  bench_apm_t *a = new bench_apm_t;
  a->apm = webrtc::AudioProcessing::Create();
  a->rate = rate;
  if (!a->apm) {
    delete a;
    return nullptr;
  }
  a->apm->noise_suppression()->Enable(ns_level >= 0);
  if (ns_level >= 0)
    a->apm->noise_suppression()->set_level(static_cast<webrtc::NoiseSuppression::Level>(ns_level));
  a->apm->voice_detection()->Enable(vad >= 0);
  if (vad >= 0)
    a->apm->voice_detection()->set_likelihood(
        static_cast<webrtc::VoiceDetection::Likelihood>(vad));
  a->apm->gain_control()->Enable(agc != 0);
  if (agc)
    a->apm->gain_control()->set_mode(webrtc::GainControl::kAdaptiveDigital);
  a->apm->high_pass_filter()->Enable(false);
  return a;
}

extern "C" int bench_apm_process(bench_apm_t *a, float *frame, int *voice) {
  float *ch[1] = {frame};
  int rc = a->apm->ProcessStream(ch, static_cast<size_t>(a->rate / 100), a->rate,
                                 webrtc::AudioProcessing::kMono, a->rate,
                                 webrtc::AudioProcessing::kMono, ch);
  *voice = a->apm->voice_detection()->is_enabled() && a->apm->voice_detection()->stream_has_voice();
  return rc == 0 ? 0 : -1;
}

extern "C" void bench_apm_free(bench_apm_t *a) {
  if (!a)
    return;
  delete a->apm;
  delete a;
}
