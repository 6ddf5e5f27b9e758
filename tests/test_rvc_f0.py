"""F0 estimators for RVC voices: accuracy on tones and speech (against Praat), the frame grid and its alignment,
streaming locality, the log-mel front end, and RMVPE's checkpoint format and loading errors.

CREPE "full" costs ~90 ms per frame on one CPU thread, so its tests use shorter signals than the others.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import parselmouth
import pytest
import torch
from scipy.ndimage import binary_dilation

from rtvc.errors import ConfigError, ModelError
from rtvc.rvc.f0 import F0_METHODS, HOP, SR, F0Estimator, make_f0, n_frames
from rtvc.rvc.f0.base import BIN_CENTS, bin_range, local_average_f0
from rtvc.rvc.f0.logmel import FCPE_MEL, RMVPE_MEL, LogMel, mel_filterbank
from rtvc.rvc.f0.rmvpe_factory import random_rmvpe_state, write_rmvpe_checkpoint
from rtvc.wavio import bundled_speech, load_mono

NEURAL = ["crepe", "crepe-tiny", "fcpe"]
BUNDLED = ["yin", *NEURAL]  # every method that needs no user file
RMVPE_VALUES = 90_472_799  # floats in rmvpe.pt: 90,423,165 parameters + 49,634 batch-norm running statistics
RMVPE_PARAMS = 90_423_165


@cache
def estimator(method: str) -> F0Estimator:
    return make_f0(method)


def seconds(method: str, full: float) -> float:
    """Signal length for a test: CREPE full gets a quarter (or at least 0.3 s)."""
    return max(0.3, full / 4) if method == "crepe" else full


def tone(f0: float, n: int, start: int = 0) -> np.ndarray:
    """Four harmonics (1/k amplitudes, unrelated phases), -13 dBFS, silent before `start`."""
    t = np.arange(n - start) / SR
    x = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + k) for k in range(1, 5))
    return np.concatenate([np.zeros(start), x]).astype(np.float32)


def cents(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1200.0 * np.log2(a / b)


@cache
def speech() -> np.ndarray:
    return load_mono(bundled_speech(), SR)


# --- accuracy ---------------------------------------------------------------------------------------------------

# Median |f/f0 - 1| allowed; measured: yin 0.03 %, crepe 0.07 %, crepe-tiny 0.4 %, fcpe 0.5 % (worst of 100/220/400).
TONE_TOL = {"yin": 0.001, "crepe": 0.003, "crepe-tiny": 0.01, "fcpe": 0.01}


@pytest.mark.parametrize("method", BUNDLED)
@pytest.mark.parametrize("f0", [100.0, 220.0, 400.0])
def test_harmonic_tone(method, f0):
    n = int(seconds(method, 1.0) * SR)
    out = estimator(method).estimate(tone(f0, n))
    voiced = out[out > 0]
    assert voiced.size >= 0.9 * out.size, f"{method}: only {voiced.size}/{out.size} frames voiced"
    err = abs(np.median(voiced) / f0 - 1)
    assert err < TONE_TOL[method], f"{method}: median {np.median(voiced):.3f} Hz for {f0} Hz"


@pytest.mark.parametrize("method", BUNDLED)
def test_silence_and_white_noise_are_unvoiced(method):
    n = int(seconds(method, 1.0) * SR)
    est = estimator(method)
    assert not est.estimate(np.zeros(n, np.float32)).any()
    noise = (0.1 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)  # -20 dBFS
    assert (est.estimate(noise) > 0).mean() <= 0.1


# Measured on the first 1.2 s (crepe) or all 7.3 s (others) of speech.wav, frames both call voiced:
# median |cents| yin 2.2, crepe 4.3, crepe-tiny 6.7, fcpe 4.8; share of Praat's voiced frames we call voiced
# 0.86 (yin) to 0.98; frames voiced > 30 ms from any Praat-voiced frame 0-2.
@pytest.mark.parametrize("method", BUNDLED)
def test_speech_against_praat(method):
    x = speech()[: int(1.2 * SR)] if method == "crepe" else speech()
    pitch = parselmouth.Sound(x.astype(np.float64), SR).to_pitch_ac(time_step=0.01, pitch_floor=50, pitch_ceiling=600)
    times, praat = pitch.xs(), pitch.selected_array["frequency"]
    ours = estimator(method).estimate(x)[np.rint(times * SR / HOP).astype(int)]  # frames within 0.9 ms of Praat's
    both = (ours > 0) & (praat > 0)
    err = np.abs(cents(ours[both], praat[both]))
    assert both.sum() >= 0.8 * (praat > 0).sum(), f"{method} calls {both.sum()} of Praat's {(praat > 0).sum()} voiced"
    # Neural trackers voice a few more frames at the edges of Praat's voiced runs; away from them, almost none.
    far = ~binary_dilation(praat > 0, iterations=3)  # > 30 ms from any frame Praat calls voiced
    assert ((ours > 0) & far).sum() <= 0.02 * far.sum() + 1, f"{method} voices {((ours > 0) & far).sum()} frames"
    assert np.median(err) < 10.0, f"{method}: median {np.median(err):.1f} cents from Praat"
    assert (err > 50).mean() < 0.03, f"{method}: {(err > 50).mean():.1%} of frames off by more than 50 cents"


# --- the frame grid -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", BUNDLED)
def test_frame_count(method):
    est = estimator(method)
    assert isinstance(est, F0Estimator) and est.name == method
    for n in [0, 1, 159, 160, 161, 513, 2399, 2400]:
        out = est.estimate(tone(150.0, n) if n else np.zeros(0, np.float32))
        assert out.shape == (n_frames(n),) and out.dtype == np.float32, (method, n, out.shape)
        assert np.all(np.isfinite(out)) and np.all((out == 0) | ((out >= est.f0_min) & (out <= est.f0_max)))


@pytest.mark.parametrize("method", BUNDLED)
def test_onset_frame(method):
    """A tone starting at sample 160·k turns voiced within the estimator's window of frame k."""
    k = 30
    out = estimator(method).estimate(tone(200.0, HOP * 2 * k, start=HOP * k))
    first = int(np.argmax(out > 0))
    reach = -(-estimator(method).lookahead // HOP)  # frames
    assert k - reach <= first <= k + reach, f"{method}: first voiced frame {first}, tone starts at frame {k}"
    assert (out[first:] > 0).mean() > 0.9


@pytest.mark.parametrize("method", BUNDLED)
def test_frames_are_centred_on_their_sample(method):
    """Frame t reports the F0 at sample 160·t: on exponential sweeps up and down (100 <-> 400 Hz in 0.5 s), a
    timing offset of d ms moves the median error by ±d·16.6 cents with the sweep's direction, a pitch bias
    does not. Measured offsets: yin 0.0 ms, crepe 1 ms, crepe-tiny 2.2 ms, fcpe 0.4 ms."""
    rate = np.log(4.0) / 0.5  # per second
    t = np.arange(SR // 2) / SR
    frames = np.arange(n_frames(t.size)) * HOP / SR
    errs = []
    for sign, f_start in [(1, 100.0), (-1, 400.0)]:
        phase = 2 * np.pi * f_start * (np.exp(sign * rate * t) - 1) / (sign * rate)
        x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 5)).astype(np.float32)
        out = estimator(method).estimate(x)[6:-6]
        truth = (f_start * np.exp(sign * rate * frames))[6:-6]
        assert (out > 0).all()
        errs.append(np.median(cents(out, truth)))
    late_ms = -(errs[0] - errs[1]) / 2 / (1200 * rate / np.log(2) / 1000)
    assert abs(late_ms) < (0.5 if method == "yin" else 3.0), f"{method}: {late_ms:.2f} ms late"


