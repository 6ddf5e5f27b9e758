"""`rtvc doctor` on this machine, in a subprocess: one ok/missing line per check, each missing one with its
fix, exit 0. The expectations follow what the machine has (no GPU here; a GPU runner sees the ok lines)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtvc.doctor import Check

torch = pytest.importorskip("torch", reason="torch is not installed (rvc extra)")

ROOT = Path(__file__).resolve().parent.parent


def doctor(cwd: Path, config_home: Path, code: int = 0, env: dict[str, str] | None = None) -> dict[str, str]:
    """`rtvc doctor` run in `cwd` (its engines/, profiles/ and config.toml), the token under `config_home`, ending
    with `code`: {check name: its line}."""
    env = {**(env or os.environ), "XDG_CONFIG_HOME": str(config_home), "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", "rtvc", "doctor"], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )
    assert res.returncode == code, res.stdout + res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert lines and all(ln.startswith(("ok ", "missing ")) for ln in lines), res.stdout
    return {ln[9:24].strip(): ln for ln in lines}


def _realtime_allowed() -> bool:
    """Asked of the kernel here, on a throwaway thread, independently of rtvc.priority."""
    import threading

    ok: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(2))
            ok.append(True)
        except PermissionError:
            ok.append(False)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return ok[0]


def test_doctor_reports_this_machine(tmp_path: Path):
    (tmp_path / "profiles").symlink_to(ROOT / "profiles")  # (without it `rtvc run` here would not start)
    got = doctor(tmp_path, tmp_path / "config")
    want = f"ok       profile        'default' ({tmp_path / 'profiles' / 'default.toml'}): Deeper"
    assert got["profile"] == want, got["profile"]
    names = {"python", "rtvc", "numpy", "torch", "cuda", "driver", "tensorrt", "engines", "portaudio", "jack"}
    assert names <= got.keys(), sorted(got)
    assert got["python"].startswith("ok") and sys.version.split()[0] in got["python"]
    assert got["torch"].startswith("ok") and torch.__version__ in got["torch"]
    if torch.cuda.is_available():
        assert got["cuda"].startswith("ok") and torch.cuda.get_device_name() in got["gpu"]
    else:
        assert got["cuda"].startswith("missing") and "no CUDA device visible to torch" in got["cuda"]
        assert "-> optional: " in got["cuda"]  # with the fix
    if importlib.util.find_spec("tensorrt") is None:
        assert got["tensorrt"].startswith("missing") and "absent" in got["tensorrt"]
        assert "-> optional, for engines: pip install tensorrt-cu" in got["tensorrt"]
    else:
        import tensorrt

        assert tensorrt.__version__ in got["tensorrt"]
    if importlib.util.find_spec("triton") is not None and shutil.which("gcc"):
        from importlib.metadata import version

        assert got["compile"].startswith("ok") and f"triton {version('triton')}," in got["compile"], got["compile"]
    assert got["engines"].startswith("missing") and f"none in {tmp_path / 'engines'}" in got["engines"]
    assert "rtvc build PROFILE" in got["engines"]
    assert got["control token"].startswith("missing") and "-> rtvc token" in got["control token"]
    assert got["service"] == "missing  service        not installed  -> optional: `rtvc service install` runs rtvc " \
        "serve from each login"  # fmt: skip
    assert got["real-time"].startswith("ok" if _realtime_allowed() else "missing"), got["real-time"]
    if got["real-time"].startswith("missing"):
        assert "no permission" in got["real-time"] and "-> sudo usermod -aG audio $USER" in got["real-time"]
    import sounddevice

    assert got["portaudio"].startswith("ok")
    for api in sounddevice.query_hostapis():
        assert api["name"] in got["portaudio"]
    # the devices `rtvc run` would choose (the defaults here): this machine's, or why there are none
    if sounddevice.query_devices():
        assert "the check failed" not in got["sound devices"], got["sound devices"]
    else:
        assert got["sound devices"].startswith("missing") and "no sound devices found" in got["sound devices"]
        assert "rtvc run --virtual" in got["sound devices"]


def test_doctor_reads_the_engines_and_the_token(tmp_path: Path):
    (tmp_path / "config" / "rtvc").mkdir(parents=True)
    (tmp_path / "config" / "rtvc" / "token").write_text("a" * 43 + "\n")
    (tmp_path / "config" / "rtvc" / "token").chmod(0o600)
    (tmp_path / "engines").mkdir()
    entry = {
        "step": "synth", "file": "synth.engine", "models": {"voice": "0" * 64}, "model_paths": {"voice": "a.pth"},
        "shape": "16000-48000-b320-c16640-t2400", "precision": "fp16", "gpu": "NVIDIA Some Other GPU",
        "compute_capability": "8.9", "tensorrt": "10.13.3.9", "built_at": "2026-11-22T04:00:00Z",
        "build_seconds": 1.0, "engine_sha256": "0" * 64,
    }  # fmt: skip
    (tmp_path / "engines" / "manifest.json").write_text(json.dumps({"format": 1, "engines": [entry]}))
    (tmp_path / "profiles").symlink_to(ROOT / "profiles")
    (tmp_path / "config" / "systemd" / "user").mkdir(parents=True)
    (tmp_path / "config" / "systemd" / "user" / "rtvc.service").write_text("[Service]\n")
    got = doctor(tmp_path, tmp_path / "config")
    assert got["control token"].startswith("ok") and str(tmp_path / "config" / "rtvc" / "token") in got["control token"]
    assert (
        got["service"].startswith("ok")
        and str(tmp_path / "config" / "systemd" / "user" / "rtvc.service") in (got["service"])
    )
    assert got["engines"].startswith("missing") and f"1 in {tmp_path / 'engines'}" in got["engines"]
    if not torch.cuda.is_available():
        assert "none usable: no GPU" in got["engines"]
    else:
        assert f"0 usable on {torch.cuda.get_device_name()}" in got["engines"]
    (tmp_path / "engines" / "manifest.json").write_text("{broken")
    got = doctor(tmp_path, tmp_path / "config")
    assert got["engines"].startswith("missing") and "is not a valid engine manifest" in got["engines"]
    assert "-> delete it and rebuild" in got["engines"]
    shutil.rmtree(tmp_path / "engines")
    (tmp_path / "engines").write_text("not a folder")  # (it read "none in .../engines")
    got = doctor(tmp_path, tmp_path / "config")
    assert got["engines"].startswith("missing") and "engines is not a folder" in got["engines"], got["engines"]


def test_a_config_that_does_not_load_is_reported_and_fails_the_exit_code(tmp_path: Path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", "rtvc", "doctor", "--config", str(tmp_path / "nosuch.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert res.returncode == 2, res.stderr
    assert f"missing  config         {tmp_path / 'nosuch.toml'}: file not found" in res.stdout
    assert "python" in res.stdout and "portaudio" in res.stdout  # the other checks still ran


def test_a_reader_that_goes_away_is_no_traceback(tmp_path: Path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtvc", "doctor"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env
    )
    proc.stdout.close()  # as `rtvc doctor | head -0` does
    err = proc.stderr.read().decode()
    assert proc.wait(120) == 141 and "Traceback" not in err, err


def test_a_torchaudio_that_does_not_load_with_this_torch_is_named(monkeypatch):
    """torchaudio 2.11.1 installed beside torch 2.11.0 failed at import ('undefined symbol'), and so did every
    RVC voice through torchfcpe: doctor says which pair and the release to install, not just 'ok 2.11.1'."""
    from rtvc.doctor import check_torchaudio

    assert check_torchaudio(torch.__version__).ok  # this environment's pair loads
    monkeypatch.setitem(sys.modules, "torchaudio", None)  # what a failing import looks like to the check
    check = check_torchaudio("2.11.0+cu130")
    assert not check.ok and "does not load with torch 2.11.0+cu130" in check.found
    assert check.fix == "pip install torchaudio==2.11.0 (the release built for this torch)"
    newer = check_torchaudio("2.13.0+cpu")  # torchaudio has no 2.13: the pair to go back to
    assert newer.fix == "pip install torch==2.11.0 torchaudio==2.11.0 (torchaudio's last release is 2.11)"


def test_sounddevice_absent_is_a_missing_line_with_the_install(monkeypatch):
    """On a machine without sounddevice (the GPU image scripts/gpu-check.sh runs on) the audio check raised
    ModuleNotFoundError, which doctor printed as 'the check failed ... -> report this'."""
    from rtvc.doctor import check_audio

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # what an absent package looks like to import
    (check,) = check_audio()
    assert not check.ok and check.name == "portaudio" and "sounddevice package is not installed" in check.found
    assert "pip install sounddevice" in check.fix
    from rtvc.config import AudioConfig
    from rtvc.doctor import check_devices

    # (rtvc run stops on it too, before it could fall back to the virtual device: exit 2; it said 0, a review)
    (devices,) = check_devices(AudioConfig())
    assert not devices.ok and "sounddevice package is not installed" in devices.found and devices.blocks
    (devices,) = check_devices(AudioConfig(input_device="USB"))  # (a device named: `rtvc run` stops on it)
    assert devices.blocks


def test_a_checkout_whose_audio_core_was_not_built_says_how_to_build_it(tmp_path: Path):
    """rtvc/_rt.c is compiled by pip install. A copy of the package without it: doctor names the missing core and
    the command that builds it, and a run fails with the same words (no Python stand-in for the callbacks)."""
    shutil.copytree(ROOT / "rtvc", tmp_path / "rtvc", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-m", "rtvc", "doctor"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    line = next(ln for ln in res.stdout.splitlines() if ln[9:24].strip() == "audio core")
    assert line.startswith("missing") and "rtvc's audio core is not built" in line, line
    assert "-> build it with `pip install -e .`" in line and "apt-get install gcc libc6-dev" in line, line
    assert "the check failed" not in res.stdout, res.stdout  # (every other check runs without the core too)
    res = subprocess.run(
        [sys.executable, "-m", "rtvc", "run", "--virtual", "--duration", "1", "--headless"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert res.returncode != 0
    assert "error: rtvc's audio core is not built" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_cuda_bindings_newer_than_the_driver_is_named(monkeypatch):
    """cuda-bindings 13 on a CUDA 12 driver: every runtime call fails with cudaErrorInsufficientDriver; doctor says
    so, and which bindings to install, instead of ok."""
    import rtvc.backends.cudart as cudart
    import rtvc.doctor as doc

    monkeypatch.setattr(doc, "_version", lambda name: "13.5.0" if name == "cuda-bindings" else None)
    monkeypatch.setattr(cudart, "driver_version", lambda: 12040)
    monkeypatch.setattr(doc, "_torch_cuda_major", lambda: 12)  # (torch for CUDA 12: the bindings are the odd one)
    (check,) = doc.check_cuda_bindings()
    assert not check.ok and check.found == "13.5.0 needs a CUDA 13 driver; this one is CUDA driver 12.4"
    assert check.fix.startswith("pip install 'cuda-bindings==12.*'")
    monkeypatch.setattr(doc, "_torch_cuda_major", lambda: 13)  # (torch needs the newer driver too)
    (check,) = doc.check_cuda_bindings()
    assert check.fix.startswith("update the NVIDIA driver to one for CUDA 13")
    monkeypatch.setattr(cudart, "driver_version", lambda: 13000)
    (check,) = doc.check_cuda_bindings()
    assert check.ok and check.found == "13.5.0 (CUDA driver 13.0)"


def test_a_token_file_rtvc_would_refuse_is_named_with_its_fix(tmp_path, monkeypatch):
    """doctor said `ok control token` for any file (mode 0644, or holding no token), which `rtvc token` and
    `rtvc serve` refuse, and for a folder in its place "missing ... -> rtvc token makes one", which refuses it too."""
    from rtvc.control.auth import load_or_create_token
    from rtvc.doctor import check_token

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = tmp_path / "rtvc" / "token"
    (check,) = check_token()
    assert not check.ok and check.found == f"no {path}" and check.fix == "rtvc token (or rtvc serve) makes one"
    load_or_create_token()
    assert check_token() == [Check(True, "control token", str(path))]
    path.chmod(0o644)
    (check,) = check_token()
    assert not check.ok and check.found == f"{path} can be read by other users (mode 0644)", check
    assert check.fix.startswith(f"run `chmod 600 {path}`")
    path.write_text("secret\n")
    path.chmod(0o600)
    (check,) = check_token()
    assert not check.ok and check.found == f"{path} does not hold a valid token", check
    assert check.fix == "run `rtvc token --new` to make a new one"
    path.unlink()
    path.mkdir()
    (check,) = check_token()
    assert not check.ok and check.found == f"{path} is a folder, not the token file", check
    assert check.fix == f"remove it (`rmdir {path}`), then run rtvc again"
    path.rmdir()
    path.symlink_to(tmp_path / "gone")  # (it said "cannot read ...: make it yours (sudo chown ...)")
    (check,) = check_token()
    assert not check.ok and check.found == f"{path} is a link to nothing" and check.fix.startswith(f"rm {path};")


def test_a_service_whose_config_file_is_gone_is_named_with_its_fix(tmp_path, monkeypatch):
    """The unit runs `rtvc serve --config FILE`: with that file deleted it fails at each start, and doctor said
    `ok service`."""
    from rtvc.doctor import check_service
    from rtvc.service import unit_text

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    unit = tmp_path / "xdg" / "systemd" / "user" / "rtvc.service"
    unit.parent.mkdir(parents=True)
    folder = tmp_path / "my voice 100% $HOME"  # (read back through the unit's quoting)
    folder.mkdir()
    (folder / "config.toml").write_text("")
    unit.write_text(unit_text(sys.executable, folder / "config.toml", folder))
    (check,) = check_service()
    assert check.ok and str(unit) in check.found, check
    (folder / "config.toml").write_text("[stream]\nblok_ms = 20.0\n")  # (a slip in an edit since: said "ok")
    (check,) = check_service()
    assert not check.ok and check.found.startswith(
        f"{unit} runs rtvc serve with {folder / 'config.toml'}, which rtvc serve refuses: "
    ), check
    assert "unknown key 'stream.blok_ms'" in check.found and "block_ms" in check.fix, check
    (folder / "config.toml").unlink()
    (check,) = check_service()
    assert not check.ok, check
    assert check.found == (
        f"{unit} runs rtvc serve with the config file {folder / 'config.toml'}, which is gone: the service fails at "
        "each start"
    )
    assert check.fix.startswith("`rtvc service install` again in the folder of your config.toml") and (
        "`rtvc service remove`" in check.fix
    )
    unit.write_text(unit_text(str(tmp_path / "venv-removed" / "python"), None, folder))  # (no --config: the defaults)
    (check,) = check_service()
    assert not check.ok and f"this Python {tmp_path / 'venv-removed' / 'python'}, which is gone" in check.found


@pytest.mark.parametrize(
    "profile, says, fix",
    [
        ("nosuch", "profile 'nosuch' not found: no file", "profiles in profiles: broken, default;"),
        ("broken", "profiles/broken.toml: unknown key 'bogus'", "allowed keys: "),
    ],
)
def test_a_start_profile_that_does_not_load_is_named_and_fails_the_exit_code(tmp_path: Path, profile, says, fix):
    """`rtvc run` refuses a config.toml whose voice.profile does not load, and `rtvc serve` plays silence with it;
    doctor showed no line for it and ended 0."""
    (tmp_path / "profiles").mkdir()
    shutil.copy(ROOT / "profiles" / "default.toml", tmp_path / "profiles")
    (tmp_path / "profiles" / "broken.toml").write_text('voice = "passthrough"\nbogus = 1\n')
    (tmp_path / "config.toml").write_text(f'[voice]\nprofile = "{profile}"\n')
    got = doctor(tmp_path, tmp_path / "config", code=2)
    line = got["profile"]
    assert line.startswith(f"missing  profile        voice.profile '{profile}' does not load: ") and says in line, line
    then = "until then rtvc run --headless refuses to start, and rtvc serve (and rtvc run with its UI) plays silence"
    assert fix in line and line.endswith(f"{then} until a voice is picked"), line
    assert "python" in got and "service" in got  # (the other checks still ran)
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "default"\n')
    env = {**os.environ, "JACK_NO_START_SERVER": "1", "JACK_DEFAULT_SERVER": "rtvc-doctor-none"}
    got = doctor(tmp_path, tmp_path / "config", env=env)  # (no devices named: no card is no error, `rtvc run` plays)
    assert got["profile"].startswith("ok       profile        'default'"), got["profile"]


@pytest.mark.skipif(not shutil.which("jackd"), reason="jackd not found: install jackd2")
def test_a_samplerate_the_devices_refuse_fails_the_exit_code(tmp_path: Path):
    """audio.samplerate = 44100 under a 48 kHz JACK server: `rtvc run` does not start, and doctor printed the
    device line but ended 0."""
    from jack_harness import JackServer, client_env

    (tmp_path / "profiles").symlink_to(ROOT / "profiles")
    (tmp_path / "config.toml").write_text("[audio]\nsamplerate = 44100\n")
    server = JackServer(256, role="doctor-rate")
    server.start()
    try:
        got = doctor(tmp_path, tmp_path / "config", code=2, env=client_env(server.name))
        assert got["sound devices"].startswith("missing") and "does not support 44100 Hz" in got["sound devices"]
        assert "-> set audio.samplerate (or --samplerate) to 48000" in got["sound devices"]
        (tmp_path / "config.toml").write_text("[audio]\nsamplerate = 48000\n")
        got = doctor(tmp_path, tmp_path / "config", env=client_env(server.name))
        assert got["sound devices"].startswith("ok"), got["sound devices"]
    finally:
        server.stop()


def test_a_config_that_asks_for_jack_without_a_server_says_jack_is_needed(tmp_path: Path):
    """audio.host_api = "JACK" and no JACK server: doctor called the server "optional" (start one "jackd, or via
    PipeWire", no command) and the devices' line said only "no sound devices found"."""
    (tmp_path / "profiles").symlink_to(ROOT / "profiles")
    (tmp_path / "config.toml").write_text('[audio]\nhost_api = "JACK"\n')
    env = {**os.environ, "JACK_DEFAULT_SERVER": "rtvc-doctor-none", "JACK_NO_START_SERVER": "1"}
    got = doctor(tmp_path, tmp_path / "config", code=2, env=env)
    if shutil.which("jack_lsp"):
        assert got["jack"].startswith("missing") and "no JACK server" in got["jack"], got["jack"]
    assert "-> needed: config.toml asks for it (audio.host_api)" in got["jack"], got["jack"]
    devices = got["sound devices"]
    assert devices.startswith("missing") and "JACK" in devices and "pw-jack" in devices, devices


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU lines are there (ok) where torch sees a GPU")
def test_the_gpu_lines_a_gpu_start_voice_needs_are_said_needed_not_optional(tmp_path: Path):
    """A config whose start voice is a TensorRT one on the GPU: doctor said the GPU, TensorRT and engines were
    "optional ... rtvc runs on the CPU without" (a review)."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "trt.toml").write_text(
        'voice = "rvc"\n[model]\npath = "v.pth"\ncontent = "hubert_base.pt"\nbackend = "tensorrt"\ndevice = "cuda"\n'
        'precision = "fp16"\n'
    )
    (tmp_path / "config.toml").write_text('[voice]\nprofile = "trt"\n')
    got = doctor(tmp_path, tmp_path / "config", code=2)
    said = "needed by voice.profile 'trt' (backend = tensorrt, device = cuda): "
    assert said in got["cuda"] and "optional" not in got["cuda"] and "rtvc runs on the CPU" not in got["cuda"], got
    assert said in got["engines"] and got["engines"].endswith("rtvc build trt"), got["engines"]
    if "tensorrt" in got and got["tensorrt"].startswith("missing"):
        assert said in got["tensorrt"], got["tensorrt"]
    (tmp_path / "profiles" / "trt.toml").write_text(
        'voice = "rvc"\n[model]\npath = "v.pth"\ncontent = "hubert_base.pt"\n'
    )  # (on the CPU: the GPU lines are optional again)
    got = doctor(tmp_path, tmp_path / "config", code=2)  # (2: its model files are not there)
    assert "-> optional" in got["cuda"] and "-> optional" in got["engines"], got
