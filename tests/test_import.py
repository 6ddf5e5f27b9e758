"""`rtvc import` and `rtvc models`: downloaded voice files become a profile that plays, or nothing changes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("transformers")
pytest.importorskip("faiss")

from rtvc.cli import main
from rtvc.rvc.factory import write_rvc_checkpoint
from rtvc.rvc.index import write_index

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def downloads(tmp_path_factory, tiny_v2_models):
    """What a user has downloaded: a voice as a .zip (its .pth and .index in a folder, with a macOS leftover),
    the same voice unzipped, RVC's hubert_base.pt, a v1 voice and a 256-d index."""
    d = tmp_path_factory.mktemp("downloads")
    shutil.copy(tiny_v2_models / "hubert.pt", d / "hubert_base.pt")
    shutil.copy(tiny_v2_models / "v2.pth", d / "Alice (RVC v2) 300e.pth")
    rng = np.random.default_rng(0)
    write_index(d / "added_IVF16_Flat_nprobe_1_alice_v2.index", rng.standard_normal((200, 768)).astype(np.float32))
    write_index(d / "v1.index", rng.standard_normal((200, 256)).astype(np.float32))
    with zipfile.ZipFile(d / "alice.zip", "w") as z:
        z.write(d / "Alice (RVC v2) 300e.pth", "Alice/Alice (RVC v2) 300e.pth")
        z.write(d / "added_IVF16_Flat_nprobe_1_alice_v2.index", "Alice/added_IVF16_Flat_nprobe_1_alice_v2.index")
        z.writestr("__MACOSX/Alice/._Alice (RVC v2) 300e.pth", b"\0\x05\x16\x07")
        z.writestr("Alice/readme.txt", "thanks for downloading")
    write_rvc_checkpoint(d / "bob_v1.pth", version="v1", sr="40k", f0=1, size="tiny", seed=2)
    return d


@pytest.fixture
def home(tmp_path):
    """A fresh rtvc folder: config.toml and profiles/ (the default profile)."""
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "default"\n')
    (tmp_path / "profiles").mkdir()
    shutil.copy(ROOT / "profiles" / "default.toml", tmp_path / "profiles")
    return tmp_path


def rtvc(home: Path, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([args[0], "--config", str(home / "config.toml"), *args[1:]])
    out, err = capsys.readouterr()
    return code, out, err


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(home: Path) -> dict[str, bytes]:
    """Every file under the rtvc folder, by name: what a refused import must leave as it was."""
    return {p.relative_to(home).as_posix(): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def test_a_zipped_voice_and_hubert_become_a_profile_that_converts(home, downloads, capsys):
    code, out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(downloads / "alice.zip"))
    assert code == 0, err
    name = "alice-rvc-v2-300e"
    voice = home / "models" / name / "Alice (RVC v2) 300e.pth"
    index = home / "models" / name / "added_IVF16_Flat_nprobe_1_alice_v2.index"
    content = home / "models" / "content" / "hubert_base.pt"
    assert sha256(voice) == sha256(downloads / "Alice (RVC v2) 300e.pth")
    assert sha256(index) == sha256(downloads / "added_IVF16_Flat_nprobe_1_alice_v2.index")
    assert sha256(content) == sha256(downloads / "hubert_base.pt")
    assert sorted(p.name for p in (home / "models").rglob("*") if p.is_file()) == sorted(
        [voice.name, index.name, content.name, "registry.json"]
    )  # (no readme, no macOS leftover, no temporary file)
    assert "RVC v2 48k voice, with F0, 3 speakers" in out
    assert "feature index, 768-d, 200 features" in out
    assert f"run it: rtvc run --profile {name}" in out

    registry = json.loads((home / "models" / "registry.json").read_text())
    entries = {e["kind"]: e for e in registry["models"]}
    assert sorted(entries) == ["content", "index", "voice"]
    for e in entries.values():
        assert e["sha256"] == sha256(home / "models" / e["file"])
        assert e["bytes"] == (home / "models" / e["file"]).stat().st_size
    assert entries["voice"]["source"] == f"{downloads / 'alice.zip'}:Alice/Alice (RVC v2) 300e.pth"

    from rtvc.profiles import load_profile

    profile = load_profile(name, home / "profiles")
    assert (profile.voice, profile.label) == ("rvc", "Alice (RVC v2) 300e")
    assert (home / "profiles" / profile.model.path).resolve() == voice.resolve()
    assert (home / "profiles" / profile.model.content).resolve() == content.resolve()
    assert (home / "profiles" / profile.model.index).resolve() == index.resolve()
    assert (profile.model.f0, profile.params.index_rate, profile.params.pitch) == ("fcpe", 0.5, 0.0)

    t = np.arange(int(1.5 * 48000)) / 48000
    tone = 0.3 * np.sign(np.sin(2 * np.pi * (140 + 20 * np.sin(2 * np.pi * 3 * t)) * t)) * np.hanning(len(t))
    sf.write(home / "in.wav", tone.astype(np.float32), 48000, subtype="FLOAT")
    code, out, err = rtvc(
        home, capsys, "convert", "--offline", "--profile", name, str(home / "in.wav"), str(home / "o.wav")
    )
    assert code == 0, err
    y, sr = sf.read(home / "o.wav", dtype="float32")
    assert sr == 48000 and abs(len(y) - len(tone)) <= 480
    assert np.isfinite(y).all() and np.sqrt(np.mean(y**2)) > 1e-3  # the voice plays: sound, not silence

    code, out, err = rtvc(home, capsys, "models")
    assert code == 0, err
    assert out.count(f"used by {name}") == 3, out
    assert f"{name}/Alice (RVC v2) 300e.pth" in out and "content/hubert_base.pt" in out


def test_the_next_voice_reuses_the_imported_content_model(home, downloads, capsys):
    assert rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))[0] == 0
    code, out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))
    assert code == 0 and "already imported" in out, (out, err)
    code, out, err = rtvc(
        home, capsys, "import", str(downloads / "Alice (RVC v2) 300e.pth"), "--name", "al", "--f0", "yin"
    )
    assert code == 0, err
    text = (home / "profiles" / "al.toml").read_text()
    assert 'content = "../models/content/hubert_base.pt"' in text and 'f0 = "yin"' in text and "index" not in text
    # --name names the voice where the list shows it too (it was labelled after the file: two names, one label)
    assert 'label = "al"' in text and "wrote " in out and "label 'al'" in out
    kinds = [e["kind"] for e in json.loads((home / "models" / "registry.json").read_text())["models"]]
    assert sorted(kinds) == ["content", "voice"]  # one content model, copied once
    assert len(list((home / "models" / "content").iterdir())) == 1


def test_a_voice_without_a_content_model_is_refused_and_nothing_changes(home, downloads, capsys):
    before = state(home)
    code, _out, err = rtvc(home, capsys, "import", str(downloads / "alice.zip"))
    assert code == 2
    assert "needs a content model (RVC's hubert_base.pt, ContentVec) and none is imported" in err
    assert f"rtvc import hubert_base.pt {downloads / 'alice.zip'}" in err  # (the command to run, as given)
    assert state(home) == before


