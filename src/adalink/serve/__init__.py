"""Serve the tasks of many adapters from one frozen base model, mixed-task batches in one forward pass.

:class:`AdapterStack` is the engine (also the Python API for offline batch prediction); :func:`create_app` wraps it
in the HTTP API that ``adalink serve`` runs. The HTTP pieces (FastAPI, uvicorn) come with ``pip install
"adalink[serve]"`` and are imported only by :mod:`adalink.serve.app` and :mod:`adalink.serve.cli`.
"""

from .adapter_stack import AdapterStack, Classification, Completion, Sampling, ServedTask
from .compatibility import AdapterConflictError, AdapterRun, IncompatibleAdapterError, read_adapter_run

__all__ = [
    "AdapterConflictError",
    "AdapterRun",
    "AdapterStack",
    "Classification",
    "Completion",
    "IncompatibleAdapterError",
    "Sampling",
    "ServedTask",
    "read_adapter_run",
]
