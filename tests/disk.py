"""A disk of its own for a test: an ext4 file system in a sparse image, loop-mounted in a
private mount namespace that a holder process keeps alive. Nothing is mounted where the rest
of the machine can see it, and it all goes when the holder does.

The test runs the proxy inside that namespace (``command``) and reaches its files from outside
through ``/proc/<holder>/root``. Two real faults on it:
- full: a file takes every free block, so writes fail with ENOSPC (SQLite: "database or disk is full");
- read-only: the files get the immutable attribute, so every write, even through a descriptor
  already open, fails with EPERM (SQLite: "disk I/O error"). That is what a disk gone read-only
  does to a program holding its files open; Linux will not remount a file system read-only
  while files on it are open for writing, so a real remount cannot be done under a running proxy.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import shutil
import subprocess
from pathlib import Path

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x10


def unavailable() -> str | None:
    """Why this machine cannot make such a disk (None when it can)."""
    if os.geteuid() != 0:
        return "needs root to loop-mount a file system and set the immutable attribute"
    missing = [t for t in ("unshare", "nsenter", "mkfs.ext4", "mount") if shutil.which(t) is None]
    return f"needs {', '.join(missing)}" if missing else None


class Disk:
    def __init__(self, tmp: Path, size: str = "2G") -> None:
        self.image = tmp / "disk.img"
        self.inside = tmp / "disk"  # the mount point, as the proxy sees it
        self.size = size
        self.holder: subprocess.Popen[str] | None = None

    def start(self) -> Disk:
        self.inside.mkdir()
        subprocess.run(["truncate", "-s", self.size, str(self.image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(self.image)], check=True)
        self.holder = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mount -o loop "$0" "$1" && echo mounted && exec sleep 3600',
                str(self.image),
                str(self.inside),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline().strip()
        if line != "mounted":
            self.stop()
            raise RuntimeError(f"could not mount the test disk: {line or 'no output'}")
        return self

    def stop(self) -> None:
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
            self.holder = None

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the disk's mount namespace."""
        assert self.holder is not None
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--", *argv]

    def outside(self, path: Path) -> Path:
        """Where a path on the disk is, seen from outside the namespace."""
        assert self.holder is not None
        return Path(f"/proc/{self.holder.pid}/root") / path.relative_to("/")

    @property
    def _filler(self) -> Path:
        return self.outside(self.inside / "filler")

    def fill(self) -> None:
        st = os.statvfs(self.outside(self.inside))
        fd = os.open(self._filler, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        try:
            with contextlib.suppress(OSError):  # metadata takes a few blocks of the estimate
                os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize)
            block = b"\0" * 4096
            while True:  # the last blocks, one at a time, until the disk says no
                try:
                    os.write(fd, block)
                except OSError:
                    break
        finally:
            os.close(fd)

    def unfill(self) -> None:
        self._filler.unlink()

    def read_only(self, paths: list[Path], on: bool) -> None:
        for path in paths:
            target = self.outside(path)
            if not target.exists():
                continue
            fd = os.open(target, os.O_RDONLY)
            try:
                flags = array.array("i", [0])
                fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
                flags[0] = flags[0] | FS_IMMUTABLE_FL if on else flags[0] & ~FS_IMMUTABLE_FL
                fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags, True)
            finally:
                os.close(fd)