@pytest.mark.parametrize("method", ["yin", "crepe-tiny", "crepe"])
def test_suffix_gives_the_same_frames(method):
    """Exactly local estimators: a suffix starting on the frame grid reproduces the whole signal's frames that lie
    at least `lookahead` samples inside both of its ends."""
    est = estimator(method)
    x = speech()[int(0.5 * SR) : int(0.5 * SR) + int(seconds(method, 1.6) * SR)]
    start = HOP * 17
    whole, part = est.estimate(x), est.estimate(x[start:])
    centres = start + HOP * np.arange(part.size)
    inside = (centres - start >= est.lookahead) & (centres + est.lookahead < x.size)
    assert inside.sum() >= 5
    t = centres[inside] // HOP
    assert np.array_equal(part[inside] > 0, whole[t] > 0)
    np.testing.assert_allclose(part[inside], whole[t], rtol=1e-4)
    assert (whole[t] > 0).sum() >= 3  # the comparison covers voiced frames


def test_fcpe_lookahead():
    """FCPE depends on all its input; frames at least `lookahead` from the end of a 150 ms window are as close to
    the whole-signal estimate as frames in the window's middle (measured medians 2-3 cents)."""
    est = estimator("fcpe")
    x = speech()
    whole = est.estimate(x)
    last, settled = [], []
    for end in range(3200, x.size - 3200, 800):
        part = est.estimate(x[end - 2400 : end])
        t0 = (end - 2400) // HOP
        dist = end - (t0 + np.arange(part.size)) * HOP  # samples from each frame's centre to the window's end
        pairs = np.stack([part, whole[t0 : t0 + part.size]], axis=1)
        settled.append(pairs[(dist >= est.lookahead) & (dist <= 2400 - est.lookahead)])
        last.append(pairs[-1:])
    settled, last = np.concatenate(settled), np.concatenate(last)
    agree = (settled[:, 0] > 0) == (settled[:, 1] > 0)
    assert agree.mean() > 0.9
    both = (settled[:, 0] > 0) & (settled[:, 1] > 0)
    assert np.median(np.abs(cents(settled[both, 0], settled[both, 1]))) < 5.0
    both_last = (last[:, 0] > 0) & (last[:, 1] > 0)
    assert np.median(np.abs(cents(last[both_last, 0], last[both_last, 1]))) > 5.0  # the end really is provisional