def test_a_damaged_voice_stops_the_import_before_anything_is_copied(home, downloads, capsys, tmp_path_factory):
    bad = tmp_path_factory.mktemp("bad") / "cut.pth"
    data = (downloads / "Alice (RVC v2) 300e.pth").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    before = state(home)
    code, _out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(bad))
    assert code == 2
    assert f"{bad}: truncated or damaged checkpoint" in err
    assert state(home) == before  # the good hubert_base.pt given first was not copied either
    # bytes that open like a pickle: torch's two-line warning on its protocol came before rtvc's one line
    bad.write_bytes(b"\x80\x04garbage, not a model")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code, _out, err = rtvc(home, capsys, "import", str(bad))
    assert code == 2 and f"{bad}: truncated or damaged checkpoint" in err, err
    assert not [w for w in seen if "pickle protocol" in str(w.message)], [str(w.message) for w in seen]


@pytest.mark.parametrize(
    "files, said",
    [
        (["Alice (RVC v2) 300e.pth", "v1.index"], "the index holds 256-d features but"),
        (["added_IVF16_Flat_nprobe_1_alice_v2.index"], "is a voice's feature index, given without its voice"),
        (["bob_v1.pth", "hubert_base.pt"], "an RVC v1 voice reads layer 9 through final_proj (256-d); this content"),
        (["Alice (RVC v2) 300e.pth", "bob_v1.pth", "hubert_base.pt"], "2 files of one kind (voice)"),
        (["Alice (RVC v2) 300e.pth", "hubert_base.pt", "--f0", "pyin"], "--f0 'pyin' is no F0 estimator"),
        (["hubert_base.pt", "--name", "x"], "--name, --label and --f0 are for a voice"),
        (["Alice (RVC v2) 300e.pth", "hubert_base.pt", "--name", ""], "profile name '' is not allowed"),
    ],
)
def test_files_that_do_not_go_together_are_refused_by_name(home, downloads, capsys, files, said):
    before = state(home)
    args = [a if a.startswith("-") or a in ("x", "pyin", "") else str(downloads / a) for a in files]
    code, _out, err = rtvc(home, capsys, "import", *args)
    assert code == 2 and said in err, err
    assert state(home) == before


def test_an_existing_profile_is_kept_unless_force(home, downloads, capsys):
    args = ("import", str(downloads / "hubert_base.pt"), str(downloads / "Alice (RVC v2) 300e.pth"), "--name", "al")
    assert rtvc(home, capsys, *args)[0] == 0
    (home / "profiles" / "al.toml").write_text((home / "profiles" / "al.toml").read_text() + "# my notes\n")
    before = state(home)
    code, _out, err = rtvc(home, capsys, *args, "--f0", "yin")
    assert code == 2 and "profile 'al' already exists" in err and "--force" in err
    assert state(home) == before
    code, _out, err = rtvc(home, capsys, *args, "--f0", "yin", "--force")
    assert code == 0, err
    assert 'f0 = "yin"' in (home / "profiles" / "al.toml").read_text()
    kinds = [e["kind"] for e in json.loads((home / "models" / "registry.json").read_text())["models"]]
    assert sorted(kinds) == ["content", "voice"]


def test_a_full_temporary_folder_is_named(home, downloads, tmp_path):
    """A .zip unpacked into a full TMPDIR said "No space left on device (writing its output or log)" (a review): it
    names the temporary folder and its free space, and nothing is imported. A real full disk: a 64 KiB tmpfs."""
    import subprocess
    import sys

    disk = tmp_path / "tmp"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (not root, or no mount in this container): {mounted}")
    before = state(home)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "rtvc", "import", "--config", str(home / "config.toml"), str(downloads /
             "hubert_base.pt"), str(downloads / "alice.zip")],
            capture_output=True, text=True, timeout=120, cwd=home,
            env={**os.environ, "TMPDIR": str(disk), "XDG_CONFIG_HOME": str(tmp_path / "xdg")},
        )  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert f"rtvc: error: No space left on device (the temporary folder (TMPDIR) {disk} has 0." in r.stderr
        assert "MB free): free space on that disk, or write elsewhere" in r.stderr and "Traceback" not in r.stderr
        assert list(disk.iterdir()) == []  # (its unpacked part taken away)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert state(home) == before


def test_a_copy_that_fails_part_way_takes_back_what_it_copied(home, downloads, capsys, monkeypatch):
    real = shutil.copyfile
    calls = []

    def full_disk(src, dst, *a, **k):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    before = state(home)
    code, out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(downloads / "alice.zip"))
    assert code == 2 and "No space left on device" in err and "check the free space" in err
    # what stdout said was copied is said to be taken back
    assert "imported " in out and out.rstrip().endswith(
        "taken back: the files copied above are gone again (the error follows)"
    )
    assert len(calls) == 2
    assert state(home) == before  # the content model copied first is gone again; no registry, no profile
    assert not (home / "models").exists()  # (nor the folders the import made: models/alice/ was left, empty)


def test_a_damaged_registry_is_named_and_left_alone(home, downloads, capsys):
    (home / "models").mkdir()
    (home / "models" / "registry.json").write_text('{"format": 1, "models": [{"kind": "voice"')
    code, _out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))
    assert code == 2 and "registry.json is not a valid model registry" in err and "move it away" in err
    assert (home / "models" / "registry.json").read_text() == '{"format": 1, "models": [{"kind": "voice"'
    code, _out, err = rtvc(home, capsys, "models")
    assert code == 2 and "not a valid model registry" in err
    # edited by hand into what json reads but no file can be named, or nested past Python's stack: tracebacks were
    entry = {"kind": "content", "file": "x\u0000.pt", "sha256": "0" * 64, "bytes": 1, "about": "", "source": "",
             "imported": "", "details": {}}  # fmt: skip
    for text in (json.dumps({"format": 1, "models": [entry]}), "[" * 100000):
        (home / "models" / "registry.json").write_text(text)
        code, _out, err = rtvc(home, capsys, "models")
        assert code == 2 and "not a valid model registry" in err and "Traceback" not in err, err


def test_models_lists_nothing_imported_and_files_gone_missing(home, downloads, capsys):
    code, out, _err = rtvc(home, capsys, "models")
    assert code == 0 and "no models imported" in out and "rtvc import hubert_base.pt VOICE.pth" in out
    assert rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))[0] == 0
    imported = home / "models" / "content" / "hubert_base.pt"
    whole = imported.read_bytes()
    imported.write_bytes(whole[:1000])  # cut short (a copy that stopped): listed as imported, without a word
    code, out, _err = rtvc(home, capsys, "models")
    assert code == 0 and "CHANGED: 1.0 kB now, " in out and "when imported; import it again" in out, out
    imported.write_bytes(whole)
    assert "CHANGED" not in rtvc(home, capsys, "models")[1]
    imported.unlink()
    code, out, _err = rtvc(home, capsys, "models")
    assert code == 0 and "MISSING: the file is gone; import it again" in out and "used by no profile" in out
    # a profile naming a file under a user this machine lacks is not the listing's to refuse (its voice is)
    (home / "profiles").mkdir(exist_ok=True)
    (home / "profiles" / "odd.toml").write_text('voice = "rvc"\n[model]\npath = "~rtvc-nouser/x.pth"\n')
    code, out, err = rtvc(home, capsys, "models")
    assert code == 0 and "MISSING: the file is gone" in out, (out, err)


