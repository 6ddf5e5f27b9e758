"""The CUDA-graph backend: a fixed-shape step captured once, replayed every block.

Following torch's documented recipe (torch.cuda.graphs, "CUDA Graphs" in the CUDA semantics notes): the step
is warmed up on a side stream (cuDNN/cuBLAS pick their algorithms and the caching allocator settles), then
captured with `torch.cuda.graph` into a private memory pool, reading static input buffers and writing static
output tensors. Each call copies the new inputs into the static buffers and replays the graph: one launch
instead of hundreds of kernel launches, no Python per layer. Before the capture some layers are put in forms that
run faster as GPU kernels (rtvc.backends.gpu_forms; the same function, the same weights). The outputs are the
runner's static buffers, valid until its next call (the StepRunner contract); with the "own-stream" form the
replay runs on the runner's own stream, which the current stream then waits for, and the next call waits for
nothing on the current stream: its outputs must have been read by then, as the voice reads them (to the host, a
copy the host waits for). A capture failure (an op that synchronises with the host, a CPU tensor inside the step)
is a ModelError naming the step.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch

from rtvc.backends import gpu_forms, streams
from rtvc.backends.base import TensorSpec
from rtvc.errors import ModelError, words

WARMUP = 3  # eager runs on the side stream before capture (torch's example uses 3)
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64, "int32": torch.int32}


_FLAGS = threading.Lock()  # cuDNN's flags are the process's: one runner at a time sets and restores them


@contextmanager
def _fastest_convolutions():
    """cuDNN's benchmark mode, the other flags as they are. A step's shapes never change, so its warm-up times each
    convolution's algorithms once and the capture records the fastest (the heuristic alone chose a slow implicit
    GEMM for the 1-D convolutions: most of a block's GPU time on an H200, in fp16 and fp32 alike). The flags are
    global: two runners made at once on two threads (a bench, two loads) restored them out of order and could leave
    benchmark mode on for good, so they take turns."""
    cudnn = torch.backends.cudnn
    flags = {"enabled": cudnn.enabled, "deterministic": cudnn.deterministic, "allow_tf32": cudnn.allow_tf32}
    with _FLAGS, cudnn.flags(benchmark=True, **flags):
        yield


class CudaGraphRunner:
    def __init__(self, name: str, module: torch.nn.Module, device: str = "cuda", pool=None, forms=None):
        if not torch.cuda.is_available():
            raise ModelError(f"step '{name}': CUDA graphs need a CUDA device; torch sees none", "use backend 'eager'")
        self.name = name
        self.inputs: tuple[TensorSpec, ...] = module.inputs
        self.outputs: tuple[TensorSpec, ...] = module.outputs
        self.device = torch.device(device)
        self.forms = gpu_forms.DEFAULT_FORMS if forms is None else forms  # (None: read now, so a bench can set them)
        # on the device first: a form that needs its own weight layout (channels-last) makes that copy there
        self.module = gpu_forms.rewrite(module.to(self.device).eval(), self.forms).eval()
        self._static_in = [torch.zeros(s.shape, dtype=_DTYPES[s.dtype], device=self.device) for s in self.inputs]
        self._seed_inputs()
        self.graph = torch.cuda.CUDAGraph()
        try:  # the eager warm-up first: an error there (out of memory, a dtype) is the step's, not the capture's
            with streams.held(self.device) as side:  # (a stream no replay of a playing voice is on)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with _fastest_convolutions(), torch.cuda.stream(side), torch.no_grad():
                    for _ in range(WARMUP):
                        self.module(*self._static_in)
                torch.cuda.current_stream(self.device).wait_stream(side)
        except Exception as e:
            if "inductor" in self.forms:  # (the compile happens at the first call: here)
                raise ModelError(
                    f"step '{name}': torch.compile failed ({words(e)})",
                    "remove compile = true from the profile's [model] table; RTVC_TRACEBACK=1 prints the trace",
                ) from e
            raise ModelError(
                f"step '{name}' failed on {self.device} before its CUDA graph capture ({words(e)})",
                "backend = 'eager' runs the same step without the capture; RTVC_TRACEBACK=1 prints the trace",
            ) from e
        try:
            # thread_local: a voice is loaded (and captured) on a control thread while the worker may be running
            # another voice on this GPU; "global" would forbid that work (and fail it) for the capture's length
            # on a stream of its own too: torch's default capture stream is one of its pool, which an own-stream
            # runner of the playing voice may have been handed
            with (
                streams.held(self.device) as capture,
                _fastest_convolutions(),
                torch.cuda.graph(self.graph, pool=pool, stream=capture, capture_error_mode="thread_local"),
                torch.no_grad(),
            ):
                out = self.module(*self._static_in)  # (the algorithms the warm-up chose: no timing in the capture)
            torch.cuda.synchronize(self.device)
        except Exception as e:  # torch raises RuntimeError/AssertionError from capture; name the step either way
            raise ModelError(
                f"CUDA graph capture of step '{name}' failed ({words(e)})",
                "run the voice with backend = 'eager' on device = 'cuda' and report this step with the trace that "
                "RTVC_TRACEBACK=1 prints",
            ) from e
        self._static_out = list(out) if isinstance(out, tuple) else [out]
        # "own-stream": replayed on a stream of its own, so a step queued after another that it does not depend on
        # (the voice's F0 after its content: both read the block's audio) runs beside it on the GPU
        self.stream = streams.draw(self.device, owner=self) if gpu_forms.OWN_STREAM in self.forms else None

    def _seed_inputs(self) -> None:
        """Valid values for the warm-up (speaker 0, pitch id 1 = unvoiced, small noise): indices must be in range."""
        for spec, t in zip(self.inputs, self._static_in, strict=True):
            if spec.dtype.startswith("int"):
                t.fill_(1 if spec.name == "pitch" else 0)
            else:
                t.normal_(0.0, 0.1)

    def __call__(self, **inputs) -> dict:
        if self.stream is None:
            self._replay(inputs)
        else:
            # the inputs come from the host and the last replay's outputs were read (the caller copied them to
            # the host): nothing on the current stream to wait for. Its own stream keeps this replay after the
            # last one; the current stream waits for it before anything there reads the outputs. An input on the
            # GPU may still be in the making on the current stream: then this replay waits for it
            current = torch.cuda.current_stream(self.device)
            if any(isinstance(x, torch.Tensor) and x.is_cuda for x in inputs.values()):
                self.stream.wait_stream(current)
            with torch.cuda.stream(self.stream):
                self._replay(inputs)
            current.wait_stream(self.stream)
        return {s.name: t for s, t in zip(self.outputs, self._static_out, strict=True)}

    def _replay(self, inputs: dict) -> None:
        for spec, buf in zip(self.inputs, self._static_in, strict=True):
            buf.copy_(torch.as_tensor(inputs[spec.name]).reshape(spec.shape), non_blocking=True)
        self.graph.replay()


def graph_vs_eager(name: str, module: torch.nn.Module, reference: torch.nn.Module, seed=7, forms=None):
    """Relative L2 between a step captured as a CUDA graph (its layers in `forms`, default: the backend's) and
    `reference` (the same step, fp32, plain layers) run eager on CUDA, on in-range random inputs; the graph is
    replayed twice (a replay must read the new inputs). Both sides without TF32: cuDNN convolutions use it by
    default (matmuls do not), so a form that turns a convolution into a matmul would otherwise be measured
    against the reference's own TF32 rounding (4e-4 on an H200), not against fp32."""
    from rtvc.backends.eager import EagerRunner
    from rtvc.rvc.steps import example_inputs

    feed = dict(zip((s.name for s in module.inputs), example_inputs(module, seed=seed), strict=True))
    first = module.outputs[0].name
    cudnn = torch.backends.cudnn
    with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                     allow_tf32=False):  # fmt: skip
        ref = EagerRunner(name, reference, "cuda")(**feed)[first].double()
        graph = CudaGraphRunner(name, module, "cuda", forms=forms)
        for _ in range(2):
            got = graph(**feed)[first].double()
            torch.cuda.synchronize(graph.device)  # (read before the next call: an own-stream replay waits for nothing)
    return float((got - ref).norm() / ref.norm())