@pytest.mark.parametrize("method", ["crepe", "crepe-tiny"])
def test_crepe_1d_equals_torchcrepe(method):
    """Our Conv1d run of torchcrepe's network gives torchcrepe's own forward's salience on speech frames."""
    est = estimator(method)
    frames, _ = est.frames(speech()[SR : SR + 1600])  # 11 frames
    with torch.inference_mode():
        ours, theirs = est.net(frames), est.net.net(frames)
    assert theirs.max() > 0.3  # voiced speech: a real peak to compare
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)


# --- decoding and the mel front end -------------------------------------------------------------------------------


def test_local_average_decoding():
    bins = np.arange(360)

    def bump(c: float) -> np.ndarray:
        return np.exp(-0.5 * ((bins - c) / 1.5) ** 2)

    # Frames: a peak between bins (100.3: ~101 Hz), a weak peak, a strong peak at bin 250.7 (~572 Hz) with a
    # weaker one at bin 190 (~284 Hz).
    salience = np.stack([bump(100.3), 0.02 * bump(20.0), bump(250.7) + 0.6 * bump(190.0)])  # (3, 360)
    f0 = local_average_f0(salience, 0.03)
    expect = 10 * 2 ** (np.interp([100.3, 250.7], bins, BIN_CENTS) / 1200)
    assert f0[1] == 0.0  # peak 0.02 is not above the threshold
    np.testing.assert_allclose(cents(f0[[0, 2]], expect), 0.0, atol=0.5)
    lo, hi = bin_range(50.0, 500.0)  # the peak search is restricted to the bins inside 50-500 Hz
    assert 10 * 2 ** (BIN_CENTS[lo] / 1200) >= 50.0 > 10 * 2 ** (BIN_CENTS[lo - 1] / 1200)
    assert 10 * 2 ** (BIN_CENTS[hi - 1] / 1200) <= 500.0 < 10 * 2 ** (BIN_CENTS[hi] / 1200)
    restricted = local_average_f0(salience, 0.03, lo, hi)
    assert restricted[0] == f0[0]
    assert abs(cents(restricted[2], 10 * 2 ** (BIN_CENTS[190] / 1200))) < 1.0


@pytest.mark.parametrize("spec", [RMVPE_MEL, FCPE_MEL], ids=["rmvpe", "fcpe"])
def test_mel_filterbank_matches_librosa(spec):
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(sr=SR, n_fft=1024, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax, htk=spec.htk)
    ref = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax, htk=spec.htk)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-8)


