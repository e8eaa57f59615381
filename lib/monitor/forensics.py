"""Why did a model stop? A reason code from its exit status and its last lines.

Pure: the monitor passes the exit and the last lines it captured. The reason
is a stable snake_case code shown in ``last_exit.reason``, in events, and in a
failed ``deploy --wait``.
"""

import re

from lib.core import vocabulary

# Most specific first: a CUDA OOM traceback also mentions files and modules.
_PATTERNS = (
    (
        vocabulary.REASON_CUDA_OUT_OF_MEMORY,
        re.compile(
            r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|"
            r"cudaMalloc failed|CUBLAS_STATUS_ALLOC_FAILED|"
            r"(?:ggml|cuda|gpu)\w*:? .*out of memory|failed to allocate .*(?:CUDA|GPU)",
            re.IGNORECASE,
        ),
    ),
    (
        vocabulary.REASON_PORT_IN_USE,
        re.compile(
            r"address already in use|EADDRINUSE|error while attempting to bind|"
            r"couldn'?t bind|port \d+ is (?:already )?in use|bind\(\) failed",
            re.IGNORECASE,
        ),
    ),
    (
        vocabulary.REASON_IMPORT_ERROR,
        re.compile(r"ModuleNotFoundError|ImportError|No module named "),
    ),
    (
        vocabulary.REASON_MODEL_FILE_MISSING,
        re.compile(
            r"FileNotFoundError|No such file or directory|does not exist|"
            r"failed to load model|error loading model|Repository Not Found|"
            r"HFValidationError|is not a directory|does not appear to have a file",
            re.IGNORECASE,
        ),
    ),
    (
        vocabulary.REASON_PERMISSION_DENIED,
        re.compile(r"Permission denied|PermissionError", re.IGNORECASE),
    ),
)


def classify_exit(code, signal_name, lines, stop_requested=False):
    """The reason code for an exit. ``lines``: the model's last lines (str)."""
    if stop_requested:
        return vocabulary.REASON_STOPPED
    if code == 0 and signal_name is None:
        return vocabulary.REASON_COMPLETED
    text = "\n".join(lines)
    for reason, pattern in _PATTERNS:
        if pattern.search(text):
            return reason
    if code == 127:
        return vocabulary.REASON_EXECUTABLE_NOT_FOUND
    if code == 126:
        return vocabulary.REASON_PERMISSION_DENIED
    if signal_name == "SIGKILL":
        return vocabulary.REASON_KILLED
    if signal_name is not None:
        return vocabulary.REASON_SIGNAL
    return vocabulary.REASON_EXIT_CODE


def classify_spawn_error(error, cwd):
    """The reason code for an ``OSError`` raised while executing the model."""
    if isinstance(error, FileNotFoundError):
        if error.filename == cwd:
            return vocabulary.REASON_CWD_NOT_FOUND
        return vocabulary.REASON_EXECUTABLE_NOT_FOUND
    if isinstance(error, PermissionError):
        return vocabulary.REASON_PERMISSION_DENIED
    if isinstance(error, NotADirectoryError):
        return vocabulary.REASON_CWD_NOT_FOUND
    return vocabulary.REASON_SPAWN_FAILED