def test_a_profile_whose_voice_file_is_missing_names_the_import_command(home, capsys):
    (home / "profiles" / "gone.toml").write_text(
        'voice = "rvc"\n[model]\npath = "../models/gone.pth"\ncontent = "../models/hubert_base.pt"\n'
    )
    wavs = str(ROOT / "rtvc/data/speech.wav"), str(home / "o.wav")
    code, _out, err = rtvc(home, capsys, "convert", "--offline", "--profile", "gone", *wavs)
    assert code == 2 and "gone.pth: voice model file not found" in err
    assert "rtvc import VOICE.pth [VOICE.index]" in err


def test_rmvpe_imported_with_a_voice_becomes_its_f0_and_a_cuda_machine_gets_cuda_graphs(
    home, downloads, capsys, monkeypatch, tmp_path_factory
):
    import torch

    from rtvc.rvc.f0.rmvpe_factory import write_rmvpe_checkpoint

    rmvpe = write_rmvpe_checkpoint(tmp_path_factory.mktemp("rmvpe") / "rmvpe.pt", seed=1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # (the profile is written, not run)
    voice = str(downloads / "Alice (RVC v2) 300e.pth")
    code, out, err = rtvc(home, capsys, "import", str(rmvpe), str(downloads / "hubert_base.pt"), voice, "--name", "a")
    assert code == 0, err
    assert f"imported {rmvpe} -> {home / 'models' / 'f0' / 'rmvpe.pt'}: RMVPE F0 model" in out
    assert "runs on cuda, cuda-graph, fp16" in out
    text = (home / "profiles" / "a.toml").read_text()
    assert 'f0 = "rmvpe"' in text and 'f0_model = "../models/f0/rmvpe.pt"' in text
    assert 'device = "cuda"' in text and 'backend = "cuda-graph"' in text and 'precision = "fp16"' in text
    # the next voice takes the imported RMVPE when asked for it
    code, out, err = rtvc(home, capsys, "import", voice, "--name", "b", "--f0", "rmvpe")
    assert code == 0, err
    assert 'f0_model = "../models/f0/rmvpe.pt"' in (home / "profiles" / "b.toml").read_text()
    code, out, err = rtvc(home, capsys, "import", voice, "--name", "c", "--f0", "fcpe")
    assert code == 0 and 'f0 = "fcpe"' in (home / "profiles" / "c.toml").read_text()


def test_a_damaged_file_in_a_zip_is_named_as_the_member_the_user_has(home, downloads, capsys, tmp_path):
    data = (downloads / "Alice (RVC v2) 300e.pth").read_bytes()
    with zipfile.ZipFile(tmp_path / "cut.zip", "w") as z:
        z.writestr("Alice/alice.pth", data[: len(data) // 2])
    before = state(home)
    code, _out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(tmp_path / "cut.zip"))
    assert code == 2 and f"{tmp_path / 'cut.zip'}:Alice/alice.pth: truncated or damaged checkpoint" in err, err
    assert "rtvc-import-" not in err  # (not the temporary copy, gone by the time the user reads the line)
    assert state(home) == before


def _training_checkpoint(path: Path, voice: Path) -> Path:
    """What RVC's training writes to logs/NAME/ (G_2333.pth, D_2333.pth): the full model and the optimizer."""
    import torch

    weights = torch.load(voice, weights_only=True)["weight"]
    torch.save({"model": {k: v.float() for k, v in weights.items()}, "iteration": 2333, "optimizer": {}}, path)
    return path


def test_a_zip_with_rvc_training_files_imports_the_exported_voice(home, downloads, capsys, tmp_path):
    import faiss

    voice = downloads / "Alice (RVC v2) 300e.pth"
    trained = faiss.index_factory(768, "IVF4,Flat")  # RVC's trained_*.index: trained, no features added
    trained.train(np.random.default_rng(1).standard_normal((200, 768)).astype(np.float32))
    faiss.write_index(trained, str(tmp_path / "trained_IVF4_Flat_nprobe_1_alice_v2.index"))
    with zipfile.ZipFile(tmp_path / "alice-logs.zip", "w") as z:
        z.write(voice, "alice/alice.pth")
        z.write(
            downloads / "added_IVF16_Flat_nprobe_1_alice_v2.index", "alice/added_IVF16_Flat_nprobe_1_alice_v2.index"
        )
        z.write(
            tmp_path / "trained_IVF4_Flat_nprobe_1_alice_v2.index", "alice/trained_IVF4_Flat_nprobe_1_alice_v2.index"
        )
        z.write(_training_checkpoint(tmp_path / "G_2333.pth", voice), "alice/G_2333.pth")
        z.write(_training_checkpoint(tmp_path / "D_2333.pth", voice), "alice/D_2333.pth")
    code, out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(tmp_path / "alice-logs.zip"))
    assert code == 0, err
    for skipped in ("G_2333.pth", "D_2333.pth", "trained_IVF4_Flat_nprobe_1_alice_v2.index"):
        assert f"skipped {tmp_path / 'alice-logs.zip'}:alice/{skipped}: a file RVC's training leaves" in out, out
    assert sorted(p.name for p in (home / "models" / "alice").iterdir()) == [
        "added_IVF16_Flat_nprobe_1_alice_v2.index",
        "alice.pth",
    ]
    assert (
        'index = "../models/alice/added_IVF16_Flat_nprobe_1_alice_v2.index"'
        in (home / "profiles" / "alice.toml").read_text()
    )

    # an archive of the training folder alone has no voice to import: said, and nothing changes
    with zipfile.ZipFile(tmp_path / "logs-only.zip", "w") as z:
        z.write(tmp_path / "G_2333.pth", "logs/bob/G_2333.pth")
        z.write(
            downloads / "added_IVF16_Flat_nprobe_1_alice_v2.index", "logs/bob/added_IVF16_Flat_nprobe_1_bob_v2.index"
        )
    before = state(home)
    code, _out, err = rtvc(home, capsys, "import", str(tmp_path / "logs-only.zip"))
    assert code == 2 and f"{tmp_path / 'logs-only.zip'}:logs/bob/G_2333.pth: a file RVC's training leaves" in err, err
    assert "holds no exported voice" in err and "ckpt processing" in err
    assert state(home) == before


def test_a_label_that_cannot_be_written_is_refused_before_anything_is_copied(home, downloads, capsys):
    before = state(home)
    voice = str(downloads / "Alice (RVC v2) 300e.pth")
    code, _out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), voice, "--label", "two\nlines")
    assert code == 2 and "--label = 'two\\nlines' holds a control character" in err, err
    assert state(home) == before


def test_a_profile_that_cannot_be_written_takes_back_the_import(home, downloads, capsys, monkeypatch):
    from rtvc import profile_writer
    from rtvc.errors import ConfigError

    def cannot(*a, **k):
        raise ConfigError("cannot write profile 'al' in profiles: No space left on device", "free some space")

    assert rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))[0] == 0
    monkeypatch.setattr(profile_writer, "write_profile", cannot)
    before = state(home)
    code, _out, err = rtvc(home, capsys, "import", str(downloads / "alice.zip"), "--name", "al")
    assert code == 2 and "No space left on device" in err
    assert state(home) == before  # no voice, no index, the registry as it was


