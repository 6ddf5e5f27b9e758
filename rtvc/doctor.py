"""`rtvc doctor`: what this machine has for rtvc, and how to install what it lacks.

One line per check: `ok` or `missing`, what was found, and for a missing piece the command that fixes it.
It only reports: nothing here changes the machine, starts a JACK server or touches the GPU beyond asking torch for
its name. Optional pieces (GPU, TensorRT, JACK) say "optional" in their fix. The exit code is 2 where a line found
what `rtvc run` would refuse to start with (the start profile, the sound devices or rate config.toml names), else 0.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TextIO

RVC_EXTRA = 'pip install -e ".[rvc]"'
GPU_EXTRA = 'pip install -e ".[gpu]"'
LAST_TORCHAUDIO = (2, 11)  # torchaudio's last release; its compiled part is built for one torch release


@dataclass(frozen=True)
class Check:
    ok: bool
    name: str
    found: str
    fix: str = ""
    blocks: bool = False  # `rtvc run` would not start with what was found: doctor's exit code says so

    def line(self) -> str:
        text = f"{'ok' if self.ok else 'missing':<8} {self.name:<14} {self.found}"
        return text + (f"  -> {self.fix}" if self.fix and not self.ok else "")


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _package(name: str, dist: str, fix: str) -> Check:
    v = _version(dist)
    return Check(v is not None, name, v or "not installed", fix)


def check_python() -> list[Check]:
    import numpy

    import rtvc

    ok = sys.version_info >= (3, 11)
    return [
        Check(ok, "python", f"{platform.python_version()} ({sys.executable})", "rtvc needs Python 3.11 or newer"),
        Check(True, "rtvc", rtvc.__version__),
        Check(True, "numpy", numpy.__version__),
    ]


def check_torch() -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check(False, "torch", "not installed", f"{RVC_EXTRA} (neural voices)")]
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    out = [
        Check(True, "torch", f"{torch.__version__} ({build})"),
        check_torchaudio(torch.__version__),
    ]
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        out.append(Check(True, "cuda", f"{torch.cuda.device_count()} device(s) visible to torch"))
        out.append(Check(True, "gpu", f"{torch.cuda.get_device_name()} (compute capability {major}.{minor})"))
    else:
        fix = "optional: an NVIDIA GPU with its driver (nvidia-smi must list it); rtvc runs on the CPU without"
        if not torch.version.cuda:
            fix = "optional: a CUDA build of torch (pip install torch from the CUDA index) and an NVIDIA GPU"
        out.append(Check(False, "cuda", "no CUDA device visible to torch", fix))
    return out


def check_torchaudio(torch_version: str) -> Check:
    """torchaudio installed and loadable against this torch: its compiled part is built for one torch release,
    and a mismatched pair fails at import (speechbrain, torchfcpe and torchcrepe import it)."""
    v = _version("torchaudio")
    if v is None:
        return Check(False, "torchaudio", "not installed", RVC_EXTRA)
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError, RuntimeError) as e:
        said = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        pair = torch_version.split("+")[0]
        major_minor = tuple(int(p) for p in pair.split(".")[:2] if p.isdigit())
        fix = f"pip install torchaudio=={pair} (the release built for this torch)"
        if major_minor > LAST_TORCHAUDIO:  # torchaudio's releases ended with 2.11
            fix = "pip install torch==2.11.0 torchaudio==2.11.0 (torchaudio's last release is 2.11)"
        return Check(False, "torchaudio", f"{v} does not load with torch {torch_version} ({said})", fix)
    return Check(True, "torchaudio", v)


def check_driver() -> list[Check]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [Check(False, "driver", "nvidia-smi not found", "optional: install the NVIDIA driver for GPU voices")]
    try:
        q = ["--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"]
        res = subprocess.run([smi, *q], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return [Check(False, "driver", "nvidia-smi did not answer in 10 s", "check the NVIDIA driver (dmesg)")]
    if res.returncode != 0:
        said = (res.stdout + res.stderr).strip().splitlines()
        return [
            Check(False, "driver", f"nvidia-smi failed: {said[0] if said else res.returncode}", "reinstall the driver")
        ]
    gpus = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
    return [Check(True, "driver", "; ".join(gpus) + " (name, driver, compute capability)")]


def _torch_cuda_major() -> int:
    """The CUDA major torch was built for (0: unknown, or a CPU build)."""
    try:
        import torch

        return int((torch.version.cuda or "0").split(".")[0])
    except (ImportError, ValueError):
        return 0


def check_cuda_bindings() -> list[Check]:
    v = _version("cuda-bindings") or _version("cuda-python")
    if v is None:
        return [Check(False, "cuda-bindings", "not installed", f"optional, for TensorRT: {GPU_EXTRA}")]
    from rtvc.backends.cudart import driver_version

    try:
        d = driver_version()
    except Exception as e:  # the bindings report a broken driver install as an error; show it as found
        return [Check(False, "cuda-bindings", f"{v}, driver query failed: {e}", "check the NVIDIA driver")]
    driver = f"CUDA driver {d // 1000}.{d % 1000 // 10}" if d else "no CUDA driver loaded"
    major = int(v.split(".")[0]) if v.split(".")[0].isdigit() else 0
    if d and major > d // 1000:  # (the runtime the bindings load is newer than the driver: every call fails)
        torch_major = _torch_cuda_major()
        if torch_major and torch_major > d // 1000:  # torch needs the newer driver too: that is the fix
            fix = f"update the NVIDIA driver to one for CUDA {torch_major} (torch is built for it as well)"
        else:
            fix = f"pip install 'cuda-bindings=={d // 1000}.*' (the driver's CUDA major, as torch's), or a newer driver"
        return [Check(False, "cuda-bindings", f"{v} needs a CUDA {major} driver; this one is {driver}", fix)]
    return [Check(True, "cuda-bindings", f"{v} ({driver})")]


def check_tensorrt() -> list[Check]:
    from rtvc.backends.tensorrt import SUPPORTED, failed_import, install_hint

    try:
        import tensorrt as trt
    except (ImportError, OSError) as e:
        broken = failed_import(e)
        if broken:  # (installed, and its native libraries do not load: installing it again is not the fix)
            return [Check(False, "tensorrt", broken[0], broken[1])]
        return [Check(False, "tensorrt", f"absent ({type(e).__name__})", f"optional, for engines: {install_hint()}")]
    ok = int(trt.__version__.split(".")[0]) in SUPPORTED
    return [Check(ok, "tensorrt", trt.__version__, f"rtvc supports TensorRT 10.x and 11.x: {install_hint()}")]


def check_compile() -> list[Check]:
    """What a profile's compile = true needs (rtvc.backends.gpu_forms): Triton and a C compiler."""
    from rtvc.backends.gpu_forms import compile_missing

    missing = compile_missing()
    if missing:
        return [Check(False, "compile", missing, "optional, for compile = true in a cuda-graph profile")]
    return [Check(True, "compile", f"triton {_version('triton') or '(version unknown)'}, a C compiler")]


