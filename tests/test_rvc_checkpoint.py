"""Loading RVC voice files: the shipped format, every version x rate x f0, real parameter counts, bad files."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="RVC voices need the `rvc` extra (torch)")

from rtvc.errors import ModelError  # noqa: E402
from rtvc.rvc.checkpoint import RvcModel, load_rvc  # noqa: E402
from rtvc.rvc.factory import write_rvc_checkpoint  # noqa: E402
from rtvc.rvc.synth import coarse_pitch  # noqa: E402

# a copy of the workspace's shared/fixtures/rvc-reference (data only: RVC's outputs, no RVC code)
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "rvc-reference"
COMBOS = [(v, sr, f0) for v in ("v1", "v2") for sr in (32000, 40000, 48000) for f0 in (0, 1)]


def infer(m: RvcModel, frames: int, seed: int = 0, sid: int = 0, **stream) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    phone = torch.randn(1, frames, m.phone_dim, generator=g)
    f0 = torch.from_numpy((140 + 40 * np.sin(np.arange(frames) / 6)).astype(np.float32))[None]
    f0[:, :4] = 0
    length = stream.get("return_length", frames)
    flow_frames = frames - max(stream.get("skip_head", 0) - 24, 0)
    return m.net.infer(
        phone,
        coarse_pitch(f0) if m.f0 else None,
        f0 if m.f0 else None,
        sid,
        torch.randn(1, m.inter_channels, flow_frames, generator=g),
        torch.randn(1, length * m.upp, generator=g) if m.f0 else None,
        **stream,
    )


@pytest.mark.parametrize("name", ["v1_40k_f0", "v2_48k_f0", "v2_32k_nof0"])
def test_loads_reference_voices(name: str):
    info = json.loads((FIXTURES / name / "case.json").read_text())
    path = FIXTURES / name / "model.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info["model_file"]["sha256"]
    m = load_rvc(path)
    assert (m.version, m.f0, m.samplerate, m.upp, m.phone_dim) == (
        info["version"],
        bool(info["f0"]),
        info["tgt_sr"],
        info["upp"],
        info["phone_dim"],
    )
    assert m.n_speakers == 3 and m.inter_channels == info["config"][2]
    assert not m.net.training
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in m.net.parameters())


def test_weight_norm_folded_in_float32_from_fp16():
    """w = v * g / ||v|| from the upcast fp16 g and v, kept in float32; every other tensor just upcast."""
    path = FIXTURES / "v1_40k_f0" / "model.pth"
    raw = torch.load(path, map_location="cpu", weights_only=True)["weight"]
    assert all(t.dtype == torch.float16 for t in raw.values())
    params = dict(load_rvc(path).net.named_parameters())
    folded = [k[: -len("_g")] for k in raw if k.endswith(".weight_g")]
    assert len(folded) > 50 and "dec.ups.0.weight" in folded  # ConvTranspose1d: norm over dims 1.. of (in, out, k)
    off_fp16 = 0
    for key in folded:
        v, g = raw[key + "_v"].double(), raw[key + "_g"].double()
        norm = v.flatten(1).norm(dim=1).view(g.shape)
        want = v * (g / norm)  # float64 reference of the formula
        got = params[key].double()
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-9), key
        off_fp16 += int((params[key] != params[key].half().float()).sum())
    assert off_fp16 > 1000  # not rounded back to fp16
    for key, t in raw.items():
        if not key.endswith((".weight_g", ".weight_v")):
            assert torch.equal(params[key], t.float()), key


@pytest.mark.parametrize(("version", "sr", "f0"), COMBOS)
def test_every_version_rate_and_f0_loads_and_speaks(tmp_path: Path, version: str, sr: int, f0: int):
    path = write_rvc_checkpoint(tmp_path / "voice.pth", version=version, sr=sr, f0=f0)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == ["weight", "config", "info", "sr", "f0", "version"]
    assert raw["sr"] == f"{sr // 1000}k" and raw["f0"] == f0 and raw["version"] == version
    assert len(raw["config"]) == 18 and raw["config"][-1] == sr
    assert all(t.dtype == torch.float16 for t in raw["weight"].values())
    assert not any(k.startswith("enc_q") for k in raw["weight"])
    m = load_rvc(path)
    assert (m.version, m.f0, m.samplerate, m.upp, m.n_speakers) == (version, bool(f0), sr, sr // 100, 3)
    assert m.phone_dim == {"v1": 256, "v2": 768}[version]
    frames = 40
    audio = infer(m, frames)
    assert audio.shape == (1, 1, frames * m.upp)
    assert torch.isfinite(audio).all()
    rms = float(audio.square().mean().sqrt())
    assert 0.02 < rms < 0.7  # a random voice, but neither silent nor clipped flat
    stream = infer(m, frames, skip_head=30, return_length=8, return_length2=9)
    assert stream.shape == (1, 1, 9 * m.upp) and torch.isfinite(stream).all()


def test_resblock2_voices_load_and_speak(tmp_path: Path):
    path = write_rvc_checkpoint(tmp_path / "rb2.pth", version="v2", sr=32000, f0=1, resblock="2")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["config"][9] == "2" and "dec.resblocks.0.convs.1.weight_g" in raw["weight"]
    assert not any(".convs1." in k for k in raw["weight"])
    m = load_rvc(path)
    audio = infer(m, 30)
    assert audio.shape == (1, 1, 30 * m.upp) and torch.isfinite(audio).all()
    assert float(audio.square().mean().sqrt()) > 0.02


def test_infer_rejects_inputs_that_do_not_fit(tmp_path: Path):
    m = load_rvc(write_rvc_checkpoint(tmp_path / "v.pth", version="v1", sr=40000, f0=1))
    with pytest.raises(ValueError, match=r"flow_noise must be \(1, 16, 20\)"):
        m.net.infer(
            torch.zeros(1, 20, 256),
            torch.ones(1, 20, dtype=torch.long),
            torch.zeros(1, 20),
            0,
            torch.zeros(1, 16, 19),
            torch.zeros(1, 20 * 400),
        )
    with pytest.raises(ValueError, match="phone must be"):
        m.net.infer(torch.zeros(1, 20, 768), None, None, 0, torch.zeros(1, 16, 20), None)
    with pytest.raises(ValueError, match="within the 20 frames"):
        infer(m, 20, skip_head=15, return_length=10)


def test_factory_is_deterministic_per_seed(tmp_path: Path):
    a = write_rvc_checkpoint(tmp_path / "a.pth", version="v2", sr="40k", f0=1, seed=3)
    b = write_rvc_checkpoint(tmp_path / "b.pth", version="v2", sr=40000, f0=True, seed=3)
    c = write_rvc_checkpoint(tmp_path / "c.pth", version="v2", sr=40000, f0=1, seed=4)
    wa, wb, wc = (torch.load(p, weights_only=True)["weight"] for p in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["dec.conv_post.weight"], wc["dec.conv_post.weight"])
    assert not torch.equal(infer(load_rvc(a), 20), infer(load_rvc(c), 20))


def full_size_cases() -> list:
    return sorted(json.loads((FIXTURES / "counts.json").read_text())["models"].items())


@pytest.mark.parametrize("case", full_size_cases(), ids=lambda c: c[0])
def test_full_size_configs_match_rvc_parameter_counts(tmp_path: Path, case):
    _, want = case
    sr = want["config"][-1]
    path = write_rvc_checkpoint(tmp_path / "full.pth", version=want["version"], sr=sr, f0=want["f0"], size="full")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["config"] == want["config"]
    weight = raw["weight"]
    assert len(weight) == want["state_dict_keys_without_enc_q"]
    assert sum(t.numel() for t in weight.values()) == want["params_without_enc_q_weight_norm_form"]
    for top, n in want["params_by_top_module"].items():
        assert sum(t.numel() for k, t in weight.items() if k.split(".")[0] == top) == n, top
    m = load_rvc(path)
    assert sum(p.numel() for p in m.net.parameters()) == want["params_without_enc_q_after_remove_weight_norm"]
    assert m.upp == want["upp"] and m.n_speakers == want["config"][-3] and m.inter_channels == want["config"][2]
    if (want["version"], sr, want["f0"]) == ("v2", 40000, 1):  # one full-size forward pass: finite, audible
        audio = infer(m, 30)
        assert audio.shape == (1, 1, 30 * m.upp) and torch.isfinite(audio).all()
        assert float(audio.square().mean().sqrt()) > 0.02


def resave(src: Path, dst: Path, edit) -> Path:
    cpt = torch.load(src, map_location="cpu", weights_only=True)
    edit(cpt)
    torch.save(cpt, dst)
    return dst


def test_speaker_count_comes_from_the_embedding_table(tmp_path: Path):
    src = write_rvc_checkpoint(tmp_path / "five.pth", version="v1", sr=40000, f0=1, n_speakers=5)

    def lie(cpt):
        cpt["config"][-3] = 2

    m = load_rvc(resave(src, tmp_path / "lying.pth", lie))
    assert m.n_speakers == 5
    assert not torch.equal(infer(m, 20, sid=4), infer(m, 20, sid=0))
    with pytest.raises(ValueError, match="speaker id 5"):
        infer(m, 20, sid=5)


def test_old_files_without_version_or_f0_load_as_rvc_does(tmp_path: Path):
    src = write_rvc_checkpoint(tmp_path / "v1.pth", version="v1", sr=40000, f0=1)

    def strip(cpt):
        del cpt["version"], cpt["f0"]
        cpt["config"][-1] = "40k"  # some old files name the rate

    m = load_rvc(resave(src, tmp_path / "old.pth", strip))
    assert (m.version, m.f0, m.samplerate) == ("v1", True, 40000)
    assert torch.equal(infer(m, 20), infer(load_rvc(src), 20))


class Payload:
    """Pickles to a call that would create a file if the loader ran pickled code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def _v1(tmp_path: Path) -> Path:
    return write_rvc_checkpoint(tmp_path / "good.pth", version="v1", sr=40000, f0=1)