def test_a_forced_import_that_fails_part_way_keeps_the_files_it_was_replacing(
    home, downloads, capsys, monkeypatch, tmp_path
):
    voice, index = "Alice (RVC v2) 300e.pth", "added_IVF16_Flat_nprobe_1_alice_v2.index"
    args = (str(downloads / "hubert_base.pt"), str(downloads / voice), str(downloads / index), "--name", "al")
    assert rtvc(home, capsys, "import", *args)[0] == 0
    # a new version of the voice, in files of the same names
    write_rvc_checkpoint(tmp_path / voice, version="v2", sr="48k", f0=1, size="tiny", seed=5)
    write_index(tmp_path / index, np.random.default_rng(5).standard_normal((200, 768)).astype(np.float32))
    real, calls = shutil.copyfile, []

    def full_disk(src, dst, *a, **k):
        calls.append(dst)
        if len(calls) == 2:  # the voice is copied; its index is not
            raise OSError(28, "No space left on device")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    before = state(home)
    code, _out, err = rtvc(
        home, capsys, "import", str(tmp_path / voice), str(tmp_path / index), "--name", "al", "--force"
    )
    assert code == 2 and "No space left on device" in err and len(calls) == 2
    assert state(home) == before  # the old voice is back under its name: profile al still plays


def test_a_v2_voice_with_only_a_v1_content_model_imported_is_told_so(home, downloads, capsys, tmp_path):
    from rtvc.rvc.hubert_factory import write_fairseq_hubert

    v1_only = write_fairseq_hubert(tmp_path / "hubert_v1.pt", seed=0, layers=9, dim=64, heads=4, ffn=128)
    assert rtvc(home, capsys, "import", str(v1_only))[0] == 0
    before = state(home)
    code, _out, err = rtvc(home, capsys, "import", str(downloads / "Alice (RVC v2) 300e.pth"))
    assert code == 2 and "and none is imported that an RVC v2 voice can use" in err, err
    assert state(home) == before


def test_a_content_folder_given_as_dot_is_copied_under_its_own_name(home, downloads, capsys, tmp_path, monkeypatch):
    from rtvc.rvc.fairseq_hubert import convert_fairseq_hubert

    folder = convert_fairseq_hubert(downloads / "hubert_base.pt", tmp_path / "contentvec-base")
    monkeypatch.chdir(folder)  # the user is in the downloaded folder
    code, _out, err = rtvc(home, capsys, "import", ".", str(downloads / "Alice (RVC v2) 300e.pth"), "--name", "al")
    assert code == 0, err
    assert sorted(p.name for p in (home / "models" / "content" / "contentvec-base").iterdir()) == sorted(
        p.name for p in folder.iterdir()
    )
    assert 'content = "../models/content/contentvec-base"' in (home / "profiles" / "al.toml").read_text()


def test_a_voice_saved_with_a_zip_name_is_imported_as_the_checkpoint_it_is(home, downloads, capsys, tmp_path):
    shutil.copy(downloads / "Alice (RVC v2) 300e.pth", tmp_path / "alice.zip")  # (torch.save writes a zip)
    code, out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(tmp_path / "alice.zip"))
    assert code == 0, err
    assert "RVC v2 48k voice" in out and (home / "profiles" / "alice.toml").exists()


def test_the_run_command_it_prints_names_a_config_elsewhere(home, downloads, capsys, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    code, out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(downloads / "alice.zip"))
    assert code == 0, err
    assert f"run it: rtvc run --profile alice-rvc-v2-300e --config {home / 'config.toml'}\n" in out, out
    monkeypatch.chdir(home)  # beside config.toml, where rtvc finds it by itself
    code, out, err = rtvc(home, capsys, "import", str(downloads / "Alice (RVC v2) 300e.pth"), "--name", "al")
    assert code == 0 and "run it: rtvc run --profile al\n" in out, (out, err)


@pytest.fixture
def web(downloads):
    """An HTTP server on this machine serving the downloads folder (a Hugging Face stand-in: no network),
    plus a web page and a file whose transfer stops early. Yields its base address."""
    import http.server
    import threading

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(downloads), **k)

        def log_message(self, *a):  # (quiet test output)
            pass

        def do_GET(self):
            if self.path == "/blob/main/voice.pth":
                body = b"<!doctype html><title>voice.pth</title>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/resolve/main/cut.pth":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"PK\x03\x04" + bytes(1000))
                self.close_connection = True
            elif self.path == "/resolve/main/chunked.pth":  # a chunked reply cut off inside a chunk
                self.protocol_version = "HTTP/1.1"
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"186a0\r\n" + b"PK\x03\x04" + bytes(1000))
                self.close_connection = True
            elif self.path == "/resolve/main/model?download=true":  # a name given by Content-Disposition
                data = (downloads / "hubert_base.pt").read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Disposition", 'attachment; filename="hubert_base.pt"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:
                super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_addresses_are_downloaded_and_imported_as_files_are(home, downloads, web, capsys):
    voice_zip = f"{web}/alice.zip"
    code, out, err = rtvc(home, capsys, "import", f"{web}/resolve/main/model?download=true", voice_zip, "--name", "al")
    assert code == 0, err
    assert f"downloaded {web}/resolve/main/model?download=true: hubert_base.pt" in out
    assert sha256(home / "models" / "content" / "hubert_base.pt") == sha256(downloads / "hubert_base.pt")
    assert sha256(home / "models" / "al" / "Alice (RVC v2) 300e.pth") == sha256(downloads / "Alice (RVC v2) 300e.pth")
    sources = {e["kind"]: e["source"] for e in json.loads((home / "models" / "registry.json").read_text())["models"]}
    assert sources["voice"] == f"{voice_zip}:Alice/Alice (RVC v2) 300e.pth"
    assert sources["content"] == f"{web}/resolve/main/model?download=true"
    assert "run it: rtvc run" in out


@pytest.mark.parametrize(
    "path, said",
    [
        ("/nothing.pth", "download failed (HTTP 404 File not found)"),
        ("/blob/main/voice.pth", "is a web page, not a model file (use the file's download link"),
        ("/resolve/main/cut.pth", "the download stopped at 1.0 kB of 0.1 MB"),
        ("/resolve/main/chunked.pth", "the server cut the download off"),  # (was an IncompleteRead traceback)
    ],
)
def test_a_failed_download_is_named_and_changes_nothing(home, downloads, web, capsys, path, said):
    before = state(home)
    code, _out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), web + path)
    assert code == 2 and f"{web}{path}: " in err and said in err, err
    assert state(home) == before


