"""Read a fairseq HuBERT / ContentVec checkpoint (RVC's `hubert_base.pt`) into transformers' HubertModel.

No fairseq needed. A fairseq checkpoint is a torch pickle: `{"args": Namespace | None, "cfg": dict | DictConfig |
None, "model": state_dict, "task_state", "extra_state", ...}`. `torch.load(weights_only=True)` refuses the
Namespace / DictConfig / fairseq classes some of them hold, so then `torch_pickle.py` unpickles it with a
restricted unpickler that rebuilds tensors and plain containers and turns every other global into an inert
stand-in (it never imports a module or calls anything the file names).

Key mapping (fairseq -> transformers), read from fairseq `hubert.py` / `wav2vec2.py` and transformers
`modeling_hubert.py`:
    feature_extractor.conv_layers.i.0            -> feature_extractor.conv_layers.i.conv
    feature_extractor.conv_layers.0.2 (GroupNorm) -> feature_extractor.conv_layers.0.layer_norm
    layer_norm (on the 512-d conv features)      -> feature_projection.layer_norm
    post_extract_proj                            -> feature_projection.projection
    encoder.pos_conv.0.{weight_g,weight_v,bias}  -> encoder.pos_conv_embed.conv (weight norm over dim 2)
    encoder.layer_norm                           -> encoder.layer_norm
    encoder.layers.i.self_attn.{q,k,v,out}_proj  -> encoder.layers.i.attention.{q,k,v,out}_proj
    encoder.layers.i.self_attn_layer_norm        -> encoder.layers.i.layer_norm
    encoder.layers.i.fc1 / fc2                   -> encoder.layers.i.feed_forward.intermediate_dense / output_dense
    encoder.layers.i.final_layer_norm            -> encoder.layers.i.final_layer_norm
    final_proj                                   -> final_proj (our addition; RVC v1 reads it)
Pretraining-only keys (`mask_emb`, `label_embs_concat`, `target_glu.*`) are dropped; any other unknown key is an
error, because a checkpoint with extra modules (e.g. conditioned layer norms) would convert to a different model.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import HubertConfig, HubertModel

from rtvc.errors import ModelError
from rtvc.rvc.torch_pickle import load_torch_file, plain

# fairseq HubertConfig defaults (fairseq/models/hubert/hubert.py), used where the checkpoint's cfg omits a field.
_DEFAULTS: dict[str, Any] = {
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "extractor_mode": "default",
    "layer_norm_first": False,
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_bias": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "pos_conv_depth": 1,
    "conv_pos_batch_norm": False,
    "layer_type": "transformer",
}
_DROPPED_PREFIXES = ("mask_emb", "label_embs_concat", "label_embs.", "target_glu.")
_RVC_VOICE_KEYS = {"weight", "config"}  # an RVC voice .pth: {"weight", "config", "info", "sr", "f0", "version"}


class HubertWithFinalProj(HubertModel):
    """HubertModel plus fairseq's `final_proj` Linear(hidden_size, classifier_proj_size), which RVC v1 reads.

    Saved with `save_pretrained`, final_proj sits in the same weights file as top-level keys
    `final_proj.weight` / `final_proj.bias`: the layout RVC's own transformers checkpoint uses.
    `final_proj` is None for a model that has none.
    """

    def __init__(self, config: HubertConfig):
        super().__init__(config)
        self.final_proj: torch.nn.Linear | None = torch.nn.Linear(config.hidden_size, config.classifier_proj_size)


@dataclass(frozen=True)
class FairseqHubertSpec:
    """What a fairseq HuBERT checkpoint's args/cfg say about its shape and its input."""

    layers: int
    dim: int
    ffn: int
    heads: int
    activation: str
    conv_layers: tuple[tuple[int, int, int], ...]  # (channels, kernel, stride) per conv block
    conv_bias: bool
    conv_pos: int
    conv_pos_groups: int
    normalize: bool  # task.normalize: the waveform is layer-normed (eps 1e-5) before the model


