"""Who may talk to the control API: the token, the browser Origin allowlist and the Host check.

The token is made once (`secrets.token_urlsafe(32)`, 256 bits) and kept in `$XDG_CONFIG_HOME/rtvc/token`
(or `~/.config/rtvc/token`), mode 0600 in a 0700 folder, like an ssh key. It is never logged; only
`rtvc token` prints it, for the user to paste into OBS or a script.

Browsers send an Origin header and let any web page open a websocket to 127.0.0.1, so a page is only
let in from our own dock's origin or one the user listed (control.origins). Native tools send no Origin.
The Host check stops DNS rebinding: a page at evil.example whose name resolves to 127.0.0.1 still sends
`Host: evil.example`, so only loopback names with our port are accepted (unless allow_remote).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from rtvc.config import ControlConfig, user_config_dir
from rtvc.errors import ConfigError

TOKEN_BYTES = 32
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def token_path() -> Path:
    """$XDG_CONFIG_HOME/rtvc/token; ~/.config/rtvc/token when XDG_CONFIG_HOME is unset, empty or relative
    (the XDG spec says to ignore a relative one)."""
    return user_config_dir() / "rtvc" / "token"


def load_or_create_token(path: Path | None = None, renew: bool = False) -> str:
    """The token, made at first use. Refuses a token file other users can read (it would be no secret).
    ConfigError naming the file or folder where it cannot be made or read (a file where the folder goes, a folder
    a `sudo rtvc` left owned by root, no permission)."""
    path = path or token_path()
    try:
        return _load_or_create(path, renew)
    except OSError as e:
        where = e.filename or path
        if isinstance(e, (FileExistsError, NotADirectoryError)):  # (the file in the way: the folder or one above)
            block = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), where)
            raise ConfigError(
                f"cannot keep the control token at {path}: {block} is a file, not a folder",
                f"move {block} away, or set XDG_CONFIG_HOME to another folder",
            ) from None
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise ConfigError(
                f"cannot keep the control token at {path}: {e.strerror} ({where})",
                "free some space on that disk (or make it writable), or set XDG_CONFIG_HOME to a folder on another",
            ) from None
        raise ConfigError(
            f"cannot keep the control token at {path}: {e.strerror} ({where})", _access_fix(path)
        ) from None


def _access_fix(path: Path) -> str:
    """What to do where the token's folder cannot be made or written: a home folder that is not there (a service
    user's, HOME set wrong), a folder of another user's (a `sudo rtvc` made it root's) or one of the user's own made
    read-only. (It said "sudo chown" for all three.)"""
    other = "or set XDG_CONFIG_HOME to another folder"
    home = Path.home()
    if not os.environ.get("XDG_CONFIG_HOME") and not os.path.isdir(home):
        return f"the home folder {home} is not there: set HOME to the user's home, or XDG_CONFIG_HOME to a folder"
    there, theirs = path.parent, True
    for p in (path, path.parent, *path.parent.parents):  # (the nearest that is there and can be looked at)
        try:
            theirs = p.stat().st_uid != os.getuid()
        except OSError:  # (not there; or under a folder that cannot be entered: exists() raised that, a traceback)
            continue
        there = p
        break
    if theirs:
        return f"make {there} yours (`sudo chown -R $USER {there}`: a `sudo rtvc` may have made it), {other}"
    return f"{there} is yours but not writable: `chmod u+rwx {there}`, {other}"


def _load_or_create(path: Path, renew: bool) -> str:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (
        path.parent.stat().st_mode & 0o077
    ):  # (others may look in: made private; a private read-only one refused a token)
        os.chmod(path.parent, 0o700)
    if renew and not path.is_dir():  # (a folder there: read_token says so)
        path.unlink(missing_ok=True)
    if path.exists() or path.is_symlink():
        return read_token(path)
    # written whole beside it, then linked into place: a disk that fills during the write left an empty token file,
    # refused at every later start ("does not hold a valid token"); a second rtvc starting meanwhile read it half-made
    token = secrets.token_urlsafe(TOKEN_BYTES)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.unlink(missing_ok=True)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # no window where others can read it
    try:
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(part, path)  # (fails where the file is there: the other's token is the one)
        except FileExistsError:
            return read_token(path)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
            os.replace(part, path)  # (a file system without hard links: FAT)
    finally:
        part.unlink(missing_ok=True)
    return token


def read_token(path: Path) -> str:
    """The token in the file. ConfigError for a folder, a file others can read, or one that holds no token;
    OSError where it cannot be read."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not the token file", f"remove it (`rmdir {path}`), then run rtvc again")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} can be read by other users (mode {mode:04o})",
            f"run `chmod 600 {path}`, or `rtvc token --new` to make a new token",
        )
    try:
        token = path.read_bytes().decode("ascii").strip()
    except UnicodeDecodeError:  # (a token is ASCII: a damaged file, or another file copied over it)
        token = ""
    if len(token) < 32 or not all(c.isalnum() or c in "-_" for c in token):
        raise ConfigError(f"{path} does not hold a valid token", "run `rtvc token --new` to make a new one")
    return token


def token_matches(given: object, token: str) -> bool:
    """Constant-time comparison (no timing hints about how much of a guess was right)."""
    if not isinstance(given, str):
        return False
    try:
        guess = given.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") is no token's character
        return False
    return secrets.compare_digest(guess, token.encode())


def local_names(cfg: ControlConfig, port: int) -> frozenset[str]:
    """The names a client on this machine reaches the daemon by: the loopback names, and the address it is bound
    to (a bind on another loopback address, 127.0.0.2, is reached there and only there)."""
    return frozenset({*LOOPBACK_NAMES, connect_host(cfg, port).rpartition(":")[0].lower()})


def allowed_origins(cfg: ControlConfig, port: int) -> frozenset[str]:
    ours = {f"http://{name}:{port}" for name in local_names(cfg, port)}
    return frozenset(ours | set(cfg.origins))


def check_origin(origin: str | None, allowed: frozenset[str], remote_host: str | None = None) -> str | None:
    """None when allowed, else the reason to refuse. No Origin header: a native tool, not a browser page.
    `remote_host`: the request's Host header when control.allow_remote lets other machines in; a page from that
    address is the dock itself, opened from another machine (OBS on a streaming PC)."""
    if origin is None or origin in allowed:
        return None
    if remote_host is not None and origin.lower() == f"http://{remote_host}".lower():
        return None
    return (
        f"Origin {origin!r} is not allowed: pages from the rtvc dock's own address can connect; "
        "to allow this page, add its origin to control.origins in config.toml and restart rtvc serve"
    )


def check_host(host: str | None, port: int, cfg: ControlConfig) -> str | None:
    """None when the Host header names this machine's loopback at our port (anything, with allow_remote)."""
    if cfg.allow_remote:
        return None
    if host is not None:
        name, _, p = host.rpartition(":")
        if name.lower() in local_names(cfg, port) and p == str(port):
            return None
    return (
        f"Host {host!r} is not a loopback address with this port: connect to {connect_host(cfg, port)} "
        "(or set control.allow_remote = true to accept other names)"
    )


def connect_host(cfg: ControlConfig, port: int) -> str:
    """host:port a local client should use (an any-address bind is reached on 127.0.0.1)."""
    host = cfg.bind
    if host in ("0.0.0.0", "::", "localhost"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"
