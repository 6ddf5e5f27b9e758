"""Random-weight HuBERT checkpoints in fairseq's real file layout, for tests and benchmarks.

Nothing downloads weights, so tests make their own content encoders: the real architecture (HuBERT base at full
size, ~94.7M parameters) with random weights, written the way fairseq writes `hubert_base.pt`:
`{"args": Namespace | None, "cfg": dict (absent with args), "model": state_dict, "optimizer_history", ...}`,
fairseq key names, the positional conv stored as weight norm (`encoder.pos_conv.0.weight_g` / `weight_v`, norm
over dim 2) and the pretraining-only keys (`mask_emb`, `label_embs_concat`) a loader must drop.

Initialisation follows fairseq's where it matters for plausible activations: kaiming-normal conv extractor, the
positional conv's std sqrt(4 / (kernel * dim)), normal(0, 0.02) linears (init_bert_params). Biases are small
random values rather than fairseq's zeros, so a test that maps a bias to the wrong place sees it. Norms are 1/0;
`norm_jitter` perturbs them so that swapped norms show too.
"""

from __future__ import annotations

import argparse
import math
from collections import OrderedDict
from pathlib import Path

import torch


def write_fairseq_hubert(
    path: str | Path,
    *,
    seed: int = 0,
    layers: int = 12,
    dim: int = 768,
    heads: int = 12,
    ffn: int = 3072,
    final_dim: int = 256,
    with_args_namespace: bool = True,
    conv_dim: int = 512,
    conv_pos: int = 128,
    conv_pos_groups: int = 16,
    num_classes: int = 504,
    normalize: bool = False,
    norm_jitter: float = 0.0,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a fairseq HuBERT checkpoint with random weights; returns `path`.

    Defaults are HuBERT base / ContentVec (12 layers, 768-d, 12 heads, 3072 FFN, final_proj to 256, 504 label
    embeddings = 500 clusters + 4 specials). `with_args_namespace` writes the old fairseq layout (a flat
    argparse.Namespace in `args`); otherwise `args` is None and `cfg` is the hydra layout as a plain dict.
    `dtype=torch.float16` mimics RVC's fp16 `hubert_base.pt`.
    """
    g = torch.Generator().manual_seed(seed)

    def normal(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    def norm(prefix: str, n: int) -> None:
        sd[f"{prefix}.weight"] = 1.0 + normal(n, std=norm_jitter)
        sd[f"{prefix}.bias"] = normal(n, std=norm_jitter)

    def linear(prefix: str, n_out: int, n_in: int, std: float = 0.02) -> None:
        sd[f"{prefix}.weight"] = normal(n_out, n_in, std=std)
        sd[f"{prefix}.bias"] = normal(n_out, std=0.02)

    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    conv_layers = [(conv_dim, 10, 5)] + [(conv_dim, 3, 2)] * 4 + [(conv_dim, 2, 2)] * 2  # stride 320 at 16 kHz
    n_in = 1
    for i, (n_out, kernel, _) in enumerate(conv_layers):
        sd[f"feature_extractor.conv_layers.{i}.0.weight"] = normal(
            n_out, n_in, kernel, std=math.sqrt(2 / (n_in * kernel))
        )
        if i == 0:  # extractor_mode "default": one GroupNorm (a group per channel) in the first block
            norm(f"feature_extractor.conv_layers.{i}.2", n_out)
        n_in = n_out
    sd["mask_emb"] = torch.rand(dim, generator=g)
    if conv_dim != dim:  # fairseq only has post_extract_proj when the widths differ
        linear("post_extract_proj", dim, conv_dim)
    v = normal(dim, dim // conv_pos_groups, conv_pos, std=math.sqrt(4 / (conv_pos * dim)))
    sd["encoder.pos_conv.0.bias"] = normal(dim, std=0.02)
    # weight = g * v / ||v||, the norm over dims 0 and 1 (weight_norm dim=2): g of shape (1, 1, K). g is ||v||
    # (fairseq's starting point) scaled by 1 +- 10 %, so a loader that ignores g gives different features.
    sd["encoder.pos_conv.0.weight_g"] = v.norm(dim=(0, 1), keepdim=True) * (1.0 + normal(1, 1, conv_pos, std=0.1))
    sd["encoder.pos_conv.0.weight_v"] = v
    for i in range(layers):
        p = f"encoder.layers.{i}"
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            linear(f"{p}.self_attn.{proj}", dim, dim)
        norm(f"{p}.self_attn_layer_norm", dim)
        linear(f"{p}.fc1", ffn, dim)
        linear(f"{p}.fc2", dim, ffn)
        norm(f"{p}.final_layer_norm", dim)
    norm("encoder.layer_norm", dim)
    norm("layer_norm", conv_dim)
    linear("final_proj", final_dim, dim, std=1 / math.sqrt(dim))
    sd["label_embs_concat"] = torch.rand(num_classes, final_dim, generator=g)
    for key, value in sd.items():
        sd[key] = value.to(dtype)

    model_cfg = {
        "_name": "hubert",
        "label_rate": 50,
        "extractor_mode": "default",
        "encoder_layers": layers,
        "encoder_embed_dim": dim,
        "encoder_ffn_embed_dim": ffn,
        "encoder_attention_heads": heads,
        "activation_fn": "gelu",
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.05,
        "final_dim": final_dim,
        "untie_final_proj": False,
        "layer_norm_first": False,
        "conv_feature_layers": f"[({conv_dim},10,5)] + [({conv_dim},3,2)] * 4 + [({conv_dim},2,2)] * 2",
        "conv_bias": False,
        "feature_grad_mult": 0.1,
        "mask_prob": 0.8,
        "conv_pos": conv_pos,
        "conv_pos_groups": conv_pos_groups,
    }
    task_cfg = {
        "_name": "hubert_pretraining",
        "labels": ["km"],
        "label_rate": 50.0,
        "sample_rate": 16000,
        "normalize": normalize,
        "max_sample_size": 250000,
    }
    ckpt: dict = {
        "model": sd,
        "optimizer_history": [{"criterion_name": "HubertCriterion", "optimizer_name": "FairseqAdam", "num_updates": 0}],
        "task_state": {},
        "extra_state": {"metrics": {}, "previous_training_time": 0.0},
        "last_optimizer_state": None,
    }
    if with_args_namespace:
        flat = {k: v for k, v in {**model_cfg, **task_cfg}.items() if k != "_name"}
        ckpt["args"] = argparse.Namespace(arch="hubert", task="hubert_pretraining", **flat)
    else:
        ckpt["args"] = None
        ckpt["cfg"] = {"_name": None, "common": {"fp16": True, "seed": 1337}, "model": model_cfg, "task": task_cfg}
    path = Path(path)
    torch.save(ckpt, path)
    return path