def load_fairseq_hubert(path: str | Path) -> tuple[HubertWithFinalProj, FairseqHubertSpec]:
    """Load a fairseq HuBERT/ContentVec checkpoint as an eval-mode float32 `HubertWithFinalProj`."""
    path = Path(path)
    ckpt = load_torch_file(path, "give the path of hubert_base.pt (ContentVec) or a HuBERT checkpoint")
    state = _model_state(ckpt, path)
    spec = read_spec(ckpt, path)
    _check_layer_count(state, spec, path)
    has_proj = "final_proj.weight" in state
    config = HubertConfig(
        hidden_size=spec.dim,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.ffn,
        hidden_act=spec.activation,
        feat_extract_norm="group",
        feat_extract_activation="gelu",  # fairseq's conv blocks use nn.GELU() whatever activation_fn says
        conv_dim=[c for c, _, _ in spec.conv_layers],
        conv_kernel=[k for _, k, _ in spec.conv_layers],
        conv_stride=[s for _, _, s in spec.conv_layers],
        conv_bias=spec.conv_bias,
        num_conv_pos_embeddings=spec.conv_pos,
        num_conv_pos_embedding_groups=spec.conv_pos_groups,
        do_stable_layer_norm=False,
        feat_proj_layer_norm=True,
        layer_norm_eps=1e-5,  # fairseq LayerNorm / GroupNorm default
        classifier_proj_size=state["final_proj.weight"].shape[0] if has_proj else 256,
        mask_time_prob=0.0,  # no masked_spec_embed parameter: inference only
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
    )
    with torch.device("meta"):  # no init cost (seconds for HuBERT base): every parameter comes from the file
        model = HubertWithFinalProj(config)
    if not has_proj:
        model.final_proj = None
    mapped = _map_state(state, spec, model, path)
    try:
        model.load_state_dict(mapped, strict=True, assign=True)
    except RuntimeError as err:  # size mismatches: the cfg disagrees with the tensors
        raise ModelError(
            f"{path}: weights do not match the shape its cfg describes: {err}", "the checkpoint is inconsistent"
        ) from None
    return model.float().eval(), spec


def convert_fairseq_hubert(src: str | Path, out_dir: str | Path) -> Path:
    """Write a fairseq checkpoint as a transformers directory that `ContentEncoder.load` reads.

    config.json + model.safetensors (final_proj inside, see `HubertWithFinalProj`) + preprocessor_config.json,
    whose `do_normalize` carries the checkpoint's `task.normalize`.
    """
    model, spec = load_fairseq_hubert(src)
    out = Path(out_dir)
    model.save_pretrained(out)
    preprocessor = {
        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1,
        "sampling_rate": 16000,
        "padding_value": 0.0,
        "do_normalize": spec.normalize,
        "return_attention_mask": False,
    }
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    return out


def _model_state(ckpt: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(ckpt, dict):
        raise ModelError(f"{path}: not a fairseq checkpoint (holds a {type(ckpt).__name__}, not a dict)", _FIX_KIND)
    if ckpt.keys() >= _RVC_VOICE_KEYS and "model" not in ckpt:
        raise ModelError(
            f"{path}: this is an RVC voice, not a content encoder",
            "pass the voice as the voice model and hubert_base.pt (ContentVec) as the content encoder",
        )
    state = ckpt.get("model")
    if not isinstance(state, dict):
        raise ModelError(f"{path}: no 'model' state dict (top-level keys: {sorted(map(str, ckpt))[:8]})", _FIX_KIND)
    if any(str(k).startswith("w2v_encoder.") for k in state):
        raise ModelError(f"{path}: a fine-tuned (CTC) HuBERT, not a pretrained one", _FIX_KIND)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"{path}: model entry {key!r} is a {type(value).__name__}, not a tensor", _FIX_TRUNC)
        out[str(key)] = value.float() if value.is_floating_point() else value  # RVC ships hubert_base.pt in fp16
    return out


_FIX_KIND = "give a fairseq HuBERT/ContentVec checkpoint such as RVC's hubert_base.pt"
_FIX_TRUNC = "download the file again"


