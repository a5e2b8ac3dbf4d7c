"""``hotline sandbox up|down|status``: the local Asterisk, Redis and phones.

The sandbox is what makes the hotline testable for real on one machine: a
Debian sid root with Asterisk 22 (built once by deploy/sandbox/build-root.sh),
configured from deploy/asterisk and dialplans/, a redis-server on loopback,
and the phones app that plays callers, advocates' phones and the backup call
centre on the simulated PSTN side. ``up`` starts what is not running and
records each pid; ``down`` stops exactly those pids.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ivr.prompts import build_prompts
from ivr.settings import REPO, Settings

log = logging.getLogger(__name__)

ETC_IN_ROOT = "/etc/hotline-asterisk"
STATE_IN_ROOT = "/var/lib/hotline-sandbox"
PROMPTS_IN_ROOT = "/var/lib/hotline-sandbox/prompts"
BUILD_ROOT = REPO / "deploy" / "sandbox" / "build-root.sh"
START_TIMEOUT_S = 60.0


class SandboxError(Exception):
    """The sandbox could not be built or started; the message says which part."""


@dataclass(frozen=True)
class Service:
    name: str
    pidfile: Path
    logfile: Path


def render(template: str, values: dict[str, str], *, source: str) -> str:
    """Fill ``@{NAME}`` placeholders; ``${...}`` is Asterisk's own and left alone."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise SandboxError(f"{source}: no value for @{{{name}}}")
        return values[name]

    return re.sub(r"@\{([A-Z_]+)\}", value, template)


