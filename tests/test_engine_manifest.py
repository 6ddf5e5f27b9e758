"""engines/manifest.json: keys, every reason an engine cannot serve (with the `rtvc build` command that
fixes it), atomic writes and a corrupt manifest. Pure Python: no TensorRT, no GPU."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from rtvc.backends.base import StreamShape
from rtvc.backends.manifest import (
    EngineEntry,
    EngineError,
    EngineRequest,
    Manifest,
    Target,
    build_command,
    engine_filename,
    export_identity,
    model_identity,
    rvc_models,
    timing_cache_path,
)
from rtvc.errors import RtvcError
from rtvc.voices.rvc import RvcModelSettings

SHAPE = StreamShape(samplerate=16000, out_samplerate=48000, block=320, context=16640, tail=2400)
H100 = Target("NVIDIA H100 80GB HBM3", "9.0", "10.13.3.9")
COMMAND = build_command("alice", 20, "fp16")


@pytest.fixture
def voice(tmp_path: Path) -> tuple[dict[str, str], dict[str, str], Path]:
    """An RVC profile's model files on disk: a .pth, a transformers-style HuBERT folder, an RMVPE file."""
    base = tmp_path / "profiles"
    (base / "hubert").mkdir(parents=True)
    (base / "alice.pth").write_bytes(b"voice weights v1")
    (base / "hubert" / "config.json").write_text("{}")
    (base / "hubert" / "model.safetensors").write_bytes(b"hubert weights")
    (base / "rmvpe.pt").write_bytes(b"rmvpe weights")
    settings = RvcModelSettings(path="alice.pth", content="hubert", f0="rmvpe", f0_model="rmvpe.pt")
    models, paths = rvc_models(settings, base)
    return models, paths, base


def _request(models, paths, step="synth", shape=SHAPE, precision="fp16") -> EngineRequest:
    return EngineRequest(step, models, paths, shape, precision, COMMAND)


