"""Loading an RVC voice (`.pth`) into our own `Synthesizer`.

The file is what RVC's `process_ckpt.savee` writes: a torch.save'd dict with `weight` (the state dict
without `enc_q.*`, every tensor fp16, weight-normed layers as `*.weight_g` / `*.weight_v`), `config`
(18 items, see `SynthConfig`), `info`, `sr`, `f0` (0/1) and `version` ("v1"/"v2"). We follow RVC's
`VC.get_vc`: the rate is config[-1], the speaker count is emb_g's row count (not config[-3]), a missing
`version` means "v1" and a missing `f0` means 1 (files from before RVC v2 have neither key).

Weights are upcast to float32 and weight norm is folded once, in float32, from the upcast g and v
(w = v * g / ||v||, norm over all dims but 0, torch's own `_weight_norm`): not rounded back to fp16,
which would move the output by >= 1.3e-4 relative L2 from RVC's. The file is read with
`weights_only=True`: no pickled code runs.
"""

from __future__ import annotations

import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from rtvc.errors import ModelError
from rtvc.rvc.model_files import check_voice_file, torch_load
from rtvc.rvc.synth import PHONE_DIM, SynthConfig, Synthesizer

REEXPORT = "export the voice again from RVC (its assets/weights/*.pth file)"
SR_NAMES = {"32k": 32000, "40k": 40000, "48k": 48000}  # some old files give config[-1] as a name


@dataclass(frozen=True)
class RvcModel:
    path: Path
    version: str  # "v1" | "v2"
    f0: bool
    samplerate: int  # config[-1]
    upp: int  # samples per 10 ms frame at samplerate = prod(upsample_rates)
    phone_dim: int  # 256 (v1) | 768 (v2)
    n_speakers: int  # emb_g rows
    inter_channels: int  # flow / latent channels (the flow noise is (1, inter_channels, frames))
    net: Synthesizer  # eval(), float32, requires_grad False, weight norm folded


def load_rvc(path: str | Path) -> RvcModel:
    path = Path(path)
    cpt = _read(path)
    _reject_other_kinds(path, cpt)
    weight, items = cpt["weight"], cpt["config"]
    version = cpt.get("version", "v1")
    if not isinstance(version, str) or version not in PHONE_DIM:
        raise ModelError(
            f"{path}: unknown RVC version {version!r}", "rtvc runs RVC v1 and v2 voices; use a v1 or v2 voice"
        )
    f0 = cpt.get("f0", 1)
    if f0 not in (0, 1):
        raise ModelError(f"{path}: 'f0' must be 0 or 1, got {f0!r}", REEXPORT)
    vocoder = cpt.get("vocoder", "HiFi-GAN")  # forks (Applio) record other vocoders here
    if vocoder != "HiFi-GAN":
        raise ModelError(
            f"{path}: this voice uses the {vocoder!r} vocoder; rtvc implements RVC's NSF-HiFiGAN only",
            "use a voice trained with the HiFi-GAN vocoder",
        )
    state = _fold_weight_norm(path, weight)
    if "emb_g.weight" not in state:
        raise ModelError(f"{path}: weight 'emb_g.weight' (the speaker table) is missing", REEXPORT)
    items = list(items) if isinstance(items, list | tuple) else items
    if isinstance(items, list) and len(items) == 18:
        items[-3] = state["emb_g.weight"].shape[0]  # as RVC: the table decides the speaker count
    config = parse_config(path, items)
    with torch.device("meta"):  # no init cost: every parameter is replaced by the file's tensor below
        net = Synthesizer(config, PHONE_DIM[version], bool(f0))
    _check_against(path, net, state, version, bool(f0))
    net.load_state_dict(state, strict=True, assign=True)
    net.eval().requires_grad_(False)
    return RvcModel(
        path=path,
        version=version,
        f0=bool(f0),
        samplerate=config.sr,
        upp=config.upp,
        phone_dim=PHONE_DIM[version],
        n_speakers=config.spk_embed_dim,
        inter_channels=config.inter_channels,
        net=net,
    )


