"""Packaged datasets for examples, tests and the training CLI.

See :mod:`adalink.data.text_tasks` for how each task is read, :mod:`adalink.data.cleaning` for how every text task
is cleaned and split, :mod:`adalink.data.files` for tasks read from the user's own CSV / JSON Lines files, and
:mod:`adalink.data.easyvqa` for the synthetic visual question answering data (questions; the images are read by
:mod:`adalink.data.images`).
"""

from .cleaning import Example
from .easyvqa import VQAData, VQAExample, load_easyvqa
from .files import SUPPORTED_EXTENSIONS, DataFileError, load_file_task
from .images import load_image, load_images
from .text_tasks import TASK_NAMES, MissingDataPackageError, TextClassificationData, load_text_task

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