def _built(folder: Path, models, paths, step="synth", shape=SHAPE, precision="fp16", target=H100) -> EngineEntry:
    """An entry as `rtvc build` records it, with an engine file (bytes standing in for a plan) beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    name = engine_filename(step, models, shape, precision, target)
    data = f"plan {step} {shape.key()} {precision} {target}".encode()
    (folder / name).write_bytes(data)
    return EngineEntry(
        step=step, file=name, models=models, model_paths=paths, shape=shape.key(), precision=precision,
        gpu=target.gpu, compute_capability=target.compute_capability, tensorrt=target.tensorrt,
        built_at="2026-11-22T04:00:00Z", build_seconds=12.5, engine_sha256=hashlib.sha256(data).hexdigest(),
        inputs=[["phone", [1, 100, 768], "float32"]], outputs=[["audio", [1, 2400], "float32"]],
        export=export_identity(),
    )  # fmt: skip


def _saved(folder: Path, *entries: EngineEntry) -> Manifest:
    m = Manifest(folder)
    for e in entries:
        m.record(e)
    m.save()
    return Manifest.load(folder)


def _why(folder: Path, want: EngineRequest, target: Target = H100) -> EngineError:
    with pytest.raises(EngineError) as info:
        Manifest.load(folder, want.command).lookup(want, target)
    err = info.value
    assert "\n" not in str(err)
    assert COMMAND in str(err), str(err)  # every refusal names the command that fixes it
    return err


def test_keys():
    assert SHAPE.key() == "16000-48000-b320-c16640-t2400"
    keys = {replace(SHAPE, **{f: getattr(SHAPE, f) + 1}).key() for f in SHAPE.__dataclass_fields__}
    assert len(keys) == 5 and SHAPE.key() not in keys  # every field of the shape is in its key
    assert H100.slug() == "nvidia-h100-80gb-hbm3-sm90-trt10.13.3.9"
    name = engine_filename("content", {"voice": "ab" * 32}, SHAPE, "fp32", H100)
    assert name.startswith("content-abababababab-") and name.endswith(f"-{SHAPE.key()}-fp32-{H100.slug()}.engine")
    # one .pth under two profiles with other F0 (or content) models: engines that do not overwrite each other
    fcpe = engine_filename("f0", {"voice": "ab" * 32, "f0": "fcpe (torchfcpe 0.0.4)"}, SHAPE, "fp32", H100)
    rmvpe = engine_filename("f0", {"voice": "ab" * 32, "f0": "cd" * 32}, SHAPE, "fp32", H100)
    assert fcpe != rmvpe and fcpe.startswith("f0-abababababab-")
    other = replace(H100, tensorrt="11.3.0")
    assert timing_cache_path(Path("e"), H100) != timing_cache_path(Path("e"), other)
    assert timing_cache_path(Path("e"), H100) == Path("e") / f"timing-{H100.slug()}.cache"
    assert build_command("alice", 10, "fp32") == "rtvc build alice --block-ms 10 --precision fp32"
    assert build_command("a", 7.5, "fp16", 44100, Path("c.toml")) == (
        "rtvc build a --block-ms 7.5 --precision fp16 --samplerate 44100 --config c.toml"
    )


def test_model_identity(tmp_path: Path, voice):
    models, paths, base = voice
    assert models["voice"] == hashlib.sha256(b"voice weights v1").hexdigest()
    assert models["f0"] == hashlib.sha256(b"rmvpe weights").hexdigest()
    assert paths["voice"] == str(base / "alice.pth")  # relative to the profile's folder
    folder_id = models["content"]
    (base / "hubert" / "config.json").write_text('{"x": 1}')
    assert model_identity(base / "hubert") != folder_id  # a folder changes with any file in it
    (base / "hubert" / "config.json").write_text("{}")
    assert model_identity(base / "hubert") == folder_id
    (base / "hubert" / "config.json").rename(base / "hubert" / "other.json")
    assert model_identity(base / "hubert") != folder_id  # and with a renamed file
    fcpe, _ = rvc_models(RvcModelSettings(path="alice.pth", content="hubert", f0="fcpe"), base)
    assert fcpe["f0"].startswith("fcpe (torchfcpe ")  # weights shipped in a package: named by its version


def test_lookup_finds_the_matching_engine(tmp_path: Path, voice):
    models, paths, _ = voice
    folder = tmp_path / "engines"
    synth, content = _built(folder, models, paths), _built(folder, models, paths, step="content")
    other_gpu = _built(folder, models, paths, target=replace(H100, gpu="NVIDIA L4", compute_capability="8.9"))
    m = _saved(folder, synth, content, other_gpu)
    assert m.lookup(_request(models, paths), H100) == synth
    assert m.lookup(_request(models, paths, step="content"), H100) == content
    assert len(m.for_target(H100)) == 2


def test_missing(tmp_path: Path, voice):
    models, paths, _ = voice
    folder = tmp_path / "engines"
    err = _why(folder, _request(models, paths))
    assert err.reason == "missing" and "no TensorRT engine for step 'synth' of alice.pth" in str(err)
    entry = _built(folder, models, paths)
    _saved(folder, entry)
    (folder / entry.file).unlink()
    err = _why(folder, _request(models, paths))
    assert err.reason == "missing" and "the file is gone" in str(err)


@pytest.mark.parametrize(
    ("reason", "built_with", "expect"),
    [
        ("gpu", {"target": replace(H100, gpu="NVIDIA GeForce RTX 4090", compute_capability="8.9")},
         "built for NVIDIA GeForce RTX 4090 (sm 8.9), but this GPU is NVIDIA H100 80GB HBM3 (sm 9.0)"),
        ("tensorrt", {"target": replace(H100, tensorrt="10.9.0.34")},
         "built with TensorRT 10.9.0.34, but this is TensorRT 10.13.3.9"),
        ("shape", {"shape": replace(SHAPE, block=160)},
         f"built for stream {replace(SHAPE, block=160).key()}, but the stream is now {SHAPE.key()}"),
        ("precision", {"precision": "fp32"}, "built for fp32, but the profile asks for fp16"),
    ],
)  # fmt: skip
def test_built_for_something_else(tmp_path: Path, voice, reason, built_with, expect):
    models, paths, _ = voice
    folder = tmp_path / "engines"
    _saved(folder, _built(folder, models, paths, **built_with))
    err = _why(folder, _request(models, paths))
    assert err.reason == reason
    assert expect in str(err), str(err)


def test_stale_after_the_model_changed(tmp_path: Path, voice):
    models, paths, base = voice
    folder = tmp_path / "engines"
    _saved(folder, _built(folder, models, paths))
    (base / "alice.pth").write_bytes(b"voice weights v2: retrained")
    new_models, same_paths = rvc_models(
        RvcModelSettings(path="alice.pth", content="hubert", f0="rmvpe", f0_model="rmvpe.pt"), base
    )
    assert same_paths == paths and new_models["voice"] != models["voice"]
    err = _why(folder, _request(new_models, paths))
    assert err.reason == "stale"
    assert f"stale: {base / 'alice.pth'} changed since it was built (2026-11-22T04:00:00Z)" in str(err)


def test_an_engine_exported_by_other_step_code_is_stale(tmp_path: Path, voice, monkeypatch):
    """The same models, shape, GPU and TensorRT, but the steps' code changed (an fp32 island added, another skip):
    the engine computes what the old code did, with the same inputs' names and shapes. It was served (a review)."""
    from rtvc.backends import manifest

    models, paths, _ = voice
    folder = tmp_path / "engines"
    built = _built(folder, models, paths)
    for export, by in (("", "an rtvc from before engines recorded it"), ("0123", "another version of rtvc or torch")):
        entry = replace(built, export=export)
        _saved(folder, entry)
        err = _why(folder, _request(models, paths))
        assert err.reason == "export" and f"was exported by {by}" in str(err), str(err)
        assert Manifest.load(folder).problem(entry) == "stale: built by another version of rtvc (or torch)"
    _saved(folder, _built(folder, models, paths))
    assert Manifest.load(folder).lookup(_request(models, paths), H100).export == export_identity()
    assert Manifest.load(folder).problem(Manifest.load(folder).entries[0]) == ""
    # the digest follows the step code's text: an edit to the NSF source's module changes it
    before, read = export_identity(), Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda f: read(f) + (b"# edited" if f.name == "nsf.py" else b""))
    manifest.export_identity.cache_clear()
    try:
        assert manifest.export_identity() != before and len(before) == 16
    finally:
        monkeypatch.undo()
        manifest.export_identity.cache_clear()
    assert export_identity() == before


