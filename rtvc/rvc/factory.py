"""Random-weight RVC voices in RVC's exact shipped `.pth` format, for tests and benchmarks.

The file matches what RVC's `process_ckpt.savee` writes: `weight` (state dict without enc_q, every
tensor fp16, weight-normed layers split into `weight_g` / `weight_v`), `config` (18 items), `info`,
`sr` ("32k"/"40k"/"48k"), `f0` (int) and `version`. Nothing is downloaded; weights are random.

size="full" uses RVC's real configs (configs/{v1,v2}/*.json: 192 inter/hidden channels, 6 attention
layers, 512 decoder channels, 109 speakers, 256-dim speaker embedding); size="tiny" keeps their
structure and upsampling (so the same upp and the same code paths) with tiny channel counts, like
the reference fixtures.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import torch

from rtvc.rvc.synth import PHONE_DIM, SynthConfig, Synthesizer

SR_NAME = {32000: "32k", 40000: "40k", 48000: "48k"}
# (version, rate) -> (upsample_rates, upsample_kernel_sizes), from RVC's configs (v2 40k as v1 40k)
UPSAMPLING = {
    ("v1", 32000): ([10, 4, 2, 2, 2], [16, 16, 4, 4, 4]),
    ("v1", 40000): ([10, 10, 2, 2], [16, 16, 4, 4]),
    ("v1", 48000): ([10, 6, 2, 2, 2], [16, 16, 4, 4, 4]),
    ("v2", 32000): ([10, 8, 2, 2], [20, 16, 4, 4]),
    ("v2", 40000): ([10, 10, 2, 2], [16, 16, 4, 4]),
    ("v2", 48000): ([12, 10, 2, 2], [24, 20, 4, 4]),
}
# size -> (inter, hidden, filter, n_heads, n_layers, upsample_initial_channel, gin, default speakers)
SIZES = {
    "tiny": (16, 16, 32, 2, 2, 32, 16, 3),
    "full": (192, 192, 768, 2, 6, 512, 256, 109),
}
# layers RVC wraps in weight_norm (stored as weight_g / weight_v)
WEIGHT_NORMED = re.compile(
    r"(dec\.ups\.\d+|dec\.resblocks\.\d+\.convs[12]?\.\d+"
    r"|flow\.flows\.\d+\.enc\.(in_layers\.\d+|res_skip_layers\.\d+|cond_layer))\.weight"
)


def rvc_config(
    version: str, sr: int, size: str = "tiny", n_speakers: int | None = None, resblock: str = "1"
) -> SynthConfig:
    if (version, sr) not in UPSAMPLING:
        raise ValueError(f"no RVC config for version {version!r} at {sr} Hz (v1/v2 at 32000/40000/48000)")
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    if resblock not in ("1", "2"):
        raise ValueError(f'resblock must be "1" or "2", got {resblock!r}')
    inter, hidden, filt, heads, layers, up_ch, gin, spk = SIZES[size]
    # RVC ships ResBlock1 everywhere; ResBlock2 (HiFi-GAN V3's) takes two dilations per kernel
    dilations = [[1, 3, 5]] * 3 if resblock == "1" else [[1, 3]] * 3
    rates, kernels = UPSAMPLING[(version, sr)]
    return SynthConfig(
        spec_channels=513 if sr == 32000 else 1025,  # filter_length // 2 + 1
        segment_size=32,
        inter_channels=inter,
        hidden_channels=hidden,
        filter_channels=filt,
        n_heads=heads,
        n_layers=layers,
        kernel_size=3,
        p_dropout=0,
        resblock=resblock,
        resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[list(d) for d in dilations],
        upsample_rates=list(rates),
        upsample_initial_channel=up_ch,
        upsample_kernel_sizes=list(kernels),
        spk_embed_dim=n_speakers if n_speakers is not None else spk,
        gin_channels=gin,
        sr=sr,
    )


def write_rvc_checkpoint(
    path: str | Path,
    *,
    version: str,
    sr: int | str,
    f0: bool | int,
    size: str = "tiny",
    seed: int = 0,
    n_speakers: int | None = None,
    resblock: str = "1",
) -> Path:
    """Write a random-weight voice; sr as 32000/40000/48000 or "32k"/"40k"/"48k". Returns the path."""
    path = Path(path)
    rate = {v: k for k, v in SR_NAME.items()}.get(sr, sr) if isinstance(sr, str) else int(sr)
    config = rvc_config(version, rate, size, n_speakers, resblock)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Synthesizer(config, PHONE_DIM[version], bool(f0))
        _init_(net)
    weight: dict[str, torch.Tensor] = {}
    for key, t in net.state_dict().items():
        if WEIGHT_NORMED.fullmatch(key):
            # weight_norm's own initialisation: g = ||w|| over all dims but 0, v = w
            g = t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))
            weight[key + "_g"] = g.half()
            weight[key + "_v"] = t.half()
        else:
            weight[key] = t.half()
    cpt = OrderedDict()
    cpt["weight"] = weight
    cpt["config"] = config.to_list()
    cpt["info"] = "0epoch"
    cpt["sr"] = SR_NAME[rate]
    cpt["f0"] = int(bool(f0))
    cpt["version"] = version
    torch.save(cpt, path)
    return path


@torch.no_grad()
def _init_(net: Synthesizer) -> None:
    """PyTorch's default layer init, with these changes so a random voice is neither silent nor clipped:
    - embeddings N(0, 0.1): RVC's emb_pitch / emb_g start at N(0, 1), which sqrt(hidden) then inflates;
    - decoder: resblock convs N(0, 0.01) as RVC's `init_weights` (near-identity blocks); conv_pre and the
      upsampling scaled to keep the signal's variance through leaky_relu (which halves it), conv_post to
      a fifth of that;
    - the flow's `post` stays random (RVC zero-initialises it for training, which would make a random
      flow the identity and leave it untested).
    """
    for name, p in net.named_parameters():
        if name.startswith(("enc_p.emb_pitch", "emb_g")):
            p.normal_(0.0, 0.1)
    dec = net.dec
    for block in dec.resblocks:
        for conv in block.modules():
            if isinstance(conv, torch.nn.Conv1d):
                conv.weight.normal_(0.0, 0.01)
    w = dec.conv_pre.weight  # (out, in, 7)
    w.normal_(0.0, (w.shape[1] * w.shape[2]) ** -0.5)
    for up in dec.ups:
        w = up.weight  # (in, out, k); each output sample sums in * k / stride taps
        w.normal_(0.0, (0.5 * w.shape[0] * w.shape[2] / up.stride[0]) ** -0.5)
    w = dec.conv_post.weight  # (1, ch, 7); a fifth of unit gain: output RMS of a few tenths, rarely clipping
    w.normal_(0.0, 0.2 * (0.5 * w.shape[1] * w.shape[2]) ** -0.5)
