"""Output of app code during a call, for the runner's app host (``nr_host.py``).

A worker's ``sys.stdout`` and ``sys.stderr`` are replaced once, when it starts, by
streams that feed whole lines to the worker's :class:`CallOutput`. During a call that
asks for it (the header's ``cap``, or ``capture`` for a job), every line of stdout,
stderr and ``logging`` is sent to the runner as a frame ``{"log": line, "stream": ...}``
on the worker's own socket, so the runner logs it with the app, the call's request id
and the stream; at most ``cap`` bytes a call, then one marker line says how much was
left out. A job also keeps its lines (prefixed ``[<request id>]``) for the final reply
and sends at most ``LIVE_PER_S`` of them a second live. Between calls, and on a call
that asks for nothing, output goes where it went before: the host's stderr.

A call that prints nothing costs two attribute updates under a lock, no frame.

``logging`` records carry ``request_id`` and ``job_id`` (empty outside a call or job),
so a handler's format may use ``%(request_id)s``.
"""

import io
import logging
import sys
import threading
import time

LINE_MAX = 4096  # characters of one line; longer lines are cut with a marker
LIVE_PER_S = 50  # live log lines a job may send per second (the rest are kept only)
_FORMAT = "%(levelname)s %(name)s: %(message)s"

# The call being served: request id and job id ("" outside a call), read by the
# LogRecord factory.
_context = ["", ""]


def install_record_factory():
    """Gives every ``logging`` record ``request_id`` and ``job_id`` attributes. Set in
    the host before the app is imported, so formats naming them work from the start."""
    if getattr(logging, "_noderouter_factory", False):
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        record.request_id, record.job_id = _context
        return record

    logging.setLogRecordFactory(factory)
    logging._noderouter_factory = True


class _Bytes:
    """``sys.stdout.buffer``: bytes written are decoded and fed to the stream."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, data):
        self._stream.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self):
        pass


class _Stream(io.TextIOBase):
    """A text stream feeding whole lines to a :class:`CallOutput`, or writing to
    ``fallback`` when no call captures."""

    def __init__(self, output, name, fallback):
        super().__init__()
        self._output, self._name, self._fallback = output, name, fallback
        self._partial = ""

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "replace"

    @property
    def buffer(self):
        return _Bytes(self)

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        # Subprocesses handed this stream write to the host's stderr directly.
        return self._fallback.fileno()

    def write(self, s):
        if not isinstance(s, str):
            s = str(s)
        out = self._output
        with out.lock:
            if out.rid is None:
                self._fallback.write(s)
                return len(s)
            self._partial += s
            while "\n" in self._partial:
                line, self._partial = self._partial.split("\n", 1)
                out.line(self._name, line)
            if len(self._partial) > LINE_MAX * 2:
                out.line(self._name, self._partial)
                self._partial = ""
        return len(s)

    def flush(self):
        if self._output.rid is None:
            try:
                self._fallback.flush()
            except (OSError, ValueError):
                pass

    def close_line(self):
        """Sends what is left of an unfinished line (the call lock held)."""
        if self._partial:
            self._output.line(self._name, self._partial)
            self._partial = ""


class CallOutput:
    """The worker's output during calls, and the one way its frames reach the socket
    (so a line printed by a thread never cuts into another frame)."""

    def __init__(self, send):
        self._send = send
        self.lock = threading.RLock()
        self.rid = None  # None: no call captures
        self.cap, self.size, self.dropped = 0, 0, 0
        self.kept = None  # a job's lines
        self.window, self.sent = 0, 0
        self.streams = []

    def frame(self, header, body=b""):
        with self.lock:
            self._send(header, body)

    def install(self):
        """Replaces ``sys.stdout``/``sys.stderr`` and points the app's console logging
        handlers (and logging's last resort) at them."""
        install_record_factory()
        old_out, old_err = sys.stdout, sys.stderr
        out = _Stream(self, "stdout", old_out)
        err = _Stream(self, "stderr", old_err)
        log = _Stream(self, "logging", old_err)
        self.streams = [out, err, log]
        sys.stdout, sys.stderr = out, err
        consoles = {id(s) for s in (old_out, old_err, sys.__stdout__, sys.__stderr__) if s is not None}
        loggers = [logging.getLogger()] + [
            v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)
        ]
        for logger in loggers:
            for handler in logger.handlers:
                if type(handler) is logging.StreamHandler and id(handler.stream) in consoles:
                    handler.setStream(log)
        last = logging.StreamHandler(log)
        last.setLevel(logging.WARNING)
        last.setFormatter(logging.Formatter(_FORMAT))
        logging.lastResort = last

    def begin(self, rid, job, cap, keep):
        """Starts capturing for one call: ``cap`` bytes at most (nothing when it is not
        a positive number); ``keep`` keeps the lines for :meth:`end` (jobs)."""
        _context[0], _context[1] = rid, job
        if not isinstance(cap, int) or cap <= 0:
            return
        with self.lock:
            self.rid, self.cap, self.size, self.dropped = rid, cap, 0, 0
            self.kept = [] if keep else None

    def line(self, stream, text):
        """One line of the call's output (the lock held)."""
        if len(text) > LINE_MAX:
            text = text[:LINE_MAX] + " ...[line truncated, %d characters]" % len(text)
        if self.kept is not None:
            text = "[%s] %s" % (self.rid, text)
        n = len(text.encode("utf-8", "replace")) + 1
        if self.size + n > self.cap:
            self.dropped += n
            return
        self.size += n
        if self.kept is not None:
            self.kept.append(text)
            now = int(time.monotonic())
            if now != self.window:
                self.window, self.sent = now, 0
            if self.sent >= LIVE_PER_S:
                return
            self.sent += 1
        try:
            self._send({"log": text, "stream": stream})
        except OSError:
            pass

    def end(self):
        """Ends the call's capture: unfinished lines are sent, a marker says how much
        was over the cap. Returns a job's kept text (None otherwise)."""
        _context[0], _context[1] = "", ""
        if self.rid is None:
            return None
        with self.lock:
            for stream in self.streams:
                stream.close_line()
            kept, rid, dropped = self.kept, self.rid, self.dropped
            self.rid, self.kept = None, None
            if kept is not None:
                text = "\n".join(kept)
                if dropped:
                    text += "\n[%s] ...[log truncated: %d more bytes not kept]" % (rid, dropped)
                return text
            if dropped:
                marker = "...[output truncated: %d more bytes over the cap of %d not logged]" % (dropped, self.cap)
                try:
                    self._send({"log": marker, "stream": "stderr"})
                except OSError:
                    pass
            return None
