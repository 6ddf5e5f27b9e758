"""Content features for RVC voices: HuBERT / ContentVec hidden states, 50 frames a second.

RVC reads content from ContentVec (its `hubert_base.pt`, a fairseq HuBERT base checkpoint): v1 voices take
`final_proj(output of transformer layer 9)`, 256-d; v2 voices the output of layer 12, 768-d.

Layer semantics. fairseq's `extract_features(output_layer=L)` runs the encoder with `tgt_layer = L - 1` and
breaks out of the layer loop right after that layer; a post-LN model (`layer_norm_first=False`, HuBERT base and
ContentVec) applies no final layer norm (fairseq wav2vec2.py, TransformerEncoder.extract_features / forward).
That is transformers' `hidden_states[L]`: `hidden_states[0]` is the input of layer 1 (after the positional conv
and the encoder layer norm) and `hidden_states[L]` the output of layer L. We run the same transformers submodules
in the same order ourselves and stop at layer L: no work for the layers after L (they are dropped at load) and no
list of every hidden state. The test checks this against `HubertModel(output_hidden_states=True)`.

Model sources:
- a fairseq checkpoint file (`.pt`), converted by `fairseq_hubert.py`; input normalisation from its
  `task.normalize` (fairseq layer-norms the whole waveform, eps 1e-5). RVC's hubert_base has `normalize: False`.
- a transformers directory: `config.json` (model_type "hubert") and its weights (`model.safetensors` or
  `pytorch_model.bin`), loaded with `from_pretrained(dir, local_files_only=True)`. `final_proj`, which v1 needs,
  lives in the same weights file as top-level keys `final_proj.weight` / `final_proj.bias`: what
  `convert_fairseq_hubert` writes and what RVC's own transformers checkpoint holds. Input normalisation from
  `preprocessor_config.json`'s `do_normalize` (Wav2Vec2FeatureExtractor: zero mean, unit variance, eps 1e-7);
  no such file means none.

Frames: the conv extractor sees 400 samples (25 ms) per frame at a 320-sample (20 ms) stride, so
`frames = (N - 400) // 320 + 1`. RVC's decoder runs at 100 Hz; `to_100hz` repeats each frame twice, as RVC's
`F.interpolate(scale_factor=2)` (nearest) does.
"""

from __future__ import annotations

import contextlib
import json
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.utils import parametrize

from rtvc.errors import ModelError
from rtvc.rvc.fairseq_hubert import HubertWithFinalProj, load_fairseq_hubert
from rtvc.rvc.model_files import path_identity

_VERSION_LAYER = {"v1": 9, "v2": 12}
_FIX = "give RVC's hubert_base.pt (ContentVec) or a transformers HuBERT directory (config.json + model.safetensors)"
_PROJ_KEYS = {"final_proj.weight", "final_proj.bias"}


