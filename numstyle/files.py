"""Files a user owns: nothing is ever half-written, replaced when it is an input, or swapped for a
device node -- and no output is found unwritable only after the work that makes it."""
import contextlib
import os
import stat
import tempfile

from .errors import NumstyleError, os_reason
from .interrupt import held

TEMP_PREFIX = ".numstyle-"  # every temporary file this package writes starts so


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A failing write leaves the previous file (if any) intact and no temporary behind; Ctrl-C and
    SIGTERM wait until the write is done or undone (:func:`numstyle.interrupt.held`). ``path``
    must be a regular file or a new name: the rename would replace a device node or a FIFO.
    """
    check_target(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with held():
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.splitext(path)[1],
                                   dir=folder)
        os.close(fd)
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: give a normal file's mode
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def _umask():
    """The process's umask (read by setting it, then putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_target(path):
    """Raise NumstyleError if ``path`` exists and is not a regular file (nor a folder, which
    :func:`check_writable` reports): a device node, a FIFO or a socket would be replaced by the
    rename of an atomic write (``--out /dev/null``)."""
    try:
        mode = os.stat(path).st_mode  # through links: a link to /dev/null is /dev/null
    except OSError:
        return  # a new name (or a dangling link, which the rename replaces)
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise NumstyleError(f"cannot write {path}: it is {_kind(mode)}, not a regular file "
                            "(give a file name)")


def _what(path):
    """'a file', or what else ``path`` is (a character device, a FIFO, ...), for messages."""
    mode = os.stat(path).st_mode
    return "a file" if stat.S_ISREG(mode) else _kind(mode)


def _kind(mode):
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_input(path, what, error=NumstyleError):
    """Raise ``error`` unless ``path`` is a regular file (through links) that can be read.

    A FIFO would block its reader forever and a device would be read without end, so only
    regular files are inputs.
    """
    if not os.path.exists(path):
        raise error(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise error(f"{what} is a folder, not a file: {path}")
    if not os.path.isfile(path):
        raise error(f"{what} is {_kind(os.stat(path).st_mode)}, not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise error(f"cannot read the {what} {path}: permission denied")


def _identity(path):
    """``(device, inode)`` of what ``path`` names, through links; None if it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_extension(path, flag, ext):
    """Refuse an output name that does not end in ``ext`` ('.h5', '.onnx'): a model written as
    ``t.png`` would be HDF5 all the same."""
    if os.path.splitext(path)[1].lower() != ext:
        raise NumstyleError(f"{flag} {path}: give a file name ending in {ext}")


def check_outputs(outputs, inputs=(), folders=()):
    """The guard every command runs on its outputs before any work.

    Each output file must be writable (:func:`check_writable`), a regular file or a new name
    (:func:`check_target`), and none may be one of ``inputs`` by any name: the same path, or a
    symbolic or hard link to it. Each of ``folders`` (outputs that are folders) must be writable
    as a folder and not be an input folder.

    Parameters
    ----------
    outputs : iterable of str
        Files the command will write (checkpoints and intermediate images included).
    inputs : iterable of str
        Files and folders the command reads (missing ones are ignored here).
    folders : iterable of str
        Folders the command will write into.
    """
    outputs, folders = [p for p in outputs if p], [p for p in folders if p]
    for path in folders:
        check_writable(path, folder=True)
    probed = set()
    for path in outputs:
        parent = os.path.dirname(os.path.abspath(path))
        if parent not in probed or os.path.lexists(path):  # one probe per folder: many outputs
            check_writable(path)                            # (--save-every) stay cheap
            probed.add(parent)
        check_target(path)
    existing = {_identity(p): p for p in outputs + folders if _identity(p) is not None}
    if not existing:  # only something that exists can be an input
        return
    for src in inputs:
        key = _identity(src) if src else None
        if key in existing:
            raise NumstyleError(
                f"{existing[key]} is also an input ({src}): writing it would destroy that input; "
                "choose another output name")


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
        raise NumstyleError(f"cannot write the folder {path}: {_what(path)} has that name")
    parent = os.path.abspath(path if folder else os.path.dirname(os.path.abspath(path)))
    while not os.path.exists(parent):  # the folders to be made: their first existing parent
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NumstyleError(f"cannot write {path}: {parent} is {_what(parent)}, not a folder")
    try:  # the real test (permissions, read-only disks)
        with held():
            fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX + "probe-", dir=parent)
            os.close(fd)
            os.remove(probe)
    except OSError as e:
        raise NumstyleError(f"cannot write {path}: {os_reason(e)} in {parent}") from None
