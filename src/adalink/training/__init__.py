"""The training harness: packaged tasks and models, a resumable multi-process loop, eval, predict and merge.

One job per module: :mod:`.args` (``TrainArgs``, the options of ``adalink train`` in groups), :mod:`.config_file`
(its flags and ``--config`` file, through jsonargparse), :mod:`.methods` (attaching a
method by name, its default learning rate), :mod:`.optimizer`, :mod:`.stream` (the data order), :mod:`.loop`
(``train``), :mod:`.outputs` (``run.json``, ``metrics.json``), :mod:`.checkpoints`, and :mod:`.artifacts` (eval,
predict and merge of a finished run). The task formats are :mod:`adalink.tasks`; a run's tasks, base model and
directory are :mod:`adalink.runs`: serving and export use those without this package. Method code never imports this
package; this package composes the library's pieces into workflows.
"""
