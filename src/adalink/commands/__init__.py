"""Command-line pieces that belong to no subsystem: the options generated from a dataclass (:mod:`.options`, used by
``adalink train`` and ``adalink serve``) and ``adalink methods`` (:mod:`.methods`).

The subsystems' own commands live beside them (``adalink.serve.cli``, ``adalink.bench.cli``, ...);
:mod:`adalink.cli` dispatches to all of them.
"""
