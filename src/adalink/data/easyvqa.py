"""Deterministic loader for easy-VQA, a small synthetic visual-question-answering set shipped on PyPI.

easy-VQA (``pip install easy-vqa``, MIT, 3 MB) holds 5,000 64×64 RGB PNG images, each showing one coloured shape
(circle, rectangle or triangle in one of eight colours) on a plain, lightly tinted background, with templated
questions about it. Every question has exactly one of 13 answers. The package declares no dependencies and downloads
nothing; its data are read through its own ``get_*`` functions. Reading the images needs Pillow
(``pip install pillow``), which is imported only when the first image is decoded.

Measured sizes (``load_easyvqa()``):

==========  ======  ========  ==============================================================
split       images  examples  source
==========  ======  ========  ==============================================================
train        3,609    34,791  the package's train split minus the validation images
validation     391     3,784  the package's train images with split key ``u < 0.1`` (9.8 %)
test         1,000     9,673  the package's test split, unchanged
==========  ======  ========  ==============================================================

Answers (``answer_names``, sorted alphabetically; ``VQAExample.answer`` indexes this tuple):
``black blue brown circle gray green no rectangle red teal triangle yellow yes``. Counts:

==========  ======  =====  =====
answer       train    val   test
==========  ======  =====  =====
yes         12,859  1,370  3,611
no          12,786  1,392  3,525
rectangle    1,535    166    450
circle       1,494    195    416
triangle     1,459    153    391
teal           638     54    149
green          596     65    165
blue           593     67    153
black          590     71    156
gray           579     65    178
yellow         573     66    169
brown          556     48    154
red            533     72    156
==========  ======  =====  =====

:meth:`VQAData.majority_baseline` (always give the most frequent training answer, ``yes``) scores **0.3733** on test
(0.3621 on validation). Report it beside any accuracy.

Question types (:func:`question_type`), derived from the question text alone, never from the answer. The four types
cross *what is asked about* (colour or shape) with *how* (an open "what" question or a yes/no question); the rule is
applied to the lower-cased, stripped text:

===============  ==============================================  ===============  ======  =====  =====  ========
type             rule                                            answers           train    val   test  baseline
===============  ==============================================  ===============  ======  =====  =====  ========
``color``        starts with ``what color`` / ``what is the      8 colours         4,658    508  1,280    0.1164
                 color`` ("what is the color of the circle?")
``shape``        any other ``what`` question ("what shape is     3 shapes          4,488    514  1,257    0.3580
                 present?", "what is the red shape?")
``yesno-color``  starts with ``is`` / ``does`` and names no      ``no``, ``yes``  18,624  2,034  5,201    0.4926
                 shape ("is there not a red shape?")
``yesno-shape``  starts with ``is`` / ``does`` and names a       ``no``, ``yes``   7,021    728  1,935    0.5023
                 shape word ("does the image contain a
                 circle?")
===============  ==============================================  ===============  ======  =====  =====  ========

*baseline* is ``majority_baseline(question_type=...)``: the majority *training* answer of that type (``teal``,
``rectangle``, ``no``, ``yes``) scored on that type's test examples. A text starting with anything else raises
:class:`ValueError`; none occurs. Every yes/no question names exactly one colour (``yesno-color``) or one shape
(``yesno-shape``), never both. The answers of a type (:data:`QUESTION_TYPE_ANSWERS`) are disjoint from those of
other types except that the two yes/no types share ``no``/``yes``; so a model trained without, say, ``color``
questions has never seen a colour answer. Half of the yes/no questions are negated ("is there *not* a ...", "is
*no* ... present?", 12,834 of 25,645 in train), which flips their answer. The 48,248 questions come from 24 templates
(8 per yes/no type, 4 per "what" type); every (image, question) pair is unique and no two images are pixel-identical.

Procedure:

1. **Read** the package's train and test questions (``[text, answer, image_id]`` triples) and image paths. Image ids
   number the images *within* a package split (train 0–3,999, test 0–999), so an ``image_id`` is unique only inside
   its split; ``image_path`` is unique everywhere.
2. **Carve validation out of train by image.** The split key of a train image is the first 8 bytes of
   ``sha256(f"easy-vqa/train/{image_id}")`` read as a big-endian integer and divided by 2**64 (a number ``u`` in
   [0, 1)); images with ``u < 0.1`` go to validation with all their questions, so no image is in two splits. The
   assignment depends only on the image id, never on listing order.
3. **Order** every split by the example key: the same hash applied to ``f"{image_id}\\n{question}"``, ties (none
   occur) broken by image id and question. Any prefix of a split is therefore a uniform sample of it, which is what
   ``limit_train`` takes.

Results are cached in-process (:func:`functools.lru_cache`); the returned objects are immutable. Images are read
by :mod:`adalink.data.images` (:func:`load_image`, :func:`load_images`, re-exported here): decoded once per path
(uint8, at most 16,384 kept) and converted to float on every call.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType

from ..errors import MissingFileError, UsageError
from .cleaning import split_key
from .images import load_image, load_images
from .text_tasks import MissingDataPackageError

__all__ = [
    "COLOR_NAMES",
    "QUESTION_TYPES",
    "QUESTION_TYPE_ANSWERS",
    "SHAPE_NAMES",
    "TASK_NAME",
    "VQAData",
    "VQAExample",
    "load_easyvqa",
    "load_image",
    "load_images",
    "question_type",
]

TASK_NAME = "easyvqa"  # --task easyvqa

SHAPE_NAMES: tuple[str, ...] = ("circle", "rectangle", "triangle")
"""The three shapes drawn in easy-VQA images (all answers of ``shape`` questions)."""
COLOR_NAMES: tuple[str, ...] = ("black", "blue", "brown", "gray", "green", "red", "teal", "yellow")
"""The eight shape colours (all answers of ``color`` questions)."""
QUESTION_TYPES: tuple[str, ...] = ("color", "shape", "yesno-color", "yesno-shape")
"""Every value :func:`question_type` returns, in a fixed order; safe to use in file names."""
QUESTION_TYPE_ANSWERS: dict[str, tuple[str, ...]] = {
    "color": COLOR_NAMES,
    "shape": SHAPE_NAMES,
    "yesno-color": ("no", "yes"),
    "yesno-shape": ("no", "yes"),
}
"""The answers each question type can have (sorted names)."""

_VALIDATION_FRACTION = 0.1
_SHAPE_WORDS = frozenset(SHAPE_NAMES)


@dataclass(frozen=True)
class VQAExample:
    """One question about one image.

    Attributes:
        image_id: The package's id of the image, unique only within the package split it came from (the package's
            train split, which feeds ``train`` and ``validation``, or its test split).
        image_path: Absolute path of the 64×64 RGB PNG; unique across all splits.
        question: The question text as shipped (lower case, ending in ``?``).
        answer: Index into the owning :class:`VQAData`'s ``answer_names``.
        question_type: One of :data:`QUESTION_TYPES`, from :func:`question_type`.
    """

    image_id: int
    image_path: str
    question: str
    answer: int
    question_type: str

    @property
    def text(self) -> str:  # the generic name the training harness reads
        return self.question

    @property
    def label(self) -> int:
        return self.answer


@dataclass(frozen=True)
class VQAData:
    """easy-VQA with fixed train/validation/test splits (see the module docstring for sizes).

    Attributes:
        answer_names: The 13 answers in sorted (alphabetical) order; ``VQAExample.answer`` indexes this tuple.
        train: The package's train split without the validation images, ordered by example key.
        validation: About 10 % of the package's train images with all their questions, ordered by example key.
        test: The package's test split, ordered by example key.
    """

    answer_names: tuple[str, ...]
    train: tuple[VQAExample, ...]
    validation: tuple[VQAExample, ...]
    test: tuple[VQAExample, ...]
    name: str = TASK_NAME

    @property
    def label_names(self) -> tuple[str, ...]:  # the generic name the training harness reads
        return self.answer_names

    def with_question_types(self, types: Sequence[str]) -> VQAData:
        """The same data restricted to some question types in every split (e.g. a type held out of stage 1).

        Args:
            types: Question types to keep, each one of :data:`QUESTION_TYPES` (at least one).

        Returns:
            A new :class:`VQAData` with the same ``answer_names`` and ``name`` whose splits keep only those types,
            in their original order (so a prefix is still a uniform sample).

        Raises:
            ValueError: If ``types`` is empty or names an unknown type.
        """
        kept = frozenset(types)
        unknown = sorted(kept - set(QUESTION_TYPES))
        if unknown or not kept:
            raise UsageError(
                f"question types {list(types)!r} are invalid: expected a non-empty subset of {list(QUESTION_TYPES)}."
            )

        def keep(examples: tuple[VQAExample, ...]) -> tuple[VQAExample, ...]:
            return tuple(example for example in examples if example.question_type in kept)

        return dataclasses.replace(self, train=keep(self.train), validation=keep(self.validation), test=keep(self.test))

    def majority_baseline(
        self, question_type: str | None = None, split: str = "test", max_examples: int | None = None
    ) -> float:
        """Accuracy of always giving the most frequent training answer.

        Ties between equally frequent training answers go to the smaller answer index.

        Args:
            question_type: If given, both the majority answer and the accuracy are computed on examples of this
                type only (one of :data:`QUESTION_TYPES`).
            split: The split scored, ``"test"`` (default) or ``"validation"`` (or ``"train"``).
            max_examples: Score only the first N examples of the split (before the type filter), as ``--max-eval``
                does (None = all).

        Returns:
            Fraction of the scored examples whose answer is the majority training answer (0.0 if there are none).

        Raises:
            ValueError: If ``question_type`` or ``split`` is unknown.
        """
        if question_type is not None and question_type not in QUESTION_TYPES:
            raise UsageError(f"Unknown question type {question_type!r}; expected one of {', '.join(QUESTION_TYPES)}.")
        if split not in ("train", "validation", "test"):
            raise UsageError(f"Unknown split {split!r}; expected train, validation or test.")

        def keep(example: VQAExample) -> bool:
            return question_type is None or example.question_type == question_type

        scored = [example.answer for example in list(getattr(self, split))[:max_examples] if keep(example)]
        if not scored:
            return 0.0
        counts = Counter(example.answer for example in self.train if keep(example))
        majority = min(counts, key=lambda answer: (-counts[answer], answer)) if counts else 0
        return sum(answer == majority for answer in scored) / len(scored)


def question_type(question: str) -> str:
    """Classify an easy-VQA question by its text (the rule is documented in the module docstring).

    Args:
        question: Question text, e.g. ``"is there not a red shape?"``.

    Returns:
        ``"color"`` or ``"shape"`` for "what" questions about the colour or the shape, ``"yesno-shape"`` for a yes/no
        question naming a shape, ``"yesno-color"`` for any other yes/no question (these ask about a colour).

    Raises:
        ValueError: If the question starts with none of ``what``, ``is``, ``does``.
    """
    text = question.strip().lower()
    first = text.split(" ", 1)[0]
    if first == "what":
        return "color" if text.startswith(("what color", "what is the color")) else "shape"
    if first in ("is", "does"):
        words = set(text.rstrip("?").split())
        return "yesno-shape" if words & _SHAPE_WORDS else "yesno-color"
    raise UsageError(f"Cannot tell the question type of {question!r}: expected it to start with what, is or does.")


def _easy_vqa() -> ModuleType:
    """Import the ``easy_vqa`` package (it only defines file readers; nothing is downloaded).

    Raises:
        MissingDataPackageError: If it is not installed.
    """
    try:
        import easy_vqa
    except ImportError as error:
        raise MissingDataPackageError(
            "easy-VQA ships in the 'easy-vqa' package, which is not installed. Install it with "
            "`pip install easy-vqa` (reading its images also needs `pip install pillow`)."
        ) from error
    return easy_vqa


def _image_key(image_id: int) -> float:
    """Split key of a package train image: ``u < 0.1`` sends the image to validation."""
    return split_key(f"easy-vqa/train/{image_id}")


def _example_key(example: VQAExample) -> tuple[float, int, str]:
    """Sort key of an example within its split."""
    return split_key(f"{example.image_id}\n{example.question}"), example.image_id, example.question


def _sorted(examples: Iterable[VQAExample]) -> tuple[VQAExample, ...]:
    return tuple(sorted(examples, key=_example_key))


def _carve_validation(
    examples: Iterable[VQAExample],
) -> tuple[tuple[VQAExample, ...], tuple[VQAExample, ...]]:
    """Split the package's train examples into ``(train, validation)`` by image, each sorted by example key."""
    train: list[VQAExample] = []
    validation: list[VQAExample] = []
    to_validation: dict[int, bool] = {}
    for example in examples:
        if example.image_id not in to_validation:
            to_validation[example.image_id] = _image_key(example.image_id) < _VALIDATION_FRACTION
        (validation if to_validation[example.image_id] else train).append(example)
    return _sorted(train), _sorted(validation)