def _read(path: Path) -> object:
    check_voice_file(path)
    try:
        return torch_load(path, map_location="cpu", weights_only=True)
    except ModelError:
        raise  # (a damaged part, named)
    except Exception as e:
        if "GLOBAL" not in str(e):  # torch's weights-only refusal of a class or function names it GLOBAL
            raise ModelError(  # (what it is cannot be told yet: a voice, hubert_base.pt or rmvpe.pt)
                f"{path}: truncated or damaged checkpoint ({e.__class__.__name__})",
                "download it again, or for a voice export its assets/weights/*.pth file from RVC again",
            ) from None
    # the pickle names a class or function: never run it, but its names tell what the file is
    names = _pickle_strings(path)
    if any(n.startswith(("fairseq", "omegaconf", "argparse")) for n in names):
        raise ModelError(
            f"{path}: this looks like a HuBERT / ContentVec content-feature model (a fairseq checkpoint), "
            "not an RVC voice",
            "give the voice's own .pth (from RVC's assets/weights); the content model is set separately",
        )
    raise ModelError(
        f"{path}: holds Python objects other than tensors and plain containers; rtvc loads weights only "
        "and does not run pickled code",
        REEXPORT,
    )


def _pickle_strings(path: Path) -> list[str]:
    """Strings (module and class names among them) in a checkpoint's pickle, read without running it: the
    zip format's data.pkl, or the legacy format's leading pickles (magic number, protocol, system info, the
    object)."""
    out: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
                data = z.read(pkl)
            return [str(arg) for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
        with path.open("rb") as f:
            for _ in range(4):
                out += [str(arg) for _, arg, _ in pickletools.genops(f) if isinstance(arg, str)]
    except Exception:
        pass  # unreadable (or what follows the object): the caller words what was found
    return out


def _reject_other_kinds(path: Path, cpt: object) -> None:
    if not isinstance(cpt, dict):
        raise ModelError(
            f"{path}: holds a {type(cpt).__name__}, not an RVC voice (a dict with weight and config)",
            "give the voice's .pth as RVC exports it to assets/weights",
        )
    keys = [str(k) for k in cpt]
    if any(k.startswith(("unet.", "cnn.", "fc.0.gru")) for k in keys):
        raise ModelError(
            f"{path}: this looks like an RMVPE F0 model, not an RVC voice",
            "give the voice's own .pth here; the F0 model is set separately",
        )
    if "model" in cpt and ("cfg" in cpt or "args" in cpt):
        raise ModelError(
            f"{path}: this looks like a HuBERT / ContentVec content-feature model (a fairseq checkpoint), "
            "not an RVC voice",
            "give the voice's own .pth (from RVC's assets/weights); the content model is set separately",
        )
    if "model" in cpt and ("optimizer" in cpt or "iteration" in cpt):
        raise ModelError(
            f"{path}: this looks like an RVC training checkpoint (G_*.pth / D_*.pth), not an exported voice",
            "use the small voice file RVC exports to assets/weights (or its 'ckpt processing' tab)",
        )
    missing = [k for k in ("weight", "config") if k not in cpt]
    if missing:
        shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
        raise ModelError(
            f"{path}: has no {' or '.join(repr(k) for k in missing)} entry (its keys: {shown or 'none'}), "
            "so it is not an RVC voice",
            "give the voice's .pth as RVC exports it to assets/weights",
        )
    weight = cpt["weight"]
    if not isinstance(weight, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weight.items()
    ):
        raise ModelError(f"{path}: 'weight' is not a dict of named tensors", REEXPORT)


def _fold_weight_norm(path: Path, weight: dict) -> dict[str, torch.Tensor]:
    """fp16 -> float32; each `X.weight_g` + `X.weight_v` pair -> `X.weight`; drops `enc_q.*` (unused)."""
    state: dict[str, torch.Tensor] = {}
    for key, t in weight.items():
        if key.startswith("enc_q.") or key.endswith(".weight_v"):
            continue
        if not t.is_floating_point():
            raise ModelError(f"{path}: weight {key!r} is not a float tensor ({t.dtype})", REEXPORT)
        if key.endswith(".weight_g"):
            base = key[: -len("_g")]
            v = weight.get(base + "_v")
            if v is None:
                raise ModelError(f"{path}: weight {key!r} has no matching {base + '_v'!r}", REEXPORT)
            if t.shape != (v.shape[0],) + (1,) * (v.dim() - 1):
                raise ModelError(
                    f"{path}: weight {key!r} has shape {tuple(t.shape)}, which does not fit "
                    f"{base + '_v'!r} {tuple(v.shape)}",
                    REEXPORT,
                )
            state[base] = torch._weight_norm(v.float(), t.float(), 0)
        else:
            state[key] = t.float()
    for key in weight:
        if key.endswith(".weight_v") and key[: -len("_v")] + "_g" not in weight and not key.startswith("enc_q."):
            raise ModelError(f"{path}: weight {key!r} has no matching {key[: -len('_v')] + '_g'!r}", REEXPORT)
    return state


def _check_against(path: Path, net: Synthesizer, state: dict[str, torch.Tensor], version: str, f0: bool) -> None:
    """Every weight the config needs, with its shape, and nothing else; finite values."""
    kind = f"a {version} {'f0' if f0 else 'no-f0'} voice with this config"
    fix = "the file's config, version or f0 flag does not match its weights; " + REEXPORT
    expected = net.state_dict()
    for key, want in expected.items():
        have = state.get(key)
        if have is None:
            raise ModelError(f"{path}: weight {key!r} is missing ({kind} needs it)", fix)
        if have.shape != want.shape:
            raise ModelError(
                f"{path}: weight {key!r} has shape {tuple(have.shape)}, but {kind} needs {tuple(want.shape)}", fix
            )
    for key in state:
        if key not in expected:
            raise ModelError(f"{path}: unexpected weight {key!r} for {kind}", fix)
    for key, t in state.items():
        if not torch.isfinite(t).all():
            raise ModelError(f"{path}: weight {key!r} holds NaN or infinite values", REEXPORT)


def parse_config(path: Path, items: object) -> SynthConfig:
    """The 18-item config list -> SynthConfig, or a ModelError naming the first bad field."""
    names = list(SynthConfig.__dataclass_fields__)
    if not isinstance(items, list) or len(items) != len(names):
        n = len(items) if isinstance(items, list) else type(items).__name__
        raise ModelError(f"{path}: 'config' must be a list of {len(names)} items as RVC writes it, got {n}", REEXPORT)
    c = dict(zip(names, items, strict=True))
    if isinstance(c["sr"], str):
        c["sr"] = SR_NAMES.get(c["sr"], c["sr"])

    def bad(name: str, want: str) -> ModelError:
        i = names.index(name)
        return ModelError(f"{path}: config[{i}] ({name}) must be {want}, got {c[name]!r}", REEXPORT)

    def is_int(x: object) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x > 0

    def int_list(x: object) -> bool:
        return isinstance(x, list | tuple) and len(x) > 0 and all(is_int(v) for v in x)

    for name in (
        "spec_channels",
        "segment_size",
        "inter_channels",
        "hidden_channels",
        "filter_channels",
        "n_heads",
        "n_layers",
        "kernel_size",
        "upsample_initial_channel",
        "spk_embed_dim",
        "gin_channels",
        "sr",
    ):
        if not is_int(c[name]):
            raise bad(name, "a positive integer")
    if not isinstance(c["p_dropout"], int | float):
        raise bad("p_dropout", "a number")
    if c["resblock"] not in ("1", "2"):
        raise bad("resblock", '"1" or "2"')
    for name in ("resblock_kernel_sizes", "upsample_rates", "upsample_kernel_sizes"):
        if not int_list(c[name]):
            raise bad(name, "a list of positive integers")
        c[name] = list(c[name])
    dil = c["resblock_dilation_sizes"]
    if not isinstance(dil, list | tuple) or len(dil) != len(c["resblock_kernel_sizes"]) or not all(map(int_list, dil)):
        raise bad("resblock_dilation_sizes", "one list of positive integers per resblock kernel size")
    c["resblock_dilation_sizes"] = [list(d) for d in dil]
    if len(c["upsample_kernel_sizes"]) != len(c["upsample_rates"]):
        raise bad("upsample_kernel_sizes", f"one kernel size per upsample rate ({len(c['upsample_rates'])})")
    if c["upsample_initial_channel"] % 2 ** len(c["upsample_rates"]):
        raise bad("upsample_initial_channel", f"divisible by 2**{len(c['upsample_rates'])}")
    if c["hidden_channels"] % c["n_heads"]:
        raise bad("hidden_channels", f"divisible by n_heads ({c['n_heads']})")
    if c["inter_channels"] % 2:
        raise bad("inter_channels", "even (the flow splits it in halves)")
    config = SynthConfig(**c)
    if config.upp * 100 != config.sr:  # RVC frames are 10 ms: one frame = upp samples at sr
        raise ModelError(
            f"{path}: config upsample rates {config.upsample_rates} give {config.upp} samples per 10 ms frame, "
            f"but the rate config[17] is {config.sr} Hz",
            REEXPORT,
        )
    return config