def test_rmvpe_log_mel_against_numpy_stft():
    """RMVPE's front end against an independent computation: numpy FFT of reflect-padded frames, scipy's Hann,
    librosa's HTK mel filters, log of the clamped magnitude mel."""
    librosa = pytest.importorskip("librosa")
    from scipy.signal import get_window

    x = speech()[8000:12321]
    ours = LogMel(RMVPE_MEL)(x).numpy().astype(np.float64)  # (128, T)
    padded = np.pad(x.astype(np.float64), 512, mode="reflect")
    frames = np.stack([padded[i : i + 1024] for i in range(0, padded.size - 1023, HOP)])  # (T, 1024)
    mag = np.abs(np.fft.rfft(frames * get_window("hann", 1024, fftbins=True), axis=1))  # (T, 513)
    basis = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=128, fmin=30, fmax=8000, htk=True).astype(np.float64)
    mel = basis @ mag.T
    ref = np.log(np.maximum(mel, 1e-5))
    assert ours.shape == ref.shape == (128, n_frames(x.size))
    loud = mel > 1e-3  # away from the clamp, where float32 rounding is relative
    assert np.abs(ours - ref)[loud].max() < 1e-4  # |Δ log| = relative error of the mel
    assert np.abs(ours - ref).max() < 1e-3