@dataclass(eq=False)
class ContentEncoder:
    """A HuBERT/ContentVec cut at the layer an RVC version reads. Build with `ContentEncoder.load`."""

    model: HubertWithFinalProj  # eval, float32, weight norm folded, layers after `layer` dropped
    layer: int  # 1-based transformer layer whose output we return: 9 (v1) or 12 / the last (v2)
    dim: int  # 256 (v1, after final_proj) or the hidden size, 768 (v2)
    use_final_proj: bool
    normalize: bool  # zero-mean / unit-variance the waveform first, as the checkpoint was trained
    normalize_eps: float
    min_samples: int  # one frame: the conv stack's receptive field, 400 samples for HuBERT's

    @classmethod
    def load(cls, path: str | Path, version: str) -> ContentEncoder:
        """A fairseq checkpoint file or a transformers directory, for RVC `version` "v1" or "v2"."""
        if version not in _VERSION_LAYER:
            raise ModelError(f"unknown RVC version {version!r}", "use 'v1' or 'v2' (the voice file's 'version')")
        path = Path(path)
        if not path.exists():
            raise ModelError(
                f"{path}: no such file or directory",
                f"{_FIX}; `rtvc import hubert_base.pt` copies it to models/content/, for `content` to name",
            )
        if path.is_dir():
            model, normalize, eps = _load_transformers_dir(path)
        else:
            model, spec = load_fairseq_hubert(path)
            normalize, eps = spec.normalize, 1e-5
        n_layers = model.config.num_hidden_layers
        if version == "v1":
            if model.final_proj is None:
                raise ModelError(
                    f"{path}: v1 voices need a ContentVec/HuBERT with final_proj (768 -> 256); this model has none",
                    "use RVC's hubert_base.pt",
                )
            if n_layers < 9:
                raise ModelError(f"{path}: v1 voices read transformer layer 9; this model has {n_layers}", _FIX)
            layer, dim = 9, model.final_proj.out_features
        else:
            layer, dim = min(12, n_layers), model.config.hidden_size
            model.final_proj = None
        _trim(model, layer)
        for name, t in model.state_dict().items():  # (a damaged file would turn every voice into NaN or silence)
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise ModelError(
                    f"{path}: weight {name!r} holds NaN or infinite values", "download or convert the model again"
                )
        return cls(model, layer, dim, version == "v1", normalize, eps, _receptive_field(model))

    @classmethod
    def shared(cls, path: str | Path, version: str, device: str) -> ContentEncoder:
        """`load`, or the encoder another voice already holds, loaded from the same file (unchanged since: its
        inode, size, modification time and a digest of its ends) for the same RVC version and device. Community
        voices all read RVC's hubert_base.pt: a switch from one RVC voice to another then loads only the voice
        (HuBERT is 1.3 s of a 2.6 s load here, and 380 MB of fresh memory). The encoder is read-only once loaded
        (runners copy what they change; a CUDA voice's moves it to its device, hence the device in the key)."""
        key = (path_identity(Path(path)), version, device)
        with _SHARED_LOCK:
            enc = _SHARED.get(key) if key[0] is not None else None
            if enc is None:
                enc = cls.load(path, version)
                if key[0] is not None:
                    _SHARED[key] = enc
            return enc

    @property
    def device(self) -> torch.device:
        return self.model.feature_projection.projection.weight.device

    def to(self, device: str | torch.device) -> ContentEncoder:
        self.model.to(device)
        return self

    def features(self, audio16k: torch.Tensor) -> torch.Tensor:
        """(1, N) float32 16 kHz audio, N >= 400 -> (1, (N - 400) // 320 + 1, dim) features at 50 Hz."""
        if audio16k.dim() != 2 or audio16k.shape[0] != 1:
            raise ValueError(f"features() takes (1, N) audio, got shape {tuple(audio16k.shape)}")
        if audio16k.dtype != torch.float32:
            raise ValueError(f"features() takes float32 audio, got {audio16k.dtype}")
        if audio16k.shape[1] < self.min_samples:
            raise ValueError(f"features() needs at least {self.min_samples} samples, got {audio16k.shape[1]}")
        with torch.inference_mode():
            return self.run(audio16k, self.model)

    def run(self, audio16k: torch.Tensor, model: HubertWithFinalProj, dtype: torch.dtype = torch.float32):
        """The unchecked computation of `features` with `model` (this encoder's, or a copy of it in `dtype`):
        what the fixed-shape content step (rtvc.rvc.steps) traces. The input normalisation stays float32."""
        m, enc = model, model.encoder
        x = audio16k
        if self.normalize:
            x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + self.normalize_eps)
        h = m.feature_extractor(x.to(dtype)).transpose(1, 2)  # (1, F, 512)
        h = m.feature_projection(h)  # (1, F, D): layer norm over the conv features, then the projection
        h = enc.layer_norm(h + enc.pos_conv_embed(h))  # hidden_states[0]
        for block in enc.layers:  # the first `layer` blocks only (see _trim)
            h = _first(block(h))  # (1, F, D)
        if self.use_final_proj:
            h = m.final_proj(h)  # (1, F, 256)
        return h


def to_100hz(feats: torch.Tensor) -> torch.Tensor:
    """(1, F, D) at 50 Hz -> (1, 2F, D) at 100 Hz (the decoder's 10 ms frame), each frame repeated twice."""
    if feats.dim() != 3:
        raise ValueError(f"to_100hz() takes (1, F, D) features, got shape {tuple(feats.shape)}")
    return feats.repeat_interleave(2, dim=1)


def _first(out: Any) -> torch.Tensor:
    # transformers 5 encoder layers return the hidden states; 4.x returns (hidden_states, attentions).
    return out[0] if isinstance(out, tuple) else out