def check_onnx() -> list[Check]:
    return [
        _package("onnx", "onnx", f"optional, for `rtvc build`: {RVC_EXTRA}"),
        _package("onnxruntime", "onnxruntime", 'optional, for the export tests: pip install -e ".[test]"'),
    ]


def check_engines(folder: Path) -> list[Check]:
    from rtvc.backends.manifest import Manifest
    from rtvc.errors import RtvcError

    if folder.exists() and not folder.is_dir():  # (the manifest's load would find nothing, and say "none")
        return [Check(False, "engines", f"{folder} is not a folder", "move it away: rtvc build makes the folder")]
    try:
        manifest = Manifest.load(folder)
    except RtvcError as e:
        return [Check(False, "engines", e.what, e.fix)]
    entries = manifest.entries
    if not entries:
        fix = 'optional, only for voices with backend = "tensorrt" (an NVIDIA GPU): rtvc build PROFILE'
        return [Check(False, "engines", f"none in {folder}", fix)]
    try:
        import torch

        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    except ImportError:
        gpu = None
    where = f"{len(entries)} in {folder}"
    if gpu is None:
        return [Check(False, "engines", f"{where}, none usable: no GPU", "they run on the GPU they were built on")]
    try:  # an engine runs on the GPU model, compute capability and TensorRT version it was built with
        from rtvc.backends.tensorrt import current_target, import_tensorrt

        target = current_target(import_tensorrt())
    except Exception as e:  # (TensorRT absent or broken: check_tensorrt says why and how to install it)
        mine = [x for x in entries if x.gpu == gpu]
        found = f"{where}, {len(mine)} built for {gpu}, none usable without TensorRT ({getattr(e, 'what', e)})"
        return [Check(False, "engines", found, "install TensorRT (see the tensorrt line)")]
    built = manifest.for_target(target)
    other = len([x for x in entries if x.gpu == gpu]) - len(built)
    hashes: dict[str, str] = {}
    problems = {id(e): manifest.problem(e, hashes) for e in built}  # (what a voice's load would refuse them for)
    mine = [e for e in built if not problems[id(e)]]
    found = f"{where}, {len(mine)} usable on {gpu} with TensorRT {target.tensorrt}: " + ", ".join(
        sorted({f"{e.step}/{e.precision}" for e in mine})
    )
    found = found.rstrip(": ") + (f"; {other} built with another TensorRT (stale)" if other else "")
    bad = [f"{e.step}/{e.precision} ({problems[id(e)]})" for e in built if problems[id(e)]]
    if bad:
        found += f"; {len(bad)} not usable: " + ", ".join(bad)
    fix = "rtvc build PROFILE on this machine"
    if bad or other:  # (Manifest.record drops them)
        fix += " (it replaces the stale engines of its model files, at every block size)"
    if any(p.endswith(" gone") and not p.startswith("engine file") for p in problems.values()):  # (a model file)
        fix += f"; engines of model files gone: remove them from {folder} with the manifest, then build again"
    return [Check(bool(mine) and not bad, "engines", found, fix)]


