"""The window's side of the worker boundary: one worker process, JSON lines in and out, Qt signals.

The worker is started at launch so that it imports torch while the user reads the first page. Jobs run
one at a time from a queue. A crash fails the running job with an error and starts a fresh worker; a
cancel asks politely, then terminates, then kills, and a worker that was stopped or that ran a GPU job is
replaced so its memory goes back to the system. Nothing here blocks the UI thread.
"""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import asdict

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from app import root_dir
from core.jobs.spec import Event, JobSpec

CANCEL_GRACE_MS = 3000
KILL_GRACE_MS = 1000
RETIRE_GRACE_MS = 10000
MAX_START_FAILURES = 3
STDERR_TAIL_LINES = 60

# Worker states shown in the status bar.
STARTING, READY, BUSY, CRASHED, FAILED, STOPPED = "starting", "ready", "busy", "crashed", "failed", "stopped"


class JobClient(QObject):
    """Runs JobSpecs in the worker process and turns its events into signals (job id first)."""

    stateChanged = Signal(str, str)  # state, a few words for the status bar
    jobStarted = Signal(str, str)  # job id, kind
    stage = Signal(str, object)
    progress = Signal(str, object)
    log = Signal(str, str)
    warning = Signal(str, str)
    result = Signal(str, object)
    error = Signal(str, object)
    cancelled = Signal(str, object)
    jobFinished = Signal(str, str, str)  # job id, kind, outcome: result | error | cancelled
    crashed = Signal(str)  # id of the job that was running, or "" when the worker died idle

    def __init__(self, parent: QObject | None = None, command: list[str] | None = None):
        super().__init__(parent)
        self._command = command or [sys.executable, "-m", "core.jobs.worker"]
        self._proc: QProcess | None = None
        self._retired: set[QProcess] = set()
        self._queue: deque[JobSpec] = deque()
        self._current: JobSpec | None = None
        self._ready = False
        self._stopping_for_cancel = False
        self._shutting_down = False
        self._start_failures = 0
        self._has_gpu = False
        self._callbacks: dict[str, Callable] = {}
        self._buffer = b""
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._state = STOPPED
        self.state_sentence = "not started"
        self._grace = QTimer(self, singleShot=True, interval=CANCEL_GRACE_MS, timeout=self._terminate)
        self._kill = QTimer(self, singleShot=True, interval=KILL_GRACE_MS, timeout=self._kill_now)

    # -- public API ---------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    def pid(self) -> int | None:
        return (int(self._proc.processId()) or None) if self._proc else None

    def start(self, sentence: str = "starting (loading PyTorch)…") -> None:
        """Start a worker unless one is running; it says `ready` once torch is imported."""
        if self._proc is not None or self._shutting_down:
            return
        proc = QProcess(self)
        proc.setProgram(self._command[0])
        proc.setArguments(self._command[1:])
        proc.setProcessEnvironment(_worker_environment())
        proc.setWorkingDirectory(str(root_dir()))
        proc.readyReadStandardOutput.connect(lambda p=proc: self._on_stdout(p))
        proc.readyReadStandardError.connect(lambda p=proc: self._on_stderr(p))
        proc.finished.connect(lambda code, status, p=proc: self._on_finished(p, code, status))
        proc.errorOccurred.connect(lambda err, p=proc: self._on_process_error(p, err))
        self._proc, self._ready, self._buffer = proc, False, b""
        self._stderr_tail.clear()
        self._set_state(STARTING, sentence)
        proc.start()

    def submit(self, spec: JobSpec, supersede: bool = False, on_done: Callable | None = None) -> str:
        """Queue a job. `on_done(outcome, data)` is called once when it ends (result, error, cancelled);
        with `supersede`, queued jobs of the same kind are dropped because their answer would be stale."""
        if on_done is not None:
            self._callbacks[spec.id] = on_done
        if supersede:
            for old in [s for s in self._queue if s.kind == spec.kind]:
                self._queue.remove(old)
                self._finish(old, "cancelled", {"message": "Replaced by a newer request."})
        self._queue.append(spec)
        if self._state == FAILED:
            self._start_failures = 0
            self.start()
        self._pump()
        return spec.id

    def cancel(self, job_id: str | None = None) -> None:
        """Cancel a job (the running one by default): cooperative first, then terminate, then kill."""
        queued = next((s for s in self._queue if s.id == job_id), None)
        if queued is not None:
            self._queue.remove(queued)
            self._finish(queued, "cancelled", {"message": "Cancelled before it started."})
            return
        if self._current is None or (job_id and job_id != self._current.id) or self._grace.isActive():
            return
        self._write({"op": "cancel", "job_id": self._current.id})
        self._grace.start()

    def shutdown(self) -> None:
        """Stop every worker on exit; a few hundred milliseconds at most."""
        self._shutting_down = True
        self._grace.stop()
        self._kill.stop()
        self._queue.clear()
        procs = [p for p in (self._proc, *self._retired) if p is not None]
        for proc in procs:
            if proc is self._proc and self._current is None:
                self._write({"op": "quit"})
                proc.closeWriteChannel()
                if proc.waitForFinished(300):
                    continue
            proc.kill()
            proc.waitForFinished(200)
        self._proc = None
        self._retired.clear()
        self._set_state(STOPPED, "stopped")

    # -- process plumbing ---------------------------------------------------------------------------

    def _write(self, message: dict) -> None:
        if self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning:
            self._proc.write((json.dumps(message) + "\n").encode("utf-8"))

    def _pump(self) -> None:
        if not self._ready or self._current is not None or not self._queue:
            return
        spec = self._queue.popleft()
        self._current = spec
        self._stopping_for_cancel = False
        self._write({"op": "job", "spec": asdict(spec)})
        self._set_state(BUSY, _busy_sentence(spec.kind))
        self.jobStarted.emit(spec.id, spec.kind)

    def _on_stdout(self, proc: QProcess) -> None:
        if proc is not self._proc:
            return
        try:
            self._buffer += proc.readAllStandardOutput().data()
        except RuntimeError:  # the QProcess is already gone: the application is shutting down
            return
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            self._handle_line(raw.decode("utf-8", errors="replace").strip())

    def _on_stderr(self, proc: QProcess) -> None:
        text = proc.readAllStandardError().data().decode("utf-8", errors="replace")
        if proc is self._proc:
            self._stderr_tail.extend(line for line in text.splitlines() if line.strip())

    def _handle_line(self, line: str) -> None:
        if not line:
            return
        try:
            event = Event.from_json(line)
        except (ValueError, KeyError, TypeError):
            self.log.emit(self._current.id if self._current else "", line)
            return
        if event.type == "ready":
            self._ready, self._start_failures = True, 0
            self._set_state(READY, "ready")
            self._pump()
            return
        spec = self._current
        if spec is None or event.job_id != spec.id:
            return  # a late line from a job we already gave up on
        if event.type in ("result", "error", "cancelled"):
            self._finish(spec, event.type, event.data)
            self._after_job(spec, event)
            return
        if event.type in ("log", "warning"):
            getattr(self, event.type).emit(spec.id, str(event.data.get("message", "")))
        else:
            getattr(self, event.type).emit(spec.id, event.data)

    def _finish(self, spec: JobSpec, outcome: str, data: dict) -> None:
        if spec is self._current:
            self._current = None
            self._grace.stop()
        if spec.kind == "devices" and outcome == "result":
            self._has_gpu = any(d.get("kind") != "cpu" for d in data.get("devices", []))
        getattr(self, outcome).emit(spec.id, data)
        self.jobFinished.emit(spec.id, spec.kind, outcome)
        callback = self._callbacks.pop(spec.id, None)
        if callback is not None:
            callback(outcome, data)

    def _after_job(self, spec: JobSpec, event: Event) -> None:
        """Keep the worker for the next job, or replace it when the job used a GPU."""
        if self._used_gpu(spec, event):
            self._replace()
        else:
            self._set_state(READY, "ready")
            self._pump()

    def _used_gpu(self, spec: JobSpec, event: Event) -> bool:
        if spec.kind not in ("quantize", "sensitivity"):
            return False
        device = str((event.data.get("report") or {}).get("device") or spec.params.get("device") or "cpu")
        return device.startswith(("cuda", "mps")) or (device == "auto" and self._has_gpu)

    def _replace(self) -> None:
        """Let the current worker finish on its own and start a fresh one alongside."""
        old = self._proc
        if old is not None:
            self._write({"op": "quit"})
            old.closeWriteChannel()
            self._retired.add(old)
            QTimer.singleShot(RETIRE_GRACE_MS, old.kill)
        self._proc, self._ready = None, False
        self.start("starting a fresh one to release GPU memory…")

    def _terminate(self) -> None:
        """The cooperative cancel timed out: stop the process and replace it."""
        if self._proc is None or self._current is None:
            return
        self._stopping_for_cancel = True
        self._proc.terminate()
        self._kill.start()

    def _kill_now(self) -> None:
        if self._proc is not None:
            self._proc.kill()

    def _on_process_error(self, proc: QProcess, err: QProcess.ProcessError) -> None:
        if err == QProcess.ProcessError.FailedToStart and proc is self._proc:
            self._stderr_tail.append(f"could not start {self._command[0]}: {proc.errorString()}")
            self._on_finished(proc, -1, QProcess.ExitStatus.CrashExit)

    def _on_finished(self, proc: QProcess, code: int, status: QProcess.ExitStatus) -> None:
        # Finished QProcess objects stay children of the client: deleteLater() on them from their
        # own signal crashes PySide when the client goes away later. A few dead ones cost nothing.
        if proc in self._retired:
            self._retired.discard(proc)
            return
        if proc is not self._proc:
            return
        self._on_stdout(proc)
        if self._buffer:
            self._handle_line(self._buffer.decode("utf-8", errors="replace").strip())
        was_ready = self._ready
        self._proc, self._ready, self._buffer = None, False, b""
        self._kill.stop()
        if self._shutting_down:
            return
        spec = self._current
        if spec is not None and self._stopping_for_cancel:
            self._finish(spec, "cancelled", {"message": "Cancelled; the worker was stopped and restarted."})
        elif spec is not None or status == QProcess.ExitStatus.CrashExit or code != 0 or not was_ready:
            self._report_crash(spec, code, status)
            if not was_ready:
                self._start_failures += 1
                if self._start_failures >= MAX_START_FAILURES:
                    self._give_up()
                    return
        self.start("restarting (loading PyTorch)…")

    def _report_crash(self, spec: JobSpec | None, code: int, status: QProcess.ExitStatus) -> None:
        how = "crashed" if status == QProcess.ExitStatus.CrashExit else f"exited with code {code}"
        self._set_state(CRASHED, f"{how}; restarting…")
        if spec is not None:
            message = (
                f"The worker process {how} while running this job. The window is fine and a new worker "
                "is starting. Running out of memory is the usual cause: try fewer samples or a smaller "
                "batch size."
            )
            details = "\n".join(self._stderr_tail) or "The worker wrote nothing to stderr."
            self._finish(
                spec, "error", {"message": message, "details": details, "user_error": False, "crash": True}
            )
        self.crashed.emit(spec.id if spec is not None else "")

    def _give_up(self) -> None:
        last = self._stderr_tail[-1] if self._stderr_tail else "no output"
        self._set_state(FAILED, f"cannot start ({last}); the next job tries again")
        while self._queue:
            spec = self._queue.popleft()
            self._finish(
                spec,
                "error",
                {"message": "The worker process cannot start.", "details": "\n".join(self._stderr_tail)},
            )

    def _set_state(self, state: str, sentence: str) -> None:
        self._state, self.state_sentence = state, sentence
        self.stateChanged.emit(state, sentence)


def _busy_sentence(kind: str) -> str:
    return "busy: " + {
        "quantize": "quantizing…",
        "inspect": "reading the model…",
        "devices": "looking for GPUs…",
        "preview": "preparing calibration previews…",
        "sensitivity": "measuring layer sensitivity…",
    }.get(kind, "working…")


def _worker_environment() -> QProcessEnvironment:
    """The worker finds `core` through PYTHONPATH and writes its lines unbuffered."""
    env = QProcessEnvironment.systemEnvironment()
    root = str(root_dir())
    existing = env.value("PYTHONPATH", "")
    env.insert("PYTHONPATH", root + (os.pathsep + existing if existing else ""))
    env.insert("PYTHONUNBUFFERED", "1")
    env.remove("QT_QPA_PLATFORM")
    return env