def test_an_address_nothing_answers_is_named(home, downloads, capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _out, err = rtvc(home, capsys, "import", f"http://127.0.0.1:{port}/hubert_base.pt")
    assert code == 2 and f"http://127.0.0.1:{port}/hubert_base.pt: cannot download (" in err
    assert "download the file yourself and import it" in err


def test_zips_damaged_encrypted_or_packed_in_ways_rtvc_cannot_read_are_named(home, downloads, capsys, tmp_path):
    """A zip with a hole of bad bytes (zlib.error), an encrypted member and a Deflate64 one (Windows' own zip)
    gave tracebacks: a damaged download's error, or what to do instead, and nothing changes."""
    voice = (downloads / "Alice (RVC v2) 300e.pth").read_bytes()
    with zipfile.ZipFile(tmp_path / "deflated.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("alice.pth", voice)
    raw = bytearray((tmp_path / "deflated.zip").read_bytes())
    raw[45:200] = b"\xff" * 155  # (inside the member's compressed data: the CRC is never reached)
    (tmp_path / "holed.zip").write_bytes(bytes(raw))
    for flag, method, name in ((0x1, None, "encrypted.zip"), (0, 9, "deflate64.zip")):
        raw = bytearray((tmp_path / "deflated.zip").read_bytes())
        for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # the local and the central header say the same
            at = raw.index(sig)
            flags_at = at + (6 if sig == b"PK\x03\x04" else 8)
            raw[flags_at] |= flag
            if method is not None:
                raw[flags_at + 2 : flags_at + 4] = method.to_bytes(2, "little")
        (tmp_path / name).write_bytes(bytes(raw))
    before = state(home)
    for name, said, fix in (
        ("holed.zip", "damaged .zip archive (", "download it again"),
        ("encrypted.zip", "a .zip archive rtvc cannot open (", "unpack it with your own archive tool"),
        ("deflate64.zip", "a .zip archive rtvc cannot open (", "unpack it with your own archive tool"),
    ):
        code, _out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(tmp_path / name))
        assert code == 2 and f"{name}: {said}" in err and fix in err and "Traceback" not in err, (name, err)
        assert state(home) == before


def test_a_zip_written_with_windows_backslashes_imports_as_its_folders_say(home, downloads, capsys, tmp_path):
    """Older Windows tools write 'Alice\\Alice.pth': the voice became 'alice-alice', its file 'Alice\\Alice.pth',
    and RVC's training files in such a zip were not recognised (the import was refused)."""
    with zipfile.ZipFile(tmp_path / "win.zip", "w") as z:
        z.write(downloads / "Alice (RVC v2) 300e.pth", "Alice\\Alice.pth")
        z.write(downloads / "added_IVF16_Flat_nprobe_1_alice_v2.index", "Alice\\added_IVF16_alice_v2.index")
        _training_checkpoint(tmp_path / "G_2333.pth", downloads / "Alice (RVC v2) 300e.pth")
        z.write(tmp_path / "G_2333.pth", "Alice\\G_2333.pth")
    code, out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(tmp_path / "win.zip"))
    assert code == 0, err
    assert sorted(p.name for p in (home / "models" / "alice").iterdir()) == [
        "Alice.pth",
        "added_IVF16_alice_v2.index",
    ]
    assert "run it: rtvc run --profile alice" in out


def test_reimporting_a_damaged_copy_repairs_it(home, downloads, capsys):
    """`rtvc models` says a damaged copy CHANGED and to import it again; the import said "already imported" and
    kept the damaged copy, even with --force."""
    assert rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(downloads / "alice.zip"))[0] == 0
    content = home / "models" / "content" / "hubert_base.pt"
    voice = home / "models" / "alice-rvc-v2-300e" / "Alice (RVC v2) 300e.pth"
    for copy, given in ((content, "hubert_base.pt"), (voice, "alice.zip")):
        whole = copy.read_bytes()
        copy.write_bytes(whole[: len(whole) // 2])
        assert "CHANGED" in rtvc(home, capsys, "models")[1]
        code, out, err = rtvc(home, capsys, "import", str(downloads / given), "--force")
        assert code == 0, err
        assert f"{copy} was damaged or changed since it was imported: copied again" in out, out
        assert copy.read_bytes() == whole
        code, out, _err = rtvc(home, capsys, "models")
        assert code == 0 and "CHANGED" not in out, out
    code, out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))
    assert code == 0 and "already imported" in out, out


def test_a_voice_named_as_a_shared_folder_is_refused(home, downloads, capsys):
    """--name content put the voice into models/content/, beside (and with --force over) every voice's HuBERT."""
    before = state(home)
    for name in ("content", "f0"):
        code, _out, err = rtvc(
            home, capsys, "import", str(downloads / "hubert_base.pt"), str(downloads / "alice.zip"), "--name", name
        )
        assert code == 2 and f"the voice cannot be named '{name}'" in err and "choose another name" in err, err
        assert state(home) == before


def test_a_failed_import_whose_undo_fails_too_shows_the_first_error(home, downloads, capsys, monkeypatch):
    """The take-back wrote the registry again even where nothing had changed, and its own failure (a read-only
    models/) came out as a traceback that hid why the import failed."""
    assert rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))[0] == 0
    registry = (home / "models" / "registry.json").read_bytes()

    def refused(*_a, **_k):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(shutil, "copyfile", refused)
    from rtvc.backends import manifest

    monkeypatch.setattr(manifest, "write_atomic", refused)  # (no registry could be written back either)
    code, _out, err = rtvc(home, capsys, "import", str(downloads / "alice.zip"))
    assert code == 2 and "cannot copy" in err and "Operation not permitted" in err, err
    assert "Traceback" not in err and "could not all be taken back" not in err  # (the registry never changed)
    assert (home / "models" / "registry.json").read_bytes() == registry


def test_an_address_that_does_not_parse_is_named(home, capsys):
    code, _out, err = rtvc(home, capsys, "import", "http://[::1")
    assert code == 2 and "http://[::1: not a valid address" in err, err
    # (these two were http.client.InvalidURL tracebacks)
    code, _out, err = rtvc(home, capsys, "import", "https://huggingface.co/x/resolve/main/voice 1.pth")
    assert code == 2 and "voice 1.pth: not a valid address" in err and "%20" in err, err
    code, _out, err = rtvc(home, capsys, "import", "http://127.0.0.1:abc/x.pth")
    assert code == 2 and "http://127.0.0.1:abc/x.pth: not a valid address" in err, err


def test_a_registry_entry_of_the_wrong_type_is_named(home, downloads, capsys):
    assert rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))[0] == 0
    path = home / "models" / "registry.json"
    doc = json.loads(path.read_text())
    doc["models"][0]["bytes"] = "zz"
    path.write_text(json.dumps(doc))
    code, _out, err = rtvc(home, capsys, "models")
    assert code == 2 and "not a valid model registry" in err and "wrong type" in err, err


def test_force_over_a_voice_replaces_its_files_unless_another_profile_uses_them(home, downloads, capsys, tmp_path):
    """--force kept the replaced voice's .pth and .index under models/NAME/ and in the registry, used by no profile."""
    new = write_rvc_checkpoint(tmp_path / "Newer take.pth", version="v2", sr="48k", f0=1, size="tiny", seed=5)
    alice = [str(downloads / "Alice (RVC v2) 300e.pth"), str(downloads / "added_IVF16_Flat_nprobe_1_alice_v2.index")]
    assert rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), *alice, "--name", "al")[0] == 0
    code, out, err = rtvc(home, capsys, "import", str(new), "--name", "al", "--force")
    assert code == 0, err
    assert "replaced: " in out and "Alice (RVC v2) 300e.pth" in out, out
    assert sorted(p.name for p in (home / "models" / "al").iterdir()) == ["Newer take.pth"]
    files = sorted(e["file"] for e in json.loads((home / "models" / "registry.json").read_text())["models"])
    assert files == ["al/Newer take.pth", "content/hubert_base.pt"]
    assert "used by no profile" not in rtvc(home, capsys, "models")[1]

    # a file another profile names stays, registered
    assert rtvc(home, capsys, "import", *alice, "--name", "al2")[0] == 0
    mine = (home / "profiles" / "al2.toml").read_text().replace('label = "', 'label = "Mine: ', 1)
    (home / "profiles" / "mine.toml").write_text(mine)
    code, out, err = rtvc(home, capsys, "import", str(new), "--name", "al2", "--force")
    assert code == 0 and "replaced: " not in out, (out, err)
    assert (home / "models" / "al2" / "Alice (RVC v2) 300e.pth").exists()
    assert "used by mine" in rtvc(home, capsys, "models")[1]