class Sandbox:
    def __init__(self, settings: Settings, config_path: Path) -> None:
        self.settings = settings
        self.config_path = config_path  # handed to the phones app
        self.box = settings.sandbox
        self.state = self.box.state_dir
        self.asterisk = Service("asterisk", self.state / "asterisk.pid", self.state / "asterisk.log")
        self.redis = Service("redis", self.state / "redis.pid", self.state / "redis.log")
        self.phones = Service("phones", self.state / "phones.pid", self.state / "phones.log")

    # -- up -------------------------------------------------------------------

    def up(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self._build_root()
        self._write_asterisk_config()
        self._install_prompts()
        if not self._running(self.redis):
            self._start_redis()
        if not self._running(self.asterisk):
            self._start_asterisk()
        if not self._running(self.phones):
            self._start_phones()

    def _build_root(self) -> None:
        if (self.box.root / ".hotline-root-complete").exists():
            return
        log.info("building the sandbox root at %s (once)", self.box.root)
        result = subprocess.run([str(BUILD_ROOT), str(self.box.root)], check=False)
        if result.returncode != 0:
            raise SandboxError(f"building the sandbox root failed (exit {result.returncode})")

    def config_values(self) -> dict[str, str]:
        s, box = self.settings, self.box
        ari_host, _, ari_port = s.ari.url.split("://", 1)[1].partition(":")
        return {
            "ETC_DIR": ETC_IN_ROOT, "STATE_DIR": STATE_IN_ROOT,
            "ARI_HOST": ari_host, "ARI_PORT": ari_port.rstrip("/") or "8088",
            "ARI_USER": s.ari.username, "ARI_PASSWORD": s.ari.password.get_secret_value(),
            "RTP_START": str(box.rtp_start), "RTP_END": str(box.rtp_end),
            "SIP_HOST": box.sip_host, "SIP_PORT": str(box.sip_port),
            "PSTN_HOST": box.pstn_host, "PSTN_PORT": str(box.pstn_port),
            "TOLL_FREE": s.lines.toll_free, "ENGINE_APP": s.engine.app, "PHONES_APP": box.phones_app,
            "BACKUP_DEST": s.lines.backup_destination, "BACKUP_RING_S": str(s.lines.backup_ring_s),
            # queues.conf (the bench's app_queue) rings and wraps up as the engine does.
            "ADVOCATE_RING_S": str(round(s.routing.advocate_ring_s)),
            "WRAP_UP_S": str(round(s.routing.wrap_up_s)),
        }

    def _write_asterisk_config(self) -> None:
        etc = self.box.root / ETC_IN_ROOT.lstrip("/")
        etc.mkdir(parents=True, exist_ok=True)
        for sub in ("spool/recording", "run", "log"):
            (self.box.root / STATE_IN_ROOT.lstrip("/") / sub).mkdir(parents=True, exist_ok=True)
        values = self.config_values()
        sources = {p.name: p for p in (REPO / "deploy" / "asterisk").glob("*.conf")}
        sources["extensions_hotline.conf"] = REPO / "dialplans" / "extensions.conf"
        for name, path in sources.items():
            text = render(path.read_text(), values, source=str(path.relative_to(REPO)))
            target = etc / name
            target.write_text(text)
            target.chmod(0o600)  # holds the ARI password

    def _install_prompts(self) -> None:
        """Build the prompts and link them where Asterisk looks: sounds/<lang>/hotline.

        sounds/<lang> is a chain of absolute symlinks inside the root (Debian's
        alternatives), so the link goes into the directory it resolves to there.
        """
        built = self.box.root / PROMPTS_IN_ROOT.lstrip("/")
        build_prompts(self.settings.menu.prompts_dir, built)
        for language_dir in sorted(p for p in built.iterdir() if p.is_dir()):
            sounds = resolve_in_root(self.box.root, f"/usr/share/asterisk/sounds/{language_dir.name}")
            sounds.mkdir(parents=True, exist_ok=True)
            link = sounds / "hotline"
            target = f"{PROMPTS_IN_ROOT}/{language_dir.name}/hotline"
            if link.is_symlink() and os.readlink(link) == target:
                continue
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)

    def _start_redis(self) -> None:
        password = self.settings.redis.password
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.box.redis_port),
                "--save", "", "--appendonly", "no", "--dir", str(self.state),
                "--protected-mode", "yes"]
        if password is not None:
            args += ["--requirepass", password.get_secret_value()]
        self._spawn(self.redis, args)
        self._wait(self.redis, lambda: _tcp_open("127.0.0.1", self.box.redis_port))

    def _start_asterisk(self) -> None:
        args = ["chroot", str(self.box.root), "/usr/sbin/asterisk", "-f", "-C",
                f"{ETC_IN_ROOT}/asterisk.conf"]
        self._spawn(self.asterisk, args)
        self._wait(self.asterisk, self._ari_ready)

    def _start_phones(self) -> None:
        args = [sys.executable, "-m", "ivr.sandbox.phones"]
        self._spawn(self.phones, args)
        self._wait(self.phones, lambda: _tcp_open("127.0.0.1", self.box.phones_http_port))

    def _spawn(self, service: Service, args: list[str]) -> None:
        log.info("starting %s", service.name)
        with open(service.logfile, "ab") as out:
            # A session of its own: the service outlives `hotline sandbox up`
            # and a Ctrl-C in the terminal that started it.
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True, cwd=REPO,
                                    env={**os.environ, "HOTLINE_CONFIG": str(self.config_path)})
        service.pidfile.write_text(f"{proc.pid}\n")

    def _wait(self, service: Service, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self._running(service):
                raise SandboxError(f"{service.name} exited at start; see {service.logfile}")
            if ready():
                return
            time.sleep(0.1)
        raise SandboxError(f"{service.name} not ready after {START_TIMEOUT_S:.0f} s; see {service.logfile}")

    def _ari_ready(self) -> bool:
        try:
            self._ari_get("/ari/asterisk/info")
            return True
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def _ari_get(self, path: str) -> object:
        s = self.settings.ari
        token = b64encode(f"{s.username}:{s.password.get_secret_value()}".encode()).decode()
        request = urllib.request.Request(f"{s.url}{path}", headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=1) as response:
            return json.load(response)

    # -- faults, for the fault tests and the load tool ------------------------

    def stop_redis(self) -> None:
        """Stop redis-server; it runs without persistence, so its data is gone."""
        self._stop(self.redis)

    def start_redis(self) -> None:
        if not self._running(self.redis):
            self._start_redis()

    def restart_redis(self) -> None:
        self.stop_redis()
        self.start_redis()

    def restart_asterisk(self, *, crash: bool = False) -> None:
        """Stop Asterisk (every channel and bridge dies with it), or kill it
        with SIGKILL if `crash` (it then says nothing to its ARI clients),
        and start it again; returns once ARI answers and the phones app has
        its WebSocket back, so calls can be placed at once."""
        if crash:
            self._kill(self.asterisk)
        self._stop(self.asterisk)
        self._start_asterisk()
        self._wait(self.asterisk, self._phones_registered)

    def _phones_registered(self) -> bool:
        try:
            self._ari_get(f"/ari/applications/{self.box.phones_app}")
            return True
        except (OSError, urllib.error.URLError, ValueError):
            return False

    # -- down / status --------------------------------------------------------

    def down(self) -> None:
        # The phones first, Asterisk last: nothing is left holding a channel.
        for service in (self.phones, self.redis, self.asterisk):
            self._stop(service)

    def _stop(self, service: Service) -> None:
        pid = _read_pid(service.pidfile)
        if pid is None:
            return
        if _alive(pid):
            log.info("stopping %s (pid %d)", service.name, pid)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        service.pidfile.unlink(missing_ok=True)

    def _kill(self, service: Service) -> None:
        pid = _read_pid(service.pidfile)
        if pid is not None and _alive(pid):
            log.info("killing %s (pid %d)", service.name, pid)
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def status(self) -> dict[str, str]:
        result = {}
        for service in (self.asterisk, self.redis, self.phones):
            pid = _read_pid(service.pidfile)
            result[service.name] = f"running (pid {pid})" if self._running(service) else "stopped"
        if self._running(self.asterisk):
            result["ari"] = "ready" if self._ari_ready() else "not answering"
        return result

    def _running(self, service: Service) -> bool:
        pid = _read_pid(service.pidfile)
        return pid is not None and _alive(pid)


def resolve_in_root(root: Path, path: str) -> Path:
    """Where ``path`` leads inside ``root``, following absolute links as the chroot would."""
    current = Path("/")
    parts = list(Path(path).parts[1:])
    for _ in range(64):  # bounded: a link loop is an error, not a hang
        if not parts:
            return root / str(current).lstrip("/")
        candidate = current / parts.pop(0)
        on_host = root / str(candidate).lstrip("/")
        if on_host.is_symlink():
            target = Path(os.readlink(on_host))
            base = target if target.is_absolute() else candidate.parent / target
            parts = list(base.parts[1:]) + parts
            current = Path("/")
        else:
            current = candidate
    raise SandboxError(f"{path}: too many symlinks inside {root}")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is not running; reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