def test_corrupt_engine_file(tmp_path: Path, voice):
    models, paths, _ = voice
    folder = tmp_path / "engines"
    entry = _built(folder, models, paths)
    _saved(folder, entry)
    (folder / entry.file).write_bytes(b"half a plan")
    err = _why(folder, _request(models, paths))
    assert err.reason == "corrupt" and "is corrupt (its sha256 differs" in str(err)


def test_record_replaces_and_round_trips(tmp_path: Path, voice):
    models, paths, _ = voice
    folder = tmp_path / "engines"
    old, content = _built(folder, models, paths), _built(folder, models, paths, step="content")
    m = _saved(folder, old, content)
    newer = _built(folder, {**models, "voice": "f" * 64}, paths)  # rebuilt after the voice changed
    # the stale engines' files are no longer referenced: this step's, and the content step's (it keys on the voice
    # file too: a build makes it again next)
    assert m.record(newer) == sorted([old.file, content.file])
    m.record(_built(folder, {**models, "voice": "f" * 64}, paths, step="content"))
    m.save()
    again = Manifest.load(folder)
    assert sorted(e.step for e in again.entries) == ["content", "synth"]
    assert again.entries == m.entries
    assert again.entries[-1].specs("inputs")[0].shape == (1, 100, 768)
    doc = json.loads((folder / "manifest.json").read_text())
    assert doc["format"] == 1 and {"model_paths", "engine_sha256", "tensorrt"} <= doc["engines"][0].keys()


