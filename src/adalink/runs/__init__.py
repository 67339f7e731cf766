"""A run of ``adalink train`` as the other workflows use it: its tasks and base model, and its finished directory.

- :mod:`.loading`: a run's tasks' data (:func:`~.loading.load_tasks`) and its base model with format and tokenizer
  (:func:`~.loading.setup_model`), the one place that tells text models from the easy-VQA TinyVLM;
- :mod:`.base_model`: a finished run's ``run.json`` (:func:`~.base_model.read_run`) and its base model with the adapter,
  built from ``run.json`` alone, without the task format (:func:`~.base_model.load_run_model`);
- :mod:`.reading`: a finished run directory loaded with its adapter, task format and tokenizer
  (:func:`~.reading.load_run`), for ``adalink eval/predict``, ``adalink serve``, export and the bench;
- :mod:`.folding`: a run folded into a plain transformers checkpoint (``adalink merge``), with no task format;
- :mod:`.export`: a run directory exported in Hugging Face peft's format with what a client needs
  (:func:`~.export.export_run`, ``adalink export``), on top of the pure converters of :mod:`adalink.export`;
- :mod:`.folding`: one task of a run folded into a plain checkpoint (:func:`~.folding.fold_task`, ``adalink merge``,
  ``adalink serve --engine vllm --fold``).

It sits below the workflows (training, serving, bench) and above the formats and the TinyVLM, so that serving and
exporting a run never import the training harness.
"""
