"""A run of ``adalink train`` as the other workflows use it: its tasks and base model, and its finished directory.

- :mod:`.loading`: a run's tasks' data (:func:`~.loading.load_tasks`) and its base model with format and tokenizer
  (:func:`~.loading.setup_model`), the one place that tells text models from the easy-VQA TinyVLM;
- :mod:`.reading`: a finished run directory read (:func:`~.reading.read_run`) and loaded with its adapter
  (:func:`~.reading.load_run`), for ``adalink eval/predict/merge``, ``adalink serve``, export and the bench;
- :mod:`.export`: a run directory exported in Hugging Face peft's format with what a client needs
  (:func:`~.export.export_run`, ``adalink export``), on top of the pure converters of :mod:`adalink.export`;
- :mod:`.folding`: one task of a run folded into a plain checkpoint (:func:`~.folding.fold_task`, ``adalink merge``,
  ``adalink serve --engine vllm --fold``).

It sits below the workflows (training, serving, bench) and above the formats and the TinyVLM, so that serving and
exporting a run never import the training harness.
"""
