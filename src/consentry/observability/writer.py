"""A log handler that takes finished lines at once and writes them in batches, off the caller.

Writing a line per record costs the event loop a system call for every request, and a slow
reader of the stream (a full pipe to a log collector) would stop every request with it. Here
the caller only appends the line to a queue; a thread writes what has gathered every few
milliseconds, and whatever is left when the handler is flushed or closed (at exit, by
logging's own shutdown).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TextIO

# How long the writer lets lines gather once one is waiting: the most a line lags its request.
FLUSH_SECONDS = 0.005
# A write of at most this many bytes to a pipe is never interleaved with another process's
# (POSIX PIPE_BUF): the workers of one server share their stderr, and a line must stay whole.
_ATOMIC_WRITE = 4096
# Lines waiting past this many make the caller write them itself, as a plain stream handler
# would: a stream that takes nothing slows the service down rather than filling its memory.
_MOST_WAITING = 50_000


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose lines are formatted by the caller and written by a thread."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._lines: deque[str] = deque()
        self._writing = threading.Lock()
        self._wake = threading.Event()
        self._signalled = False
        self._closing = False
        self._writer = threading.Thread(
            target=self._write_forever, name="consentry-log-writer", daemon=True
        )
        self._writer.start()

    def put(self, line: str) -> None:
        """Queue one finished line, ending in a newline; safe from any thread."""
        self._lines.append(line)
        if not self._signalled:
            self._signalled = True
            self._wake.set()
        if len(self._lines) > _MOST_WAITING:
            self._write_waiting()

    def emit(self, record: logging.LogRecord) -> None:
        # Formatted here, in the caller's context: the line names the request being handled.
        try:
            line = self.format(record) + self.terminator
        except Exception:  # logging's own rule: a bad record never raises
            self.handleError(record)
            return
        self.put(line)

    def flush(self) -> None:
        """Write every line queued so far, then flush the stream."""
        self._write_waiting()

    def close(self) -> None:
        """Stop the writer thread and write what is left."""
        self._closing = True
        self._wake.set()
        if self._writer is not threading.current_thread():
            self._writer.join(timeout=5)
        self._write_waiting()
        super().close()

    def _write_forever(self) -> None:
        while True:
            self._wake.wait()
            if self._closing:
                return
            time.sleep(FLUSH_SECONDS)
            # Cleared before the queue is taken: a line queued after this point wakes it again.
            self._wake.clear()
            self._signalled = False
            self._write_waiting()

    def _write_waiting(self) -> None:
        with self._writing:
            lines = self._lines
            chunk: list[str] = []
            size = 0
            while lines:
                line = lines.popleft()
                length = len(line) if line.isascii() else len(line.encode())
                if chunk and size + length > _ATOMIC_WRITE:
                    self._write("".join(chunk))
                    chunk, size = [], 0
                chunk.append(line)
                size += length
            if chunk:
                self._write("".join(chunk))

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            # A closed or broken stream (the end of a pipe gone, the file closed at exit): the
            # service goes on without its log, as it would with logging's stream handler.
            return
