"""Export adalink adapters to Hugging Face peft's own format, exactly (same logits in evaluation).

``export_peft(model, out_dir)`` writes one standard peft adapter directory per task of an
:class:`adalink.PeftModel` (``PeftModel.save_pretrained(directory, format="peft")`` does the same). These are pure
converters of a model in memory: exporting an ``adalink train`` output directory, with the tokenizer, the labels and
the prompt template beside each adapter, reads the run and lives above (:func:`adalink.runs.export.export_run`;
``adalink export``, :mod:`adalink.commands.export`, is its command line). Read in this order: :mod:`.convert` (layout,
what each method becomes, what is refused) -> :mod:`.adapter` (the two peft files) -> one converter per method family
-> :mod:`.heads`.
"""

from .adapter import AdaptedModel, ExportError, PeftAdapter
from .convert import CONVERTERS, TaskDetails, export_peft, peft_adapter, task_directory
from .heads import HeadRows, task_type
from .prompts import seq2seq_prefix_rows

__all__ = [
    "CONVERTERS",
    "AdaptedModel",
    "ExportError",
    "HeadRows",
    "PeftAdapter",
    "TaskDetails",
    "export_peft",
    "peft_adapter",
    "seq2seq_prefix_rows",
    "task_directory",
    "task_type",
]