def check_core() -> list[Check]:
    """rtvc's compiled audio callbacks (rtvc/_rt.c): a checkout pip has not built lacks them."""
    from rtvc.errors import RtvcError

    try:
        from rtvc import native
    except RtvcError as e:
        return [Check(False, "audio core", e.what, e.fix)]
    return [Check(True, "audio core", str(native.PATH))]


def check_audio() -> list[Check]:
    from rtvc.audio.devices import portaudio
    from rtvc.errors import DeviceError

    try:  # (the package absent, or installed without PortAudio's shared library: each named with its install)
        sd = portaudio()
    except DeviceError as e:
        return [Check(False, "portaudio", e.what, e.fix)]
    apis = ", ".join(h["name"] for h in sd.query_hostapis()) or "none"
    return [Check(True, "portaudio", f"{sd.get_portaudio_version()[1]}; host APIs: {apis}")]


def check_devices(audio) -> list[Check]:
    """The sound devices config.toml's [audio] names (the defaults where it names none), as `rtvc run` would choose
    them: a microphone the system does not show is found here, not at the stream's start."""
    from rtvc.errors import DeviceError, RtvcError

    try:
        from rtvc.audio.io import choose_devices
    except RtvcError:  # (the audio core is not built: its own line says so and how to build it)
        return []
    try:
        choice = choose_devices(audio)
    except DeviceError as e:
        return [Check(False, "sound devices", e.what, e.fix, blocks=_stops_a_run(audio))]
    said = f"input {choice.input.title()}, output {choice.output.title()}"
    if choice.monitor is not None:
        said += f", monitor {choice.monitor.title()}"
    moved = [d.name for d in (choice.input, choice.output, choice.monitor) if d is not None and d.opened_by_move]
    if moved:  # (rtvc.audio.devices: _reach_by_move)
        said += (
            f" ('{', '.join(dict.fromkeys(moved))}': PortAudio's JACK host API reads the name as a pattern and cannot"
            " open it itself; rtvc opens its streams on another JACK device and moves its ports to it)"
        )
    return [Check(True, "sound devices", f"{said} at {audio.samplerate} Hz"), *check_quantum(choice, audio)]


