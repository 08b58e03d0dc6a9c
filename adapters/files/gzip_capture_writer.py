"""Rotating ``.jsonl.gz`` capture files with a crash bound and a size bound.

``RotatingGzipCaptureWriter`` appends lines to ``<dir>/<prefix>-<UTC start>.jsonl.gz``:

- **Rotation**: a new file every ``rotate_seconds`` of wall time (and, with a size bound, when
  the current file reaches a quarter of it, so the bound holds whatever the traffic).
- **Crash bound**: :meth:`flush` ends the compressed stream at a byte boundary
  (``Z_SYNC_FLUSH``) and ``fsync`` s it; called every second, a crash (process or machine)
  loses at most the last second. A file cut that way lacks only the gzip trailer; the replay
  feed reads it up to the cut (``truncated_file`` is counted once for it).
- **Size bound**: after every flush and rotation, while the prefix's files in the folder
  (earlier runs' included) exceed ``max_bytes`` on disk, the oldest closed file is deleted and
  each deletion is logged (``capture_file_deleted``). The file being written is never deleted.

File names sort in time order (``capture-20261206T200102.123456Z.jsonl.gz``), which is the
order the backtest replays a folder in.
"""

from __future__ import annotations

import gzip
import os
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final

import structlog

_log = structlog.get_logger(__name__)

SUFFIX: Final = ".jsonl.gz"
_SIZE_ROTATION_SHARE: Final = 4
"""With a size bound, rotate when the current file reaches 1/4 of it."""


class RotatingGzipCaptureWriter:
    """Appends lines to rotating gzip files in ``directory`` (not thread-safe; one writer per
    folder and prefix)."""

    def __init__(
        self,
        directory: Path,
        *,
        prefix: str = "capture",
        rotate_seconds: float = 3600.0,
        max_bytes: int | None = None,
        compresslevel: int = 6,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if rotate_seconds <= 0:
            raise ValueError(f"rotate_seconds must be > 0, got {rotate_seconds}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if not prefix or "/" in prefix:
            raise ValueError(f"bad file prefix {prefix!r}")
        self.directory = directory
        self.prefix = prefix
        self.rotate_ns = int(rotate_seconds * 1e9)
        self.max_bytes = max_bytes
        self.compresslevel = compresslevel
        self._clock_ns = clock_ns
        self._raw: IO[bytes] | None = None
        self._gzip: gzip.GzipFile | None = None
        self._opened_ns = 0
        self._dirty = False
        self.path: Path | None = None
        """The file being written."""
        self.lines = 0
        self.files_opened = 0
        self.files_deleted = 0
        self.bytes_deleted = 0

    # -- writing ----------------------------------------------------------------------------

    def write(self, line: bytes) -> None:
        """Append one line (a newline is added); rotates first when it is time."""
        now = self._clock_ns()
        if self._gzip is None or now - self._opened_ns >= self.rotate_ns or self._too_big():
            self._rotate(now)
        assert self._gzip is not None
        self._gzip.write(line)
        self._gzip.write(b"\n")
        self.lines += 1
        self._dirty = True

    def flush(self) -> None:
        """Make everything written so far readable and durable; then apply the size bound."""
        if self._gzip is not None and self._raw is not None and self._dirty:
            self._gzip.flush(zlib.Z_SYNC_FLUSH)
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._dirty = False
        self.enforce_bound()

    def close(self) -> None:
        """Finish the current file (gzip trailer, fsync) and apply the size bound."""
        self._close_current()
        self.enforce_bound()

    # -- files ------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """This writer's files in the folder (earlier runs' too), oldest first."""
        return sorted(self.directory.glob(f"{self.prefix}-*{SUFFIX}"))

    def enforce_bound(self) -> None:
        if self.max_bytes is None:
            return
        files = self.files()
        sizes = {path: _size(path) for path in files}
        total = sum(sizes.values())
        for path in files:
            if total <= self.max_bytes:
                break
            if path == self.path:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as error:
                _log.error("capture_file_delete_failed", path=str(path), error=repr(error))
                continue
            total -= sizes[path]
            self.files_deleted += 1
            self.bytes_deleted += sizes[path]
            _log.warning(
                "capture_file_deleted",
                path=str(path),
                bytes=sizes[path],
                reason="max_bytes",
                max_bytes=self.max_bytes,
                total_bytes_after=total,
            )

    def _too_big(self) -> bool:
        if self.max_bytes is None or self._raw is None:
            return False
        return self._raw.tell() >= self.max_bytes // _SIZE_ROTATION_SHARE

    def _rotate(self, now_ns: int) -> None:
        self._close_current()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._new_path(now_ns)
        self._raw = open(path, "xb")  # noqa: SIM115 - closed by _close_current
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, compresslevel=self.compresslevel, mtime=0
        )
        self._opened_ns = now_ns
        self.path = path
        self.files_opened += 1
        _log.info("capture_file_opened", path=str(path))
        self.enforce_bound()

    def _new_path(self, now_ns: int) -> Path:
        seconds, rest = divmod(now_ns, 1_000_000_000)
        stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y%m%dT%H%M%S")
        micros = rest // 1000
        while True:
            path = self.directory / f"{self.prefix}-{stamp}.{micros:06d}Z{SUFFIX}"
            if not path.exists():
                return path
            micros += 1  # two files in one microsecond: keep names unique and ordered

    def _close_current(self) -> None:
        gz, raw = self._gzip, self._raw
        self._gzip = self._raw = None
        if gz is not None:
            gz.close()
        if raw is not None:
            raw.flush()
            os.fsync(raw.fileno())
            raw.close()
            _log.info("capture_file_closed", path=str(self.path), bytes=_size(self.path))
        self._dirty = False


def _size(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