def test_a_voice_name_keeps_the_letters_under_accents(home, downloads, capsys, tmp_path):
    shutil.copy(downloads / "Alice (RVC v2) 300e.pth", tmp_path / "Élodie.pth")
    code, out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(tmp_path / "Élodie.pth"))
    assert code == 0 and "run it: rtvc run --profile elodie" in out, (out, err)


def test_letters_that_are_no_letter_and_accent_are_spelt_out_in_profile_names():
    """NFKD leaves ø, ł, ß, æ, đ whole, and the ASCII step dropped them: Søren -> 'sren' (a review)."""
    from rtvc.models import profile_name

    got = [profile_name(n) for n in ("Søren", "Łukasz", "Straße", "Æsir", "Đorđe", "Ünïcødé Voice", "Élodie")]
    assert got == ["soren", "lukasz", "strasse", "aesir", "dorde", "unicode-voice", "elodie"]


def test_a_voice_imported_under_two_names_imports_again_under_its_second(home, downloads, capsys):
    """The same .pth imported as 'alice-rvc-v2-300e' and as 'b', b's profile removed: importing it as 'b' again said
    models/b/... already exists (the registry's first entry of that file, under the other name, was taken)."""
    alice = [str(downloads / "hubert_base.pt"), str(downloads / "Alice (RVC v2) 300e.pth")]
    assert rtvc(home, capsys, "import", *alice)[0] == 0
    assert rtvc(home, capsys, "import", alice[1], "--name", "b")[0] == 0
    (home / "profiles" / "b.toml").unlink()
    code, out, err = rtvc(home, capsys, "import", alice[1], "--name", "b")
    assert code == 0 and "already imported" in out and (home / "profiles" / "b.toml").exists(), (out, err)


def test_files_already_under_models_but_not_registered_are_taken_where_they_are(home, downloads, capsys):
    """The registry moved away, as its own error advises ("importing them again lists them"): the HuBERT was copied a
    second time beside itself (-<sha>.pt, the original left unlisted) and the voice refused without --force."""
    alice = [str(downloads / "hubert_base.pt"), str(downloads / "Alice (RVC v2) 300e.pth")]
    assert rtvc(home, capsys, "import", *alice)[0] == 0
    before = sorted(p.relative_to(home) for p in (home / "models").rglob("*") if p.is_file())
    (home / "models" / "registry.json").rename(home / "registry.moved")
    (home / "profiles" / "alice-rvc-v2-300e.toml").unlink()  # (its own refusal is --force's)
    code, out, err = rtvc(home, capsys, "import", *alice)
    assert code == 0 and out.count("already there: ") == 2, (out, err)
    after = sorted(p.relative_to(home) for p in (home / "models").rglob("*") if p.is_file())
    assert after == before, after  # (nothing copied again: the registry is written anew)
    listed = rtvc(home, capsys, "models")[1]
    assert "content/hubert_base.pt" in listed and "used by alice-rvc-v2-300e" in listed, listed


def test_an_import_stopped_by_sigterm_takes_back_what_it_copied_and_a_killed_ones_copy_goes(
    home, downloads, capsys, monkeypatch
):
    """SIGTERM or SIGHUP (a closed terminal) killed an import outright: half a model file stayed under models/,
    hidden and unlisted, and its temporary folder in /tmp (a review). They now unwind it as Ctrl-C does; and a copy
    a SIGKILLed import left is removed by the next import."""
    import signal

    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    before = state(home)
    real = shutil.copyfile

    def stopped(src, dest, **kw):
        Path(dest).write_bytes(Path(src).read_bytes()[:1000])  # (part-way, as the signal comes)
        os.kill(os.getpid(), signal.SIGTERM)
        return real(src, dest, **kw)

    monkeypatch.setattr(shutil, "copyfile", stopped)
    try:
        code, _out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)
    assert code == 130 and "import interrupted" in err, err
    assert state(home) == before  # (nothing under models/: not even the hidden copy)
    monkeypatch.setattr(shutil, "copyfile", real)

    left = home / "models" / "content" / ".rtvc-import-999999999-1.importing"  # (a process that is no more)
    left.parent.mkdir(parents=True)
    left.write_bytes(b"half a model")
    code, out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))
    assert code == 0 and f"removed {left}: a copy an import killed part-way left" in out, (out, err)
    assert not left.exists()


def test_a_voice_folder_imports_as_its_zip_would(home, downloads, capsys, tmp_path):
    """`rtvc import ~/Downloads/Alice/` (the zip unpacked) said the folder had no config.json."""
    with zipfile.ZipFile(downloads / "alice.zip") as z:
        z.extractall(tmp_path / "unzipped")
    code, _out, err = rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), str(tmp_path / "unzipped"))
    assert code == 0, err
    assert sorted(p.name for p in (home / "models" / "alice-rvc-v2-300e").iterdir()) == [
        "Alice (RVC v2) 300e.pth",
        "added_IVF16_Flat_nprobe_1_alice_v2.index",
    ]  # (not the macOS leftover)
    # a folder whose voice file says nothing (model.pth) names the profile, as a zip does (it was 'model')
    (tmp_path / "Bob").mkdir()
    write_rvc_checkpoint(tmp_path / "Bob" / "model.pth", version="v2", sr="48k", f0=1, size="tiny", seed=7)
    code, out, err = rtvc(home, capsys, "import", str(tmp_path / "Bob"))
    assert code == 0 and (home / "profiles" / "bob.toml").is_file(), out + err
    (tmp_path / "empty").mkdir()
    before = state(home)
    code, _out, err = rtvc(home, capsys, "import", str(tmp_path / "empty"))
    assert code == 2 and "the folder holds no .pth, .pt or .index file" in err, err
    assert state(home) == before


def test_a_copy_a_few_bytes_off_is_shown_in_bytes(home, downloads, capsys):
    assert rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))[0] == 0
    imported = home / "models" / "content" / "hubert_base.pt"
    whole = imported.read_bytes()
    imported.write_bytes(whole[:-3])
    out = rtvc(home, capsys, "models")[1]
    assert f"CHANGED: {len(whole) - 3:,} bytes now, {len(whole):,} bytes when imported" in out, out


def test_a_file_damaged_in_place_is_shown_changed(home, downloads, capsys):
    """Bytes overwritten inside an imported file, its size the same (a disk error, a tool that wrote into it): `rtvc
    models` listed it unmarked (it compared sizes only); a voice then did not load. A file written after its import
    is hashed again."""
    assert rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))[0] == 0
    imported = home / "models" / "content" / "hubert_base.pt"
    assert "CHANGED" not in rtvc(home, capsys, "models")[1]
    os.utime(imported, (time.time() + 10, time.time() + 10))  # (touched, not changed: no mark)
    assert "CHANGED" not in rtvc(home, capsys, "models")[1]
    with imported.open("r+b") as f:
        f.seek(5000)
        f.write(bytes(64))
    os.utime(imported, (time.time() + 10, time.time() + 10))
    out = rtvc(home, capsys, "models")[1]
    assert "CHANGED: its content (sha256 " in out and "since it was imported; import it again" in out, out


