"""`@wp.task(isolation="process")`: each attempt runs in a child process the worker can kill.

A thread cannot be stopped from outside; a process can. The worker starts the child with
`python -c "from waypost.runtime.isolation import main; main()"` (a fresh interpreter: no
fork of a threaded process) and tells it, as one line of JSON on a pipe, which task to run
(its module and name — the child imports the module itself), the step's JSON input and the
context fields. The child answers on a second pipe with JSON lines: heartbeats as they
happen, then one result or error. Nothing is pickled, in either direction. Starting the
interpreter and importing waypost costs about 140 ms per attempt on a small machine.

Stopping (a cancellation, a timeout, a worker shutting down) sends the child SIGTERM, on
which it raises `wp.Cancelled` in the task's thread — inside a blocking call too — or
cancels an `async` body, so `finally` blocks run and `ctx.cancelled` is true; a child
still alive `KILL_GRACE` seconds later gets SIGKILL. A child never outlives its worker:
on Linux the kernel kills it when the worker dies (PR_SET_PDEATHSIG), and everywhere it
exits when the pipe from the worker reaches end-of-file.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import json
import os
import runpy
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from types import FrameType
from typing import Any

from ... import codec
from ...errors import Cancelled, DefinitionError, Fatal
from ...store.records import ClaimedStep
from ...vocabulary.context import Context, Heart
from ...vocabulary.outbox import outbox
from ...vocabulary.task import Task, registered_tasks
from ...vocabulary.topics import Emitted, emitted
from ..core.outcome import Outcome
from .bodies import completion_token, error_of

#: Seconds between SIGTERM (the child's chance to clean up) and SIGKILL.
KILL_GRACE = 1.0
#: The exit status of a child whose worker went away.
ORPHANED = 75
_PR_SET_PDEATHSIG = 1
_SRC = str(Path(__file__).resolve().parents[3])  # the directory that holds `waypost`
# Not `-m waypost.runtime.process.isolation`: importing waypost imports this module first.
_CHILD_MAIN = "from waypost.runtime.process.isolation import main; main()"


def _child_env() -> dict[str, str]:
    """The worker's environment, with waypost importable even when the worker found it
    through a path added at run time."""
    env = dict(os.environ)
    paths = [_SRC, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _where(task: Task[Any, Any]) -> dict[str, Any]:
    """How the child finds the task body: its module, or the worker's main script."""
    fn = task.fn
    where: dict[str, Any] = {"module": fn.__module__, "qualname": fn.__qualname__,
                             "name": task.name}
    if fn.__module__ == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name and spec.name != "__main__":
            where["module"] = spec.name  # started as `python -m pkg.mod`
        else:
            where["main_path"] = getattr(main, "__file__", None)
    return where


def _death(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        hint = " (the out-of-memory killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return (f"the task's process was killed by signal {-code} ({name}) before it "
                f"reported a result{hint}")
    return f"the task's process exited with code {code} before it reported a result"


