"""The worker process: runs jobs from JSON lines on stdin and answers with Event lines on stdout.

It imports torch once at start, so the window's first job does not pay for it, and serves jobs one at
a time. A cancel line sets a flag that the next progress report turns into `Cancelled`; the parent
terminates the process if that does not happen within its grace period.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import traceback

from core.errors import Cancelled
from core.jobs.execute import run_job, user_message
from core.jobs.spec import Event, JobSpec


class Worker:
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()
        self.jobs: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        self.current: str | None = None

    def send(self, type_: str, job_id: str | None, data: dict) -> None:
        line = Event(type_, job_id, data).to_json()
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()

    def emit_for(self, job_id: str):
        def emit(event: dict) -> None:
            event = dict(event)
            kind = event.pop("type")
            if self.cancel.is_set():
                raise Cancelled("cancelled by the user")
            self.send(kind, job_id, event)

        return emit

    def read_stdin(self) -> None:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                self.send("log", None, {"message": f"ignored a line that is not JSON: {line[:80]}"})
                continue
            op = msg.get("op")
            if op == "cancel":
                if self.current and msg.get("job_id") in (None, self.current):
                    self.cancel.set()
            elif op == "job":
                self.jobs.put(msg.get("spec") or {})
            elif op == "quit":
                break
        self.jobs.put(None)  # stdin closed: the parent is gone or asked us to stop

    def serve(self) -> None:
        while (raw := self.jobs.get()) is not None:
            job_id = raw.get("id") if isinstance(raw, dict) else None
            try:
                spec = JobSpec(kind=raw["kind"], params=raw.get("params") or {}, id=job_id or "job")
            except Exception as e:
                self.send(
                    "error", job_id, {"message": f"malformed job: {e}", "details": "", "user_error": True}
                )
                continue
            self.current = spec.id
            self.cancel.clear()
            try:
                result = run_job(spec, self.emit_for(spec.id))
                self.send("result", spec.id, result)
            except (Cancelled, KeyboardInterrupt):
                self.send("cancelled", spec.id, {"message": "cancelled by the user"})
            except BaseException as e:
                msg = user_message(e)
                details = traceback.format_exc()
                self.send(
                    "error",
                    spec.id,
                    {
                        "message": msg or f"{type(e).__name__}: {e}",
                        "details": details,
                        "user_error": msg is not None,
                    },
                )
            finally:
                self.current = None


def main() -> int:
    # Events own stdout; anything a library prints goes to stderr instead of corrupting the stream.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit becomes an OSError we report
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cancels through stdin, not a terminal ^C
    worker = Worker(out)
    import core.engine.pipeline  # noqa: F401  (pay for torch now, not in the first job)

    worker.send("ready", None, {"pid": os.getpid()})
    threading.Thread(target=worker.read_stdin, daemon=True).start()
    worker.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
