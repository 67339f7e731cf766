"""Task formats: how a task turns examples into model inputs, and a model's outputs into answers and scores.

Nothing here trains. The harness (:mod:`adalink.training`), the server (:mod:`adalink.serve`), the run tools
(:mod:`adalink.runs`) and the stage-1 VLM pre-training all use the same formats, so that a run is served, exported and
scored with exactly the prompts and batches it trained on.

- :mod:`.formats`: :class:`~.formats.TaskInfo`, classification with a head and text-to-text (the papers' two);
- :mod:`.sft`: generative supervised fine-tuning, a prompt in and a response out, over the text-to-text format;
- :mod:`.examples`: :class:`~.examples.TaskExample`, an example with the index of its task;
- :mod:`.calls`: how a format calls a model (``task=`` for an adalink :class:`~adalink.PeftModel`);
- :mod:`.evaluation`: predictions, generations and scores on a split;
- :mod:`.options`: the options that choose a run's tasks (:class:`~.options.TaskOptions`).

The easy-VQA format lives with its model, in :mod:`adalink.vision.vqa`; how a base model is held (dtype,
quantization) in :mod:`adalink.models.precision`.
"""