_SHARED: weakref.WeakValueDictionary[tuple, ContentEncoder] = weakref.WeakValueDictionary()  # held by voices
_SHARED_LOCK = threading.Lock()


def _receptive_field(model: HubertWithFinalProj) -> int:
    # 10 + 2*5 + 2*10 + 2*20 + 2*40 + 1*80 + 1*160 = 400 for HuBERT's (kernel, stride) pairs
    span, hop = 1, 1
    for kernel, stride in zip(model.config.conv_kernel, model.config.conv_stride, strict=True):
        span, hop = span + (kernel - 1) * hop, hop * stride
    return span


def _trim(model: HubertWithFinalProj, layer: int) -> None:
    """Drop the layers after `layer`, fold the positional conv's weight norm into a plain weight, freeze.

    Folding computes g * v / ||v|| once at load instead of on every call; the weight is the same tensor the
    parametrization would produce."""
    model.encoder.layers = model.encoder.layers[:layer]
    conv = model.encoder.pos_conv_embed.conv
    if parametrize.is_parametrized(conv, "weight"):
        parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
    elif hasattr(conv, "weight_g"):  # transformers releases that use the old weight_norm hook
        torch.nn.utils.remove_weight_norm(conv)
    model.requires_grad_(False)
    model.eval()


@contextlib.contextmanager
def _transformers_quiet():
    """transformers' loading says nothing on stderr: it drew a progress bar and a LOAD REPORT that called final_proj
    MISSING ("consider training on your downstream task") at every import and voice load, though a checkpoint
    without it is a plain HuBERT, and what is missing is checked below and said as rtvc's own error."""
    from transformers.utils import logging as tf_logging

    with _TRANSFORMERS_LOADS:  # (the settings are the process's: two loads at once would restore them wrongly)
        verbosity, bars = tf_logging.get_verbosity(), tf_logging.is_progress_bar_enabled()
        tf_logging.set_verbosity_error()
        tf_logging.disable_progress_bar()
        try:
            yield
        finally:
            tf_logging.set_verbosity(verbosity)
            if bars:
                tf_logging.enable_progress_bar()


_TRANSFORMERS_LOADS = threading.Lock()


def _load_transformers_dir(path: Path) -> tuple[HubertWithFinalProj, bool, float]:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelError(f"{path}: directory has no config.json", _FIX)
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{config_file}: unreadable ({err})", "download or convert the model again") from None
    if not isinstance(config, dict) or config.get("model_type") != "hubert":
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise ModelError(f"{config_file}: model_type {kind!r}, not 'hubert'", _FIX)
    if config.get("do_stable_layer_norm"):
        raise ModelError(f"{path}: a pre-LN (stable layer norm) HuBERT such as HuBERT large; RVC uses post-LN", _FIX)
    try:
        with _transformers_quiet():
            model, info = HubertWithFinalProj.from_pretrained(path, local_files_only=True, output_loading_info=True)
    except Exception as err:  # transformers, safetensors and torch raise OSError, ValueError, RuntimeError, ...
        raise ModelError(
            f"{path}: cannot load the weights ({type(err).__name__}: {str(err)[:160]})",
            "download or convert the model again",
        ) from None
    missing = set(info["missing_keys"])
    if missing - _PROJ_KEYS or 0 < len(missing & _PROJ_KEYS) < len(_PROJ_KEYS) or info["mismatched_keys"]:
        bad = sorted((missing - _PROJ_KEYS) or (missing & _PROJ_KEYS) or map(str, info["mismatched_keys"]))
        raise ModelError(f"{path}: weights lack or mis-shape {bad[0]!r} ({len(bad)} in all)", "convert it again")
    if missing & _PROJ_KEYS:
        model.final_proj = None  # from_pretrained filled it with random numbers: it is not in the file
    normalize = False
    pre = path / "preprocessor_config.json"
    if pre.exists():
        try:
            settings = json.loads(pre.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelError(f"{pre}: unreadable ({err})", "download or convert the model again") from None
        if not isinstance(settings, dict):
            raise ModelError(f"{pre}: not a JSON object of settings", "download or convert the model again")
        normalize = bool(settings.get("do_normalize", False))
    return model.float().eval(), normalize, 1e-7
