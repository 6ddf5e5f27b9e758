from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from jack_harness import JackServer, portaudio_on

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def jack_server(request):
    """A JACK dummy server at the period given by indirect parametrisation; PortAudio rescanned onto it."""
    server = JackServer(getattr(request, "param", 256))
    server.start()
    with portaudio_on(server):
        yield server


@pytest.fixture
def jack_bare(request):
    """A JACK dummy server for a test whose rtvc runs in its own process: this process stays off it
    (no PortAudio client of ours in its graph), so the graph holds only rtvc and the harness."""
    server = JackServer(getattr(request, "param", 256), role="bare")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def torch_two_threads():
    """torch on two threads for a module: as on the machines CI runs on, whatever this one has."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_v2_models(tmp_path_factory):
    """A tiny RVC v2 48k voice with F0 (v2.pth) and a small 768-d HuBERT (hubert.pt), random weights in the real
    file formats: the fixed-shape step tests share them."""
    from rtvc.rvc.factory import write_rvc_checkpoint
    from rtvc.rvc.hubert_factory import write_fairseq_hubert

    d = tmp_path_factory.mktemp("tiny-v2-models")
    write_rvc_checkpoint(d / "v2.pth", version="v2", sr="48k", f0=1, size="tiny", seed=1)
    write_fairseq_hubert(d / "hubert.pt", seed=0, layers=2, dim=768, heads=12, ffn=512)
    return d
