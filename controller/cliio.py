"""The files the ``ankle`` command reads and writes, and its JSON: one place for each.

- :func:`read_input`: every file the CLI reads (a log, a run configuration) is opened here.
  Directories, devices, FIFOs and sockets are refused, and so is anything over the caller's
  stated size limit, with one line naming the path (``adir: is a directory``); the read itself
  is bounded, so ``/dev/zero`` or a file that grows while it is read cannot exhaust memory.
- :class:`OutputTarget`: every file the CLI creates.  Checked and reserved (a temporary file
  created beside it) before any work, so an unwritable folder is said at once; the command
  writes the temporary file; only when the whole command succeeded is it renamed over the
  target (fsync, rename, fsync of the directory).  A failure leaves no output file and the
  previous one, if any, untouched.
- :func:`json_text`: the one JSON writer: NaN and infinities become ``null`` (strict JSON has
  no NaN), and anything else that JSON cannot hold is a bug, not silently printed.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

__all__ = ["InputFileError", "InputFileMissing", "read_input", "OutputTarget", "json_text", "finite", "describe_os_error",
           "MAX_LOG_BYTES", "MAX_CONFIG_BYTES"]

PathLike = Union[str, "os.PathLike[str]"]

#: A session log read whole (``csvlog.read_columns``): at most this many bytes.  ``ankle replay``,
#: ``ankle report`` and ``ankle logs`` stream (``csvlog.iter_column_blocks``) and have no limit.
#: A log of the 35 telemetry columns is about 280 bytes a row, so 256 MiB is about 16 minutes at
#: 1 kHz.  Parsed into rows of cells (csvlog.read_columns) it peaks at about 13 bytes of memory
#: per byte of file, so about 3.4 GB at the limit: why there is one.
MAX_LOG_BYTES = 256 * 1024 * 1024
#: A run configuration (deploy/ankle.toml, fully commented, is about 8 kB).
MAX_CONFIG_BYTES = 1024 * 1024


class InputFileError(ValueError):
    """A file given to the CLI cannot be read as one: the message is ``<path>: <reason>``.

    Examples: ``logs: is a directory``; ``/dev/zero: not a regular file (a character device)``;
    ``big.csv: 300.0 MiB, over the 256 MiB limit for a session log``.
    """


class InputFileMissing(InputFileError):
    """The path names nothing (``<path>: no such file``)."""


_KINDS = ((stat.S_ISDIR, "is a directory"), (stat.S_ISCHR, "not a regular file (a character device)"),
          (stat.S_ISBLK, "not a regular file (a block device)"), (stat.S_ISFIFO, "not a regular file (a FIFO)"),
          (stat.S_ISSOCK, "not a regular file (a socket)"))


def _kind_problem(mode: int) -> Optional[str]:
    for test, words in _KINDS:
        if test(mode):
            return words
    return None if stat.S_ISREG(mode) else "not a regular file"


def describe_os_error(e: OSError, path: Optional[PathLike] = None) -> str:
    """``<path>: <reason>`` for an OSError, in the words of the C library (lower case)."""
    where = e.filename if e.filename is not None else path
    reason = e.strerror or str(e)
    reason = reason[:1].lower() + reason[1:]
    if e.filename2 is not None:
        return f"{where} -> {e.filename2}: {reason}"
    return f"{where}: {reason}" if where is not None else reason


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def open_regular(path: PathLike, limit_bytes: Optional[int] = None, what: str = "file") -> int:
    """A read-only descriptor of the regular file ``path``.

    :class:`InputFileError` (``<path>: <reason>``; :class:`InputFileMissing` when it does not
    exist) for a missing or unreadable path, a directory, a device, FIFO or socket, or a file over
    ``limit_bytes`` if given (``what`` names the kind of file in that message).  O_NONBLOCK, so a
    FIFO put in the file's place is refused rather than waited on.
    """
    shown = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputFileMissing(f"{shown}: no such file") from None
    except OSError as e:
        raise InputFileError(describe_os_error(e, shown)) from None
    except ValueError:                       # a NUL byte in the path
        raise InputFileError(f"{shown!r}: not a usable path") from None
    try:
        st = os.fstat(fd)
        problem = _kind_problem(st.st_mode)
        if problem is not None:
            raise InputFileError(f"{shown}: {problem}")
        if limit_bytes is not None and st.st_size > limit_bytes:
            raise InputFileError(f"{shown}: {_mib(st.st_size)}, over the {_mib(limit_bytes)} limit for a {what}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_input(path: PathLike, limit_bytes: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, at most ``limit_bytes`` of them.

    :class:`InputFileError` (``<path>: <reason>``) as :func:`open_regular`, and for a file that
    grows over the limit while it is read.
    """
    shown = os.fspath(path)
    fd = open_regular(path, limit_bytes, what)
    try:
        chunks, size = [], 0
        while size <= limit_bytes:           # bounded even if the file grows while it is read
            try:
                chunk = os.read(fd, min(1 << 20, limit_bytes + 1 - size))
            except OSError as e:
                raise InputFileError(describe_os_error(e, shown)) from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit_bytes:
            raise InputFileError(f"{shown}: grew over the {_mib(limit_bytes)} limit for a {what} while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


class OutputTarget:
    """A file the command will create: checked when the arguments are parsed (:meth:`check`),
    reserved before any work (:meth:`reserve`), written at :attr:`temp`, and put in place by
    :meth:`commit` only once the command succeeded; :meth:`discard` removes the temporary file.

    ``str()`` is the target's path (for messages and summaries).  It is deliberately not
    ``os.PathLike``: code that writes must say whether it writes :attr:`temp` or streams in place
    (:meth:`in_place`).
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.temp: Optional[Path] = None
        self._in_place = False

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"OutputTarget({str(self.path)!r})"

    @property
    def directory(self) -> Path:
        return self.path.parent if str(self.path.parent) else Path(".")

    def check(self) -> None:
        """ValueError (one line) unless the folder exists and the target is absent or a regular file."""
        if not self.path.name or self.path.name in (".", ".."):
            raise ValueError(f"{self.path}: not a file name")
        if not self.directory.is_dir():
            raise ValueError(f"directory {str(self.directory)!r} does not exist")
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise ValueError(describe_os_error(e, self.path)) from None
        problem = _kind_problem(st.st_mode)
        if problem is not None:
            # never rename over a directory or a device node (as root, /dev/null would be replaced)
            raise ValueError(f"{self.path}: {problem}")

    def reserve(self) -> None:
        """Create the temporary file beside the target: the real test that the folder is writable.
        ValueError as :meth:`check`, or OSError (with the folder's name) if it is not writable."""
        self.check()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=f".tmp{self.path.suffix}",
                                   dir=self.directory)
        os.close(fd)
        self.temp = Path(tmp)

    def in_place(self) -> Path:
        """For a log streamed while it is recorded (whatever was recorded stays, even if the run
        fails later): no temporary file; the writer creates the target itself."""
        self.discard()
        self._in_place = True
        return self.path

    def commit(self) -> None:
        """Put the written temporary file in place (fsync, rename, fsync of the directory)."""
        if self._in_place or self.temp is None:
            return
        # mkstemp makes the file 0600: give it the replaced file's mode, else what a plain create would
        try:
            mode = stat.S_IMODE(os.stat(self.path).st_mode)
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(self.temp, mode)
        fd = os.open(self.temp, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.temp, self.path)
        self.temp = None
        with contextlib.suppress(OSError):    # not possible on every file system
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def discard(self) -> None:
        """Remove the temporary file (if any); the target is left as it was."""
        if self.temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
            self.temp = None


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-Inf; numpy's too) as None, recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    try:                                      # numpy scalars, without importing numpy here
        import numpy as np
    except ImportError:  # pragma: no cover
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return finite(float(value))
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def json_text(value: Any, **kw: Any) -> str:
    """Strict JSON of ``value``: non-finite floats as null (``allow_nan=False`` after converting)."""
    return json.dumps(finite(value), allow_nan=False, **kw)


def figure_format(path: PathLike, option: str = "--plot") -> str:
    """The matplotlib format of a figure file, from its suffix (none: png), checked against the
    formats this matplotlib can write, before any work.  RuntimeError without matplotlib;
    ValueError naming the allowed suffixes for any other."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise RuntimeError(f"{option} needs matplotlib: pip install 'ankle-controller[plot]'") from None
    supported = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix
    fmt = suffix[1:].lower() if suffix else "png"
    if fmt not in supported:
        raise ValueError(f"{option} {path}: matplotlib cannot write '{suffix}' figures; use one of "
                         f"{', '.join('.' + s for s in sorted(supported))}")
    return fmt
