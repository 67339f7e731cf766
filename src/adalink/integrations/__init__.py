"""AdaLink through other libraries' front doors: a registered Hugging Face peft method (so peft's own API,
transformers' ``Trainer`` and TRL's trainers take it) built on adalink's AdaLink core.

Nothing here imports peft until peft itself is imported (importing peft takes seconds): ``import adalink`` installs
:func:`~adalink.integrations.peft_registration.register_when_peft_imported`, which registers AdaLink the moment peft
is imported. Read in this order: :mod:`.peft_registration` -> :mod:`.peft_config` -> :mod:`.peft_layer` ->
:mod:`.peft_tuner` -> :mod:`.peft_checkpoints` (converting checkpoints between adalink's and peft's formats).
"""

__all__: list[str] = []
