"""The bulk load's pipeline: validation in worker processes, writing in a background thread.

A bulk load has three kinds of work: validating and formatting each line (Python, most of the
client's work), writing batches (the database's work, this process mostly waits) and keeping order
(which batch a line joins, the reject file, progress). :func:`prepared_lines` hands the first to
worker processes over chunks of raw lines and yields the outcomes back in file order;
:class:`OrderedWriter` runs the second in a thread, so the next batch is gathered while the
database writes this one. The caller keeps the third: everything happens in the order of the file,
exactly as a load without workers does.

Memory stays bounded whatever the size of the file: a few chunks per worker are in flight, and at
most two batches wait for the writer.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType
from typing import Any

from ccanalytics.core.errors import RecordProblem
from ccanalytics.ingest.callog import DEFAULT_LIMITS, Limits
from ccanalytics.ingest.prepare import PreparedCall, prepare_line

CHUNK_LINES = 128  # lines per chunk sent to a worker
CHUNK_BYTES = 1 << 20  # …or fewer when they add up to this many bytes
IN_FLIGHT_PER_WORKER = 4  # chunks submitted and not yet consumed, per worker
WAITING_BATCHES = 2  # batches handed to the writer and not yet written

Outcome = PreparedCall | RecordProblem | None
Lines = list[tuple[int, bytes]]


def default_workers() -> int:
    """Worker processes for a bulk load: one per core this process may run on but one, which is left
    to the writing (and to the database, when it runs on this machine); none on a single core.

    On 2 cores with the embedded database, 1 worker loaded 20k calls at 2,605 calls/s and 2 workers
    at 2,376 (medians of 3): the database backend is the slower stage, and a second worker only
    takes CPU from it."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores - 1


# ----------------------------------------------------------------------------------- validation
def _prepare_chunk(chunk: Lines, limits: Limits) -> list[Outcome]:
    return [prepare_line(line, line_no, limits) for line_no, line in chunk]


def _start_method() -> str:
    """fork on Linux while this process runs a single thread: fast, and it does not import the
    caller's main module again (a script without an ``if __name__ == "__main__"`` guard would run
    again in every worker). With other threads running, a fork could copy a lock one of them holds:
    spawn then."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the load and shuts the workers down
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _chunks(lines: Iterable[tuple[int, bytes]]) -> Iterator[Lines]:
    chunk: Lines = []
    size = 0
    for item in lines:
        chunk.append(item)
        size += len(item[1])
        if len(chunk) >= CHUNK_LINES or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def prepared_lines(
    lines: Iterable[tuple[int, bytes]], limits: Limits = DEFAULT_LIMITS, workers: int = 0
) -> Iterator[tuple[int, bytes, Outcome]]:
    """(line number, line, outcome) for every line, in order; the outcome is a PreparedCall, a
    RecordProblem, or None for a blank line. With ``workers`` > 0 the lines are validated in that
    many processes; a source of a single chunk is validated here (starting processes costs more)."""
    chunks = _chunks(lines)
    first = next(chunks, None)
    second = next(chunks, None) if first is not None and workers > 0 else None
    if first is None or second is None:  # no second chunk without a first
        for chunk in itertools.chain((first,) if first else (), chunks):
            for (line_no, line), outcome in zip(chunk, _prepare_chunk(chunk, limits), strict=True):
                yield line_no, line, outcome
        return

    chunks = itertools.chain((first, second), chunks)
    context = multiprocessing.get_context(_start_method())
    pending: deque[tuple[Lines, Future[list[Outcome]]]] = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_ignore_sigint) as pool:
        try:
            for chunk in itertools.islice(chunks, workers * IN_FLIGHT_PER_WORKER):
                pending.append((chunk, pool.submit(_prepare_chunk, chunk, limits)))
            while pending:
                chunk, future = pending.popleft()
                outcomes = future.result()
                following = next(chunks, None)
                if following is not None:
                    pending.append((following, pool.submit(_prepare_chunk, following, limits)))
                for (line_no, line), outcome in zip(chunk, outcomes, strict=True):
                    yield line_no, line, outcome
        finally:
            for _chunk, future in pending:  # stopped early (an error, Ctrl-C): drop what has not started
                future.cancel()


# -------------------------------------------------------------------------------------- writing
class OrderedWriter:
    """Runs ``write_batch`` and ``reject`` calls in a background thread, in the order they were made.

    ``batch`` blocks while WAITING_BATCHES batches wait. An error of the writer is raised by the
    next call (or on leaving the ``with`` block); what was handed over after it is dropped. Leaving
    the block with an exception drops the work not started yet; the batch being written finishes
    (its transaction commits or rolls back as a whole).
    """

    def __init__(
        self,
        write_batch: Callable[[Any, Any], None],
        reject: Callable[[RecordProblem, bytes], None],
    ) -> None:
        self._write_batch = write_batch
        self._reject = reject
        self._queue: queue.SimpleQueue[tuple[str, Any, Any] | None] = queue.SimpleQueue()
        self._slots = threading.Semaphore(WAITING_BATCHES)
        self._error: BaseException | None = None
        self._stop = False
        self._thread: threading.Thread | None = None

    def __enter__(self) -> OrderedWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is None:
            return
        if exc_type is not None:
            self._stop = True
        self._queue.put(None)
        self._thread.join()
        if exc_type is None:
            self._raise_error()

    def reject(self, problem: RecordProblem, line: bytes) -> None:
        self._put(("reject", problem, line))

    def batch(self, batch: Any, lines: Any) -> None:
        self._raise_error()
        self._slots.acquire()
        self._put(("batch", batch, lines))

    def _put(self, item: tuple[str, Any, Any]) -> None:
        self._raise_error()
        if self._thread is None:  # started on first use: the worker processes are forked by then
            self._thread = threading.Thread(target=self._run, name="ccanalytics-ingest-writer", daemon=True)
            self._thread.start()
        self._queue.put(item)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            kind, first, second = item
            try:
                if self._error is None and not self._stop:
                    if kind == "batch":
                        self._write_batch(first, second)
                    else:
                        self._reject(first, second)
            except BaseException as exc:  # noqa: BLE001 — handed to the loading thread, which raises it
                self._error = exc
            finally:
                if kind == "batch":
                    self._slots.release()
