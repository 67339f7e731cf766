"""Export adalink adapters to Hugging Face peft's own format, exactly (same logits in evaluation).

``export_peft(model, out_dir)`` writes one standard peft adapter directory per task of an
:class:`adalink.PeftModel` (``PeftModel.save_pretrained(directory, format="peft")`` does the same);
``export_run(run_dir, out_dir)`` does it for an ``adalink train`` output directory, with the tokenizer, the labels
and the prompt template beside each adapter; ``adalink export`` is its command line. Read in this order:
:mod:`.convert` (layout, what each method becomes, what is refused) -> :mod:`.adapter` (the two peft files) -> one
converter per method family -> :mod:`.heads` -> :mod:`.runs` -> :mod:`.cli`.
"""

from .adapter import AdaptedModel, ExportError, PeftAdapter
from .convert import CONVERTERS, TaskDetails, export_peft, peft_adapter, task_directory
from .heads import HeadRows, task_type
from .prompts import seq2seq_prefix_rows
from .runs import export_run, prompt_template

__all__ = [
    "CONVERTERS",
    "AdaptedModel",
    "ExportError",
    "HeadRows",
    "PeftAdapter",
    "TaskDetails",
    "export_peft",
    "export_run",
    "peft_adapter",
    "prompt_template",
    "seq2seq_prefix_rows",
    "task_directory",
    "task_type",
]