def read_spec(ckpt: dict, path: Path) -> FairseqHubertSpec:
    """Model shape and input normalisation from `args` (old fairseq: one flat Namespace) or `cfg` (hydra)."""
    args = plain(ckpt.get("args"))
    cfg = plain(ckpt.get("cfg"))
    if isinstance(args, dict):
        model_cfg, task_cfg = args, args
    elif isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        model_cfg, task_cfg = cfg["model"], cfg.get("task") or {}
        if not isinstance(task_cfg, dict):
            task_cfg = {}
    else:
        raise ModelError(f"{path}: neither 'args' nor 'cfg' describes the model", _FIX_KIND)

    def get(key: str) -> Any:
        value = model_cfg.get(key)
        return _DEFAULTS[key] if value is None else value

    def count(key: str, source: dict[str, Any] | None = None) -> int:
        """A positive whole number from the config, or an error naming the key."""
        value = get(key) if source is None else source.get(key)
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
            raise ModelError(f"{path}: {key} = {value!r} in its config is not a positive whole number", _FIX_TRUNC)
        n = int(value)
        if n <= 0:
            raise ModelError(f"{path}: {key} = {n} in its config must be positive", _FIX_TRUNC)
        return n

    if bool(get("layer_norm_first")):
        raise ModelError(f"{path}: a pre-LN (layer_norm_first) model such as HuBERT large; RVC uses post-LN", _FIX_KIND)
    if str(get("extractor_mode")) != "default":
        raise ModelError(f"{path}: extractor_mode {get('extractor_mode')!r}; RVC's encoders use 'default'", _FIX_KIND)
    if count("pos_conv_depth") != 1 or bool(get("conv_pos_batch_norm")) or str(get("layer_type")) != "transformer":
        raise ModelError(f"{path}: a wav2vec2-style variant (deep/batch-norm pos conv or conformer)", _FIX_KIND)
    activation = str(get("activation_fn"))
    if activation not in ("gelu", "relu"):
        raise ModelError(f"{path}: activation_fn {activation!r} is not supported (gelu, relu)", _FIX_KIND)
    sample_rate = count("sample_rate", task_cfg) if task_cfg.get("sample_rate") else 16000
    if sample_rate != 16000:
        raise ModelError(f"{path}: trained on {sample_rate} Hz audio; RVC's content encoders take 16 kHz", _FIX_KIND)
    dim, heads, groups = count("encoder_embed_dim"), count("encoder_attention_heads"), count("conv_pos_groups")
    if dim % heads:
        raise ModelError(f"{path}: encoder_embed_dim {dim} is not divisible by {heads} heads", _FIX_TRUNC)
    if dim % groups:
        raise ModelError(f"{path}: encoder_embed_dim {dim} is not divisible by conv_pos_groups", _FIX_TRUNC)
    return FairseqHubertSpec(
        layers=count("encoder_layers"),
        dim=dim,
        ffn=count("encoder_ffn_embed_dim"),
        heads=heads,
        activation=activation,
        conv_layers=parse_conv_layers(str(get("conv_feature_layers")), path),
        conv_bias=bool(get("conv_bias")),
        conv_pos=count("conv_pos"),
        conv_pos_groups=groups,
        normalize=bool(task_cfg.get("normalize") or False),
    )