def test_save_is_atomic(tmp_path: Path, voice, monkeypatch):
    models, paths, _ = voice
    folder = tmp_path / "engines"
    m = _saved(folder, _built(folder, models, paths))
    before = (folder / "manifest.json").read_bytes()
    m.record(_built(folder, models, paths, step="content"))

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(RtvcError, match=r"cannot write the engine manifest .*manifest\.json \(disk full\)"):
        m.save()
    assert (folder / "manifest.json").read_bytes() == before  # the old manifest, whole
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # and no leftover temporary file


@pytest.mark.parametrize("text", ["{not json", '{"format": 99, "engines": []}', '{"format": 1, "engines": [{"x": 1}]}'])
def test_corrupt_manifest(tmp_path: Path, voice, text):
    models, paths, _ = voice
    folder = tmp_path / "engines"
    folder.mkdir()
    (folder / "manifest.json").write_text(text)
    err = _why(folder, _request(models, paths))
    assert err.reason == "corrupt"
    assert f"{folder / 'manifest.json'} is not a valid engine manifest" in str(err)
    assert "delete it and rebuild" in str(err)


def test_a_manifest_that_is_a_folder_or_unreadable_or_mistyped_is_corrupt_not_a_traceback(tmp_path: Path, voice):
    """A folder named manifest.json counted as "no manifest" (the build then failed after its first engine);
    an unreadable one, or one with an entry's field of the wrong type, was a traceback in doctor and lookup."""
    models, paths, _ = voice
    folder = tmp_path / "engines"
    (folder / "manifest.json").mkdir(parents=True)
    err = _why(folder, _request(models, paths))
    assert err.reason == "corrupt" and "is not a valid engine manifest (not a file)" in str(err)
    (folder / "manifest.json").rmdir()
    entry = _built(folder, models, paths)
    _saved(folder, entry)
    doc = json.loads((folder / "manifest.json").read_text())
    doc["engines"][0]["models"] = ["not", "a", "table"]
    (folder / "manifest.json").write_text(json.dumps(doc))
    err = _why(folder, _request(models, paths))
    assert err.reason == "corrupt" and "an entry's 'models' is not a table of text" in str(err)
    if os.geteuid() != 0:  # (root reads it anyway)
        (folder / "manifest.json").chmod(0)
        err = _why(folder, _request(models, paths))
        assert err.reason == "corrupt" and "cannot be read (Permission denied)" in str(err)


def test_doctor_counts_the_engines_this_tensorrt_can_run(voice, tmp_path, monkeypatch):
    """`rtvc doctor`'s engines line: engines built with another TensorRT version on this GPU are stale (the manifest's
    lookup refuses them), not usable; without TensorRT none is usable, whatever GPU they were built for."""
    import torch

    import rtvc.backends.tensorrt as trt_backend
    from rtvc.doctor import check_engines

    models, paths, _ = voice
    folder = tmp_path / "engines"
    old = Target(H100.gpu, H100.compute_capability, "10.0.1")
    # (TensorRT upgraded since the content engine's build, and only the synth step built again; a build of the profile
    # drops such engines: Manifest.record)
    Manifest(folder, [_built(folder, models, paths), _built(folder, models, paths, step="content", target=old)]).save()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: H100.gpu)
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: None)
    monkeypatch.setattr(trt_backend, "current_target", lambda trt: H100)
    (check,) = check_engines(folder)
    assert check.ok and f"1 usable on {H100.gpu} with TensorRT {H100.tensorrt}: synth/fp16" in check.found, check.found
    assert check.found.endswith("; 1 built with another TensorRT (stale)")
    assert "(it replaces the stale engines of its model files, at every block size)" in check.fix, check.fix

    def absent():
        raise RtvcError("TensorRT is not installed", "pip install tensorrt-cu13")

    monkeypatch.setattr(trt_backend, "import_tensorrt", absent)
    (check,) = check_engines(folder)
    assert not check.ok and "2 built for" in check.found and "none usable without TensorRT" in check.found


