"""ONNX export of a voice's fixed-shape steps (rtvc.rvc.steps), the input of `rtvc build` (TensorRT).

One file per step, `<step>-<precision>.onnx`, exported at the stream's fixed shapes (no dynamic axes) with
torch's ONNX exporter (torch.export based, `dynamo=True`, which needs the onnxscript package), opset >= 17.
Inputs and outputs keep the step's names and are float32/int64 at both precisions: an fp16 export holds
fp16 weights and casts at its edges and around its fp32 islands (see rtvc.rvc.steps), so TensorRT builds it
strongly typed and onnxruntime / the tests feed both variants the same arrays.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rtvc.backends.base import PRECISIONS, ExportedStep, StreamShape
from rtvc.errors import ModelError, words

if TYPE_CHECKING:
    from rtvc.voices.rvc import RvcVoice

MIN_OPSET = 17

# ONNX operators (default domain) that TensorRT 10's ONNX parser does not take (onnx-tensorrt, docs/operators.md,
# "Operator Support Matrix", rows marked N). An exported step holding one would fail in `rtvc build` on the GPU
# machine, after minutes; the export names it at once. DFT/STFT are why the F0 front ends use a conv (f0_steps).
# fmt: off
TENSORRT_UNSUPPORTED = frozenset((
    "AffineGrid", "Bernoulli", "BitShift", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "BlackmanWindow",
    "Col2Im", "CenterCropPad", "Compress", "ConcatFromSequence", "ConvInteger", "DFT", "Det",
    "DynamicQuantizeLinear", "HammingWindow", "HannWindow", "ImageDecoder", "MatMulInteger", "MaxRoiPool",
    "MaxUnpool", "MelWeightMatrix", "Multinomial", "NegativeLogLikelihoodLoss", "Optional", "OptionalGetElement",
    "OptionalHasElement", "QLinearConv", "QLinearMatMul", "RegexFullMatch", "STFT", "SequenceAt",
    "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength", "SequenceMap",
    "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringConcat", "StringNormalizer", "StringSplit",
    "TfIdfVectorizer", "Unique",
))
# fmt: on


def tensorrt_refuses(path: Path) -> list[str]:
    """The operators of the ONNX file at `path` that TensorRT's parser does not take, sorted (none: [])."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    # the model's local functions (an exporter may keep some): TensorRT inlines them, so their bodies count
    local = {(fn.domain, fn.name): fn for fn in model.functions}
    bodies, seen, ops = [model.graph.node], set(), set()
    while bodies:  # subgraphs (If / Loop bodies) and function bodies too
        for node in bodies.pop():
            key = (node.domain, node.op_type)
            if key in local:
                if key not in seen:
                    seen.add(key)
                    bodies.append(local[key].node)
            elif node.domain not in ("", "ai.onnx"):
                ops.add(f"{node.domain}::{node.op_type}")
            elif node.op_type in TENSORRT_UNSUPPORTED:
                ops.add(node.op_type)
            bodies += [a.g.node for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    return sorted(ops)


def export_step(module: torch.nn.Module, path: Path, opset: int = MIN_OPSET) -> None:
    """Export one step module (with `.inputs` / `.outputs` TensorSpecs) at its fixed shapes to `path`."""
    from rtvc.rvc.steps import example_inputs

    if opset < MIN_OPSET:
        raise ModelError(f"ONNX opset {opset} is too old for the steps", f"use opset >= {MIN_OPSET}")
    try:
        import onnxscript  # noqa: F401  (torch's exporter needs it; say so here rather than deep inside torch)
    except ImportError as e:
        raise ModelError("ONNX export needs the onnx and onnxscript packages", 'pip install -e ".[rvc]"') from e
    module.eval()
    args = example_inputs(module)
    path.parent.mkdir(parents=True, exist_ok=True)
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [q.level for q in quiet]
    try:
        for q in quiet:
            q.setLevel(logging.ERROR)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                opset_version=opset,
                input_names=[s.name for s in module.inputs],
                output_names=[s.name for s in module.outputs],
                external_data=False,
                verbose=False,
            )
        program.save(str(path))
        refused = tensorrt_refuses(path)
    except Exception as e:  # torch.export / onnxscript raise many kinds; the step's name is what a user needs
        raise ModelError(
            f"ONNX export of step '{getattr(module, 'step_name', type(module).__name__)}' failed ({words(e)})",
            "report it with the voice file; the eager and cuda-graph backends do not need ONNX",
        ) from e
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    if refused:
        raise ModelError(
            f"ONNX export of step '{getattr(module, 'step_name', type(module).__name__)}' holds operators TensorRT "
            f"cannot parse: {', '.join(refused)}",
            "report it with the voice file; backend = 'cuda-graph' runs the step without TensorRT",
        )


def export_steps(
    voice: RvcVoice, shape: StreamShape, out_dir: Path, precision: str, opset: int = MIN_OPSET
) -> list[ExportedStep]:
    """Each of the voice's steps for `shape` as `<out_dir>/<step>-<precision>.onnx`."""
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}", f"choose one of: {', '.join(PRECISIONS)}")
    out_dir = Path(out_dir)
    exported = []
    for name, module in voice.steps(shape, precision).items():
        module.step_name = name
        path = out_dir / f"{name}-{precision}.onnx"
        export_step(module, path, opset)
        exported.append(ExportedStep(name, path, precision, module.inputs, module.outputs))
    return exported