class ChildAttempt:
    """The worker's side of one attempt in a child process. `run()` occupies one executor
    thread and returns once the child is gone (reaped); `stop()` may be called from any
    thread, at any time, even before `run()`."""

    def __init__(self, task: Task[Any, Any], step: ClaimedStep, heart: Heart) -> None:
        self.task = task
        self.step = step
        self.heart = heart
        self.pid: int | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._wake: tuple[int, int] | None = None  # a pipe that interrupts run()'s wait

    def stop(self) -> None:
        """End the child: SIGTERM now, SIGKILL after `KILL_GRACE` (done by `run()`)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            if self._wake is not None:
                os.write(self._wake[1], b"x")

    def run(self) -> Outcome:
        with self._lock:
            self._wake = os.pipe()
            if self._stopping:
                os.write(self._wake[1], b"x")
        try:
            return self._run(self._wake[0])
        finally:
            with self._lock:
                os.close(self._wake[0])
                os.close(self._wake[1])
                self._wake = None

    def _run(self, wake: int) -> Outcome:
        step = self.step
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD_MAIN, str(to_child_r), str(from_child_w),
                 str(os.getpid())],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                env=_child_env(),
                # its own process group: a Ctrl-C meant for the worker (which then lets
                # running attempts finish) must not interrupt the task
                start_new_session=True)
        except OSError as exc:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            return Outcome(step.id, step.run_id, step.lease_token, error=error_of(exc))
        os.close(to_child_r)
        os.close(from_child_w)
        self.pid = proc.pid
        try:
            with contextlib.suppress(BrokenPipeError):  # died at once: its exit tells why
                _write_all(to_child_w, self._bootstrap())
            return self._serve(proc, from_child_r, wake)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            os.close(to_child_w)  # only now: its end-of-file would tell the child to exit
            os.close(from_child_r)

    def _bootstrap(self) -> bytes:
        step, task = self.step, self.task
        context = None
        if task.context_param:
            context = {"run_id": step.run_id, "step": step.name, "attempt": step.attempts,
                       "idempotency_key": step.idempotency_key,
                       "completion_token": (completion_token(step)
                                            if task.completes_externally else None)}
        boot = {**_where(task), "path": sys.path, "argv": sys.argv, "input": step.input,
                "context": context}
        return (json.dumps(boot) + "\n").encode()

    def _serve(self, proc: subprocess.Popen[bytes], out: int, wake: int) -> Outcome:
        """Pass heartbeats on, stop the child when asked, and collect its report."""
        report: dict[str, Any] | None = None
        buffer = bytearray()
        kill_at = float("inf")
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            while True:
                timeout = None if kill_at == float("inf") else max(0.0, kill_at - time.monotonic())
                eof = False
                for key, _ in sel.select(timeout):
                    if key.fd == wake:
                        sel.unregister(wake)
                        with contextlib.suppress(ProcessLookupError):
                            proc.send_signal(signal.SIGTERM)
                        kill_at = time.monotonic() + KILL_GRACE
                        continue
                    chunk = os.read(out, 65536)
                    if not chunk:
                        eof = True
                        continue
                    buffer += chunk
                    if b"\n" in chunk:  # a large output arrives in many chunks
                        *lines, rest = bytes(buffer).split(b"\n")
                        buffer = bytearray(rest)
                        for line in lines:
                            report = self._message(line) or report
                if eof:
                    break
                if time.monotonic() >= kill_at:
                    proc.kill()
                    kill_at = float("inf")
        try:  # the pipe closes when the child exits
            code = proc.wait(KILL_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        return self._outcome(report, code)

    def _message(self, line: bytes) -> dict[str, Any] | None:
        try:
            message = json.loads(line)
        except ValueError:
            return None  # cut short by a kill
        if not isinstance(message, dict):
            return None
        if "beat" in message:
            self.heart.beat(str(message["beat"]))
            return None
        return dict(message)

    def _outcome(self, report: dict[str, Any] | None, code: int) -> Outcome:
        step = self.step
        if report is None:
            if self._stopping:
                error = {"type": "Cancelled", "message": "the task's process was stopped",
                         "traceback": None}
            else:
                error = {"type": "ProcessDied", "message": _death(code), "traceback": None}
            return Outcome(step.id, step.run_id, step.lease_token, error=error)
        emits = tuple(_emitted(e) for e in report.get("emits") or ())
        if "handoff" in report:
            return Outcome(step.id, step.run_id, step.lease_token, output="null",
                           handoff=completion_token(step), emits=emits)
        if "output" in report:
            return Outcome(step.id, step.run_id, step.lease_token, output=str(report["output"]),
                           emits=emits)
        return Outcome(step.id, step.run_id, step.lease_token, error=report["error"],
                       fatal=bool(report.get("fatal")), kind=str(report.get("kind", "failed")))


def _emitted(item: Any) -> Emitted:
    """An event the child process reports it emitted, checked again here: the report
    crosses a process boundary, so it is data to validate, not to trust."""
    topic, payload, key, event_id = item
    return emitted(topic, codec.loads(payload), key, event_id)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- the child ------------------------------------------------------------------------------


class _ChildHeart(Heart):
    """Sends each beat to the worker at once; the worker's own Heart keeps the latest."""

    def __init__(self, report: int) -> None:
        super().__init__()
        self._report = report
        self._send_lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self._send_lock:
            _write_all(self._report, (json.dumps(message) + "\n").encode())

    def beat(self, details: str) -> None:
        self.send({"beat": details})


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(ORPHANED)