def test_doctor_does_not_call_an_engine_usable_that_a_voice_would_refuse(voice, tmp_path, monkeypatch):
    """An engine whose file is gone or corrupt, or whose model file changed since the build, is what a voice's load
    refuses: doctor said "ok engines 2 ... usable" for them (it counted entries)."""
    import torch

    import rtvc.backends.tensorrt as trt_backend
    from rtvc.doctor import check_engines

    models, paths, base = voice
    folder = tmp_path / "engines"
    synth, content, f0 = (_built(folder, models, paths, step=s) for s in ("synth", "content", "f0"))
    _saved(folder, synth, content, f0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: H100.gpu)
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: None)
    monkeypatch.setattr(trt_backend, "current_target", lambda trt: H100)
    (check,) = check_engines(folder)
    assert check.ok and "3 usable on" in check.found and "content/fp16, f0/fp16, synth/fp16" in check.found
    (folder / content.file).unlink()
    (folder / f0.file).write_bytes(b"garbage")
    (check,) = check_engines(folder)
    assert not check.ok, check.found
    assert "1 usable on" in check.found and ": synth/fp16;" in check.found, check.found
    assert "2 not usable: content/fp16 (engine file gone), f0/fp16 (engine file corrupt)" in check.found
    assert (
        "rtvc build PROFILE on this machine (it replaces the stale engines of its model files, at every block size)"
        in check.fix
        and "model files gone" not in check.fix
    )
    (base / "alice.pth").write_bytes(b"voice weights v2: retrained")
    (check,) = check_engines(folder)
    assert (
        "0 usable on" in check.found
        and "synth/fp16 (stale: alice.pth changed since 2026-11-22T04:00:00Z)" in check.found
    )


@pytest.mark.parametrize(
    "file", ["../victim.txt", "/tmp/victim.engine", "sub/x.engine", "manifest.json", ".engine", ""]
)
def test_an_entry_naming_a_file_outside_the_engines_folder_is_a_corrupt_manifest(tmp_path: Path, voice, file):
    """A rebuild deletes the files of the entries it replaces: an entry edited to name "../victim.txt" had rtvc build
    delete that file outside engines/ (and a load read it)."""
    models, paths, _ = voice
    folder = tmp_path / "engines"
    _saved(folder, _built(folder, models, paths))
    doc = json.loads((folder / "manifest.json").read_text())
    doc["engines"][0]["file"] = file
    (folder / "manifest.json").write_text(json.dumps(doc))
    err = _why(folder, _request(models, paths))
    assert err.reason == "corrupt" and "'file'" in str(err) and "is not the name of an .engine file" in str(err)


def test_model_paths_are_resolved_so_a_rebuild_from_elsewhere_replaces_the_stale_engines(tmp_path: Path, voice):
    """The same .pth named through another folder (`rtvc build --config` from elsewhere, a `..` in the profile) is
    one file: its rebuild replaced nothing and left the stale engines beside the new ones."""
    _, paths, base = voice
    settings = RvcModelSettings(path="../profiles/alice.pth", content="hubert", f0="rmvpe", f0_model="rmvpe.pt")
    _, other = rvc_models(settings, base)
    assert other == paths and paths["voice"] == str((base / "alice.pth").resolve())
    models, _, _ = voice
    folder = tmp_path / "engines"
    m = Manifest(folder)
    m.record(_built(folder, models, paths))
    (base / "alice.pth").write_bytes(b"retrained")
    new, _ = rvc_models(settings, base)
    gone = m.record(_built(folder, new, other))
    assert len(m.entries) == 1 and len(gone) == 1


