"""The neural F0 estimators as fixed-shape steps (rtvc.rvc.f0_steps), what the cuda-graph and TensorRT backends run:
the conv log-mel is the estimators' log-mel, each step's salience is its estimator's on speech and decodes to the
same Hz, FCPE's host decoder is torchfcpe's, and a stream on the step path keeps the F0 the estimator would."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="RVC voices need the rvc extra (torch)")

from rtvc.converter import StreamingConverter, StreamShape  # noqa: E402
from rtvc.rvc.f0 import make_f0  # noqa: E402
from rtvc.rvc.f0.base import keep_range  # noqa: E402
from rtvc.rvc.f0.logmel import FCPE_MEL, RMVPE_MEL, LogMel  # noqa: E402
from rtvc.rvc.f0.rmvpe_factory import write_rmvpe_checkpoint  # noqa: E402
from rtvc.rvc.f0_steps import ConvLogMel, f0_step  # noqa: E402
from rtvc.voices.rvc import RvcModelSettings, RvcParams, RvcVoice  # noqa: E402
from rtvc.wavio import bundled_speech, load_mono  # noqa: E402

SR = 16000
SEGMENT = 1920  # a 20 ms block's segment: (2 + 2 · 4 + 2) frames of 160 samples
pytestmark = pytest.mark.usefixtures("torch_two_threads")


@cache
def speech() -> np.ndarray:
    return load_mono(bundled_speech(), SR)


def segments(k: int = 6) -> list[np.ndarray]:
    """k voiced-and-unvoiced stretches of the bundled speech, SEGMENT samples each."""
    x = speech()
    starts = np.linspace(4000, len(x) - SEGMENT - 4000, k).astype(int)
    return [x[s : s + SEGMENT] for s in starts]


@pytest.fixture(scope="module")
def rmvpe_path(tmp_path_factory):
    return write_rmvpe_checkpoint(tmp_path_factory.mktemp("rmvpe") / "rmvpe.pt", seed=1)


def estimator(method: str, rmvpe_path=None):
    return make_f0(method, model_path=rmvpe_path if method == "rmvpe" else None)


@pytest.mark.parametrize("spec", [FCPE_MEL, RMVPE_MEL], ids=["fcpe", "rmvpe"])
def test_the_conv_log_mel_is_the_estimators_log_mel(spec):
    mel = LogMel(spec)
    for seg in segments():
        ref = mel(seg).numpy().astype(np.float64)
        got = ConvLogMel(spec, SEGMENT)(torch.from_numpy(seg)[None])[0].numpy()
        assert got.shape == ref.shape == (128, SEGMENT // 160 + 1)
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) <= 1e-5
        assert np.abs(got - ref).max() <= 1e-3  # log units; the floor (-11.5) is where fp32 rounding shows most


def test_fcpe_decodes_as_torchfcpe_does():
    """Our host-side decoder against torchfcpe's own `infer(..., decoder='local_argmax')` on the whole clip."""
    est = estimator("fcpe")
    x = speech()[: 3 * SR]
    with torch.no_grad():
        ref = est.net.infer(est.mel(x).T[None], decoder="local_argmax", threshold=est.threshold)[0, :, 0].numpy()
    ref = keep_range(ref, est.f0_min, est.f0_max)
    got = est.estimate(x)
    assert ((got > 0) == (ref > 0)).all() and (ref > 0).mean() > 0.3
    assert np.abs(got - ref).max() <= 1e-3  # Hz: torchfcpe sums in float32, we in float64


