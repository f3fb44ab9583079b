"""Shared pieces of the benchmarks: paths, clips, the machine, a whisperd service subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

from tests.speech import SPEECH, Clip, clips  # noqa: F401 - re-exported for the parts
from tests.speech import wer as speech_wer

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
PYTHON = sys.executable
WHISPER_CLI = str(Path(sys.executable).with_name("whisper"))
FORMATS = ("txt", "srt", "vtt", "tsv", "json")
SHIPPED_STABLE_SECONDS = 5.0  # watch.stable_seconds default (config/whisperd.yaml)


def wer(references: list[str], hypotheses: list[str], language: str) -> float:
    """Corpus WER in percent with whisper's normalisers (as tests/speech.py)."""
    return round(speech_wer(references, hypotheses, language), 2)


def median(values: Iterable[float]) -> float | None:
    """Median, or None for no values."""
    items = [v for v in values if v is not None]
    return statistics.median(items) if items else None


def model_path(model: str) -> Path:
    """The openai-whisper checkpoint of an imported model."""
    return MODELS / f"{model}.pt"


def machine(model: str) -> dict[str, Any]:
    """CPU, cores, GPU (torch.cuda), torch and whisperd versions."""
    import torch

    from daemon import __version__

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = None
    if torch.cuda.is_available():
        gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return {
        "cpu": cpu,
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "whisperd": __version__,
        "model": model,
        "engine": "openai-whisper (fp32 on CPU)" if gpu is None else "openai-whisper (fp16)",
        "platform": platform.platform(),
    }


def tree_rss(pid: int) -> int:
    """RSS in bytes of a process and its children (0 when gone)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_info().rss
    return total


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live children."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            total += t.user + t.system
    return total


class PeakRss:
    """Samples a process tree's RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


def outputs_done(outbox: Path, stems: Iterable[str], formats: Iterable[str] = FORMATS) -> bool:
    """Every ``<stem>.<fmt>`` exists directly in ``outbox``."""
    try:
        present = set(os.listdir(outbox))
    except FileNotFoundError:
        return False
    return all(f"{s}.{f}" in present for s in stems for f in formats)


def copy_clip(clip: Path, folder: Path, name: str) -> Path:
    """A copy of ``clip`` in ``folder`` named ``name`` + the clip's suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}{clip.suffix}"
    shutil.copyfile(clip, target)
    return target


#: More ``defaults`` for the plain path: the whole file decoded, Whisper's segments as cues
#: (whisperd before speech detection and readable cues; its text is raw openai-whisper's).
PLAIN = ", vad: {enabled: false}, subtitles: {style: whisper}"


def write_config(root: Path, *, model: str, language: str | None, watch: str = "",
                 extra: str = "") -> Path:  # fmt: skip
    """A service config: inbox/outbox/var under ``root``; ``watch`` / ``extra``: more YAML."""
    lang = "null" if language is None else language
    path = root / "whisperd.yaml"
    path.write_text(
        f"inbox: {root / 'inbox'}\noutbox: {root / 'outbox'}\nstate_dir: {root / 'var'}\n"
        f"model_dir: {MODELS}\n"
        f"defaults: {{model: {model}, language: {lang}{extra}}}\n"
        # the listener on (as shipped) on a free port: services run side by side
        'metrics: {listen: "127.0.0.1:0"}\n' + watch,
        encoding="utf-8",
    )
    return path


class Service:
    """``whisperd run`` as a subprocess on a config, with a NOTIFY_SOCKET we bind."""

    def __init__(self, root: Path, config: Path) -> None:
        self.root, self.config = root, config
        self.entry = "daemon"  # or tests.e2e.fake_whisperd: the fake engine
        self.inbox, self.outbox, self.state = root / "inbox", root / "outbox", root / "var"
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.ready_seconds: float | None = None
        self.messages: list[str] = []
        self.received: list[tuple[float, str]] = []  # (monotonic time, message)

    def start(self, timeout: float = 300.0, env: dict[str, str] | None = None) -> float:
        """Start and wait for READY=1; returns seconds from process start to READY."""
        sock_path = self.root / "notify.sock"
        sock_path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(sock_path))
        self.sock.settimeout(0.05)
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "PYTHONPATH": str(ROOT),
               **(env or {})}  # fmt: skip
        log = open(self.root / "service.log", "ab")  # noqa: SIM115 - the child holds it
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [PYTHON, "-m", self.entry, "run", "-c", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
        )  # fmt: skip
        log.close()
        deadline = started + timeout
        while time.monotonic() < deadline:
            try:
                message = self.sock.recv(65536).decode()
            except TimeoutError:
                message = ""
            if message:
                self.messages.append(message)
                if "READY=1" in message.splitlines():
                    self.ready_seconds = time.monotonic() - started
                    # Keep reading, as systemd does, so the service's sends never find the
                    # queue full.
                    threading.Thread(target=self._drain, daemon=True).start()
                    return self.ready_seconds
            if self.proc.poll() is not None:
                raise RuntimeError(f"whisperd exited with {self.proc.returncode}: {self.log()}")
        raise TimeoutError("whisperd did not become ready")

    def _drain(self) -> None:
        sock = self.sock
        while sock is not None and sock.fileno() != -1:
            try:
                message = sock.recv(65536).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(message)
            self.received.append((time.monotonic(), message))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        path = self.root / "service.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def page_url(self) -> str:
        """The status page's URL, from the service's "service started" log line."""
        text = (self.root / "service.log").read_text(errors="replace")
        for line in text.splitlines():
            if '"status_page"' in line:
                return json.loads(line)["status_page"]
        raise RuntimeError("the service logged no status page")

    def stop(self) -> None:
        """SIGTERM, then kill after 30 s; close the socket."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_timed(cmd: list[str], *, cwd: Path | None = None, timeout: float = 1800) -> float:
    """Run a command to completion; wall seconds. Raises on a non-zero exit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)  # fmt: skip
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} exited {result.returncode}: {result.stderr[-2000:]}")
    return elapsed


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
