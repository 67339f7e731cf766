"""Packaged datasets for examples, tests and the training CLI.

See :mod:`adalink.data.text_tasks` for how each task is read, :mod:`adalink.data.cleaning` for how every text task
is cleaned and split, :mod:`adalink.data.files` for tasks read from the user's own files (CSV, JSON Lines, Parquet,
``save_to_disk`` directories; read by :mod:`adalink.data.tables`), :mod:`adalink.data.easyvqa` for the synthetic
visual question answering data (questions; the images are read by :mod:`adalink.data.images`), and
:mod:`adalink.data.generation` for generative (prompt -> response) tasks.
"""

from .cleaning import Example
from .easyvqa import VQAData, VQAExample, load_easyvqa
from .files import SUPPORTED_EXTENSIONS, DataFileError, load_file_task
from .generation import (
    DEFAULT_MAX_NEW_TOKENS,
    GENERATION_TASK_NAMES,
    GenerationData,
    GenerationExample,
    chat_example,
    load_generation_file,
    load_generation_task,
)
from .images import load_image, load_images
from .scored import scored_examples
from .tables import SUPPORTED_FORMATS, read_table
from .text_tasks import TASK_NAMES, MissingDataPackageError, TextClassificationData, load_text_task

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "GENERATION_TASK_NAMES",
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "TASK_NAMES",
    "DataFileError",
    "Example",
    "GenerationData",
    "GenerationExample",
    "MissingDataPackageError",
    "TextClassificationData",
    "VQAData",
    "VQAExample",
    "chat_example",
    "load_easyvqa",
    "load_file_task",
    "load_generation_file",
    "load_generation_task",
    "load_image",
    "load_images",
    "load_text_task",
    "read_table",
    "scored_examples",
]