def _build_examples(
    questions: tuple[list[str], list[str], list[int]],
    image_paths: dict[int, str],
    answer_index: dict[str, int],
    split: str,
) -> list[VQAExample]:
    """Turn the package's parallel ``(texts, answers, image_ids)`` lists into examples, checking each one."""
    texts, answers, image_ids = questions
    if not len(texts) == len(answers) == len(image_ids):
        raise UsageError(f"easy-VQA {split} questions: texts, answers and image ids differ in length.")
    absolute_paths = {int(image_id): os.path.abspath(path) for image_id, path in image_paths.items()}
    examples = []
    for text, answer, image_id in zip(texts, answers, image_ids, strict=True):
        if answer not in answer_index:
            raise UsageError(f"easy-VQA {split} question {text!r} has unknown answer {answer!r}.")
        if image_id not in absolute_paths:
            raise MissingFileError(f"easy-VQA {split} image {image_id} is missing; reinstall easy-vqa.")
        examples.append(
            VQAExample(int(image_id), absolute_paths[image_id], text, answer_index[answer], question_type(text))
        )
    return examples


@functools.lru_cache(maxsize=1)
def _load_full() -> VQAData:
    """Read, check and split the whole data set."""
    package = _easy_vqa()
    answer_names = tuple(sorted(package.get_answers()))
    answer_index = {answer: index for index, answer in enumerate(answer_names)}
    train_examples = _build_examples(
        package.get_train_questions(), package.get_train_image_paths(), answer_index, "train"
    )
    test_examples = _build_examples(package.get_test_questions(), package.get_test_image_paths(), answer_index, "test")
    train, validation = _carve_validation(train_examples)
    return VQAData(answer_names, train, validation, _sorted(test_examples))


def load_easyvqa(*, limit_train: int | None = None) -> VQAData:
    """Load easy-VQA with its fixed splits.

    Args:
        limit_train: If given, keep only the first ``limit_train`` training examples (a uniform random sample, since
            splits are ordered by a hash); validation and test are never reduced.

    Returns:
        The data; calls with the same ``limit_train`` return equal objects, and ``limit_train=None`` returns the same
        cached object every time.

    Raises:
        MissingDataPackageError: If ``easy-vqa`` is not installed.
        ValueError: If ``limit_train`` is negative.
    """
    if limit_train is not None and limit_train < 0:
        raise UsageError(f"limit_train must be >= 0 or None, got {limit_train}.")
    data = _load_full()
    if limit_train is None or limit_train >= len(data.train):
        return data
    return dataclasses.replace(data, train=data.train[:limit_train])
