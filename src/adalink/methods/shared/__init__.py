"""Pieces that several methods build on; any method may import them, no method imports another method.

- :mod:`.linear`: linear layers as sites, output hooks and per-task bank attachment (LoRA, DoRA, KronA, (IA)³,
  UniPELT);
- :mod:`.lora_bank`: the stacked per-task LoRA bank and LoRA's fields (LoRA, DoRA, UniPELT);
- :mod:`.bottleneck`: the bottleneck adapter bank, its config fields and sites (the adapters, Compacter, MAM,
  UniPELT);
- :mod:`.prefix`: prefix attachment (prefix tuning, MAM, UniPELT);
- :mod:`.combine`: one attachment from several (MAM, UniPELT).
"""