def parse_conv_layers(text: str, path: Path) -> tuple[tuple[int, int, int], ...]:
    """fairseq's `conv_feature_layers` string, e.g. "[(512,10,5)] + [(512,3,2)] * 4", without eval()."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Tuple | ast.List):
            items = [value(e) for e in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(ast.dump(node))

    try:
        layers = value(ast.parse(text, mode="eval").body)
        if not (isinstance(layers, list) and layers):
            raise ValueError("not a non-empty list")
        if not all(isinstance(t, tuple) and len(t) == 3 and all(isinstance(v, int) for v in t) for t in layers):
            raise ValueError("entries must be (dim, kernel, stride)")
    except (SyntaxError, ValueError, TypeError) as err:
        raise ModelError(f"{path}: unreadable conv_feature_layers {text!r} ({err})", _FIX_TRUNC) from None
    return tuple(layers)


def _check_layer_count(state: dict[str, torch.Tensor], spec: FairseqHubertSpec, path: Path) -> None:
    found = {int(k.split(".")[2]) for k in state if k.startswith("encoder.layers.")}
    if found and max(found) + 1 != spec.layers:
        raise ModelError(
            f"{path}: cfg says {spec.layers} encoder layers but the weights hold {max(found) + 1}", _FIX_TRUNC
        )


def _map_state(
    state: dict[str, torch.Tensor], spec: FairseqHubertSpec, model: HubertWithFinalProj, path: Path
) -> dict[str, torch.Tensor]:
    """transformers state dict from the fairseq one; ModelError naming a missing or unknown fairseq key."""
    names: dict[str, str] = {}  # transformers name -> fairseq name
    for i in range(len(spec.conv_layers)):
        names[f"feature_extractor.conv_layers.{i}.conv.weight"] = f"feature_extractor.conv_layers.{i}.0.weight"
        if spec.conv_bias:
            names[f"feature_extractor.conv_layers.{i}.conv.bias"] = f"feature_extractor.conv_layers.{i}.0.bias"
    for p in ("weight", "bias"):
        names[f"feature_extractor.conv_layers.0.layer_norm.{p}"] = f"feature_extractor.conv_layers.0.2.{p}"
        names[f"feature_projection.layer_norm.{p}"] = f"layer_norm.{p}"
        names[f"feature_projection.projection.{p}"] = f"post_extract_proj.{p}"
        names[f"encoder.layer_norm.{p}"] = f"encoder.layer_norm.{p}"
        names[f"encoder.pos_conv_embed.conv.{p}"] = f"encoder.pos_conv.0.{p}"
        if model.final_proj is not None:
            names[f"final_proj.{p}"] = f"final_proj.{p}"
        for i in range(spec.layers):
            hf, fs = f"encoder.layers.{i}", f"encoder.layers.{i}"
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                names[f"{hf}.attention.{proj}.{p}"] = f"{fs}.self_attn.{proj}.{p}"
            names[f"{hf}.layer_norm.{p}"] = f"{fs}.self_attn_layer_norm.{p}"
            names[f"{hf}.feed_forward.intermediate_dense.{p}"] = f"{fs}.fc1.{p}"
            names[f"{hf}.feed_forward.output_dense.{p}"] = f"{fs}.fc2.{p}"
            names[f"{hf}.final_layer_norm.{p}"] = f"{fs}.final_layer_norm.{p}"
    # transformers >= 4.3x registers weight norm as a parametrization; older releases as weight_g / weight_v.
    conv = model.encoder.pos_conv_embed.conv
    if hasattr(conv, "parametrizations"):
        g_name, v_name = "parametrizations.weight.original0", "parametrizations.weight.original1"
    else:
        g_name, v_name = "weight_g", "weight_v"
    del names["encoder.pos_conv_embed.conv.weight"]
    names[f"encoder.pos_conv_embed.conv.{g_name}"] = "encoder.pos_conv.0.weight_g"
    names[f"encoder.pos_conv_embed.conv.{v_name}"] = "encoder.pos_conv.0.weight_v"

    conv_dim = spec.conv_layers[-1][0]
    if conv_dim == spec.dim and "post_extract_proj.weight" not in state:
        # fairseq has no post_extract_proj when the conv features already have the model's width.
        state = {
            **state,
            "post_extract_proj.weight": torch.eye(conv_dim),
            "post_extract_proj.bias": torch.zeros(conv_dim),
        }
    missing = [fs for fs in names.values() if fs not in state]
    if missing:
        raise ModelError(f"{path}: missing key {missing[0]!r} ({len(missing)} missing in all)", _FIX_TRUNC)
    used = set(names.values())
    unknown = [k for k in state if k not in used and not k.startswith(_DROPPED_PREFIXES)]
    if unknown:
        raise ModelError(f"{path}: unexpected key {unknown[0]!r}: not a plain HuBERT/ContentVec checkpoint", _FIX_KIND)
    return {hf: state[fs] for hf, fs in names.items()}
