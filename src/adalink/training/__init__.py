"""The training harness: packaged tasks and models, a resumable multi-process loop, eval, predict and merge.

One job per module: :mod:`.args` (``TrainArgs``, the options of ``adalink train``), :mod:`.loading` (tasks, and the
base model with its format and tokenizer), :mod:`.methods` (attaching a method by name, its default learning rate),
:mod:`.optimizer`, :mod:`.loop` (``train``), :mod:`.evaluation`, :mod:`.outputs` (``run.json``, ``metrics.json``),
:mod:`.checkpoints`, and :mod:`.artifacts` (using a finished run). Method code never imports this package; this
package composes the library's pieces into workflows.
"""
