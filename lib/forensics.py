"""Why did a model stop? A reason code from its exit status and its last lines.

Pure: the monitor passes the exit and the last lines it captured. The reason
is a stable snake_case code shown in ``last_exit.reason``, in events, and in a
failed ``deploy --wait``.
"""

import re

# Most specific first: a CUDA OOM traceback also mentions files and modules.
_PATTERNS = (
    (
        "cuda_out_of_memory",
        re.compile(
            r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|"
            r"cudaMalloc failed|CUBLAS_STATUS_ALLOC_FAILED|"
            r"(?:ggml|cuda|gpu)\w*:? .*out of memory|failed to allocate .*(?:CUDA|GPU)",
            re.IGNORECASE,
        ),
    ),
    (
        "port_in_use",
        re.compile(
            r"address already in use|EADDRINUSE|error while attempting to bind|"
            r"couldn'?t bind|port \d+ is (?:already )?in use|bind\(\) failed",
            re.IGNORECASE,
        ),
    ),
    ("import_error", re.compile(r"ModuleNotFoundError|ImportError|No module named ")),
    (
        "model_file_missing",
        re.compile(
            r"FileNotFoundError|No such file or directory|does not exist|"
            r"failed to load model|error loading model|Repository Not Found|"
            r"HFValidationError|is not a directory|does not appear to have a file",
            re.IGNORECASE,
        ),
    ),
    ("permission_denied", re.compile(r"Permission denied|PermissionError", re.IGNORECASE)),
)


def classify_exit(code, signal_name, lines, stop_requested=False):
    """The reason code for an exit. ``lines``: the model's last lines (str)."""
    if stop_requested:
        return "stopped"
    if code == 0 and signal_name is None:
        return "completed"
    text = "\n".join(lines)
    for reason, pattern in _PATTERNS:
        if pattern.search(text):
            return reason
    if code == 127:
        return "executable_not_found"
    if code == 126:
        return "permission_denied"
    if signal_name == "SIGKILL":
        return "killed"
    if signal_name is not None:
        return "signal"
    return "exit_code"


def classify_spawn_error(error, cwd):
    """The reason code for an ``OSError`` raised while executing the model."""
    if isinstance(error, FileNotFoundError):
        if error.filename == cwd:
            return "cwd_not_found"
        return "executable_not_found"
    if isinstance(error, PermissionError):
        return "permission_denied"
    if isinstance(error, NotADirectoryError):
        return "cwd_not_found"
    return "spawn_failed"
