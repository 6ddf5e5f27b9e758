"""The few CUDA runtime calls the TensorRT runner makes, through `cuda.bindings.runtime` (cuda-bindings).

Every call returns a tuple whose first item is a cudaError_t; `check` turns anything but cudaSuccess into an
RtvcError that names the call, the CUDA error and what it was for. A private stream and a graph captured
on it are the runner's own, released by `close()`.
"""

from __future__ import annotations

from typing import Any

from rtvc.errors import RtvcError

INSTALL = 'pip install -e ".[gpu]" (cuda-bindings; its major version should match torch.version.cuda)'


def runtime() -> Any:
    try:
        from cuda.bindings import runtime as rt
    except ImportError as e:
        raise RtvcError(f"cuda-bindings is not installed ({e})", INSTALL) from None
    return rt


def check(result: tuple, call: str, what: str) -> Any:
    """The call's value(s) after its error code; RtvcError naming `call` unless it returned cudaSuccess."""
    rt = runtime()
    err, *rest = result
    if err != rt.cudaError_t.cudaSuccess:
        ok, name = rt.cudaGetErrorName(err)
        label = name.decode() if ok == rt.cudaError_t.cudaSuccess else str(err)
        raise RtvcError(f"{what}: {call} failed with {label}", _fix_for(label))
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else tuple(rest)


def _fix_for(error: str) -> str:
    """What to do about a CUDA runtime error, by its name (cudaGetErrorName)."""
    if error in ("cudaErrorInsufficientDriver", "cudaErrorCompatNotSupportedOnDevice"):
        return (
            "no NVIDIA driver, or one older than these CUDA bindings need (`rtvc doctor` shows its CUDA version): "
            f"install or update it, or {INSTALL}"
        )
    if error in ("cudaErrorNoDevice", "cudaErrorInvalidDevice", "cudaErrorDevicesUnavailable"):
        return "no usable GPU: check nvidia-smi and CUDA_VISIBLE_DEVICES; run `rtvc doctor`"
    if error == "cudaErrorMemoryAllocation":
        return "the GPU is out of memory: close what else uses it (nvidia-smi lists it), or use fewer voices"
    if error.startswith("cudaErrorStreamCapture") or error == "cudaErrorGraphExecUpdateFailure":
        return "this engine cannot be captured as a CUDA graph: report it with `rtvc doctor`'s output"
    return "check that the GPU is visible (nvidia-smi) and not out of memory; run `rtvc doctor`"


class GraphStream:
    """A private non-blocking stream and, once captured, one CUDA graph replayed on it.

    Non-blocking: the stream does not synchronise with the legacy default stream, so work other code puts
    on stream 0 never serialises with ours. Capture is thread-local: other threads of the daemon may use
    CUDA while this thread captures (global mode would make their unsafe calls fail the capture)."""

    def __init__(self, what: str):
        self.rt = runtime()
        self.what = what
        self.stream = check(
            self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags", what
        )
        self.graph = None
        self.exec = None

    @property
    def handle(self) -> int:
        """The stream as an integer, as TensorRT's execute_async_v3 and torch.cuda.ExternalStream take it."""
        return int(self.stream)

    def capture(self, enqueue) -> None:
        """Record what `enqueue()` puts on the stream into a graph (nothing runs during capture)."""
        rt = self.rt
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        check(rt.cudaStreamBeginCapture(self.stream, mode), "cudaStreamBeginCapture", self.what)
        try:
            enqueue()
        except BaseException:
            # end the capture, or the stream stays unusable, and drop what it recorded; a failed enqueue has
            # usually invalidated it, so ending it fails too: the enqueue's error is the one that says why
            err, graph = rt.cudaStreamEndCapture(self.stream)
            if err == rt.cudaError_t.cudaSuccess:
                rt.cudaGraphDestroy(graph)
            raise
        self.graph = check(rt.cudaStreamEndCapture(self.stream), "cudaStreamEndCapture", self.what)
        self.exec = check(rt.cudaGraphInstantiate(self.graph, 0), "cudaGraphInstantiate", self.what)

    def launch(self) -> None:
        check(self.rt.cudaGraphLaunch(self.exec, self.stream), "cudaGraphLaunch", self.what)

    def synchronize(self) -> None:
        check(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize", self.what)

    def __del__(self) -> None:
        # a runner dropped without close() (a voice replaced, a failed load) still gives its stream and graph back
        try:
            if self.stream is not None:
                self.synchronize()
            self.close()
        except Exception:  # (at exit, or with a broken context, there is nothing left to tell)
            pass

    def close(self) -> None:
        rt = self.rt
        if self.exec is not None:
            check(rt.cudaGraphExecDestroy(self.exec), "cudaGraphExecDestroy", self.what)
            self.exec = None
        if self.graph is not None:
            check(rt.cudaGraphDestroy(self.graph), "cudaGraphDestroy", self.what)
            self.graph = None
        if self.stream is not None:
            check(rt.cudaStreamDestroy(self.stream), "cudaStreamDestroy", self.what)
            self.stream = None


def driver_version() -> int:
    """The CUDA driver's version as CUDA encodes it (12040 = 12.4); 0 when no driver is loaded."""
    rt = runtime()
    return check(rt.cudaDriverGetVersion(), "cudaDriverGetVersion", "the CUDA driver version")