def test_imports_into_one_folder_take_turns(home, downloads, capsys, tmp_path):
    """Two imports at once each read the registry and wrote it back: the second dropped the first's entries."""
    import fcntl
    import os
    import subprocess
    import sys
    import threading

    args = ["import", "--config", str(home / "config.toml"), str(downloads / "hubert_base.pt")]
    fd = os.open(home, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # (another import holding the folder)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtvc", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: list[str] = []
        waiting = threading.Event()

        def read() -> None:
            for line in proc.stdout:
                lines.append(line)
                if "waiting for another rtvc import" in line:
                    waiting.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert waiting.wait(60), "".join(lines)
        assert proc.poll() is None and not (home / "models").exists()  # it waits, having copied nothing
    finally:
        os.close(fd)
    assert proc.wait(60) == 0, "".join(lines)
    reader.join(5)
    assert (home / "models" / "content" / "hubert_base.pt").exists(), "".join(lines)


def test_a_file_name_a_label_cannot_hold_becomes_a_label_it_can(home, downloads, capsys, tmp_path):
    """A voice file named with a text-direction override was refused as "--label = ... holds a text-direction
    override", though no --label was given; /dev/null was "no such file"."""
    shutil.copy(downloads / "Alice (RVC v2) 300e.pth", tmp_path / "Eve\u202eevil\u2028.pth")
    code, out, err = rtvc(
        home, capsys, "import", str(downloads / "hubert_base.pt"), str(tmp_path / "Eve\u202eevil\u2028.pth")
    )
    assert code == 0, err
    assert 'label = "Eveevil"' in (home / "profiles" / "eveevil.toml").read_text(), out
    code, _out, err = rtvc(home, capsys, "import", "/dev/null")
    assert code == 2 and "/dev/null: not a file (a device, a pipe or a socket)" in err, err


def test_community_zip_layouts_import_under_a_name_that_says_which_voice(home, downloads, capsys, tmp_path):
    """From a review of community zips: a macOS ._ file beside the voice stopped the import ("not a model file"); a
    voice named model.pth, or with no letter left in ASCII, was profile 'model' or 'voice' whatever the zip said; a
    file name of 244 characters failed to copy (its temporary name went past 255 bytes) with a wrong fix."""
    alice = downloads / "Alice (RVC v2) 300e.pth"
    long = "A" * 240 + ".pth"
    cases = [
        ("Miku (RVC v2).zip", {"Miku/model.pth": alice, "Miku/._model.pth": b"\0\x05\x16\x07junk"}, "miku-rvc-v2"),
        ("Hatsune.zip", {"初音ミク.pth": alice}, "hatsune"),
        ("long.zip", {f"Long/{long}": alice}, long.lower().removesuffix(".pth")[:64]),
    ]
    assert rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"))[0] == 0
    for zip_name, members, want in cases:
        with zipfile.ZipFile(tmp_path / zip_name, "w") as z:
            for name, data in members.items():
                z.writestr(name, data if isinstance(data, bytes) else data.read_bytes())
        code, out, err = rtvc(home, capsys, "import", str(tmp_path / zip_name))
        assert code == 0, err
        assert f"wrote {home / 'profiles' / want}.toml" in out or f"profiles/{want}.toml" in out, out
        assert (home / "profiles" / f"{want}.toml").is_file()
        # (one voice file in every zip: with its profile there, importing it again goes to that profile)
        (home / "profiles" / f"{want}.toml").unlink()


def test_a_zip_that_holds_a_zip_says_so(home, downloads, capsys, tmp_path):
    with zipfile.ZipFile(tmp_path / "inner.zip", "w") as z:
        z.write(downloads / "Alice (RVC v2) 300e.pth", "Alice.pth")
    with zipfile.ZipFile(tmp_path / "outer.zip", "w") as z:
        z.write(tmp_path / "inner.zip", "Alice/inner.zip")
        z.writestr("readme.txt", "hi")
    before = state(home)
    code, _, err = rtvc(home, capsys, "import", str(tmp_path / "outer.zip"))
    assert code == 2
    assert "the archive holds Alice/inner.zip, not the model files themselves (unpack" in err
    assert "and import inner.zip)" in err
    assert state(home) == before


ALICE = "alice-rvc-v2-300e"  # the profile the downloads' voice imports as
ALICE_FILES = ("Alice (RVC v2) 300e.pth", "added_IVF16_Flat_nprobe_1_alice_v2.index")


def _alice_with_my_settings(home, downloads, capsys) -> str:
    """Alice imported with her index, and her profile edited as a user does (a setting, a comment); its text."""
    given = [str(downloads / "hubert_base.pt"), *(str(downloads / f) for f in ALICE_FILES)]
    assert rtvc(home, capsys, "import", *given)[0] == 0
    profile = home / "profiles" / f"{ALICE}.toml"
    text = profile.read_text()
    assert "pitch = 0.0" in text
    profile.write_text(text.replace("pitch = 0.0", "pitch = 7.0  # my setting"))
    return profile.read_text()


def test_a_voice_whose_files_went_missing_imports_again_into_the_profile_as_it_is(home, downloads, capsys):
    """models/NAME/ moved away, `rtvc models` said MISSING and to import it again: that import was refused (the
    profile exists), and with --force it wrote the profile anew, the user's pitch and comments gone."""
    mine = _alice_with_my_settings(home, downloads, capsys)
    shutil.move(home / "models" / ALICE, home / "moved-away")
    out = rtvc(home, capsys, "models")[1]
    assert out.count("MISSING: the file is gone; import it again") == 2, out

    code, out, err = rtvc(home, capsys, "import", *(str(downloads / f) for f in ALICE_FILES))
    assert code == 0, err
    for f in ALICE_FILES:
        copy = home / "models" / ALICE / f
        assert f"{copy} was missing: copied back from {downloads / f}" in out, out
        assert sha256(copy) == sha256(downloads / f)
    kept = f"kept {home / 'profiles' / ALICE}.toml as it is (its settings and comments)"
    assert kept in out and f"run it: rtvc run --profile {ALICE}" in out, out
    assert (home / "profiles" / f"{ALICE}.toml").read_text() == mine  # the setting and its comment stay

    from rtvc.profiles import load_profile

    profile = load_profile(ALICE, home / "profiles")
    assert profile.params.pitch == 7.0
    assert (home / "profiles" / profile.model.index).resolve() == (home / "models" / ALICE / ALICE_FILES[1]).resolve()
    out = rtvc(home, capsys, "models")[1]
    assert "MISSING" not in out and out.count(f"used by {ALICE}") == 3, out
    files = sorted(e["file"] for e in json.loads((home / "models" / "registry.json").read_text())["models"])
    assert files == sorted([f"{ALICE}/{ALICE_FILES[0]}", f"{ALICE}/{ALICE_FILES[1]}", "content/hubert_base.pt"])

    # all there: the same import again says so and keeps the profile (it was refused: "already exists")
    code, out, err = rtvc(home, capsys, "import", *(str(downloads / f) for f in ALICE_FILES))
    assert code == 0 and out.count("already imported") == 2 and kept in out, (out, err)
    assert (home / "profiles" / f"{ALICE}.toml").read_text() == mine

    # --force still writes the profile anew, as the user asked
    code, out, err = rtvc(home, capsys, "import", *(str(downloads / f) for f in ALICE_FILES), "--force")
    assert code == 0, err
    assert "pitch = 0.0" in (home / "profiles" / f"{ALICE}.toml").read_text()


def test_some_of_a_voices_files_missing_or_damaged_are_put_back_where_its_profile_names_them(
    home, downloads, capsys, tmp_path
):
    mine = _alice_with_my_settings(home, downloads, capsys)
    voice, index = (home / "models" / ALICE / f for f in ALICE_FILES)
    # the index gone, the voice there
    index.unlink()
    code, out, err = rtvc(home, capsys, "import", *(str(downloads / f) for f in ALICE_FILES))
    assert code == 0 and f"already imported: {downloads / ALICE_FILES[0]}" in out, (out, err)
    assert f"{index} was missing: copied back" in out and sha256(index) == sha256(downloads / ALICE_FILES[1])

    # the voice gone, given under another file name: back under the name the profile reads
    voice.unlink()
    (tmp_path / "dl").mkdir()
    renamed = shutil.copy(downloads / ALICE_FILES[0], tmp_path / "dl" / "alice.pth")
    code, out, err = rtvc(home, capsys, "import", str(renamed), str(downloads / ALICE_FILES[1]), "--name", ALICE)
    assert code == 0 and f"{voice} was missing: copied back from {renamed}" in out, (out, err)
    assert sha256(voice) == sha256(renamed) and sorted(p.name for p in voice.parent.iterdir()) == sorted(ALICE_FILES)

    # the voice cut short (`rtvc models`: CHANGED, import it again): copied again, without --force
    whole = voice.read_bytes()
    voice.write_bytes(whole[: len(whole) // 2])
    assert "CHANGED" in rtvc(home, capsys, "models")[1]
    code, out, err = rtvc(home, capsys, "import", *(str(downloads / f) for f in ALICE_FILES))
    assert code == 0 and f"{voice} was damaged or changed since it was imported: copied again" in out, (out, err)
    assert voice.read_bytes() == whole
    assert (home / "profiles" / f"{ALICE}.toml").read_text() == mine
    assert "CHANGED" not in rtvc(home, capsys, "models")[1]

    # the index gone and only the voice given: refused, naming the file the profile still lacks
    index.unlink()
    before = state(home)
    code, out, err = rtvc(home, capsys, "import", str(downloads / ALICE_FILES[0]))
    assert code == 2 and f"profile '{ALICE}' names {index} too, which is missing" in err, (out, err)
    assert f"give it too (imported from {downloads / ALICE_FILES[1]}), or write the profile anew with --force" in err
    assert state(home) == before


def test_another_index_under_a_voices_name_is_refused_as_another_voice_is(home, downloads, capsys, tmp_path):
    """Only the files the profile names are put back into it; another .index, or another voice, makes another
    profile (--name) or replaces it (--force), as before."""
    _alice_with_my_settings(home, downloads, capsys)
    shutil.move(home / "models" / ALICE, home / "moved-away")
    (tmp_path / "dl").mkdir()
    other = tmp_path / "dl" / ALICE_FILES[1]  # (another index under the same file name)
    write_index(other, np.random.default_rng(7).standard_normal((200, 768)).astype(np.float32))
    newer = write_rvc_checkpoint(tmp_path / "dl" / ALICE_FILES[0], version="v2", sr="48k", f0=1, size="tiny", seed=5)
    before = state(home)
    for given in (
        [str(downloads / ALICE_FILES[0]), str(other)],
        [str(newer), str(downloads / ALICE_FILES[1])],
        [*(str(downloads / f) for f in ALICE_FILES), "--f0", "yin"],  # (asks for another profile)
    ):
        code, out, err = rtvc(home, capsys, "import", *given)
        assert code == 2 and f"profile '{ALICE}' already exists" in err and "--force" in err, (given, out, err)
        assert state(home) == before


def test_a_shared_model_gone_missing_goes_back_where_it_was_under_any_file_name(home, downloads, capsys, tmp_path):
    """hubert_base.pt gone and imported again as the browser saved it ('hubert_base (1).pt'): it was copied beside
    the old name, and the old entry, and the profiles naming it, stayed MISSING."""
    alice = [str(downloads / "hubert_base.pt"), str(downloads / ALICE_FILES[0])]
    assert rtvc(home, capsys, "import", *alice)[0] == 0
    content = home / "models" / "content" / "hubert_base.pt"
    content.unlink()
    (tmp_path / "dl").mkdir()
    saved = shutil.copy(downloads / "hubert_base.pt", tmp_path / "dl" / "hubert_base (1).pt")
    code, out, err = rtvc(home, capsys, "import", str(saved))
    assert code == 0 and f"{content} was missing: copied back from {saved}" in out, (out, err)
    assert sorted(p.name for p in content.parent.iterdir()) == ["hubert_base.pt"]
    out = rtvc(home, capsys, "models")[1]
    assert "MISSING" not in out and out.count(f"used by {ALICE}") == 2, out


def test_a_voice_imported_with_a_name_and_again_without_goes_to_its_profile_not_a_second_copy(home, downloads, capsys):
    """`rtvc import alice.pth --name alice`, later `rtvc import alice.pth` (the name forgotten): a second copy under
    models/<derived name>/ and a second profile, alike, in the voice list. The files' own profile is taken, as with
    --name alice; --name asks for a second profile."""
    files = [str(downloads / "hubert_base.pt"), str(downloads / "Alice (RVC v2) 300e.pth")]
    assert rtvc(home, capsys, "import", *files, "--name", "alice")[0] == 0
    mine = (home / "profiles" / "alice.toml").read_text().replace("pitch = 0.0", "pitch = 5.0  # mine")
    (home / "profiles" / "alice.toml").write_text(mine)
    before = state(home)

    code, out, err = rtvc(home, capsys, "import", files[1])
    assert code == 0 and "already imported" in out, (out, err)
    assert f"kept {home / 'profiles' / 'alice.toml'} as it is" in out and "rtvc run --profile alice" in out, out
    assert "--name NAME" in out, out
    assert state(home) == before  # no second copy, no second profile; alice's settings kept

    # its voice file gone: put back into alice's profile, which names it
    voice = home / "models" / "alice" / "Alice (RVC v2) 300e.pth"
    voice.unlink()
    code, out, err = rtvc(home, capsys, "import", files[1])
    assert code == 0 and f"{voice} was missing: copied back" in out, (out, err)
    after = state(home)
    assert after.pop("models/registry.json") and after == {k: v for k, v in before.items() if "registry" not in k}

    # asked for by name: a second profile, as before
    code, out, err = rtvc(home, capsys, "import", files[1], "--name", "alice-two")
    assert code == 0 and (home / "profiles" / "alice-two.toml").exists(), (out, err)


def test_a_voice_imported_again_without_its_name_while_its_index_is_missing_names_the_fix_that_mends_it(
    home, downloads, capsys
):
    """Its profile names an index that is gone, only the voice given: refused, and the fix must mend alice's profile
    (--force alone wrote a second copy and profile under the file's name, alice left broken: a review)."""
    voice, index = (str(downloads / f) for f in ALICE_FILES)
    assert rtvc(home, capsys, "import", str(downloads / "hubert_base.pt"), voice, index, "--name", "alice")[0] == 0
    (home / "models" / "alice" / ALICE_FILES[1]).unlink()
    before = state(home)
    code, out, err = rtvc(home, capsys, "import", voice)
    assert code == 2 and "profile 'alice' names" in err and "which is missing" in err, (out, err)
    assert "or write the profile anew with --name alice --force" in err, err
    assert state(home) == before
    code, out, err = rtvc(home, capsys, "import", voice, "--name", "alice", "--force")  # (the fix it names)
    assert code == 0 and not (home / "profiles" / f"{ALICE}.toml").exists(), (out, err)
    assert sorted(p.stem for p in (home / "profiles").glob("*.toml") if p.stem != "default") == ["alice"]
