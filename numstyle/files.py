"""Atomic file writes: nothing a user keeps is ever half-written -- and no output found unwritable
only after the work that makes it."""
import contextlib
import os
import tempfile

from .errors import NumstyleError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A killed or failing write leaves the previous file (if any) intact and no temporary behind.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".numstyle-", suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file a normal file's mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask():
    """The process's umask (read by setting it, then putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path, folder=False):
    """Raise NumstyleError now if ``path`` could not be written later.

    ``path`` is a file, or with ``folder`` a folder. Checked before a long optimisation or
    training, so that a read-only disk, a file where a folder should be, or an existing folder
    named like the output fails in one line at the start, not after the work. The folders it
    would create are not created here; the first existing one must take a file.
    """
    if os.path.isdir(path) and not folder:
        raise NumstyleError(f"cannot write {path}: it is a folder (give a file name)")
    if os.path.exists(path) and folder and not os.path.isdir(path):
        raise NumstyleError(f"cannot write the folder {path}: a file has that name")
    parent = os.path.abspath(path if folder else os.path.dirname(os.path.abspath(path)))
    while not os.path.exists(parent):  # the folders to be made: their first existing parent
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NumstyleError(f"cannot write {path}: {parent} is a file, not a folder")
    try:  # the real test (permissions, read-only disks)
        fd, probe = tempfile.mkstemp(prefix=".numstyle-probe-", dir=parent)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise NumstyleError(f"cannot write {path}: {e.strerror or e} in {parent}") from None