def test_an_entry_with_a_model_role_the_request_lacks_is_an_engine_error_not_an_index_error(tmp_path: Path, voice):
    """A hand-edited entry whose models table has a role the voice does not ask for (its model paths the same) was
    taken as the voice's, with no difference found: IndexError from the lookup, a traceback at the voice's load."""
    models, paths, _ = voice
    folder = tmp_path / "engines"
    entry = _built(folder, models, paths)
    _saved(folder, replace(entry, models={**models, "extra": "rmvpe-old"}))
    err = _why(folder, _request(models, paths))
    assert err.reason == "stale", str(err)


def test_a_rebuild_after_the_model_changed_drops_its_stale_engines_for_every_stream(tmp_path: Path, voice):
    """A rebuild replaced only the engines of the stream it built: those of another block size, built from the
    model before it changed, stayed (doctor called them "not usable", and said a build would replace them)."""
    models, paths, base = voice
    folder = tmp_path / "engines"
    m = Manifest(folder)
    other = StreamShape(samplerate=16000, out_samplerate=48000, block=160, context=16480, tail=1200)
    for shape in (SHAPE, other):
        m.record(_built(folder, models, paths, shape=shape))
    (base / "alice.pth").write_bytes(b"voice weights v2: retrained")
    new, _ = rvc_models(RvcModelSettings(path="alice.pth", content="hubert", f0="rmvpe", f0_model="rmvpe.pt"), base)
    gone = m.record(_built(folder, new, paths, shape=SHAPE))
    assert len(gone) == 2 and [e.shape for e in m.entries] == [SHAPE.key()], (gone, m.entries)


@pytest.mark.parametrize("upgraded", ["rtvc", "tensorrt"])
def test_a_rebuild_after_an_upgrade_drops_the_old_engines_of_every_stream(tmp_path: Path, voice, upgraded):
    """A review: after an upgrade of rtvc (or torch) or of TensorRT, a rebuild at another block size left the old
    engines on disk for good (full-size HuBERT and synth plans), and doctor kept calling them "not usable" with a fix,
    `rtvc build`, that did not remove them. Engines of another GPU are another machine's: kept."""
    models, paths, _ = voice
    folder = tmp_path / "engines"
    other = StreamShape(samplerate=16000, out_samplerate=48000, block=160, context=16480, tail=1200)
    new_trt = replace(H100, tensorrt="10.14.1.48")
    l40 = Target("NVIDIA L40S", "8.9", "10.13.3.9")
    m = Manifest(folder)
    olds = [_built(folder, models, paths, step=s) for s in ("content", "synth")]
    if upgraded == "rtvc":
        olds = [replace(e, export="0123456789abcdef") for e in olds]
    l40_engine = replace(_built(folder, models, paths, target=l40), export=olds[0].export)
    for e in (*olds, l40_engine):
        m.record(e)
    gone = m.record(_built(folder, models, paths, shape=other, target=new_trt if upgraded == "tensorrt" else H100))
    if upgraded == "tensorrt":  # (another GPU's engine, from the same rtvc: kept)
        assert gone == sorted(e.file for e in olds), (gone, m.entries)
        assert [(e.shape, e.gpu) for e in m.entries] == [(SHAPE.key(), l40.gpu), (other.key(), H100.gpu)]
    else:  # (exported by other code: stale on any GPU)
        assert gone == sorted(e.file for e in (*olds, l40_engine)), (gone, m.entries)
        assert [(e.shape, e.gpu) for e in m.entries] == [(other.key(), H100.gpu)]
    # another profile's model files: not touched
    m2 = Manifest(folder)
    m2.record(olds[0])
    assert m2.record(_built(folder, {**models, "voice": "e" * 64}, {**paths, "voice": "/x/bob.pth"}, shape=other)) == []
