"""Model files read for a voice load: the tensors are the model's own copies, in both torch formats."""

from __future__ import annotations

import collections

import torch

from rtvc.rvc.quiet_io import CHUNK, read_chunked, torch_load


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
    """Read through a mapping of the file, then copied: a file overwritten in place after the load (a user
    saving a new version over it) does not change the voice that plays. Without the copy it did: the mapping
    shows the file's new bytes."""
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


def test_chunked_reads_return_the_file(tmp_path):
    data = torch.randint(0, 256, (3 * CHUNK + 12345,), dtype=torch.uint8).numpy().tobytes()
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert read_chunked(path) == data
    (tmp_path / "empty").write_bytes(b"")
    assert read_chunked(tmp_path / "empty") == b""


def test_a_file_truncated_during_its_load_does_not_kill_the_process(tmp_path, monkeypatch):
    """`cp new.pth voice.pth` during a load truncates the file first. The load used to map the user's file,
    and touching a page past its new end killed the daemon with SIGBUS; it maps a private copy now."""
    import rtvc.rvc.quiet_io as q

    ckpt = _checkpoint()
    path = tmp_path / "voice.pth"
    torch.save(ckpt, path)
    real = q._own

    def truncating(obj):
        with path.open("r+b") as f:
            f.truncate(0)
        return real(obj)

    monkeypatch.setattr(q, "_own", truncating)
    _same(ckpt, torch_load(path, map_location="cpu", weights_only=True))  # the file as it was when read


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
