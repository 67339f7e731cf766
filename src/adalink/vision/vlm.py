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

``save_pretrained`` writes ``config.json`` (this module's own format, not a ``transformers`` config), the vision
encoder, projector and head in ``model.safetensors``, and the MiniLM tokenizer; the MiniLM weights are not copied,
they come from the package and are checked against the SHA-256 recorded at save time. Only when the text model's
weights were changed (full fine-tuning) are they saved too, in ``text_model.safetensors``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from ..io import fsync_path as _fsync

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

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TEXT_WEIGHTS_NAME = "text_model.safetensors"
FORMAT = "adalink-tiny-vlm"
FORMAT_VERSION = 1
POOLINGS: tuple[str, ...] = ("cls", "mean")
STEMS: tuple[str, ...] = ("conv", "linear")
_STEM_WIDTHS = (32, 64)
TEXT_PREFIX = "text_model."


class TinyVLMFileError(ValueError):
    """A TinyVLM directory is missing, corrupt, or was saved against different text-model weights."""


@dataclass
class TinyVLMConfig:
    """Architecture of :class:`TinyVLM` (stored in ``config.json``).

    Attributes:
        image_size: Side of the square input image in pixels.
        patch_size: Side of a ViT patch; ``image_size`` must be a multiple of it.
        vision_width: Width of the vision transformer.
        vision_layers: Number of vision transformer layers.
        vision_heads: Attention heads per vision layer (must divide ``vision_width``).
        stem: The patch embedding: ``"conv"`` (two stride-2 3×3 convolutions with GELU, then a linear patchify of
            the remaining ``patch_size / 4`` side: the "early convolutions" ViT stem, which learns shapes several
            times faster from scratch) or ``"linear"`` (one ``patch_size`` convolution, the plain ViT patchify).
        token_pool: The patch grid is average-pooled in ``token_pool``×``token_pool`` windows before the projector
            (1 = no pooling); the number of image tokens is ``(image_size / patch_size / token_pool) ** 2``.
        num_answers: Size of the answer head.
        text_model: ``"minilm"`` (the packaged all-MiniLM-L6-v2) or a local BERT-like ``save_pretrained`` directory.
        pooling: ``"mean"`` (default: mean over all attended image and text positions) or ``"cls"`` (the first text
            token, [CLS]). With the frozen MiniLM, mean pooling learned the "what" questions clearly faster in stage 1
            (all-MiniLM-L6-v2 was itself trained with mean pooling).
        head_dropout: Dropout on the pooled vector before the head.
        head_hidden: 0 (default): the head is one Linear; else a Linear -> GELU -> Linear MLP of this hidden width.
    """

    image_size: int = 64
    patch_size: int = 8
    vision_width: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    token_pool: int = 2
    stem: str = "conv"
    num_answers: int = 13
    text_model: str = "minilm"
    pooling: str = "mean"
    head_dropout: float = 0.1
    head_hidden: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes, saved as is

    model_type: ClassVar[str] = "adalink_tiny_vlm"  # read by adalink's fingerprint; unknown to transformers' registry
    is_encoder_decoder: ClassVar[bool] = False

    def __post_init__(self) -> None:
        checks = [
            ("image_size", self.image_size > 0, "a positive integer"),
            ("patch_size", self.patch_size > 0 and self.image_size % self.patch_size == 0, "a divisor of image_size"),
            ("vision_width", self.vision_width > 0, "a positive integer"),
            ("vision_layers", self.vision_layers >= 0, "a non-negative integer"),
            (
                "vision_heads",
                self.vision_heads > 0 and self.vision_width % self.vision_heads == 0,
                "a positive divisor of vision_width",
            ),
            (
                "token_pool",
                self.token_pool > 0 and self.grid % self.token_pool == 0 if self.patch_size > 0 else False,
                "a positive divisor of image_size // patch_size",
            ),
            (
                "stem",
                self.stem == "linear" or (self.stem == "conv" and self.patch_size % 4 == 0),
                "'linear', or 'conv' with a patch_size divisible by 4",
            ),
            ("num_answers", self.num_answers > 0, "a positive integer"),
            ("pooling", self.pooling in POOLINGS, f"one of {list(POOLINGS)}"),
            ("head_dropout", 0 <= self.head_dropout < 1, "a number in [0, 1)"),
            ("head_hidden", self.head_hidden >= 0, "a non-negative integer"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"TinyVLMConfig.{name}={getattr(self, name)!r} is invalid: expected {expected}.")

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def num_image_tokens(self) -> int:
        """P, the number of image tokens put in front of the text."""
        return (self.grid // self.token_pool) ** 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> TinyVLMConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(document) - names)
        if unknown:
            raise ValueError(f"Unknown TinyVLMConfig field(s) {unknown}; expected some of {sorted(names)}.")
        return cls(**document)


# ---------------------------------------------------------------------------------------------------- text model


def resolve_text_model_path(spec: str) -> str:
    """Directory of the text model: ``"minilm"`` through :func:`adalink.models.resolve_model`, else ``spec``."""
    from ..models import resolve_model

    return resolve_model(spec).path


def load_text_model(spec: str) -> nn.Module:
    """The pretrained BERT-like encoder without its pooler (unused here)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(resolve_text_model_path(spec))
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # BertModel skips a None pooler; dropping it keeps unused parameters out of training
    return model


def _state_sha256(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\n".encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# -------------------------------------------------------------------------------------------------------- modules


class VisionBlock(nn.Module):
    """A pre-LN transformer layer (attention + 4× GELU MLP), written out so that its arithmetic is the same whether
    or not its parameters require grad (``nn.TransformerEncoderLayer`` switches to a fused kernel when frozen)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, tokens, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, width / heads)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, width)
        x = x + self.proj(attended)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class VisionEncoder(nn.Module):
    """A small ViT: patch embedding (a convolutional stem by default) + learned positions + pre-LN transformer layers
    + LayerNorm + token pooling."""

    def __init__(self, config: TinyVLMConfig) -> None:
        super().__init__()
        self.config = config
        width = config.vision_width
        if config.stem == "conv":
            rest = config.patch_size // 4
            first, second = _STEM_WIDTHS
            self.patch_embed: nn.Module = nn.Sequential(
                nn.Conv2d(3, first, kernel_size=3, stride=2, padding=1),
                nn.GELU(),
                nn.Conv2d(first, second, kernel_size=3, stride=2, padding=1),
                nn.GELU(),
                nn.Conv2d(second, width, kernel_size=rest, stride=rest),
            )
        else:
            self.patch_embed = nn.Conv2d(3, width, kernel_size=config.patch_size, stride=config.patch_size)
        self.position = nn.Parameter(torch.randn(1, config.grid**2, width) * 0.02)
        self.layers = nn.ModuleList(VisionBlock(width, config.vision_heads) for _ in range(config.vision_layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` in [0, 1] -> ``(B, P, vision_width)``."""
        x = self.patch_embed(pixel_values * 2.0 - 1.0)  # (B, W, g, g)
        x = x.flatten(2).transpose(1, 2) + self.position  # (B, g·g, W), row-major patch order
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        pool = self.config.token_pool
        if pool > 1:
            g = self.config.grid
            x = F.avg_pool2d(x.transpose(1, 2).reshape(x.shape[0], -1, g, g), pool)
            x = x.flatten(2).transpose(1, 2)
        return x


class Projector(nn.Module):
    """Linear -> GELU -> Linear (``out``) from the vision width to the text width."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.act = nn.GELU()
        self.out = nn.Linear(out_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc(x)))


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
            raise ValueError("TinyVLM.forward needs exactly one of input_ids or inputs_embeds.")
        if pixel_values is None:
            raise ValueError("TinyVLM.forward needs pixel_values (B, 3, H, W).")
        text = self.get_input_embeddings()(input_ids) if inputs_embeds is None else inputs_embeds
        image = self.image_embeddings(pixel_values)
        if image.shape[0] != text.shape[0]:
            raise ValueError(f"pixel_values has {image.shape[0]} images but the text batch has {text.shape[0]} rows.")
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
        return {
            name: tensor.detach().to("cpu").contiguous()
            for name, tensor in self.state_dict().items()
            if not name.startswith(TEXT_PREFIX)
        }

    def text_weights_sha256(self) -> str:
        """SHA-256 of the text model's current weights."""
        return _state_sha256(self.text_model)

    def write_files(self, directory: str | os.PathLike, extra_json: dict[str, Any] | None = None) -> None:
        """Write the model's files into the existing ``directory`` (not atomic; :meth:`save_pretrained` is).

        ``extra_json`` maps further file names to JSON documents written beside the model (e.g. training metrics).
        """
        from transformers import AutoTokenizer

        directory = Path(directory)
        weights = directory / WEIGHTS_NAME
        save_file(self._own_state(), str(weights), metadata={"format": "pt"})
        files = {WEIGHTS_NAME: _file_sha256(weights)}
        current = self.text_weights_sha256()
        if self._text_sha256 is None:
            self._text_sha256 = _state_sha256(load_text_model(self.config.text_model))
        if current != self._text_sha256:  # fine-tuned text weights (e.g. full fine-tuning): keep them
            text_weights = directory / TEXT_WEIGHTS_NAME
            state = {name: t.detach().to("cpu").contiguous() for name, t in self.text_model.state_dict().items()}
            save_file(state, str(text_weights), metadata={"format": "pt"})
            files[TEXT_WEIGHTS_NAME] = _file_sha256(text_weights)
        AutoTokenizer.from_pretrained(resolve_text_model_path(self.config.text_model)).save_pretrained(str(directory))
        for name, document in (extra_json or {}).items():
            (directory / name).write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_type": TinyVLMConfig.model_type,
            "architectures": [type(self).__name__],
            "config": self.config.to_dict(),
            "text_model_sha256": self._text_sha256,  # the packaged weights this model was trained against
            "files_sha256": files,
        }
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")

    def save_pretrained(
        self, save_directory: str | os.PathLike, *, extra_json: dict[str, Any] | None = None, **_: Any
    ) -> Path:
        """Atomically (re)write ``save_directory``: the files go to a temporary sibling that is renamed into place.

        An existing ``save_directory`` is replaced as a whole. ``extra_json`` is as in :meth:`write_files`.
        """
        target = Path(save_directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        temp.mkdir()
        try:
            self.write_files(temp, extra_json)
            _publish(temp, target)
        finally:
            if temp.exists():
                shutil.rmtree(temp, ignore_errors=True)
        return target

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **_: Any) -> TinyVLM:
        """Load a directory written by :meth:`save_pretrained` (the text model comes from its package)."""
        directory = Path(directory)
        document = read_vlm_config(directory)
        try:
            config = TinyVLMConfig.from_dict(document["config"])
        except (KeyError, TypeError, ValueError) as error:
            raise TinyVLMFileError(f"{directory / CONFIG_NAME}: invalid TinyVLM config ({error}).") from None
        files = document.get("files_sha256") or {}
        for name, digest in files.items():
            path = directory / name
            if not path.is_file() or _file_sha256(path) != digest:
                raise TinyVLMFileError(
                    f"{path} is missing or does not match {CONFIG_NAME} (SHA-256 differs): the directory is "
                    "truncated, corrupt or mixed from two saves."
                )
        model = cls(config)
        packaged = model.text_weights_sha256()
        model._text_sha256 = packaged
        if TEXT_WEIGHTS_NAME in files:
            model.text_model.load_state_dict(load_file(str(directory / TEXT_WEIGHTS_NAME)), strict=True)
        elif packaged != document.get("text_model_sha256"):
            raise TinyVLMFileError(
                f"{directory} was trained against text-model weights with SHA-256 {document.get('text_model_sha256')}, "
                f"but {config.text_model!r} now loads weights with SHA-256 {packaged}: reinstall the package it was "
                "trained with (or rebuild this model)."
            )
        missing, unexpected = model.load_state_dict(load_file(str(directory / WEIGHTS_NAME)), strict=False)
        missing = [name for name in missing if not name.startswith(TEXT_PREFIX)]
        if missing or unexpected:
            raise TinyVLMFileError(f"{directory / WEIGHTS_NAME}: missing tensors {missing}, unexpected {unexpected}.")
        return model.eval()


def _file_sha256(path: Path) -> str:
    from ..io import file_sha256

    return file_sha256(path)


def read_vlm_config(directory: Path) -> dict[str, Any]:
    """The checked ``config.json`` document of a TinyVLM directory (its ``config`` key builds a :class:`TinyVLMConfig`).

    Raises:
        TinyVLMFileError: If the file is missing, corrupt, not a TinyVLM config or of a newer format version.
    """
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise TinyVLMFileError(f"Not a TinyVLM directory: {path} is missing.")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise TinyVLMFileError(f"{path} is corrupt (not valid JSON: {error}).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise TinyVLMFileError(f'{path} is not a TinyVLM config (expected "format": "{FORMAT}").')
    if document.get("format_version", 0) > FORMAT_VERSION:
        raise TinyVLMFileError(f"{path} has format_version {document['format_version']}; upgrade adalink.")
    return document


def _publish(temp: Path, target: Path) -> None:
    """Flush ``temp`` and rename it to ``target``, moving an existing ``target`` aside first (then deleting it)."""
    for path in sorted(temp.rglob("*")):
        if path.is_file():
            _fsync(path)
    _fsync(temp)
    aside = None
    if target.exists():
        aside = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
        os.rename(target, aside)
    os.rename(temp, target)
    _fsync(target.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
