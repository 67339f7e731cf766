"""Packaged datasets for examples, tests and the training CLI.

See :mod:`adalink.data.text_tasks` for how each task is read, cleaned and split, and :mod:`adalink.data.files`
for tasks read from the user's own CSV / JSON Lines files.
"""

from .files import SUPPORTED_EXTENSIONS, DataFileError, load_file_task
from .text_tasks import (
    TASK_NAMES,
    Example,
    MissingDataPackageError,
    TextClassificationData,
    load_text_task,
)

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "TASK_NAMES",
    "DataFileError",
    "Example",
    "MissingDataPackageError",
    "TextClassificationData",
    "load_file_task",
    "load_text_task",
]
