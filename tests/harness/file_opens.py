"""Who opens a file, as the kernel tells it (inotify): an event a test can wait for, where a reader leaves no other trace.

Test-only, Linux only. ``with FileOpens(path) as opens:`` counts every open(2) of ``path`` from
then on, by any process; ``opens.count()`` never blocks. A module that reads an access log each
time it polls shows its first look as the first open, with no guess at how long it takes to start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct

IN_OPEN = 0x00000020
IN_Q_OVERFLOW = 0x00004000
_EVENT = struct.Struct('iIII')  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)


class FileOpens:
    """The number of times ``path`` was opened since the watch began."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None
        self._opens = 0

    def __enter__(self) -> FileOpens:
        libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), f'inotify_init1: {os.strerror(ctypes.get_errno())}')
        if libc.inotify_add_watch(fd, os.fsencode(self.path), IN_OPEN) < 0:
            errno = ctypes.get_errno()
            os.close(fd)
            raise OSError(errno, f'inotify_add_watch {self.path}: {os.strerror(errno)}')
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def count(self) -> int:
        """Opens seen so far (every pending event read now, without waiting)."""
        if self._fd is None:
            raise RuntimeError(f'{self.path}: not being watched')
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return self._opens
            offset = 0
            while offset < len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                if mask & IN_Q_OVERFLOW:
                    raise RuntimeError(f'{self.path}: inotify queue overflowed; opens were lost')
                if mask & IN_OPEN:
                    self._opens += 1
                offset += _EVENT.size + length
