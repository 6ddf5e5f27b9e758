"""The RVC voice end to end: profiles with a [model] table, the streamed path against the whole-file one,
retrieval and protect, bad model files, and a running engine that keeps its voice when a load fails."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch", reason="RVC voices need the rvc extra (torch)")

from rtvc.cli import main  # noqa: E402
from rtvc.config import load_config  # noqa: E402
from rtvc.converter import StreamingConverter, StreamShape  # noqa: E402
from rtvc.errors import ConfigError, ModelError  # noqa: E402
from rtvc.profiles import load_profile, make_voice  # noqa: E402
from rtvc.resample import resample_block  # noqa: E402
from rtvc.rvc.factory import write_rvc_checkpoint  # noqa: E402
from rtvc.rvc.hubert_factory import write_fairseq_hubert  # noqa: E402
from rtvc.rvc.index import write_index  # noqa: E402
from rtvc.rvc.noise import FrameNoise  # noqa: E402
from rtvc.voices.rvc import RvcModelSettings, RvcParams, RvcVoice  # noqa: E402
from rtvc.wavio import bundled_speech, load_mono, save  # noqa: E402

SR = 48000
BLOCK = 960  # 20 ms


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny voices in RVC's real .pth format and a small HuBERT in fairseq's format (768-d: what v2 takes)."""
    d = tmp_path_factory.mktemp("models")
    write_rvc_checkpoint(d / "v2f0.pth", version="v2", sr="48k", f0=1, size="tiny", seed=1)
    write_rvc_checkpoint(d / "v1f0.pth", version="v1", sr="40k", f0=1, size="tiny", seed=2)
    write_rvc_checkpoint(d / "v2nof0.pth", version="v2", sr="32k", f0=0, size="tiny", seed=3)
    write_fairseq_hubert(d / "hubert.pt", seed=0, layers=2, dim=768, heads=12, ffn=512)
    write_fairseq_hubert(d / "hubert9.pt", seed=0, layers=9, dim=64, heads=4, ffn=128, final_dim=256)
    rng = np.random.default_rng(0)
    write_index(d / "v2.index", rng.standard_normal((400, 768)).astype(np.float32), n_lists=4)
    return d


def profile(dirpath, name: str, model: dict, params: dict | None = None):
    lines = ['voice = "rvc"', "[model]"] + [f"{k} = {v!r}" for k, v in model.items()]
    if params:
        lines += ["[params]"] + [f"{k} = {v!r}" for k, v in params.items()]
    text = "\n".join(lines).replace("'", '"') + "\n"
    (dirpath / f"{name}.toml").write_text(text)
    return dirpath / f"{name}.toml"


def stream(conv: StreamingConverter, x: np.ndarray) -> np.ndarray:
    return np.concatenate([conv.process_block(x[i : i + BLOCK]) for i in range(0, len(x) - BLOCK + 1, BLOCK)])


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((got - ref) ** 2)))


