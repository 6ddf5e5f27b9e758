"""Model files read for a voice load: the tensors are the model's own, in both torch formats; damage is named."""

from __future__ import annotations

import collections

import torch

from rtvc.rvc.model_files import torch_load


def _checkpoint() -> dict:
    g = torch.Generator().manual_seed(0)
    weight = collections.OrderedDict(a=torch.randn(300, 700, generator=g), b=torch.randn(5, generator=g).half())
    return {"weight": weight, "config": [1, 2.5, "x"], "pair": (torch.arange(4), "y"), "version": "v2"}


def _same(a: dict, b: dict) -> None:
    assert type(b["weight"]) is collections.OrderedDict and list(b["weight"]) == ["a", "b"]
    for k in ("a", "b"):
        assert b["weight"][k].dtype == a["weight"][k].dtype
        assert torch.equal(b["weight"][k], a["weight"][k])
    assert b["config"] == [1, 2.5, "x"] and b["version"] == "v2"
    assert torch.equal(b["pair"][0], torch.arange(4)) and b["pair"][1] == "y"


def test_a_zip_checkpoint_loads_into_memory_of_its_own(tmp_path):
    """A file overwritten in place after the load (a user saving a new version over it) does not change the
    voice that plays: nothing of it stays mapped."""
    ckpt = _checkpoint()
    path = tmp_path / "voice.pth"
    torch.save(ckpt, path)
    loaded = torch_load(path, map_location="cpu", weights_only=True)
    _same(ckpt, loaded)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.write(b"\0" * size)
    _same(ckpt, loaded)


def test_a_legacy_format_checkpoint_loads(tmp_path):
    ckpt = _checkpoint()
    path = tmp_path / "old.pth"
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    _same(ckpt, torch_load(path, map_location="cpu", weights_only=True))


def test_a_file_truncated_during_its_load_is_an_error_not_a_crash(tmp_path, monkeypatch):
    """`cp new.pth voice.pth` during a load truncates the file first. A load that mapped the file (tried, see
    the module's docstring) died of SIGBUS here; read, it is a ModelError naming the file."""
    import pytest

    import rtvc.rvc.model_files as m
    from rtvc.errors import ModelError
    from rtvc.rvc.checkpoint import load_rvc
    from rtvc.rvc.factory import write_rvc_checkpoint

    path = write_rvc_checkpoint(tmp_path / "voice.pth", version="v2", sr="40k", f0=1, size="tiny", seed=0)
    checked = m._check_members

    def then_truncated(p):
        checked(p)
        with p.open("r+b") as f:
            f.truncate(p.stat().st_size // 2)

    monkeypatch.setattr(m, "_check_members", then_truncated)
    with pytest.raises(ModelError, match=r"voice\.pth: truncated or damaged checkpoint"):
        load_rvc(path)


def test_a_loaded_checkpoint_survives_its_file_being_truncated_and_rewritten(tmp_path):
    """The tensors are read into memory: `cp new.pth voice.pth` after a load changes nothing in the voice that
    plays, and kills nothing (a mapping of the file would be a SIGBUS at the next read of a weight)."""
    ckpt = _checkpoint()
    path = tmp_path / "voice.pth"
    torch.save(ckpt, path)
    loaded = torch_load(path, map_location="cpu", weights_only=True)
    with path.open("r+b") as f:
        f.truncate(0)
    _same(ckpt, loaded)
    torch.save({"weight": {"a": torch.zeros(3)}}, path)
    _same(ckpt, loaded)


def test_a_zip_checkpoint_with_a_damaged_part_is_refused_by_name(tmp_path):
    """torch does not check the zip checksums: a download with a hole of zeros loaded (and played)."""
    import zipfile

    import pytest

    from rtvc.errors import ModelError

    path = tmp_path / "voice.pth"
    torch.save(_checkpoint(), path)
    data = bytearray(path.read_bytes())
    info = next(i for i in zipfile.ZipFile(path).infolist() if i.file_size > 100_000)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 1000
    data[start : start + 4000] = bytes(4000)
    path.write_bytes(data)
    with pytest.raises(ModelError, match=r"voice\.pth: damaged: its part '.*' fails its checksum"):
        torch_load(path, map_location="cpu", weights_only=True)
    from rtvc.rvc.checkpoint import load_rvc

    with pytest.raises(ModelError, match=r"voice\.pth: damaged: its part '.*' fails its checksum"):
        load_rvc(path)  # (the voice loader says so too, not "truncated or damaged checkpoint (ModelError)")


def test_a_zip_of_a_voice_named_pth_is_said_to_be_a_zip(tmp_path):
    """A voice's download (a zip of its .pth and .index) saved or renamed as .pth was called "truncated or damaged
    checkpoint": the fix, download again, gave the same file."""
    import zipfile

    import pytest

    from rtvc.errors import ModelError
    from rtvc.rvc.checkpoint import load_rvc

    torch.save(_checkpoint(), tmp_path / "inner.pth")
    path = tmp_path / "voice.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.write(tmp_path / "inner.pth", "Alice/alice.pth")
        z.writestr("Alice/added_alice.index", b"x")
    with pytest.raises(
        ModelError,
        match=r"voice\.pth: a zip archive, not a PyTorch checkpoint \(it holds "
        r"Alice/alice\.pth, Alice/added_alice\.index\).*rename it to \.zip and give it to `rtvc import`",
    ):
        load_rvc(path)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", b"x")
    with pytest.raises(ModelError, match=r"a zip archive, not a PyTorch checkpoint \(1 files, no model among them\)"):
        torch_load(path, map_location="cpu", weights_only=True)
    torch.save(_checkpoint(), path)  # (torch's own zip: loads)
    _same(_checkpoint(), torch_load(path, map_location="cpu", weights_only=True))