def test_fcpe_log_mel_equals_torchfcpe_extractor():
    """Our FCPE front end is torchfcpe's (the network's training features) on all the N // 160 frames torchfcpe
    computes (it then repeats the last one; we compute a real last frame from a longer right reflection)."""
    from torchfcpe.mel_extractor import MelModule

    x = speech()[8000:12321]
    theirs = MelModule(SR, 128, 1024, 1024, 160, 0, 8000, 1e-5)(torch.from_numpy(x)[None], 0)[0].T.numpy()
    ours = LogMel(FCPE_MEL)(x).numpy()
    assert theirs.shape == (128, x.size // HOP) and ours.shape == (128, n_frames(x.size))
    np.testing.assert_allclose(ours[:, : theirs.shape[1]], theirs, atol=2e-4)


# --- RMVPE --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rmvpe_file(tmp_path_factory) -> Path:
    return write_rmvpe_checkpoint(tmp_path_factory.mktemp("rmvpe") / "rmvpe.pt", seed=1)


def test_rmvpe_checkpoint_has_the_real_size(rmvpe_file):
    state = torch.load(rmvpe_file, map_location="cpu", weights_only=True)
    assert sum(v.numel() for v in state.values() if v.is_floating_point()) == RMVPE_VALUES
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert 180.9e6 < rmvpe_file.stat().st_size < 181.5e6  # the published rmvpe.pt is ~181 MB: float16
    for key, shape in [
        ("unet.encoder.bn.weight", (1,)),
        ("unet.encoder.layers.0.conv.0.conv.0.weight", (16, 1, 3, 3)),
        ("unet.encoder.layers.0.conv.0.shortcut.weight", (16, 1, 1, 1)),
        ("unet.intermediate.layers.0.conv.0.conv.0.weight", (512, 256, 3, 3)),
        ("unet.decoder.layers.0.conv1.0.weight", (512, 256, 3, 3)),
        ("unet.decoder.layers.4.conv2.0.conv.0.weight", (16, 32, 3, 3)),
        ("cnn.weight", (3, 16, 3, 3)),
        ("fc.0.gru.weight_ih_l0", (768, 384)),
        ("fc.0.gru.weight_hh_l0_reverse", (768, 256)),
        ("fc.1.weight", (360, 512)),
    ]:
        assert tuple(state[key].shape) == shape, key


def test_rmvpe_loads_and_runs(rmvpe_file):
    est = make_f0("rmvpe", model_path=rmvpe_file)
    assert sum(p.numel() for p in est.net.parameters()) == RMVPE_PARAMS
    state = torch.load(rmvpe_file, map_location="cpu", weights_only=True)
    loaded = est.net.state_dict()
    for key in ["unet.encoder.bn.running_var", "unet.decoder.layers.2.conv2.3.conv.4.running_mean", "fc.1.bias"]:
        assert torch.equal(loaded[key], state[key].float()), key
    x = tone(220.0, SR)
    salience = est.salience(x)
    assert salience.shape == (n_frames(SR), 360) and np.all((salience >= 0) & (salience <= 1))
    out = est.estimate(x)
    assert out.shape == (n_frames(SR),) and out.dtype == np.float32
    assert np.all((out == 0) | ((out >= 50.0) & (out <= 1100.0)))
    np.testing.assert_array_equal(out, est.estimate(x))
    for n in [0, 1, 511, 2400, 5120, 5121]:  # 1 to 33 frames: the 32-frame tile padding at every size
        assert est.estimate(tone(150.0, n)).shape == (n_frames(n),)


# --- errors -------------------------------------------------------------------------------------------------------


def test_unknown_method_lists_the_choices():
    with pytest.raises(ConfigError) as err:
        make_f0("harvest", where="profiles/alto.toml [params] f0_method")
    assert "profiles/alto.toml" in str(err.value) and "harvest" in str(err.value)
    for name in F0_METHODS:
        assert name in str(err.value)


def test_bad_range_and_stray_model_path():
    with pytest.raises(ConfigError, match="f0 range"):
        make_f0("yin", f0_min=500.0, f0_max=100.0)
    with pytest.raises(ConfigError, match="takes no model file"):
        make_f0("fcpe", model_path="rmvpe.pt")


def test_rmvpe_file_errors(tmp_path):
    where = "profiles/alto.toml [params] f0_model"
    with pytest.raises(ModelError, match="needs a model file") as err:
        make_f0("rmvpe", where=where)
    assert where in str(err.value)
    assert "`rtvc import rmvpe.pt` (it goes to models/f0/), and set f0_model in" in str(err.value)  # (what to run)

    missing = tmp_path / "nowhere" / "rmvpe.pt"
    with pytest.raises(ModelError, match="RMVPE model file not found") as err:
        make_f0("rmvpe", model_path=missing, where=where)
    assert str(missing) in str(err.value) and where in str(err.value)

    small = tmp_path / "small.pt"
    torch.save({"unet.encoder.bn.weight": torch.ones(1)}, small)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(small.read_bytes()[: small.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(200))  # a WAV file given as the model
    for bad in (truncated, garbage):
        with pytest.raises(ModelError, match="truncated or not a torch checkpoint") as err:
            make_f0("rmvpe", model_path=bad)
        assert str(bad) in str(err.value)

    voice = tmp_path / "alto.pth"
    torch.save({"weight": {"emb_g.weight": torch.zeros(1, 256)}, "config": [513, 32], "version": "v2", "f0": 1}, voice)
    with pytest.raises(ModelError, match="this is an RVC voice, not an RMVPE model"):
        make_f0("rmvpe", model_path=voice)

    from rtvc.rvc.hubert_factory import write_fairseq_hubert

    hubert = write_fairseq_hubert(tmp_path / "hubert_base.pt", layers=1, dim=32, heads=2, ffn=64, final_dim=16)
    with pytest.raises(ModelError, match=r"this is a HuBERT / ContentVec content model.*not an RMVPE model"):
        make_f0("rmvpe", model_path=hubert)

    with pytest.raises(ModelError, match="not an RMVPE model: 740 keys missing"):  # 741 keys, one present
        make_f0("rmvpe", model_path=small)

    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ModelError, match="expected a bare state dict"):
        make_f0("rmvpe", model_path=tensor)


def test_rmvpe_wrong_shapes(tmp_path):
    state = random_rmvpe_state()
    state["fc.1.weight"] = torch.zeros(361, 512, dtype=torch.float16)
    path = tmp_path / "rmvpe361.pt"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"wrong shape: fc\.1\.weight \(361, 512\) != \(360, 512\)"):
        make_f0("rmvpe", model_path=path)


def test_audio_must_be_mono_float():
    with pytest.raises(ValueError, match="mono"):
        estimator("yin").estimate(np.zeros((2, 160), np.float32))
    with pytest.raises(ValueError, match="float"):
        estimator("yin").estimate(np.zeros(160, np.int16))