def check_profile(cfg) -> list[Check]:
    """The start profile (voice.profile) loaded as `rtvc run` loads it, short of reading its model files: its file,
    its values, its model files there, a backend this machine can run. `rtvc run` refuses one that does not load;
    `rtvc serve` comes up with no voice, its output silent until a voice is picked: either way a problem."""
    from rtvc.errors import RtvcError
    from rtvc.profiles import load_profile, profiles_dir, unusable  # (not rtvc.run's: doctor runs without the core)

    try:
        profile = load_profile(cfg.voice.profile, profiles_dir(cfg))
        why, fix = unusable(profile), ""
    except RtvcError as e:
        why, fix = e.what, e.fix
    if why:
        said = f"voice.profile '{cfg.voice.profile}' does not load: {why}"
        then = (
            "until then rtvc run --headless refuses to start, and rtvc serve (and rtvc run with its UI) plays "
            "silence until a voice is picked"
        )
        fix = f"{fix}; {then}" if fix else then
        return [Check(False, "profile", said, fix, blocks=True)]
    return [Check(True, "profile", f"'{profile.name}' ({profile.path}): {profile.label}")]


def gpu_needs(cfg) -> tuple[str, set[str]]:
    """Which of the optional GPU lines the start profile needs, and the words for it: "optional ... rtvc runs on the
    CPU without" stood beside a config whose voice is a TensorRT one on the GPU (a review)."""
    from rtvc.errors import RtvcError
    from rtvc.profiles import load_profile, profiles_dir

    try:
        profile = load_profile(cfg.voice.profile, profiles_dir(cfg))
    except RtvcError:
        return "", set()
    model = profile.model
    if model is None or getattr(model, "device", "cpu") != "cuda":
        return "", set()
    needs = {"cuda", "driver"}
    if model.backend == "tensorrt":
        needs |= {"cuda-bindings", "tensorrt", "onnx", "engines"}
    if getattr(model, "compile", False):
        needs.add("compile")
    return f"needed by voice.profile '{profile.name}' (backend = {model.backend}, device = cuda)", needs


def needed(check: Check, said: str, profile: str) -> Check:
    """An optional line's fix, said as needed (`said`) by the start profile."""
    if check.ok or not check.fix.startswith("optional"):
        return check
    fix = check.fix.split(": ", 1)[1] if ": " in check.fix else check.fix
    fix = fix.removesuffix("; rtvc runs on the CPU without").replace("rtvc build PROFILE", f"rtvc build {profile}")
    return replace(check, fix=f"{said}: {fix}", blocks=True)


def _stops_a_run(audio) -> bool:
    """Whether `rtvc run` stops on the devices that did not open: no sound devices at all with none named is not an
    error, rtvc runs on the virtual device there (README); a device named, one there that cannot open (at this rate,
    with these channels), or no PortAudio to ask (rtvc run stops on that before any fallback) is."""
    from rtvc.audio.devices import list_devices, names_a_device
    from rtvc.errors import DeviceError

    if names_a_device(audio):
        return True
    try:
        return bool(list_devices())
    except DeviceError:
        return True


def check_quantum(choice, audio) -> list[Check]:
    """Through PipeWire's ALSA plugin, a quantum the user's settings hold above 256 frames costs rtvc a period of
    one quantum on each side (rtvc.audio.pipewire): said, with the shorter way."""
    from rtvc.audio import pipewire

    quantum, key, _ = pipewire.quantum_for((choice.input, choice.output, choice.monitor)) or (0, "", {})
    if not pipewire.sizing(quantum):
        return []
    ms = quantum / audio.samplerate * 1e3
    found = f"quantum held at {quantum} frames or more ({key}): rtvc's ALSA streams take periods of {ms:.1f} ms"
    # (the setting as the user's own files hold it comes back at PipeWire's restart: the command is for now)
    to = "0" if key == "clock.force-quantum" else "256"
    fix = (
        f"optional: lower {key} (for now: pw-metadata -n settings 0 {key} {to}; for good, in the PipeWire config "
        "file that sets it), or run rtvc under pw-jack with --host-api JACK (no ALSA buffer on top)"
    )
    return [Check(False, "pipewire", found, fix)]


