"""A tiny PaLI-style vision-language model built from real parts: a ViT, a projector and the packaged MiniLM.

Layout (paper §3.1, "Image-Text Representations")::

    pixel_values (B, 3, 64, 64), values in [0, 1]
      -> vision            patch embedding (8×8 patches -> 64 patches; a small convolutional stem by default),
                           learned positions, pre-LN transformer layers, LayerNorm; then ``token_pool``×``token_pool``
                           average pooling of the patch grid (default 2: 64 patches -> P = 16 image tokens, which
                           keeps the frozen encoder cheap on CPU)
      -> projector         Linear -> GELU -> Linear (``projector.out``) to the text width 384: E_image (B, P, 384)
    input_ids (B, T)
      -> get_input_embeddings()(input_ids)   MiniLM's word embeddings: E_text (B, T, 384)
    E = [E_image; E_text] (B, P + T, 384), attention mask [1…1; attention_mask]
      -> MiniLM's BertModel(inputs_embeds=E)  adds position (0 … P+T-1) and token-type embeddings + LayerNorm, then
                                              its 6 pretrained transformer layers
      -> pooling           ``mean`` (default): the mean over all attended positions (image and text), or ``cls``: the
                           hidden state of the first text token ([CLS], position P)
      -> classifier        Linear(384, 13): one logit per easy-VQA answer

Both AdaLink modalities sit on plain module outputs, so the model's code is never touched: ``"input_embeddings"``
(``get_input_embeddings()``, the text tokens) and ``"projector"`` (or ``"projector.out"``, its last Linear, which an
identity AdaLink folds into). The text tokens get their embeddings by *calling* the word-embedding module, so its
forward hook sees them; passing ``inputs_embeds=`` (text-token embeddings) instead of ``input_ids`` is also
supported.

``save_pretrained`` writes ``config.json`` (this package's own format, not a ``transformers`` config), the vision
encoder, projector and head in ``model.safetensors``, and the MiniLM tokenizer; the MiniLM weights are not copied,
they come from the package and are checked against the SHA-256 recorded at save time. Only when the text model's
weights were changed (full fine-tuning) are they saved too, in ``text_model.safetensors``.

The parts live beside this module: :mod:`~adalink.vision.config` (:class:`TinyVLMConfig`, loading the text model),
:mod:`~adalink.vision.encoder` (:class:`VisionEncoder`, :class:`Projector`) and :mod:`~adalink.vision.vlm_files`
(the directory's files); this module assembles them into :class:`TinyVLM` and re-exports their public names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from ..errors import UsageError
from ..models.cache import replace_directory
from .config import POOLINGS, TinyVLMConfig, load_text_model, resolve_text_model_path
from .encoder import Projector, VisionBlock, VisionEncoder
from .vlm_files import (
    TEXT_WEIGHTS_NAME,
    WEIGHTS_NAME,
    TinyVLMFileError,
    check_vlm_files,
    read_vlm_config,
    state_sha256,
    write_json,
    write_vlm_config,
    write_weights,
)

__all__ = [
    "POOLINGS",
    "Projector",
    "TinyVLM",
    "TinyVLMConfig",
    "TinyVLMFileError",
    "VisionBlock",
    "VisionEncoder",
    "load_text_model",
    "read_vlm_config",
    "resolve_text_model_path",
]

TEXT_PREFIX = "text_model."


class TinyVLM(nn.Module):
    """Image tokens (vision encoder + projector) in front of MiniLM's text tokens, a 13-way answer head on top.

    Submodules: ``vision`` (:class:`VisionEncoder`), ``projector`` (:class:`Projector`, last Linear
    ``projector.out``), ``text_model`` (the pretrained BERT encoder) and ``classifier`` (the answer head). Nothing is
    frozen here; :func:`adalink.vision.pretrain.pretrain_vlm` freezes ``text_model``.
    """

    def __init__(self, config: TinyVLMConfig | None = None, *, text_model: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config = config or TinyVLMConfig()
        self.text_model = text_model if text_model is not None else load_text_model(config.text_model)
        hidden = self.text_model.get_input_embeddings().embedding_dim
        self.vision = VisionEncoder(config)
        self.projector = Projector(config.vision_width, hidden)
        self.dropout = nn.Dropout(config.head_dropout)
        self.classifier: nn.Module = (
            nn.Linear(hidden, config.num_answers)
            if config.head_hidden == 0
            else nn.Sequential(
                nn.Linear(hidden, config.head_hidden), nn.GELU(), nn.Linear(config.head_hidden, config.num_answers)
            )
        )
        self._text_sha256: str | None = None  # hash of the text weights as loaded (computed on first save)

    # ------------------------------------------------------------------------------------------------- access
    def get_input_embeddings(self) -> nn.Embedding:
        return self.text_model.get_input_embeddings()

    @property
    def num_image_tokens(self) -> int:
        return self.config.num_image_tokens

    @property
    def device(self) -> torch.device:
        return self.projector.out.weight.device

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part: vision, projector, head (classifier) and text_model."""
        parts = {"vision": self.vision, "projector": self.projector, "head": self.classifier, "text": self.text_model}
        return {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}

    # -------------------------------------------------------------------------------------------------- running
    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """E_image: ``(B, P, hidden)``, the projector's output."""
        return self.projector(self.vision(pixel_values.to(self.projector.out.weight.dtype)))

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> SequenceClassifierOutput:
        """Answer logits ``(B, num_answers)``, and the mean cross-entropy ``loss`` when ``labels`` are given.

        Args:
            input_ids: ``(B, T)`` text token ids (or ``inputs_embeds``: ``(B, T, hidden)`` text-token embeddings).
            attention_mask: ``(B, T)`` mask of the text tokens (all ones if omitted); image tokens are always attended.
            pixel_values: ``(B, 3, image_size, image_size)`` RGB in [0, 1] (as :func:`adalink.data.load_images`).
            labels: ``(B,)`` answer indices.
            token_type_ids: ``(B, T)`` text token types (zeros if omitted); image tokens get type 0.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise UsageError("TinyVLM.forward needs exactly one of input_ids or inputs_embeds.")
        if pixel_values is None:
            raise UsageError("TinyVLM.forward needs pixel_values (B, 3, H, W).")
        text = self.get_input_embeddings()(input_ids) if inputs_embeds is None else inputs_embeds
        image = self.image_embeddings(pixel_values)
        if image.shape[0] != text.shape[0]:
            raise UsageError(f"pixel_values has {image.shape[0]} images but the text batch has {text.shape[0]} rows.")
        batch, num_image, num_text = text.shape[0], image.shape[1], text.shape[1]
        embeds = torch.cat([image, text.to(image.dtype)], dim=1)
        ones = torch.ones(batch, num_image, dtype=torch.long, device=embeds.device)
        text_mask = (
            torch.ones(batch, num_text, dtype=torch.long, device=embeds.device)
            if attention_mask is None
            else attention_mask.to(device=embeds.device, dtype=torch.long)
        )
        mask = torch.cat([ones, text_mask], dim=1)
        kwargs: dict[str, Any] = {}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = torch.cat([torch.zeros_like(ones), token_type_ids.to(ones.device).long()], 1)
        out = self.text_model(
            inputs_embeds=embeds,
            attention_mask=mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        hidden = out.last_hidden_state  # (B, P + T, hidden)
        if self.config.pooling == "cls":
            pooled = hidden[:, num_image]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1)
        logits = self.classifier(self.dropout(pooled))
        loss = F.cross_entropy(logits.float(), labels.to(logits.device)) if labels is not None else None
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )

    # ------------------------------------------------------------------------------------------------ save / load
    def _own_state(self) -> dict[str, torch.Tensor]:
        return {name: tensor for name, tensor in self.state_dict().items() if not name.startswith(TEXT_PREFIX)}

    def text_weights_sha256(self) -> str:
        """SHA-256 of the text model's current weights."""
        return state_sha256(self.text_model)

    def write_files(self, directory: str | os.PathLike, extra_json: dict[str, Any] | None = None) -> None:
        """Write the model's files into the existing ``directory`` (not atomic; :meth:`save_pretrained` is).

        ``extra_json`` maps further file names to JSON documents written beside the model (e.g. training metrics).
        """
        from transformers import AutoTokenizer

        directory = Path(directory)
        files = {WEIGHTS_NAME: write_weights(directory / WEIGHTS_NAME, self._own_state())}
        if self._text_sha256 is None:
            self._text_sha256 = state_sha256(load_text_model(self.config.text_model))
        if self.text_weights_sha256() != self._text_sha256:  # fine-tuned text weights (e.g. full fine-tuning): keep
            files[TEXT_WEIGHTS_NAME] = write_weights(directory / TEXT_WEIGHTS_NAME, self.text_model.state_dict())
        AutoTokenizer.from_pretrained(resolve_text_model_path(self.config.text_model)).save_pretrained(str(directory))
        for name, document in (extra_json or {}).items():
            write_json(directory / name, document)
        write_vlm_config(
            directory,
            architecture=type(self).__name__,
            config=self.config,
            text_model_sha256=self._text_sha256,
            files=files,
        )

    def save_pretrained(
        self, save_directory: str | os.PathLike, *, extra_json: dict[str, Any] | None = None, **_: Any
    ) -> Path:
        """Atomically (re)write ``save_directory``: the files go to a temporary sibling that is renamed into place.

        An existing ``save_directory`` is replaced as a whole. ``extra_json`` is as in :meth:`write_files`.
        """
        return replace_directory(Path(save_directory), lambda temp: self.write_files(temp, extra_json))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **_: Any) -> TinyVLM:
        """Load a directory written by :meth:`save_pretrained` (the text model comes from its package)."""
        directory = Path(directory)
        document = read_vlm_config(directory)
        model = cls(check_vlm_files(directory, document))
        packaged = model.text_weights_sha256()
        model._text_sha256 = packaged
        if TEXT_WEIGHTS_NAME in (document.get("files_sha256") or {}):
            model.text_model.load_state_dict(load_file(str(directory / TEXT_WEIGHTS_NAME)), strict=True)
        elif packaged != document.get("text_model_sha256"):
            raise TinyVLMFileError(
                f"{directory} was trained against text-model weights with SHA-256 {document.get('text_model_sha256')}, "
                f"but {model.config.text_model!r} now loads weights with SHA-256 {packaged}: reinstall the package it "
                "was trained with (or rebuild this model)."
            )
        missing, unexpected = model.load_state_dict(load_file(str(directory / WEIGHTS_NAME)), strict=False)
        missing = [name for name in missing if not name.startswith(TEXT_PREFIX)]
        if missing or unexpected:
            raise TinyVLMFileError(f"{directory / WEIGHTS_NAME}: missing tensors {missing}, unexpected {unexpected}.")
        return model.eval()