@pytest.mark.parametrize(("pth", "hubert", "rate"), [("v2f0", "hubert", 48000), ("v1f0", "hubert9", 40000)])
def test_a_profile_names_an_rvc_model_and_it_streams(models, pth, hubert, rate):
    path = profile(
        models, f"p-{pth}", {"path": f"{pth}.pth", "content": f"{hubert}.pt", "f0": "yin"}, {"pitch": 3.0, "speaker": 2}
    )
    prof = load_profile(str(path), models)
    voice = make_voice(prof, SR)
    assert (voice.samplerate, voice.out_samplerate) == (16000, rate)
    assert prof.params.pitch == 3.0 and prof.params.speaker == 2
    conv = StreamingConverter(voice, prof.params, StreamShape(SR, BLOCK, 144, 384))
    x = load_mono(bundled_speech(), SR)[:SR]
    y = stream(conv, x)
    assert len(y) == len(x) // BLOCK * BLOCK and np.all(np.isfinite(y))
    assert np.sqrt(np.mean(y[SR // 2 :] ** 2)) > 1e-3  # it speaks
    assert conv.latency == 48 + 144 + 192  # input resampler + crossfade + search/2; no lookahead by default


def whole_file_content(voice: RvcVoice, audio16k: np.ndarray):
    """Make the voice read content features from a whole-file pass: isolates the streaming machinery (tail
    decoding, F0 cache, phase, noise) from the content encoder's own dependence on its window."""
    pad = np.zeros(-(-len(audio16k) // 320) * 320, np.float32)
    pad[: len(audio16k)] = audio16k
    whole = voice.pipeline.content_frames(pad)

    def frames(audio):
        rows = -(-len(audio) // 320)
        k0 = voice._first // 2
        out = np.zeros((rows, whole.shape[1]), np.float32)
        lo, hi = max(0, -k0), min(rows, len(whole) - k0)
        out[lo:hi] = whole[k0 + lo : k0 + hi]
        return out

    voice.pipeline.content_frames = frames


class FreshNoise:
    """Noise drawn anew for every decode (RVC's realtime behaviour), for the sabotage check."""

    def __init__(self, noise: FrameNoise):
        self.inter, self.upp, self.draws = noise.inter, noise.upp, itertools.count(1)

    def frames(self, a: int, b: int):
        return FrameNoise(next(self.draws), self.inter, self.upp).frames(a, b)


@pytest.mark.slow
@pytest.mark.timeout(900)  # 250 s on an idle VM here, past the suite's 420 s in a starved CI run
def test_streamed_against_the_whole_file(models, capsys):
    """The issue asks for >= 30 dB between a streamed and a whole-file conversion after the first second.
    The streaming machinery (tail-only decoding, F0 cache, carried phase, frame-indexed noise) reaches it
    when the models see what they see on the whole file: content features from the whole-file pass, a
    context as long as the clip and 80 ms lookahead. With a 1 s context and HuBERT on that window it does
    not (the numbers are printed): HuBERT's first GroupNorm normalises each channel over its whole input,
    its attention and the text encoder's are global (they look at the future the stream has not heard),
    and the flow and decoder look ahead. Noise drawn afresh per block, as RVC does, drops it far."""
    x = load_mono(bundled_speech(), SR)[: 5 * SR]
    x16 = resample_block(x, SR, 16000, len(x) // 3)
    params = RvcParams(rms_mix=1.0)
    results = {}
    for look, context_s, content in ((0, 1, "window"), (80, 1, "window"), (80, 5.2, "whole file")):
        settings = RvcModelSettings(path="v2f0.pth", content="hubert.pt", f0="yin", lookahead_ms=look)
        voice = RvcVoice(SR, settings, models)
        offline = voice.convert_offline(x16, params)
        if content == "whole file":
            whole_file_content(voice, x16)
        shape = StreamShape(SR, BLOCK, 144, 384, context=round(context_s * SR))
        y = stream(StreamingConverter(voice, params, shape), x)
        lat = 48 + 144 + 192 + look * 48  # input resampler + crossfade + search/2 + lookahead
        got, ref = y[lat:], offline[: len(y) - lat]
        key = f"lookahead {look} ms, context {context_s} s, content from the {content}"
        results[key] = snr_db(ref[SR:], got[SR:])
        if content == "whole file":  # sabotage: fresh noise at every decode, as RVC's realtime GUI draws it
            voice.pipeline.noise = FreshNoise(voice.pipeline.noise)
            voice.reset()
            y = stream(StreamingConverter(voice, params, shape), x)
            results["the same, fresh noise per block"] = snr_db(ref[SR:], y[lat:][SR:])
    with capsys.disabled():
        print("\nstreamed vs whole file, SNR after 1 s (dB):", {k: round(v, 1) for k, v in results.items()})
    machinery = results["lookahead 80 ms, context 5.2 s, content from the whole file"]
    assert machinery >= 30.0
    assert results["the same, fresh noise per block"] < machinery - 10
    assert results["lookahead 80 ms, context 1 s, content from the window"] >= 8.0


def test_a_long_file_is_converted_offline_in_passes_that_agree_with_one(models, monkeypatch):
    """--offline took memory as the square of the file's length (HuBERT's and the text encoder's attention: a helper
    measured 1.8 GB at 30 s, 14 GB at 180 s; a 4-minute file did not fit 24 GB). Past OFFLINE_ONE_PASS_S it goes in
    passes cut at the quietest 20 ms near every OFFLINE_PASS_S, each with OFFLINE_CONTEXT_S of audio read each side,
    cross-faded at the cuts: with the times scaled down here (a 12 s file, 4 s passes), the passes agree with one
    pass over the whole to 30 dB, the joins make no step of their own, and `progress` hears of each pass."""
    import rtvc.voices.rvc as rvc

    x16 = 0.5 * load_mono(bundled_speech(), 16000)
    x16 = np.concatenate([x16] * 4)[: 12 * 16000]
    voice = RvcVoice(SR, RvcModelSettings(path="v2f0.pth", content="hubert.pt", f0="yin"), models)
    params = RvcParams(pitch=3.0)  # (the sine's phase is carried from pass to pass shifted, as decoded)
    whole = voice.convert_offline(x16, params)
    monkeypatch.setattr(rvc, "OFFLINE_ONE_PASS_S", 5.0)
    monkeypatch.setattr(rvc, "OFFLINE_PASS_S", 4.0)
    monkeypatch.setattr(rvc, "OFFLINE_SEARCH_S", 1.0)
    cuts = rvc.offline_cuts(x16)
    assert len(cuts) == 4 and cuts[0] == 0 and cuts[-1] == 1200 and all(c % 2 == 0 for c in cuts), cuts
    said: list[float] = []
    passes = voice.convert_offline(x16, params, progress=said.append)
    assert said == [cuts[1] / 100, cuts[2] / 100, 12.0]
    assert len(passes) == len(whole) == 12 * SR
    assert snr_db(whole, passes) >= 30.0
    for c in cuts[1:-1]:  # at each join: no step larger than the whole pass has there
        near = slice(c * 480 - 480, c * 480 + 480)
        assert np.abs(np.diff(passes[near])).max() <= 1.2 * np.abs(np.diff(whole[near])).max() + 1e-3
    # the cuts are where it is quiet: a silent 20 ms near each place is found
    tone = (0.3 * np.sin(np.arange(12 * 16000) * 0.1)).astype(np.float32)
    for at in (3.3, 7.6):
        tone[int(at * 16000) : int(at * 16000) + 640] = 0.0
    assert rvc.offline_cuts(tone)[1:3] == [330, 760]


def test_retrieval_and_protect_change_the_voice(models):
    x16 = load_mono(bundled_speech(), 16000)[:16000]
    base = {"path": "v2f0.pth", "content": "hubert.pt", "f0": "yin"}
    plain = RvcVoice(SR, RvcModelSettings(**base), models)
    indexed = RvcVoice(SR, RvcModelSettings(**base, index="v2.index"), models)
    assert "+ index" in indexed.label
    p0 = RvcParams(index_rate=0.0, rms_mix=1.0)
    a = plain.convert_offline(x16, p0)
    np.testing.assert_allclose(indexed.convert_offline(x16, p0), a, atol=1e-6)  # rate 0: no retrieval
    b = indexed.convert_offline(x16, RvcParams(index_rate=1.0, protect=0.5, rms_mix=1.0))
    c = indexed.convert_offline(x16, RvcParams(index_rate=1.0, protect=0.0, rms_mix=1.0))
    assert snr_db(a, b) < 20  # retrieval moved the features
    assert snr_db(a, c) > snr_db(a, b)  # protect keeps the unvoiced frames' own features: closer to none


def test_rms_mix_follows_the_input_loudness(models):
    voice = RvcVoice(SR, RvcModelSettings(path="v2nof0.pth", content="hubert.pt"), models)
    t = np.arange(16000) / 16000
    x16 = (0.3 * np.sin(2 * np.pi * 180 * t) * np.where(t < 0.5, 1.0, 0.1)).astype(np.float32)  # -20 dB step
    out = voice.convert_offline(x16, RvcParams(rms_mix=0.0))
    n = len(out)
    loud, quiet = out[n // 8 : 3 * n // 8], out[5 * n // 8 : 7 * n // 8]
    ratio = 20 * np.log10(np.sqrt(np.mean(loud**2)) / np.sqrt(np.mean(quiet**2)))
    assert 17 < ratio < 23, ratio  # the output's contour is the input's


def test_f0_settings_on_a_voice_without_f0_are_named_not_ignored(models):
    for model in ({"f0": "rmvpe", "f0_model": "rmvpe.pt"}, {"f0_min": 80.0}, {"f0": "yin", "f0_max": 600.0}):
        with pytest.raises(ConfigError, match=r"set, but v2nof0\.pth is a voice without F0 \(pitch\)") as e:
            RvcVoice(SR, RvcModelSettings(path="v2nof0.pth", content="hubert.pt", **model), models)
        assert all(k in str(e.value) for k in model) and "remove them" in e.value.fix


def test_missing_files_name_the_file_and_the_fix(models, tmp_path):
    cases = [
        ({"path": "nope.pth", "content": "hubert.pt"}, ModelError, r"nope\.pth"),
        ({"path": "v2f0.pth", "content": "nohubert.pt"}, ModelError, r"nohubert\.pt"),
        ({"path": "v2f0.pth", "content": "hubert.pt", "index": "none.index"}, ModelError, r"none\.index not found"),
        ({"path": "v2f0.pth", "content": "hubert.pt", "f0": "rmvpe"}, ConfigError, "f0_model is not set"),
        ({"content": "hubert.pt"}, ConfigError, r"\[model\] path is not set"),
        ({"path": "v2f0.pth", "content": "hubert9.pt"}, ModelError, "takes 768-d features but .* gives 64-d"),
        ({"path": "v2f0.pth", "content": "hubert.pt", "lookahead_ms": 15}, ConfigError, "15 is not whole 10 ms"),
        ({"path": "v2f0.pth", "content": "hubert.pt", "f0_model": "r.pt"}, ConfigError, "takes no model file"),
        ({"path": "v2f0.pth", "content": "hubert.pt", "f0_min": 400, "f0_max": 300}, ConfigError, "is not a range"),
    ]
    for model, err, match in cases:
        path = profile(models, "bad", model)
        with pytest.raises(err, match=match) as e:
            make_voice(load_profile(str(path), models), SR)
        assert str(path) in str(e.value) or err is ModelError, e.value  # a model file's error names that file
    with pytest.raises(ConfigError, match=r"'params\.speaker' = 7, but v2f0\.pth has 3 speaker"):
        make_voice(
            load_profile(
                str(profile(models, "bad", {"path": "v2f0.pth", "content": "hubert.pt"}, {"speaker": 7})), models
            ),
            SR,
        )
    with pytest.raises(
        ConfigError, match=r"'params\.pitch' = 3, but v2nof0\.pth was trained without F0"
    ):  # (it did nothing)
        make_voice(
            load_profile(
                str(profile(models, "bad", {"path": "v2nof0.pth", "content": "hubert.pt"}, {"pitch": 3.0})), models
            ),
            SR,
        )
    with pytest.raises(ConfigError, match="needs a \\[model\\] table"):
        (tmp_path / "m.toml").write_text('voice = "rvc"\n')
        load_profile(str(tmp_path / "m.toml"), tmp_path)


def test_a_running_engine_keeps_its_voice_when_a_new_one_fails_to_load(models, tmp_path):
    from rtvc.audio.virtual import VirtualDevice
    from rtvc.run import build_converter, build_engine, switch_voice

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "plain.toml").write_text('voice = "passthrough"\n')
    (models / "truncated.pth").write_bytes((models / "v2f0.pth").read_bytes()[:5000])
    (profiles / "broken.toml").write_text(
        f'voice = "rvc"\n[model]\npath = "{models}/truncated.pth"\ncontent = "{models}/hubert.pt"\n'
    )
    (profiles / "good.toml").write_text(
        f'voice = "rvc"\n[model]\npath = "{models}/v2f0.pth"\ncontent = "{models}/hubert.pt"\n'
    )
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "plain"\n')
    cfg = load_config(tmp_path / "config.toml")
    engine = build_engine(cfg)
    label = engine.status().voice
    with pytest.raises(ModelError, match=r"truncated\.pth"):
        switch_voice(engine, cfg, "broken")
    # a block that is not whole 10 ms frames is refused while loading, not at the new voice's first block
    (tmp_path / "c25.toml").write_text('[voice]\nprofile = "plain"\n[stream]\nblock_ms = 25.0\n')
    with pytest.raises(
        ConfigError, match=r"block 1200 frames \(25\.00 ms\).*10 ms frames.*block_ms = 30 \(multiples of 10"
    ):
        build_converter(load_config(tmp_path / "c25.toml"), "good")
    x = np.random.default_rng(0).uniform(-0.5, 0.5, SR).astype(np.float32)
    dev = VirtualDevice(engine, x, 256, paced=False)
    engine.start()
    dev.start()
    dev.join(60)
    engine.stop()
    lat = engine.latency().total
    np.testing.assert_array_equal(dev.recording[lat:], x[: len(x) - lat])  # still the passthrough voice
    assert engine.status().voice == label
    assert "RVC v2 48k v2f0" in switch_voice(engine, cfg, "good")


def test_cli_converts_streamed_and_offline_and_reports_bad_models(models, tmp_path, capsys):
    profile(models, "cli", {"path": "v2f0.pth", "content": "hubert.pt", "f0": "yin"})
    src, a, b = tmp_path / "in.wav", tmp_path / "streamed.wav", tmp_path / "offline.wav"
    save(src, load_mono(bundled_speech(), SR)[:SR], SR)
    prof = str(models / "cli.toml")
    assert main(["convert", "--profile", prof, str(src), str(a)]) == 0
    assert main(["convert", "--offline", "--profile", prof, str(src), str(b)]) == 0
    ya, yb = load_mono(a, SR), load_mono(b, SR)
    assert len(ya) == len(yb) == SR
    assert np.sqrt(np.mean(yb**2)) > 1e-3 and np.sqrt(np.mean(ya**2)) > 1e-3
    capsys.readouterr()
    # a damaged float file: one NaN would spread over the whole offline pass; both paths silence it and say so
    x = load_mono(src, SR)
    x[1000], x[5000] = np.nan, np.inf
    sf.write(tmp_path / "nan.wav", x, SR, subtype="FLOAT")
    for extra, out in (([], a), (["--offline"], b)):
        assert main(["convert", *extra, "--profile", prof, str(tmp_path / "nan.wav"), str(out)]) == 0
        said = capsys.readouterr().out
        assert "2 NaN/infinite input samples played as silence (the first at 0.021 s)" in said, said
        y = load_mono(out, SR)
        assert np.isfinite(y).all() and np.sqrt(np.mean(y**2)) > 1e-3
    # samples of 1e30 (finite, +600 dBFS): the models overflow; that is the input's doing, not damaged model files
    sf.write(tmp_path / "huge.wav", np.full(SR // 2, 1e30, np.float32), SR, subtype="FLOAT")
    assert main(["convert", "--offline", "--profile", prof, str(tmp_path / "huge.wav"), str(b)]) == 0
    said = capsys.readouterr().out
    assert "the voice gave them (the input peaks at +600 dBFS, which no recording does: check the file)" in said, said
    profile(models, "cli-bad", {"path": "missing.pth", "content": "hubert.pt"})
    assert main(["convert", "--profile", str(models / "cli-bad.toml"), str(src), str(a)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pth" in err[0] and err[0].startswith("rtvc: error:")


def test_offline_takes_a_file_shorter_than_one_content_frame(models, tmp_path, capsys):
    """HuBERT needs 25 ms for its first frame: a 10 ms file is padded for it, and comes out 10 ms long."""
    prof = str(profile(models, "short", {"path": "v2f0.pth", "content": "hubert.pt", "f0": "yin"}))
    for n in (1, 480):
        src, out = tmp_path / f"short{n}.wav", tmp_path / f"out{n}.wav"
        save(src, (0.3 * np.sin(np.arange(n) * 0.05)).astype(np.float32), SR)
        assert main(["convert", "--offline", "--profile", prof, str(src), str(out)]) == 0, capsys.readouterr()
        assert len(load_mono(out, SR)) == n


def test_a_content_encoder_with_nan_weights_is_refused_by_name(models, tmp_path, capsys):
    """A damaged HuBERT used to convert "successfully": silence streamed, NaN samples offline, exit 0."""
    import torch

    ckpt = torch.load(models / "hubert.pt", weights_only=False)
    ckpt["model"]["feature_extractor.conv_layers.0.0.weight"].fill_(float("nan"))
    torch.save(ckpt, tmp_path / "hubert-nan.pt")
    prof = str(profile(tmp_path, "nan", {"path": str(models / "v2f0.pth"), "content": str(tmp_path / "hubert-nan.pt")}))
    src = tmp_path / "in.wav"
    save(src, load_mono(bundled_speech(), SR)[: SR // 4], SR)
    for extra in ([], ["--offline"]):
        assert main(["convert", *extra, "--profile", prof, str(src), str(tmp_path / "out.wav")]) == 2
        err = capsys.readouterr().err.strip()
        assert "hubert-nan.pt: weight" in err and "holds NaN or infinite values" in err, err
    assert not (tmp_path / "out.wav").exists()


def test_a_new_voice_is_rehearsed_on_one_block_and_starts_as_fresh(models, tmp_path, monkeypatch):
    """build_converter runs one block of silence through a new voice before anyone switches to it (a voice
    that fails on its first block fails in the loader), then resets it: its stream is the fresh one's."""
    import rtvc.run
    from rtvc.errors import RtvcError

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "r.toml").write_text(
        f'voice = "rvc"\n[model]\npath = "{models}/v2f0.pth"\ncontent = "{models}/hubert.pt"\nf0 = "yin"\n'
    )
    (profiles / "p.toml").write_text('voice = "pitch"\n[params]\npitch = -4.0\nformant = -1.5\n')
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "p"\n')
    cfg = load_config(tmp_path / "config.toml")
    x = 0.3 * load_mono(bundled_speech(), SR)[: SR // 2]
    for name in ("r", "p"):
        rehearsed, _ = rtvc.run.build_converter(cfg, name)
        with monkeypatch.context() as m:
            m.setattr(rtvc.run, "rehearse", lambda conv, where: None)
            fresh, _ = rtvc.run.build_converter(cfg, name)
        n = rehearsed.block
        a = np.concatenate([rehearsed.process_block(x[i : i + n]) for i in range(0, len(x) - n + 1, n)])
        b = np.concatenate([fresh.process_block(x[i : i + n]) for i in range(0, len(x) - n + 1, n)])
        np.testing.assert_array_equal(a, b, err_msg=name)

    def first_block_fails(self, window, new, params):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(RvcVoice, "advance", first_block_fails)
    with pytest.raises(RtvcError, match=r"r\.toml: the voice failed on its first block \(RuntimeError: CUDA out of"):
        rtvc.run.build_converter(cfg, "r")


def test_two_rvc_voices_on_one_content_file_share_its_encoder(models):
    """A switch from one RVC voice to another loads HuBERT once (rtvc.rvc.content.ContentEncoder.shared)."""
    a = make_voice(load_profile(str(profile(models, "s-a", {"path": "v2f0.pth", "content": "hubert.pt"})), models), SR)
    b = make_voice(
        load_profile(str(profile(models, "s-b", {"path": "v2nof0.pth", "content": "hubert.pt"})), models), SR
    )
    assert a.pipeline.content is b.pipeline.content
    c = make_voice(load_profile(str(profile(models, "s-c", {"path": "v1f0.pth", "content": "hubert9.pt"})), models), SR)
    assert c.pipeline.content is not a.pipeline.content


def test_params_get_shows_the_speakers_the_model_has(models):
    """params.get listed speaker 0..100000 for every RVC voice, while a 3-speaker model refuses 3 and up, and the
    TUI's End key jumped to 100000. Whole-number floats (JSON has one number type) are integers."""
    from types import SimpleNamespace

    from rtvc.control.controller import Controller
    from rtvc.settings import from_table

    voice = RvcVoice(SR, RvcModelSettings(path="v2f0.pth", content="hubert.pt", f0="yin"), models)
    ranges = Controller._ranges(SimpleNamespace(voice=voice, params=RvcParams()))
    assert (ranges["speaker"]["min"], ranges["speaker"]["max"]) == (0, 2)
    assert ranges["pitch"]["max"] == 24.0  # the others as the voice kind says
    assert from_table(RvcParams, {"speaker": 2.0}, "params", "params").speaker == 2
    with pytest.raises(ConfigError, match=r"'params\.speaker' = 1\.5 has the wrong type"):
        from_table(RvcParams, {"speaker": 1.5}, "params", "params")
    # params.set said "from 0 to 100000" to a speaker of -1 (the kind's range, checked before the voice's)
    import threading

    conv = SimpleNamespace(voice=voice, params=RvcParams(), set_params=lambda p: None)
    host = SimpleNamespace(
        _lock=threading.Lock(), engine=SimpleNamespace(active=(conv, None)), _emit=print, _check_voice=lambda _: None
    )  # (a voice plays: Controller._check_voice passes)
    for bad in (-1, 3, 100001):
        with pytest.raises(ConfigError, match=rf"'params\.speaker' = {bad} is not allowed.*it must be from 0 to 2"):
            Controller.set_params(host, {"speaker": bad}, "t")
    assert str(Controller.set_params(host, {"speaker": 2, "pitch": -0.0}, "t")["pitch"]) == "0.0"  # (not -0.0)
    # index_rate and protect on a voice without an .index were taken and did nothing (bit-identical output): no
    # control for them in params.get, and a change is refused as pitch is on a voice without F0
    assert "index_rate" not in ranges and "protect" not in ranges and "pitch" in ranges, sorted(ranges)
    for name, value in (("index_rate", 0.9), ("protect", 0.1)):
        with pytest.raises(ConfigError, match=rf"'params\.{name}' = {value:g}, but v2f0\.pth runs without an \.index"):
            Controller.set_params(host, {name: value}, "t")
    # the settings that say "none" are true here, and taken; a profile that sets them loads as it did (a copy of
    # profiles/rvc-example.toml, whose comments say 0.5 turns protect off)
    assert Controller.set_params(host, {"index_rate": 0, "protect": 0.5}, "t")["protect"] == 0.5
    voice.check_params(RvcParams(index_rate=0.75, protect=0.2), "p.toml")
    no_f0 = RvcVoice(SR, RvcModelSettings(path="v2nof0.pth", content="hubert.pt"), models)
    shown = Controller._ranges(SimpleNamespace(voice=no_f0, params=RvcParams()))
    assert "pitch" not in shown and "index_rate" not in shown and "rms_mix" in shown, sorted(shown)


def test_an_rvc_voice_switched_to_hears_the_input_before_the_switch(models):
    """A voice switched to takes the engine's last input as if it had streamed it (its window, its resampler's
    state, its time): an RVC voice's content features on its first block are those of a voice that ran all along.
    It started from an empty window: the features were off by more than their own size (relative error 1.3) for
    0.2 s and settled only as its 1 s window filled (HuBERT's normalisation and attention read the silence).
    So is its F0 over every frame the synthesizer reads (YIN is local: exactly): it estimated only the newest
    audio, so the primed second's frames were unvoiced to the text encoder (37% of them voiced here) until its
    window had passed."""
    from rtvc.engine import Engine
    from rtvc.voices.pitch import PitchParams, PitchVoice

    shape = StreamShape(SR, BLOCK, 144, 384)
    settings = RvcModelSettings(path="v2f0.pth", content="hubert.pt", f0="yin")

    def rvc() -> StreamingConverter:
        return StreamingConverter(RvcVoice(SR, settings, models), RvcParams(), shape)

    x = 0.5 * load_mono(bundled_speech(), SR)[: 2 * SR]
    new, at = rvc(), 80 * BLOCK
    assert new.history < at
    engine = Engine(StreamingConverter(PitchVoice(SR), PitchParams(pitch=-4.0), shape), SR, headroom=192)
    engine.realtime, engine.watch_load = False, False
    engine.set_device(0, 0, separate_streams=False)
    engine.prepare(240)
    engine.start()
    out, first = np.zeros((240, 1), np.float32), None
    try:
        for pos in range(0, at + 2 * BLOCK, 240):
            if pos == at:
                engine.swap_converter(new, "rvc")
            engine.on_duplex(x[pos : pos + 240], out, 240, None)
            engine.wait_for_worker()
            if first is None and engine.converter is new:
                v = new.voice
                first, first_f0 = v._content.copy(), v._f0_rows(v._first, v._first + v._frames)
    finally:
        engine.stop()
    ref = rvc()
    stream(ref, x[at - new.history : at + BLOCK])  # (a voice that ran since the oldest input the switch handed on)
    want = ref.voice._content
    assert first.shape == want.shape and np.linalg.norm(first - want) <= 1e-5 * np.linalg.norm(want)
    r = ref.voice
    want_f0 = r._f0_rows(r._first, r._first + r._frames)
    assert (want_f0 > 0).mean() > 0.3  # (speech: voiced frames to compare)
    np.testing.assert_allclose(first_f0, want_f0, rtol=1e-5)