def _watch_parent(control: Any) -> None:
    """The worker never writes after the bootstrap line and closes the pipe only once we
    are dead: end-of-file means the worker itself is gone."""
    while control.readline():
        pass
    os._exit(ORPHANED)


_loading_main = False


def refuse_in_main_script() -> None:
    """Called as a run or a worker starts: a script that does either at import time,
    without a `__main__` guard, would otherwise do it again in every task process."""
    if _loading_main:
        raise DefinitionError("a run or worker was started while a task's process loaded the "
                              "main script: put the script's own work under "
                              "`if __name__ == \"__main__\":`")


def _find_task(boot: dict[str, Any]) -> Task[Any, Any]:
    global _loading_main
    if boot.get("main_path"):
        # the worker's main script, run as multiprocessing does: its `__main__` guard is off
        _loading_main = True
        try:
            namespace: dict[str, Any] = runpy.run_path(boot["main_path"],
                                                       run_name="__mp_main__")
        finally:
            _loading_main = False
    else:
        namespace = vars(importlib.import_module(boot["module"]))
    first, *rest = boot["qualname"].split(".")
    found: Any = namespace.get(first)
    for part in rest:
        found = getattr(found, part, None)
    if isinstance(found, Task):
        return found
    by_name = registered_tasks().get(boot["name"])
    if by_name is None:
        raise LookupError(f"task {boot['name']} not found in module {boot['module']} by the "
                          "task's process")
    return by_name


def _raise_cancelled(heart: Heart, context: dict[str, Any] | None) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        heart.cancelled.set()
        what = f"attempt {context['attempt']} of step {context['step']}" if context else "attempt"
        raise Cancelled(f"{what} was cancelled (its process was told to stop)")

    signal.signal(signal.SIGTERM, handler)


async def _cancellable(coro: Coroutine[Any, Any, Any], heart: Heart) -> Any:
    current = asyncio.current_task()
    assert current is not None

    def cancel() -> None:
        heart.cancelled.set()
        current.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, cancel)
    return await coro


def _attempt(boot: dict[str, Any], heart: _ChildHeart) -> dict[str, Any]:
    """Run the task body; the report to send back."""
    try:
        sys.path[:] = boot["path"]
        sys.argv[:] = boot["argv"]  # as the worker's, for modules that read it on import
        task = _find_task(boot)
        data = codec.loads(boot["input"])
        args, kwargs = list(data["args"]), dict(data["kwargs"])
        if task.context_param and boot["context"] is not None:
            kwargs[task.context_param] = Context(**boot["context"], _heart=heart)
        with outbox() as box:
            if task.is_async:
                result = asyncio.run(_cancellable(task.fn(*args, **kwargs), heart))
            else:
                _raise_cancelled(heart, boot["context"])
                try:
                    result = task.fn(*args, **kwargs)
                finally:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
        emits = [[e.topic, e.payload, e.key, e.id] for e in box]
        if task.completes_externally:
            return {"handoff": True, "emits": emits}
        try:
            return {"output": codec.dumps(result, codec.MAX_DEPTH), "emits": emits}
        except TypeError as exc:  # the same value would come back on a retry
            return {"error": error_of(exc, __file__), "fatal": True}
    except BaseException as exc:  # `sys.exit()` too: reported, not a bare exit code
        return {"error": error_of(exc, __file__), "fatal": isinstance(exc, Fatal),
                "kind": "timeout" if isinstance(exc, TimeoutError) else "failed"}


def main() -> None:
    control_fd, report_fd, parent = (int(a) for a in sys.argv[1:4])
    _die_with_parent(parent)
    os.set_inheritable(control_fd, False)  # not passed on to what the task starts
    os.set_inheritable(report_fd, False)
    control = os.fdopen(control_fd, "rb")
    line = control.readline()
    if not line:
        os._exit(ORPHANED)
    heart = _ChildHeart(report_fd)
    threading.Thread(target=_watch_parent, args=(control,), daemon=True).start()
    report = _attempt(json.loads(line), heart)
    heart.send(report)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # threads the task left behind must not keep the process alive