@pytest.mark.parametrize("method", ["fcpe", "crepe-tiny", "crepe", "rmvpe"])
def test_each_step_is_its_estimator(method, rmvpe_path):
    est = estimator(method, rmvpe_path)
    step = f0_step(est, SEGMENT)
    assert [s.shape for s in step.inputs] == [(1, SEGMENT)] and step.outputs[0].shape == (SEGMENT // 160 + 1, 360)
    voiced = 0
    for seg in segments(3 if method == "crepe" else 6):
        with torch.no_grad():
            got = step(torch.from_numpy(seg)[None]).numpy()
        ref = est.salience(seg)
        if isinstance(ref, tuple):  # CREPE: (salience, frame RMS); the step zeroes silent frames itself
            ref = ref[0] * (ref[1] >= 10 ** (-70 / 20))[:, None]
        assert np.linalg.norm(got - ref) <= 1e-4 * np.linalg.norm(ref), method
        f0 = est.decode(got)
        np.testing.assert_allclose(f0, est.estimate(seg), rtol=1e-4, atol=1e-3)
        voiced += int((f0 > 0).sum())
    assert method == "rmvpe" or voiced > 0  # (random RMVPE weights call nothing voiced at RVC's threshold)


def test_yin_has_no_step():
    assert f0_step(estimator("yin"), SEGMENT) is None


@pytest.fixture(scope="module")
def models(tiny_v2_models):
    return tiny_v2_models


@pytest.mark.parametrize("block", [480, 960])
def test_a_stream_on_the_step_path_keeps_the_estimators_f0(models, block):
    """Two voices on the fixed-shape path (eager runners on this CPU), one running FCPE as its step and one on
    the estimator: block by block, their rolling F0 caches agree, and so does what they play."""
    x = load_mono(bundled_speech(), 48000)[: 2 * 48000]
    voices, outs = [], []
    for on_step in (True, False):
        voice = RvcVoice(48000, RvcModelSettings(path="v2.pth", content="hubert.pt", f0="fcpe"), models)
        voice.fixed = True  # on this CPU-only machine the settings cannot select the step path
        conv = StreamingConverter(voice, RvcParams(), StreamShape(48000, block, 144, 384))
        assert "f0" in voice.runners
        if not on_step:
            del voice.runners["f0"]  # the estimator itself, on the segment the step would get
        voices.append((voice, conv))
    caches = []
    for i in range(0, len(x) - block + 1, block):
        out = [conv.process_block(x[i : i + block]) for _v, conv in voices]
        outs.append(out)
        a, b = (v._f0_cache for v, _c in voices)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
        caches.append(a.copy())
    assert (np.concatenate(caches) > 0).mean() > 0.2  # the stream had voiced frames to compare
    step_out = np.concatenate([o[0] for o in outs])
    est_out = np.concatenate([o[1] for o in outs])
    assert np.abs(step_out - est_out).max() <= 1e-3 * np.abs(est_out).max()


def test_a_voice_switched_to_on_the_step_path_estimates_f0_over_its_whole_window(models):
    """A voice primed with the input before a switch (StreamingConverter.prime) runs its "f0_window" step once, on its
    first block: the F0 of every frame the synthesizer reads is then what a voice that ran all along holds (FCPE reads
    its whole input: within a few cents, the same frames voiced). Before, only the newest audio was estimated: the
    primed frames were unvoiced to the text encoder (22% of them agreed) until the 1 s window had passed."""
    x = load_mono(bundled_speech(), 48000)[: 3 * 48000]
    shape, block, at = StreamShape(48000, 960, 144, 384), 960, 100 * 960

    def conv() -> StreamingConverter:
        voice = RvcVoice(48000, RvcModelSettings(path="v2.pth", content="hubert.pt", f0="fcpe"), models)
        voice.fixed = True  # on this CPU-only machine the settings cannot select the step path
        return StreamingConverter(voice, RvcParams(), shape)

    new, ref = conv(), conv()
    assert "f0_window" in new.voice.runners
    calls = []
    window_step = new.voice.runners["f0_window"]
    new.voice.runners["f0_window"] = lambda **kw: calls.append(1) or window_step(**kw)
    for i in range(at - new.history, at + block, block):
        ref.process_block(x[i : i + block])
    new.prime(x[at - new.history : at])
    new.process_block(x[at : at + block])
    v, r = new.voice, ref.voice
    first, frames = v._end // 160 - v._plan.synth.frames, v._plan.synth.frames
    got, want = v._f0_rows(first, first + frames), r._f0_rows(first, first + frames)
    assert (want > 0).mean() > 0.5  # (speech: voiced frames to compare)
    assert ((got > 0) == (want > 0)).mean() >= 0.95
    both = (got > 0) & (want > 0)
    assert np.median(1200 * np.abs(np.log2(got[both] / want[both]))) <= 10.0
    new.process_block(x[at + block : at + 2 * block])
    assert calls == [1]  # once, on the first block only