def check_jack(audio=None) -> list[Check]:
    """`audio`: config.toml's [audio]; where its host_api asks for JACK, a server is no option but needed."""
    asked = audio is not None and "jack" in audio.host_api.lower()
    need = "needed: config.toml asks for it (audio.host_api)" if asked else "optional"
    lsp = shutil.which("jack_lsp")
    if lsp is None:
        return [Check(False, "jack", "JACK tools not found", f"{need}: sudo apt-get install jackd2", blocks=asked)]
    env = {**os.environ, "JACK_NO_START_SERVER": "1"}  # ask, never start one
    try:
        res = subprocess.run([lsp], capture_output=True, text=True, timeout=5, env=env)
    except subprocess.TimeoutExpired:
        return [Check(False, "jack", "jack_lsp did not answer in 5 s", "restart the JACK server")]
    if res.returncode != 0:
        runtime = os.environ.get("PIPEWIRE_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR") or ""
        if runtime and os.path.exists(os.path.join(runtime, "pipewire-0")) and shutil.which("pw-jack"):
            # (PipeWire runs: its JACK is reached through pw-jack, not a jackd to start)
            fix = (
                f"{need}: rtvc run --virtual-mic (a microphone for calls and OBS, on PipeWire's JACK), or run rtvc "
                "under pw-jack (pw-jack rtvc run --host-api JACK ...)"
            )
            return [Check(False, "jack", "no JACK server for this process (PipeWire runs)", fix, blocks=asked)]
        fix = f"{need}: start one, e.g. `jackd -d alsa -r 48000 -p 256 &` (or QjackCtl), then rtvc run --host-api JACK"
        return [Check(False, "jack", "no JACK server running", fix, blocks=asked)]
    return [Check(True, "jack", f"server running, {len(res.stdout.splitlines())} ports")]


def check_realtime() -> list[Check]:
    """Whether the worker and the callbacks can get real-time scheduling (stream.realtime): tried on a
    throwaway thread, at the callbacks' priority (the higher of the two rtvc asks for)."""
    import resource
    import threading

    from rtvc.priority import CALLBACK_PRIORITY, SUPPORTED, make_realtime

    if not SUPPORTED:
        return [Check(True, "real-time", "not on this OS: the worker runs on the normal scheduler")]
    got: list[str] = []
    t = threading.Thread(target=lambda: got.append(make_realtime(CALLBACK_PRIORITY)), name="rtvc-doctor-probe")
    t.start()
    t.join()
    soft, _hard = resource.getrlimit(resource.RLIMIT_RTPRIO)
    limit = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    if got[0].startswith("real-time"):
        return [Check(True, "real-time", f"SCHED_FIFO allowed (rtprio limit {limit}, uid {os.geteuid()})")]
    return [
        Check(
            False,
            "real-time",
            f"{got[0].removeprefix('normal (').removesuffix(')').split(':')[0]} (rtprio limit {limit})",
            "sudo usermod -aG audio $USER and log in again (an rtprio limit for the group in "
            "/etc/security/limits.d/); without it blocks can run late on a busy machine (README 'Latency')",
        )
    ]


def check_token() -> list[Check]:
    """The token file read as `rtvc token` and `rtvc serve` read it: a file others can read, one that holds no token
    or a folder in its place is refused there, so it is named here with their fix (not "ok", nor "rtvc token makes
    one")."""
    from rtvc.control.auth import read_token, token_path
    from rtvc.errors import RtvcError

    path = token_path()
    if not path.exists() and not path.is_symlink():
        return [Check(False, "control token", f"no {path}", "rtvc token (or rtvc serve) makes one")]
    try:
        read_token(path)
    except RtvcError as e:
        return [Check(False, "control token", e.what, e.fix)]
    except FileNotFoundError:  # (a link to a file that is gone: not one to chown)
        return [Check(False, "control token", f"{path} is a link to nothing", f"rm {path}; rtvc token makes one")]
    except OSError as e:
        fix = f"make it yours (`sudo chown $USER {path}`: a `sudo rtvc` may have made it)"
        return [Check(False, "control token", f"cannot read {path}: {e.strerror or e}", fix)]
    return [Check(True, "control token", str(path))]


