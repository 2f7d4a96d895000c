"""A run's output folder, written whole or not at all.

A command checks its ``--out`` before any work (``RunFolder.check``): not a file, not under a
file, writable, and not holding another run unless ``--overwrite``. It then writes its results
into a hidden sibling folder and renames that into place once everything is written, so a run
that fails half-way (a full disk, an interrupt, a diverged optimization) leaves the folder as it
was, and a run that replaces another leaves none of the old files behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ..errors import PreimageError


def umask():
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def readable_by_all(path, directory=False):
    """Give a file (0666) or folder (0777) the permissions the umask allows: temporary files and
    folders are created private (0600, 0700), which results must not stay."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


class RunFolder:
    """``with RunFolder(out, overwrite) as folder:`` write into ``folder``; on success it becomes
    ``out``, on any exception nothing of it stays."""

    def __init__(self, out, overwrite=False):
        self.out = os.path.abspath(out) if out else out
        self.overwrite = overwrite
        self.tmp = None
        self.created = []  # parent folders this run made, removed again if it fails
        self.check()

    def check(self):
        """Every check of the output location, before any compute; one clear error each."""
        out = self.out
        if not out:
            raise PreimageError("bad --out '': give a folder for the results")
        if os.path.exists(out) and not os.path.isdir(out):
            raise PreimageError(f"bad --out {out!r}: it is a file; give a folder")
        parent = os.path.dirname(out)
        ancestor = parent
        while not os.path.exists(ancestor):
            ancestor = os.path.dirname(ancestor)
        if not os.path.isdir(ancestor):
            raise PreimageError(f"bad --out {out!r}: {ancestor!r} is a file, not a folder")
        if os.path.isdir(out) and os.listdir(out) and not self.overwrite:
            raise PreimageError(
                f"bad --out {out!r}: it holds another run ({len(os.listdir(out))} entries); give"
                " another folder, or --overwrite to replace it"
            )
        self._make_parents(parent)
        try:
            self.tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.partial-", dir=parent)
        except OSError as e:
            self._remove_parents()
            raise PreimageError(f"bad --out {out!r}: cannot write there ({e.strerror})") from None

    def _make_parents(self, parent):
        missing = []
        while not os.path.exists(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for folder in reversed(missing):
            try:
                os.mkdir(folder)
            except OSError as e:
                self._remove_parents()
                raise PreimageError(
                    f"bad --out {self.out!r}: cannot make {folder!r} ({e.strerror})"
                ) from None
            self.created.append(folder)

    def _remove_parents(self):
        for folder in reversed(self.created):
            try:
                os.rmdir(folder)
            except OSError:
                break
        self.created = []

    def __enter__(self):
        return self.tmp

    def __exit__(self, kind, value, tb):
        if kind is not None:
            self.discard()
            return False
        self.commit()
        return False

    def discard(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._remove_parents()

    def commit(self):
        """Rename the finished folder into place (replacing the old run whole, with --overwrite)."""
        for root, folders, files in os.walk(self.tmp):
            readable_by_all(root, directory=True)
            for name in files:
                readable_by_all(os.path.join(root, name))
        old = None
        if os.path.isdir(self.out):
            old = tempfile.mkdtemp(
                prefix=f".{os.path.basename(self.out)}.old-", dir=os.path.dirname(self.out)
            )
            os.rename(self.out, os.path.join(old, "run"))
        os.rename(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
