"""One frozen base model and the adapters of many ``adalink train`` runs, stacked so that a batch mixing their tasks
runs ONE forward pass (paper §1 and §3.3: only the input embeddings differ between tasks). Which adapters can share
that pass, and how they are stacked, is :mod:`.compatibility`; a task served here answers exactly what ``adalink
predict`` answers for its run.

:class:`AdapterStack` is synchronous and not thread-safe: the server calls it from one model thread, and offline
batch prediction calls it directly.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import UnknownNameError, UsageError
from ..fingerprint import check_fingerprint
from ..logs import log_level
from ..methods.base import MethodConfig
from ..models.precision import BaseLoading, keep_float32
from ..peft_model import PeftModel, get_peft_model
from ..routing import UnknownTaskError
from ..runs.loading import setup_model
from ..tasks.calls import model_call
from ..tasks.formats import ClassificationFormat, TaskInfo, TextToTextFormat, pad_rows
from ..tasks.sft import end_token
from .compatibility import (
    GENERATIVE_FORMATS,
    SERVED_FORMATS,
    AdapterConflictError,
    AdapterRun,
    IncompatibleAdapterError,
    fill_stacked,
    read_adapter_run,
    served_as,
    served_kind,
    served_loading,
    shared_fields,
    stacked_config,
    stacked_head,
)
from .generation import Completion, RowStreamer, Sampling, TokenFeed, eos_ids, generation_config, kept_tokens
from .padding import length_groups

__all__ = ["AdapterStack", "Classification", "Completion", "Sampling", "ServedTask"]


@dataclass(frozen=True)
class ServedTask:
    name: str
    adapter: str  # the adapter (run) that provides it
    labels: tuple[str, ...]
    max_length: int  # input tokens kept, as in training and `adalink predict` (longer inputs are truncated)
    answer_tokens: int  # text-to-text: new tokens generated to read a label (the run's own setting)


@dataclass(frozen=True)
class Classification:
    task: str
    label: str | None  # None: a text-to-text answer that matches none of the task's labels
    probabilities: dict[str, float] | None  # classification heads: label -> probability
    generated: str | None = None  # text-to-text tasks: the generated answer


class AdapterStack:
    """A frozen base model serving the tasks of many adapters, one forward pass per mixed batch.

    Example (offline batch prediction with the adapters a server would load)::

        stack = AdapterStack.from_runs(["runs/tweets", "runs/bbc"])
        for result in stack.classify([("tweets", "what a lovely day"), ("bbc", "Shares fell sharply")]):
            print(result.task, result.label, result.probabilities)
    """

    def __init__(
        self,
        model: str,
        format_name: str,
        *,
        device: str | torch.device | None = None,
        loading: BaseLoading | None = None,
    ) -> None:
        """``loading``: the base's dtype and quantization (default float32); adapters and heads stay float32."""
        if format_name not in SERVED_FORMATS:
            raise IncompatibleAdapterError(f"format {format_name!r}: expected one of {list(SERVED_FORMATS)}.")
        self.model_name, self.format_name = model, format_name
        self.generative = format_name in GENERATIVE_FORMATS  # answers completions and chat (text-to-text, sft)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.loading = (loading or BaseLoading()).for_inference()
        setup = setup_model(model, served_as(format_name), [TaskInfo("base", ("a", "b"))])
        self._encoder_decoder = isinstance(setup.fmt, TextToTextFormat) and setup.fmt.encoder_decoder
        self.tokenizer = setup.tokenizer
        # encode/decode for the request handlers' thread: one fast tokenizer must not serve two threads at once
        self._client_tokenizer = copy.deepcopy(self.tokenizer)
        # a classification head loads "newly initialised", but the adapters' trained heads replace it: say nothing
        # (transformers runs its tensor-parallel check, and warns, whenever modeling_utils logs above WARNING)
        quiet = logging.ERROR if isinstance(setup.fmt, ClassificationFormat) else logging.NOTSET
        with log_level(("transformers.modeling_utils", "transformers.distributed.tensor_parallel"), quiet):
            self.base = setup.build_base(seed=0, loading=self.loading).eval().requires_grad_(False).to(self.device)
        self._head = setup.fmt.head_modules(self.base)[0] if isinstance(setup.fmt, ClassificationFormat) else None
        self.adapters: dict[str, AdapterRun] = {}
        self.tasks: dict[str, ServedTask] = {}
        self.fmt: ClassificationFormat | TextToTextFormat | None = None
        self.model: PeftModel | None = None
        self._profile: MethodConfig | None = None  # the first adapter's config: what every adapter must share
        self._fingerprint: dict[str, Any] | None = None
        self._ignore_fingerprint = False

    @classmethod
    def from_runs(
        cls,
        runs: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
        *,
        model: str | None = None,
        device: str | torch.device | None = None,
        ignore_fingerprint: bool = False,
        dtype: str | None = None,
        quantize: str | None = None,
    ) -> AdapterStack:
        """Load the base once and every run's adapter; ``runs`` maps adapter names to directories, or lists the
        directories (named after themselves). ``model`` defaults to the model the runs were trained on; ``dtype``
        and ``quantize`` (:class:`~adalink.models.precision.BaseLoading`) to how the runs held it."""
        named = runs.items() if isinstance(runs, Mapping) else [(None, d) for d in runs]
        adapters = [read_adapter_run(directory, name) for name, directory in named]
        if not adapters:
            raise UsageError("Give at least one adapter (an `adalink train` output directory).")
        if model is None:
            trained_on = sorted({a.run["model"] for a in adapters})
            if len(trained_on) > 1:
                raise IncompatibleAdapterError(
                    f"The adapters were trained on different models {trained_on}: one server shares one base "
                    "model. Pass the one to serve (--model), or start one server per base model."
                )
            model = trained_on[0]
        formats = sorted({a.run["format"] for a in adapters})
        if len({served_as(f) for f in formats}) > 1:
            raise IncompatibleAdapterError(
                f"The adapters mix formats {formats}; one server serves classification runs or "
                f"{served_kind('text2text')} runs. Start one server per kind."
            )
        loading = served_loading(adapters, dtype=dtype, quantize=quantize)
        stack = cls(model, formats[0] if len(formats) == 1 else served_as(formats[0]), device=device, loading=loading)
        stack._ignore_fingerprint = ignore_fingerprint
        stack.add(*adapters)
        return stack

    # -------------------------------------------------------------------------------------------- adapters
    def check(self, adapter: AdapterRun, *, serving: Sequence[AdapterRun] | None = None) -> None:
        """Refuse (with the reason) an adapter that cannot join ``serving`` (default: the adapters served now)."""
        serving = list(self.adapters.values()) if serving is None else serving
        if adapter.name in {a.name for a in serving}:
            raise AdapterConflictError(f"An adapter named {adapter.name!r} is already served; choose another name.")
        taken = {t.name: a for a in serving for t in a.tasks}
        for task in adapter.tasks:
            if task.name in taken:
                other = taken[task.name]
                raise AdapterConflictError(  # names only: a directory would show the server's disk to clients
                    f"Task {task.name!r} of adapter {adapter.name!r} is already served by adapter {other.name!r}; "
                    "each task name must be unique on a server."
                )
        if served_as(adapter.run["format"]) != served_as(self.format_name):
            raise IncompatibleAdapterError(
                f"Adapter {adapter.name!r} is a {adapter.run['format']} run; this server serves "
                f"{served_kind(self.format_name)} runs."
            )
        profile = self._profile or (serving[0].config if serving else adapter.config)
        if adapter.config.method != profile.method:
            raise IncompatibleAdapterError(
                f"Adapter {adapter.name!r} uses method {adapter.config.method!r}, the served ones "
                f"{profile.method!r}: one forward pass routes one method. Serve it from its own process."
            )
        try:
            self.loading.check_method(adapter.config.method)
        except ValueError as err:
            raise IncompatibleAdapterError(f"Adapter {adapter.name!r} cannot be served on this base: {err}") from None
        mine, theirs = shared_fields(adapter.config), shared_fields(profile)
        for field in sorted(k for k in mine if mine[k] != theirs.get(k)):
            raise IncompatibleAdapterError(
                f"Adapter {adapter.name!r} has {field}={mine[field]!r}, the served adapters {field}="
                f"{theirs.get(field)!r}: adapters that share a forward pass must agree on it. Serve it from its "
                "own process."
            )
        if not self._ignore_fingerprint:
            saved = adapter.document.get("base_model", {})
            check_fingerprint(saved, self._base_fingerprint(profile), str(adapter.directory))

    def add(self, *adapters: AdapterRun) -> list[str]:
        """Serve more adapters; returns their task names. Nothing changes if any of them is refused."""
        serving = list(self.adapters.values())
        for adapter in adapters:
            self.check(adapter, serving=serving)
            serving.append(adapter)
        self._restack(serving)
        return [t.name for a in adapters for t in a.tasks]

    def remove(self, name: str) -> list[str]:
        """Stop serving adapter ``name``; returns the task names it served."""
        if name not in self.adapters:
            raise UnknownNameError(f"No adapter named {name!r}; served adapters: {sorted(self.adapters)}.")
        removed = [t.name for t in self.adapters[name].tasks]
        self._restack([a for a in self.adapters.values() if a.name != name])
        return removed

    def _base_fingerprint(self, profile: MethodConfig) -> dict[str, Any]:
        if self._fingerprint is None:  # the base is frozen: hash it once, with the sites the method touches
            probe = PeftModel(self.base, stacked_config(profile, [profile], ["probe"]))
            self._fingerprint = probe.base_fingerprint()
            probe.unload()
        return self._fingerprint

    def _restack(self, adapters: list[AdapterRun]) -> None:
        """Rebuild the stacked adapter and head for ``adapters``; on failure the previous set is restored."""
        previous = list(self.adapters.values())
        try:
            self._build(adapters)
        except Exception:
            self._build(previous)
            raise

    def _build(self, adapters: list[AdapterRun]) -> None:
        if self.model is not None:
            self.model.unload()  # detach the old stack's hooks; the base is as it was loaded
            self.model = None
        infos = [t for a in adapters for t in a.tasks]
        tasks: dict[str, ServedTask] = {}
        fmt = None
        if adapters:
            self._profile = self._profile or adapters[0].config
            config = stacked_config(self._profile, [a.config for a in adapters], [t.name for t in infos])
            model = get_peft_model(self.base, config)
            try:
                fill_stacked(model, adapters)
                if self._head is not None:
                    head = stacked_head(self._head, adapters).to(self.device)
                    if self.loading.converts:
                        keep_float32(head)  # a bf16/int8 base's features enter the float32 head as float32
                    setattr(self.base, self._head, head)
            except Exception:
                model.unload()  # never leave a half-built stack's hooks on the base
                raise
            self.model = model.to(self.device).eval().requires_grad_(False)
            fmt = self._format(infos)
            for adapter in adapters:
                answer_tokens = 0  # as `adalink predict` reads its run's labels (none: /v1/classify refuses)
                if isinstance(fmt, TextToTextFormat) and all(t.label_names for t in adapter.tasks):
                    own = TextToTextFormat(adapter.tasks, encoder_decoder=False)
                    answer_tokens = own.max_new_tokens(self.tokenizer)
                for task in adapter.tasks:
                    limit = int(adapter.run["max_length"])
                    tasks[task.name] = ServedTask(task.name, adapter.name, task.label_names, limit, answer_tokens)
        # request handlers read these from another thread: replace them whole, never half-built
        self.adapters, self.tasks, self.fmt = {a.name: a for a in adapters}, tasks, fmt

    def _format(self, tasks: list[TaskInfo]) -> ClassificationFormat | TextToTextFormat:
        """The served format over ``tasks`` (every served task's labels, in order)."""
        if self.generative:
            return TextToTextFormat(tasks, encoder_decoder=self._encoder_decoder)
        return ClassificationFormat(tasks)

    # -------------------------------------------------------------------------------------------- running
    def _task_ids(self, tasks: Sequence[str]) -> torch.Tensor:
        order = {name: i for i, name in enumerate(self.tasks)}
        unknown = sorted({t for t in tasks if t not in order})
        if unknown:
            raise UnknownTaskError(f"Unknown task(s) {unknown}; served tasks: {list(self.tasks)}.")
        return torch.tensor([order[t] for t in tasks], dtype=torch.long, device=self.device)

    @torch.inference_mode()
    def classify(self, requests: Sequence[tuple[str, str]]) -> list[Classification]:
        """Label (task, text) pairs, whatever their tasks, in one forward pass (text-to-text: one generate)."""
        if not requests:
            return []
        tasks = [task for task, _ in requests]
        task_ids = self._task_ids(tasks)
        if isinstance(self.fmt, TextToTextFormat):
            return self._classify_by_generation(requests, task_ids)
        rows = self._encode([text for _, text in requests], [self.tasks[t].max_length for t in tasks])
        results: dict[int, Classification] = {}  # request index -> its answer: the groups cover every index
        assert self.model is not None  # built: the tasks were found
        call = model_call(self.model)
        for group in length_groups([len(row["input_ids"]) for row in rows]):
            padded = self.tokenizer.pad([rows[i] for i in group], padding=True, return_tensors="pt")
            batch = {key: value.to(self.device) for key, value in padded.items()}
            batch["task_ids"] = task_ids[group]
            indices, distributions = self.fmt.predict(call, batch)
            for i, index, probabilities in zip(group, indices, distributions, strict=True):
                labels = self.tasks[tasks[i]].labels
                results[i] = Classification(tasks[i], labels[index], dict(zip(labels, probabilities, strict=True)))
        return [results[i] for i in range(len(requests))]

    def _classify_by_generation(
        self, requests: Sequence[tuple[str, str]], task_ids: torch.Tensor
    ) -> list[Classification]:
        encoded = [  # as in training: a long text is cut, never the prompt's frame and its answer cue
            self.fmt.prompt_ids(self.tokenizer, int(i), text, self.tasks[task].max_length)
            for i, (task, text) in zip(task_ids, requests, strict=True)
        ]
        budgets = [self.tasks[task].answer_tokens for task, _ in requests]
        completions = self._generate(task_ids, encoded, budgets, Sampling())
        results = []
        for (task, _), i, completion in zip(requests, task_ids.tolist(), completions, strict=True):
            text = self.tokenizer.decode(completion.token_ids, skip_special_tokens=True)
            index = self.fmt.parse(i, text)
            label = self.tasks[task].labels[index] if index >= 0 else None
            results.append(Classification(task, label, None, text))
        return results

    @torch.inference_mode()
    def complete(
        self,
        requests: Sequence[tuple[str, list[int], int]],
        sampling: Sampling | None = None,
        feeds: Sequence[TokenFeed | None] | None = None,
    ) -> list[Completion]:
        """Continue (task, prompt token ids, max new tokens) triples, whatever their tasks, in one ``generate``.

        ``sampling``: greedy by default. ``feeds`` (one per request, or None) receive each row's tokens while it is
        generated (see :mod:`.generation`); the results are the same either way.
        """
        if not requests:
            return []
        if not self.generative:
            raise UsageError("Completions need a text-to-text (decoder or encoder-decoder) server.")
        task_ids = self._task_ids([task for task, _, _ in requests])
        prompts, budgets = [ids for _, ids, _ in requests], [n for _, _, n in requests]
        return self._generate(task_ids, prompts, budgets, sampling or Sampling(), feeds)

    def encode(self, text: str, *, special_tokens: bool = True) -> list[int]:
        """Prompt token ids, as :meth:`complete` takes them (with the tokenizer's special tokens, as in training;
        ``special_tokens=False`` for a text that already holds them, such as a rendered chat)."""
        return self._client_tokenizer(text, add_special_tokens=special_tokens)["input_ids"]

    def decode(self, token_ids: list[int]) -> str:
        """The text of generated tokens, as generated: no clean-up of spaces, which would rewrite text across token
        boundaries (``do n't`` -> ``don't``), so the text of a row's first tokens is the start of its whole text
        and a stream never has to take back what it sent."""
        return self._client_tokenizer.decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    @property
    def chat_template(self) -> str | None:
        """The tokenizer's chat template (a Jinja string), or None: then the model cannot be chatted with."""
        template = getattr(self._client_tokenizer, "chat_template", None)
        return template or None

    def render_chat(self, messages: list[dict[str, Any]]) -> str:
        """``messages`` rendered by the tokenizer's chat template, with the cue for the assistant's answer."""
        return self._client_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @property
    def context_length(self) -> int | None:
        config = self.base.config
        for name in ("max_position_embeddings", "n_positions", "n_ctx"):
            if isinstance(getattr(config, name, None), int):
                return getattr(config, name)
        return None  # relative positions (T5): no hard limit

    def _encode(self, texts: list[str], limits: list[int]) -> list[dict[str, list[int]]]:
        """Tokenise each text truncated to its own task's limit (unpadded rows)."""
        rows: list[Any] = [None] * len(texts)
        for limit in sorted(set(limits)):
            picked = [i for i, n in enumerate(limits) if n == limit]
            encoded = self.tokenizer([texts[i] for i in picked], truncation=True, max_length=limit)
            for j, i in enumerate(picked):
                rows[i] = {key: values[j] for key, values in encoded.items()}
        return rows

    def _generate(
        self,
        task_ids: torch.Tensor,
        prompts: list[list[int]],
        budgets: list[int],
        sampling: Sampling,
        feeds: Sequence[TokenFeed | None] | None = None,
    ) -> list[Completion]:
        """One ``generate`` for all rows; each row keeps at most its own budget of new tokens and stops at EOS."""
        encoder_decoder = self._encoder_decoder
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        padded = pad_rows(prompts, pad, left=not encoder_decoder)  # decoders continue from the right edge
        input_ids, mask, width = padded["input_ids"], padded["attention_mask"], padded["input_ids"].shape[1]
        config = generation_config(self.base, max(budgets), sampling, pad, tokenizer_eos=end_token(self.tokenizer))
        eos = eos_ids(config.eos_token_id)
        streamer = RowStreamer(feeds, budgets, eos) if feeds and any(f is not None for f in feeds) else None
        if sampling.seed is not None and sampling.temperature > 0:
            torch.manual_seed(sampling.seed)  # the model thread is the only one that samples
        output = self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            task=task_ids,
            generation_config=config,
            streamer=streamer,
        )
        new_tokens = output[:, 1:] if encoder_decoder else output[:, width:]  # drop the decoder start / the prompt
        return [kept_tokens(row, budget, eos) for row, budget in zip(new_tokens.tolist(), budgets, strict=True)]
