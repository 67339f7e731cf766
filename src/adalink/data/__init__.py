"""Packaged datasets for examples, tests and the training CLI.

See :mod:`adalink.data.text_tasks` for how each task is read, cleaned and split, and :mod:`adalink.data.files`
for tasks read from the user's own CSV / JSON Lines files, and :mod:`adalink.data.easyvqa` for the
synthetic visual question answering data (images + questions).
"""

from .easyvqa import VQAData, VQAExample, load_easyvqa, load_image, load_images
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
    "VQAData",
    "VQAExample",
    "load_easyvqa",
    "load_file_task",
    "load_image",
    "load_images",
    "load_text_task",
]