def check_service() -> list[Check]:
    """The unit `rtvc service install` wrote, and the files it runs: a config file or a Python deleted (or moved)
    since makes the service fail at each try, every 5 s, with nothing on the screen."""
    from rtvc.service import UNIT, unit_command, unit_path

    path = unit_path()
    if path.is_file():
        try:
            command = unit_command(path.read_text(errors="replace"))
        except OSError as e:
            return [Check(False, "service", f"cannot read {path}: {e.strerror or e}", "make it yours, or remove it")]
        config = command[command.index("--config") + 1] if "--config" in command[:-1] else None
        gone = [f"this Python {command[0]}"] if command and not Path(command[0]).exists() else []
        gone += [f"the config file {config}"] if config is not None and not Path(config).is_file() else []
        if gone:
            were = "which are gone" if len(gone) > 1 else "which is gone"
            found = f"{path} runs rtvc serve with {' and '.join(gone)}, {were}: the service fails at each start"
            fix = (
                "`rtvc service install` again in the folder of your config.toml (or with --config FILE), from the "
                "Python rtvc is installed in; or `rtvc service remove`"
            )
            return [Check(False, "service", found, fix)]
        if config is not None:  # (edited since the install: the service fails at each start, said in the journal)
            from rtvc.config import load_config
            from rtvc.errors import RtvcError

            try:
                load_config(Path(config))
            except RtvcError as e:
                found = f"{path} runs rtvc serve with {config}, which rtvc serve refuses: {e.what}"
                return [Check(False, "service", found, e.fix or "mend it")]
        return [Check(True, "service", f"{path} (`systemctl --user status {UNIT}`; `rtvc service remove` removes it)")]
    fix = "optional: `rtvc service install` runs rtvc serve from each login"
    return [Check(False, "service", "not installed", fix)]


def doctor(folder: Path, out: TextIO = sys.stdout, audio=None, cfg=None) -> int:
    """`audio`: config.toml's [audio], whose devices are looked for; `cfg`: the config, whose start profile is
    loaded (None: a config that did not load). 2 where `rtvc run` would not start with what was found, else 0."""
    planned = [audio]  # (with the virtual microphone: the devices rtvc opens with it, once it is there)

    def check_virtual_mic() -> list[Check]:
        """Before PortAudio loads (it must take PipeWire's JACK): the virtual microphone the config asks for, made
        as `rtvc run` would make it."""
        from rtvc.audio import voice_mic
        from rtvc.errors import DeviceError

        if audio is None or not audio.virtual_mic:
            if audio is None or voice_mic.pipewire_runs():  # (no PipeWire here: nothing to offer)
                return []
            jack = voice_mic.pipewire_jack_installed()
            found = f"off; `rtvc run --virtual-mic` makes '{voice_mic.LABEL}', a microphone for calls and OBS"
            fix = "for it: sudo apt-get install pipewire-jack (Debian/Ubuntu)"
            return [Check(jack, "virtual mic", found + ("" if jack else ", and needs pipewire-jack"), fix)]
        try:
            planned[0], said = voice_mic.prepare(audio)
        except DeviceError as e:
            planned[0] = None
            return [Check(False, "virtual mic", e.what, e.fix, blocks=True)]
        return [Check(True, "virtual mic", said)]

    def check_start_profile() -> list[Check]:
        return check_profile(cfg) if cfg is not None else []

    def check_devices_planned() -> list[Check]:
        return check_devices(planned[0]) if planned[0] is not None else []

    checks: list[Callable[[], list[Check]]] = [
        check_python, check_torch, check_driver, check_cuda_bindings, check_tensorrt, check_compile, check_onnx,
        functools.partial(check_engines, folder), check_start_profile, check_core, check_virtual_mic, check_audio,
        check_devices_planned, functools.partial(check_jack, audio), check_realtime, check_token, check_service,
    ]  # fmt: skip
    blocked = False
    said, needs = gpu_needs(cfg) if cfg is not None else ("", set())
    for run in checks:
        try:
            results = run()
        except Exception as e:  # a check that breaks is itself a finding; the others still run
            name = getattr(getattr(run, "func", run), "__name__", "check").removeprefix("check_")
            results = [Check(False, name, f"the check failed: {type(e).__name__}: {e}", "report this")]
        for c in results:
            if c.name in needs:
                c = needed(c, said, cfg.voice.profile)
            print(c.line(), file=out, flush=True)
            blocked = blocked or c.blocks
    return 2 if blocked else 0
