"""The recorder: every file operation under the recorded directories, as it reaches the OS.

`start()` runs first thing in every Python process of `dynfault powercut` (the child start-up,
when DYNFAULT_POWERCUT_JOURNAL is set); `recording(dirs, journal)` does the same for one block
of this process (the in-process API). Both interpose where data reaches the operating system,
never by tracing lines: the `os` functions that change files (bound in `os` itself before user
code imports them, so `from os import replace` gets the recording one, and so do `shutil` and
`tempfile`), and `open`/`io.open`, whose file objects have a raw layer that is a Python subclass
of `io.FileIO` under the C buffers, so writes made by library code (`json.dump`, `pickle.dump`,
`Path.write_text`, `shutil.copyfile`) are seen when they leave the buffer.

Each operation is one JSON line, appended with one `os.write` on an O_APPEND descriptor after
the operation returned (the line order in the file is the order the operations reached the OS).
A write of `SIDE` bytes or more keeps its bytes in a side file of its process,
`JOURNAL.PID.data`, and its line says where (`"blob":[offset,length]`): base64 inline would cost
that process a third more bytes and an encoding; `snapshot.end_journal` folds them back into the
journal as base64 once the run is over, so what readers see has one form.
A file is named by an id per inode: this process's table by (device, inode), and for a file
another process created, the id of the last journal line that names its inode (create, open and
snapshot lines carry an "inode" field), so a parent and its children name the same file alike.

What runs in every process: os, sys, io, json, binascii, threading, stat; `re` only with --ack.

Seen: `os.open` (create, O_TRUNC), `os.write`/`writev`/`pwrite`, `os.ftruncate`/`truncate`,
`os.fsync`/`fdatasync` (of a file, or of a directory opened with `os.open`), `os.sync`,
`os.rename`/`replace`/`unlink`/`remove`/`link`/`symlink`/`mkdir`/`rmdir` (and what calls them:
`os.makedirs`, `shutil.move`, `shutil.rmtree`, `pathlib`), `os.sendfile` and
`os.copy_file_range` into a recorded file (read and written from Python instead), every file
object `open`/`io.open`/`os.fdopen`/`Path.open`/`tempfile` makes (so `json.dump`, `pickle.dump`,
`Path.write_text`, `shutil.copyfile`, `logging.FileHandler`), `--ack` lines on fd 1 and
`dynfault.powercut.ack()`, in every Python process that starts with the variable set
(`subprocess` children, multiprocessing workers of every start method).
Not seen (the journal cannot explain the file: it is named opaque after the run): writes from C
code (sqlite3, dbm.gnu/ndbm, C extensions that open files themselves), `mmap`, O_DIRECT
through non-Python code, `io.FileIO(...)` constructed directly, `os.pwritev`, `posix_fallocate`,
descriptors inherited from a non-Python parent (a shell's `>> file`), non-Python processes, and
a descriptor number closed by C code and reused (best effort: a new open forgets it).
Ordering across processes is the order the lines reached the journal, not a global clock.
"""

from __future__ import annotations

import binascii
import builtins
import io
import json
import os
import stat
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import CodeType, FrameType

TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` costs every recorded process milliseconds at start-up
    from typing import Any

__all__ = ["start", "recording", "ack", "active", "JOURNAL_ENV"]

JOURNAL_ENV = "DYNFAULT_POWERCUT_JOURNAL"

_real: dict[str, Any] = {}  # the functions replaced, by name in `os` (and "open" for io/builtins)
_rec: Recorder | None = None
_real_write = os.write
_real_open = os.open
_real_close = os.close
_lexists = os.path.lexists
_fstat = os.fstat
_getpid = os.getpid
_esc = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # C, and fast
_b64 = binascii.b2a_base64
_MISS = object()
_EXCL = os.O_EXCL
SIDE = 1024  # a write of this many bytes or more goes to the side file

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep


def _skipped(filename: str) -> bool:
    """Frames that are not the user's: dynfault's and the standard library's (site-packages,
    a third-party library the user calls, counts as the user's)."""
    if filename.startswith("<frozen") or filename.startswith(_PACKAGE):
        return True
    return filename.startswith(_STDLIB) and "-packages" + os.sep not in filename


def _fields_of(code: CodeType) -> tuple[bool, str, str]:
    """(the user's code?, its JSON fields before and after the line number)."""
    return (not _skipped(code.co_filename), f'"filename":{_esc(code.co_filename)},"line":',
            f',"function":{_esc(code.co_name)}')


class Recorder:
    """What one process records: the directories, the journal's descriptor, the file ids."""

    def __init__(self, journal: str, dirs: Sequence[str], ack: str | None,
                 absent: Sequence[str] = ()) -> None:
        self.journal = journal
        self.dirs = [d.rstrip(os.sep) or os.sep for d in dirs]
        # The parent of a --dir the run makes: its fsync is what makes that mkdir durable.
        self.parents = {os.path.dirname(d.rstrip(os.sep)) for d in absent}
        self.skip = journal  # the journal itself is never recorded
        self.fd = _real_open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                             | getattr(os, "O_CLOEXEC", 0), 0o600)
        self.lock = threading.RLock()
        # fd -> (path, file id (None: a directory), the fields a write line names it by)
        self.fds: dict[int, tuple[str, str | None, str]] = {}
        self.paths: dict[str, str | None] = {}            # absolute path -> under()'s answer
        self.side = -1                                    # the side file's fd, once opened
        self.side_at = 0                                  # where the next blob goes in it
        self.inodes: dict[tuple[int, int], str] = {}      # (dev, ino) -> file id
        self.seen: set[str] = set()                       # ids this process bound
        self.count = 0
        self.pid = _getpid()
        self.codes: dict[CodeType, tuple[bool, str, str]] = {}
        self.ack_re: Any = None
        if ack:
            import re  # only when stdout lines are acknowledgements

            self.ack_re = re.compile(ack)
        self.carry = b""  # a stdout line not yet ended

    # -- paths --------------------------------------------------------------------------------
    def under(self, path: Any, dir_fd: int | None = None) -> str | None:
        """The normalized absolute path when it lies under a recorded directory, else None
        (an absolute path's answer is kept: a program opens the same names again and again)."""
        if dir_fd is None and type(path) is str and path[:1] == "/":
            found = self.paths.get(path, _MISS)
            if found is _MISS:
                if len(self.paths) > 4096:
                    self.paths.clear()
                found = self.paths[path] = self.resolve(path, None)
            return found  # type: ignore[return-value]
        return self.resolve(path, dir_fd)

    def resolve(self, path: Any, dir_fd: int | None) -> str | None:
        try:
            name = os.fsdecode(os.fspath(path))
        except TypeError:
            return None
        if dir_fd is not None and not os.path.isabs(name):
            base = self.fds.get(dir_fd)
            if base is None or base[1] is not None:
                return None
            name = os.path.join(base[0], name)
        full = os.path.normpath(os.path.join(os.getcwd(), name)) if not os.path.isabs(name) \
            else os.path.normpath(name)
        if full == self.skip:
            return None
        if full in self.parents:
            return full
        for d in self.dirs:
            if full == d or full.startswith(d + os.sep) or d == os.sep:
                return full
        return None

    # -- lines --------------------------------------------------------------------------------
    def where(self, up: int = 0) -> str:
        """The innermost frame of the user's code, as the line's JSON fields (each code
        object's escaped names are made once). `up`: how many of the recorder's own frames
        lie for certain above the caller of `line` (each frame the walk touches is made into
        a frame object, which costs more than the rest of a journal line)."""
        try:
            frame: FrameType | None = sys._getframe(2 + up)
        except ValueError:  # a shallower stack than the caller knows of
            frame = sys._getframe(2)
        codes = self.codes
        outer = frame
        while frame is not None:
            code = frame.f_code
            known = codes.get(code)
            if known is None:
                known = codes[code] = _fields_of(code)
            if known[0]:
                return f"{known[1]}{frame.f_lineno}{known[2]}"
            outer = frame
            frame = frame.f_back
        known = _fields_of(outer.f_code)  # type: ignore[union-attr]
        return f"{known[1]}{outer.f_lineno}{known[2]}"  # type: ignore[union-attr]

    def emit(self, kind: str, fields: dict[str, Any], data: Any = None) -> None:
        """One journal line of these fields (the operations that are rare)."""
        body = "".join(f',"{name}":' + ("null" if value is None else _esc(value)
                                         if isinstance(value, str) else str(value))
                       for name, value in fields.items())
        self.line(kind, body, data)

    def line(self, kind: str, body: str, data: Any = None, up: int = 0) -> None:
        """One journal line: `body` its fields as JSON text (",name":value...); `data` (a
        write's bytes) inline as base64 when short, else in the side file; `up` as `where`
        takes it."""
        head = f'{{"op":"{kind}","pid":{self.pid},{self.where(up)}{body}'
        if data is None:
            out = (head + "}\n").encode()
        elif len(data) >= SIDE:
            out = (head + self.blob(data) + "}\n").encode()
        else:
            out = head.encode() + b',"data":"' + _b64(data, newline=False) + b'"}\n'
        _write_all(self.fd, out)

    def blob(self, data: Any) -> str:
        """`data` appended to this process's side file; the field that says where."""
        if self.side < 0:
            self.side = _real_open(f"{self.journal}.{self.pid}.data", os.O_WRONLY
                                   | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                                   0o600)
            self.side_at = _fstat(self.side).st_size  # a pid used again appends
        at = self.side_at
        _write_all(self.side, data)
        self.side_at = at + len(data)
        return f',"blob":[{at},{len(data)}]'

    # -- file ids -----------------------------------------------------------------------------
    def lookup(self, key: tuple[int, int]) -> str | None:
        """The id the journal gave an inode (its last create, open or snapshot line naming
        it): how a process names a file that another one created."""
        needle = f'"inode":"{key[0]}-{key[1]}"'.encode()
        try:
            with _real.get("open", io.open)(self.journal, "rb") as f:
                text = f.read()
        except OSError:
            return None
        at = text.rfind(needle)
        if at < 0:
            return None
        begin = text.rfind(b"\n", 0, at) + 1
        end = text.find(b"\n", at)
        try:
            file = json.loads(text[begin:end if end >= 0 else len(text)]).get("file")
        except ValueError:
            return None
        return file if isinstance(file, str) else None

    def new_id(self, key: tuple[int, int]) -> str:
        self.count += 1
        file = f"{self.pid}:{self.count}"
        self.inodes[key] = file
        self.seen.add(file)
        return file

    def known(self, key: tuple[int, int], path: str) -> str:
        """The id of an existing inode; an "open" line the first time this process uses an
        id it did not make (a new id when no line names the inode: made outside)."""
        file = self.inodes.get(key)
        if file is None:
            file = self.lookup(key) or self.new_id(key)
            self.inodes[key] = file
            self.seen.discard(file)
        if file not in self.seen:
            self.seen.add(file)
            self.line("open", f',"path":{_esc(path)},"file":"{file}","inode":"{key[0]}-{key[1]}"')
        return file

    def bind(self, fd: int, path: str, created: bool, truncated: bool) -> None:
        """Name the file `fd` opened at `path`; record its creation or truncation."""
        st = _fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            self.fds[fd] = (path, None, "")
            return
        if not stat.S_ISREG(st.st_mode):
            return
        key = (st.st_dev, st.st_ino)
        if created:
            file = self.new_id(key)
            self.line("create",  # up 1: bind's caller is __init__ or _os_open
                      f',"path":{_esc(path)},"file":"{file}","inode":"{key[0]}-{key[1]}"',
                      None, 1)
        else:
            file = self.known(key, path)
        named = f',"file":"{file}","path":{_esc(path)}'
        self.fds[fd] = (path, file, named)
        if truncated:
            self.line("truncate", named + ',"size":0', None, 1)

    def file_of(self, path: str) -> str | None:
        """The id of the regular file at `path` now (for an operation by name)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return self.known((st.st_dev, st.st_ino), path)

    # -- what the interposed functions call ---------------------------------------------------
    def wrote(self, fd: int, data: Any, offset: int | None) -> None:
        """A write of `data` (bytes, or a memoryview of bytes) that reached fd's file."""
        bound = self.fds.get(fd)
        if bound is None or bound[1] is None or not data:
            return
        if offset is None:
            offset = os.lseek(fd, 0, os.SEEK_CUR) - len(data)
        # up 2: wrote is called by the interposed write functions alone, each called by the
        # program (or by the C buffer the program called)
        self.line("write", f'{bound[2]},"offset":{offset}', data, 2)

    def stdout(self, data: Any) -> None:
        """Lines of fd 1 that match --ack become acknowledgements, as they reach the OS."""
        text = self.carry + bytes(data)
        *lines, self.carry = text.split(b"\n")
        for line in lines:
            decoded = line.decode("utf-8", "surrogateescape")
            if self.ack_re.search(decoded):
                self.emit("ack", {"text": decoded})


# -- the raw layer ------------------------------------------------------------------------------

class RecordingFileIO(io.FileIO):
    """`io.FileIO` whose writes and truncations under a recorded directory are journaled."""

    def __init__(self, file: Any, mode: str = "r", closefd: bool = True,
                 opener: Any = None, path: Any = _MISS) -> None:
        rec = _rec
        if path is _MISS:  # `_open` passes the path it checked; others are checked here
            path = None if rec is None or isinstance(file, int) else rec.under(file)
        if rec is None or path is None:
            super().__init__(file, mode, closefd, opener)
            self._fdn = self.fileno()
            return
        existed = True
        if "w" in mode and opener is None:
            # O_EXCL first: whether it creates the file comes with the open (no stat)
            try:
                super().__init__(file, mode, closefd, _exclusive)
                existed = False
            except FileExistsError:
                super().__init__(file, mode, closefd, opener)
        else:
            existed = "r" in mode or "x" not in mode and _lexists(path)
            super().__init__(file, mode, closefd, opener)
        self._fdn = fd = self.fileno()
        with rec.lock:
            if fd in rec.fds:  # the opener went through os.open, which bound it
                return
            rec.bind(fd, path, created=not existed and "r" not in mode,
                     truncated=existed and "w" in mode)

    def write(self, b: Any, /) -> int:
        rec = _rec
        if rec is None:
            return super().write(b)
        with rec.lock:
            n = super().write(b)
            if n:
                if type(b) is not bytes:
                    b = memoryview(b).cast("B")
                if n < len(b):
                    b = b[:n]
                if self._fdn == 1 and rec.ack_re is not None:
                    rec.stdout(b)
                rec.wrote(self._fdn, b, None)
            return n

    def truncate(self, size: int | None = None) -> int:
        rec = _rec
        if rec is None:
            return super().truncate(size)
        with rec.lock:
            result = super().truncate(size)
            bound = rec.fds.get(self._fdn)
            if bound is not None and bound[1] is not None:
                rec.line("truncate", f'{bound[2]},"size":{result}')
            return result

    def close(self) -> None:
        rec = _rec
        if rec is not None and not self.closed and self.closefd:
            rec.fds.pop(self._fdn, None)
        super().close()


def _exclusive(path: Any, flags: int) -> int:
    """The opener of a "w" open: it fails on a file that exists (then the open is made
    again as asked), so a success means the file was created."""
    return _real_open(path, flags | _EXCL, 0o666)


_MODES: dict[str, tuple[bool, bool, str] | None] = {}


def _split_mode(mode: str) -> tuple[bool, bool, str] | None:
    """(binary, updating, the raw layer's mode) for a mode `open` accepts, else None (the
    real open says why not); each mode string's answer is kept."""
    if type(mode) is not str:
        return None
    found = _MODES.get(mode, _MISS)
    if found is not _MISS:
        return found  # type: ignore[return-value]
    if not set(mode) <= set("rwxabt+") \
            or len(mode) != len(set(mode)) or sum(c in mode for c in "rwxa") != 1 \
            or ("b" in mode and "t" in mode):
        shape = None
    else:
        shape = "b" in mode, "+" in mode, mode.replace("t", "").replace("b", "")
    if len(_MODES) < 64:
        _MODES[mode] = shape
    return shape


def _open(file: Any, mode: str = "r", buffering: int = -1, encoding: str | None = None,
          errors: str | None = None, newline: str | None = None, closefd: bool = True,
          opener: Any = None) -> Any:
    """`open` and `io.open`: the same file object, over a recording raw layer when the file is
    under a recorded directory (or a descriptor the recorder knows)."""
    rec = _rec
    shape = _split_mode(mode)
    path = None
    if rec is not None and shape is not None:
        if isinstance(file, int):
            path = rec.fds[file][0] if rec.fds.get(file) is not None else None
        else:
            path = rec.under(file)
    if path is None or shape is None:
        opened = _real["open"](file, mode, buffering, encoding, errors, newline, closefd, opener)
        if rec is not None and rec.fds and not isinstance(file, int):
            rec.fds.pop(opened.fileno(), None)  # a number reused after an unseen close
        return opened
    binary, updating, raw_mode = shape
    if binary and (encoding is not None or errors is not None or newline is not None):
        return _real["open"](file, mode, buffering, encoding, errors, newline, closefd, opener)
    raw = RecordingFileIO(file, raw_mode, closefd, opener,
                          None if isinstance(file, int) else path)
    try:
        return _stack(raw, mode, buffering, binary, updating, encoding, errors, newline)
    except BaseException:
        raw.close()
        raise


def _stack(raw: RecordingFileIO, mode: str, buffering: int, binary: bool, updating: bool,
           encoding: str | None, errors: str | None, newline: str | None) -> Any:
    """The buffers and text layer `io.open` would put over `raw`."""
    line_buffering = False
    if buffering == 1 or (buffering < 0 and raw.isatty()):
        buffering = -1
        line_buffering = True
    if buffering < 0:  # as io.open: the file's block size (its writes reach the OS alike)
        blksize = getattr(raw, "_blksize", 0)
        buffering = blksize if blksize > 1 else io.DEFAULT_BUFFER_SIZE
    if buffering == 0:
        if binary:
            return raw
        raise ValueError("can't have unbuffered text I/O")
    buffer: Any
    if updating:
        buffer = io.BufferedRandom(raw, buffering)
    elif "r" in mode:
        buffer = io.BufferedReader(raw, buffering)
    else:
        buffer = io.BufferedWriter(raw, buffering)
    if binary:
        return buffer
    if encoding is None:
        encoding = io.text_encoding(None)
    text = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
    text.mode = mode  # type: ignore[misc]  # as io.open sets it
    return text


# -- the os functions ---------------------------------------------------------------------------

def _os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
    rec = _rec
    full = None if rec is None else rec.under(path, dir_fd)
    if rec is None or full is None:
        fd = int(_real["open_os"](path, flags, mode, dir_fd=dir_fd))
        if rec is not None and rec.fds:
            rec.fds.pop(fd, None)  # a number reused after a close the recorder did not see
        return fd
    with rec.lock:
        existed = not (flags & os.O_CREAT) or _lexists(full)
        fd = int(_real["open_os"](path, flags, mode, dir_fd=dir_fd))
        rec.bind(fd, full, created=not existed, truncated=existed and bool(flags & os.O_TRUNC))
    return fd


def _os_write(fd: int, data: Any) -> int:
    rec = _rec
    if rec is None or (fd not in rec.fds and fd != 1):
        return int(_real["write"](fd, data))
    with rec.lock:
        n = int(_real["write"](fd, data))
        if type(data) is not bytes:
            data = memoryview(data).cast("B")
        if n < len(data):
            data = data[:n]
        if fd == 1 and rec.ack_re is not None:
            rec.stdout(data)
        rec.wrote(fd, data, None)
    return n


def _os_writev(fd: int, buffers: Any) -> int:
    rec = _rec
    if rec is None or fd not in rec.fds:
        return int(_real["writev"](fd, buffers))
    buffers = list(buffers)
    with rec.lock:
        n = int(_real["writev"](fd, buffers))
        rec.wrote(fd, b"".join(bytes(b) for b in buffers)[:n], None)
    return n


def _os_pwrite(fd: int, data: Any, offset: int) -> int:
    rec = _rec
    if rec is None or fd not in rec.fds:
        return int(_real["pwrite"](fd, data, offset))
    with rec.lock:
        n = int(_real["pwrite"](fd, data, offset))
        rec.wrote(fd, memoryview(data).cast("B")[:n], offset)
    return n


def _os_ftruncate(fd: int, length: int) -> None:
    rec = _rec
    if rec is None or fd not in rec.fds:
        return _real["ftruncate"](fd, length)  # type: ignore[no-any-return]
    with rec.lock:
        _real["ftruncate"](fd, length)
        file, named = rec.fds[fd][1:]
        if file is not None:
            rec.line("truncate", f'{named},"size":{length}')
    return None


def _os_truncate(path: Any, length: int) -> None:
    if isinstance(path, int):
        return _os_ftruncate(path, length)
    rec = _rec
    full = None if rec is None else rec.under(path)
    if rec is None or full is None:
        return _real["truncate"](path, length)  # type: ignore[no-any-return]
    with rec.lock:
        _real["truncate"](path, length)
        file = rec.file_of(full)
        if file is not None:
            rec.emit("truncate", {"file": file, "path": full, "size": length})
    return None


def _barrier(kind: str) -> Any:
    def barrier(fd: Any) -> None:
        rec = _rec
        number = fd if isinstance(fd, int) else fd.fileno() if hasattr(fd, "fileno") else fd
        if rec is None or number not in rec.fds:
            return _real[kind](fd)  # type: ignore[no-any-return]
        with rec.lock:
            _real[kind](fd)
            path, file = rec.fds[number][:2]
            rec.emit(kind, {"path": path, "file": file})
        return None
    barrier.__name__ = barrier.__qualname__ = kind
    return barrier


def _os_sync() -> None:
    rec = _rec
    if rec is None:
        return _real["sync"]()  # type: ignore[no-any-return]
    with rec.lock:
        _real["sync"]()
        rec.emit("sync", {})
    return None


def _os_close(fd: int) -> None:
    rec = _rec
    if rec is not None:
        rec.fds.pop(fd, None)
    return _real["close"](fd)  # type: ignore[no-any-return]


def _moved_in(rec: Recorder, dest: str) -> None:
    """A file renamed in from outside the directories: its bytes appear at once."""
    try:
        st = os.stat(dest)
        with _real["open"](dest, "rb") as f:
            data = f.read()
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        return
    file = rec.new_id((st.st_dev, st.st_ino))
    rec.emit("create", {"path": dest, "file": file, "inode": f"{st.st_dev}-{st.st_ino}"})
    if data:
        rec.emit("write", {"file": file, "path": dest, "offset": 0}, data)


def _two_names(kind: str) -> Any:
    def two(src: Any, dst: Any, *, src_dir_fd: int | None = None,
            dst_dir_fd: int | None = None) -> None:
        rec = _rec
        real = _real[kind]
        if rec is None:
            return real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)  # type: ignore
        a, b = rec.under(src, src_dir_fd), rec.under(dst, dst_dir_fd)
        if a is None and b is None:
            return real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)  # type: ignore
        with rec.lock:
            real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
            op = "link" if kind == "link" else "rename"
            if a is not None and b is not None:
                rec.line(op, f',"path":{_esc(a)},"dest":{_esc(b)}', None, 1)
            elif b is not None:
                _moved_in(rec, b)
            elif op == "rename":
                rec.emit("unlink", {"path": a})
        return None
    two.__name__ = two.__qualname__ = kind
    return two


def _os_link(src: Any, dst: Any, *, src_dir_fd: int | None = None,
             dst_dir_fd: int | None = None, follow_symlinks: bool = True) -> None:
    rec = _rec
    a = None if rec is None else rec.under(src, src_dir_fd)
    b = None if rec is None else rec.under(dst, dst_dir_fd)
    _real["link"](src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd,
                  follow_symlinks=follow_symlinks)
    if rec is not None and b is not None:
        with rec.lock:
            if a is not None:
                rec.emit("link", {"path": a, "dest": b})
            else:
                _moved_in(rec, b)


def _one_name(kind: str, op: str) -> Any:
    def one(path: Any, *args: Any, dir_fd: int | None = None) -> None:
        rec = _rec
        real = _real[kind]
        full = None if rec is None else rec.under(path, dir_fd)
        if rec is None or full is None:
            return real(path, *args, dir_fd=dir_fd)  # type: ignore[no-any-return]
        with rec.lock:
            real(path, *args, dir_fd=dir_fd)
            rec.emit(op, {"path": full})
        return None
    one.__name__ = one.__qualname__ = kind
    return one


def _os_symlink(src: Any, dst: Any, target_is_directory: bool = False, *,
                dir_fd: int | None = None) -> None:
    rec = _rec
    full = None if rec is None else rec.under(dst, dir_fd)
    _real["symlink"](src, dst, target_is_directory, dir_fd=dir_fd)
    if rec is not None and full is not None:
        with rec.lock:
            rec.emit("symlink", {"path": full, "target": os.fsdecode(os.fspath(src))})


def _os_sendfile(out_fd: int, in_fd: int, offset: int | None, count: int,
                 *args: Any, **kwargs: Any) -> int:
    """os.sendfile (shutil.copyfile's fast path) into a recorded file: the same bytes read
    and written from Python, so they are recorded (the kernel's copy would not be)."""
    rec = _rec
    if rec is None or out_fd not in rec.fds or args or kwargs:
        return int(_real["sendfile"](out_fd, in_fd, offset, count, *args, **kwargs))
    with rec.lock:
        data = os.read(in_fd, count) if offset is None else os.pread(in_fd, count, offset)
        n = int(_real["write"](out_fd, data)) if data else 0
        rec.wrote(out_fd, memoryview(data)[:n], None)
    return n


def _os_copy_file_range(src: int, dst: int, count: int, offset_src: int | None = None,
                        offset_dst: int | None = None) -> int:
    """os.copy_file_range into a recorded file, read and written from Python likewise."""
    rec = _rec
    if rec is None or dst not in rec.fds:
        return int(_real["copy_file_range"](src, dst, count, offset_src, offset_dst))
    with rec.lock:
        data = os.read(src, count) if offset_src is None else os.pread(src, count, offset_src)
        if not data:
            return 0
        if offset_dst is None:
            n = int(_real["write"](dst, data))
            rec.wrote(dst, memoryview(data)[:n], None)
        else:
            n = int(_real["pwrite"](dst, data, offset_dst))
            rec.wrote(dst, memoryview(data)[:n], offset_dst)
    return n


_OS = {
    "open": _os_open, "write": _os_write, "writev": _os_writev, "pwrite": _os_pwrite,
    "ftruncate": _os_ftruncate, "truncate": _os_truncate, "fsync": _barrier("fsync"),
    "fdatasync": _barrier("fdatasync"), "sync": _os_sync, "close": _os_close,
    "rename": _two_names("rename"), "replace": _two_names("replace"), "link": _os_link,
    "unlink": _one_name("unlink", "unlink"), "remove": _one_name("remove", "unlink"),
    "mkdir": _one_name("mkdir", "mkdir"), "rmdir": _one_name("rmdir", "rmdir"),
    "symlink": _os_symlink, "sendfile": _os_sendfile, "copy_file_range": _os_copy_file_range,
}


def _patch() -> None:
    if _real:
        return
    for name, function in _OS.items():
        if hasattr(os, name):
            _real["open_os" if name == "open" else name] = getattr(os, name)
            setattr(os, name, function)
    _real["open"] = io.open
    builtins.open = io.open = _open  # type: ignore[assignment]


def _unpatch() -> None:
    if not _real:
        return
    for name in _OS:
        key = "open_os" if name == "open" else name
        if key in _real:
            setattr(os, name, _real[key])
    builtins.open = io.open = _real["open"]
    _real.clear()


def _stdout_through_recorder() -> None:
    """sys.stdout over a recording raw layer on fd 1, so --ack lines are seen as they leave."""
    old = sys.stdout
    if old is None:
        return
    try:
        if old.fileno() != 1:
            return
        raw = RecordingFileIO(1, "w", closefd=False)
        new = io.TextIOWrapper(io.BufferedWriter(raw), encoding=old.encoding,
                               errors=old.errors, line_buffering=bool(old.line_buffering),
                               write_through=getattr(old, "write_through", False))
        old.flush()
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return
    if sys.__stdout__ is old:
        sys.__stdout__ = new  # type: ignore[misc]
    sys.stdout = new


def _after_fork() -> None:
    rec = _rec
    if rec is not None:
        rec.pid = _getpid()
        rec.lock = threading.RLock()
        rec.seen = set()  # the child names the files it uses again, under its own pid
        if rec.side >= 0:  # the parent's side file is the parent's: the child opens its own
            _real_close(rec.side)
            rec.side = -1


def _read_header(journal: str) -> dict[str, Any]:
    with _real_open_file(journal) as f:
        line = f.readline()
    header = json.loads(line)
    if not isinstance(header, dict) or header.get("powercut") != 1:
        raise ValueError(f"{journal} is not a powercut journal")
    return header


def _write_all(fd: int, data: Any) -> None:
    """All of `data` written to fd (a regular file takes it whole; the loop is for a full
    disk's short write)."""
    n = _real_write(fd, data)
    if n < len(data):
        view = memoryview(data)[n:]
        while view:
            view = view[_real_write(fd, view):]


def _real_open_file(path: str) -> Any:
    return (_real.get("open") or io.open)(path, "rb")


def start() -> None:
    """Record this whole process into $DYNFAULT_POWERCUT_JOURNAL (the child start-up)."""
    global _rec
    journal = os.environ.get(JOURNAL_ENV)
    if not journal or _rec is not None:
        return
    header = _read_header(journal)
    _rec = Recorder(journal, [str(d) for d in header.get("dirs") or []], header.get("ack"),
                    [str(d) for d in header.get("absent") or []])
    _patch()
    if _rec.ack_re is not None:
        _stdout_through_recorder()
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)


def active() -> bool:
    """Whether this process records now."""
    return _rec is not None


def ack(text: str) -> None:
    """Record an acknowledgement (nothing when this process does not record)."""
    rec = _rec
    if rec is not None:
        with rec.lock:
            rec.emit("ack", {"text": str(text)})


@contextmanager
def recording(dirs: Sequence[str | os.PathLike[str]], journal: str,
              ack: str | None = None) -> Iterator[None]:
    """Record this process's operations under `dirs` into `journal` (written whole: the
    header, the snapshot, the operations, the end line) while the block runs."""
    global _rec
    if _rec is not None:
        raise RuntimeError("dynfault powercut: already recording in this process")
    from dynfault.powercut.snapshot import begin_journal, end_journal

    names = [os.path.abspath(os.fspath(d)) for d in dirs]
    absent = [d for d in names if not _lexists(d)]
    begin_journal(journal, names, os.getcwd(), [sys.argv[0] if sys.argv else "python"], ack)
    _rec = Recorder(os.path.abspath(journal), names, ack, absent)
    _patch()
    code = 1
    try:
        yield
        code = 0
    finally:
        rec, _rec = _rec, None
        _unpatch()
        _real_close(rec.fd)
        if rec.side >= 0:
            _real_close(rec.side)
        end_journal(journal, code)