def _edited(edit):
    def make(tmp_path: Path) -> Path:
        return resave(_v1(tmp_path), tmp_path / "bad.pth", edit)

    return make


def _saved(obj_of):
    def make(tmp_path: Path) -> Path:
        torch.save(obj_of(tmp_path), tmp_path / "bad.pth")
        return tmp_path / "bad.pth"

    return make


def _bytes(data_of):
    def make(tmp_path: Path) -> Path:
        (tmp_path / "bad.pth").write_bytes(data_of(tmp_path))
        return tmp_path / "bad.pth"

    return make


def _set(key, value):
    return lambda cpt: cpt.__setitem__(key, value)


def _set_weight(key, value_of):
    return lambda cpt: cpt["weight"].__setitem__(key, value_of(cpt["weight"]))


def _set_config(i, value):
    return lambda cpt: cpt["config"].__setitem__(i, value)


BAD_FILES = {
    "missing": (lambda tmp: tmp / "nowhere" / "voice.pth", "voice model file not found"),
    "folder": (lambda tmp: tmp, "is a folder"),
    "empty": (_bytes(lambda tmp: b""), "not a PyTorch checkpoint"),
    "random bytes": (_bytes(lambda tmp: b"\x17" + np.random.default_rng(0).bytes(4095)), "not a PyTorch checkpoint"),
    "truncated": (_bytes(lambda tmp: (b := _v1(tmp).read_bytes())[: len(b) // 2]), "truncated or damaged"),
    "a list": (_saved(lambda tmp: [1, 2, 3]), "holds a list, not an RVC voice"),
    "wrong keys": (_saved(lambda tmp: {"state": {}, "epoch": 3}), "no 'weight' or 'config' entry"),
    "no config": (_edited(lambda cpt: cpt.pop("config")), "no 'config' entry"),
    "version v3": (_edited(_set("version", "v3")), "unknown RVC version 'v3'"),
    "f0 flag 2": (_edited(_set("f0", 2)), "'f0' must be 0 or 1"),
    "config 17 items": (_edited(lambda cpt: cpt["config"].pop(0)), "list of 18 items"),
    "config resblock": (_edited(_set_config(9, "3")), "config[9] (resblock)"),
    "config rate": (_edited(_set_config(17, 44100)), "samples per 10 ms frame"),
    "missing weight": (
        _edited(lambda cpt: cpt["weight"].pop("dec.conv_post.weight")),
        "'dec.conv_post.weight' is missing",
    ),
    "wrong shape": (
        _edited(_set_weight("enc_p.proj.weight", lambda w: torch.zeros(8, 16, 1, dtype=torch.float16))),
        "'enc_p.proj.weight' has shape (8, 16, 1), but a v1 f0 voice with this config needs (32, 16, 1)",
    ),
    "v1 label on v2 weights": (
        _edited(_set_weight("enc_p.emb_phone.weight", lambda w: torch.zeros(16, 768, dtype=torch.float16))),
        "'enc_p.emb_phone.weight' has shape (16, 768)",
    ),
    "f0=0 label on f0 weights": (_edited(_set("f0", 0)), "unexpected weight"),
    "NaN weight": (
        _edited(_set_weight("flow.flows.0.post.bias", lambda w: torch.full((8,), float("nan"), dtype=torch.float16))),
        "'flow.flows.0.post.bias' holds NaN",
    ),
    "weight_g without weight_v": (
        _edited(lambda cpt: cpt["weight"].pop("dec.ups.0.weight_v")),
        "'dec.ups.0.weight_g' has no matching 'dec.ups.0.weight_v'",
    ),
    "unnamed weight": (
        _edited(lambda cpt: cpt["weight"].__setitem__(1, torch.zeros(1))),
        "not a dict of named tensors",
    ),
    "no speaker table": (_edited(lambda cpt: cpt["weight"].pop("emb_g.weight")), "'emb_g.weight'"),
    "RMVPE": (
        _saved(
            lambda tmp: {
                "unet.encoder.bn.weight": torch.ones(1),
                "cnn.weight": torch.zeros(3, 16, 3, 3),
                "fc.0.gru.weight_ih_l0": torch.zeros(768, 384),
            }
        ),
        "this looks like an RMVPE F0 model, not an RVC voice",
    ),
    "HuBERT (cfg)": (
        _saved(lambda tmp: {"model": {"encoder.layers.0.fc1.weight": torch.zeros(4, 4)}, "cfg": {"model": {}}}),
        "this looks like a HuBERT / ContentVec content-feature model",
    ),
    "HuBERT (argparse args)": (
        _saved(lambda tmp: {"args": argparse.Namespace(encoder_layers=12), "model": {"x": torch.zeros(1)}}),
        "this looks like a HuBERT / ContentVec content-feature model",
    ),
    "HuBERT (argparse args, legacy torch format)": (
        lambda tmp: (
            torch.save(
                {"args": argparse.Namespace(encoder_layers=12), "model": {"x": torch.zeros(1)}},
                tmp / "bad.pth",
                _use_new_zipfile_serialization=False,
            ),
            tmp / "bad.pth",
        )[1],
        "this looks like a HuBERT / ContentVec content-feature model",  # (was: "export the voice again")
    ),
    "training checkpoint": (
        _saved(lambda tmp: {"model": {"x": torch.zeros(1)}, "iteration": 10, "optimizer": {}, "learning_rate": 1e-4}),
        "RVC training checkpoint",
    ),
    "other vocoder": (_edited(_set("vocoder", "RefineGAN")), "'RefineGAN' vocoder"),
    "pickled code": (
        _saved(lambda tmp: {"weight": Payload(tmp / "ran"), "config": []}),
        "does not run pickled code",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_say_which_file_and_what_is_wrong(tmp_path: Path, case: str):
    make, expected = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(ModelError) as err:
        load_rvc(path)
    message = str(err.value)
    assert str(path) in err.value.what
    assert expected in err.value.what, message
    assert err.value.fix, message  # every error says how to fix it
    assert not (tmp_path / "ran").exists()  # nothing from the file was executed


def test_missing_file_says_how_to_provide_it(tmp_path: Path):
    with pytest.raises(ModelError) as err:
        load_rvc(tmp_path / "alto.pth")
    assert "alto.pth" in err.value.what and ".pth" in err.value.fix and "assets/weights" in err.value.fix
