"""`MaskedLM` over a `transformers` model: any `AutoModelForMaskedLM` (BERT-like), a
trust-remote-code mask predictor (LLaDA, Dream: `AutoModel` returning logits), or a
causal-architecture checkpoint (e.g. Llama) run with full bidirectional attention.

Nothing is ever downloaded: every load passes `local_files_only=True`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from s3dsl.errors import S3DSLError, first_line
from s3dsl.models.config import checked_size
from s3dsl.models.folder_files import token_id


class HFTokenizer:
    """The runtime's `Tokenizer` over a `transformers` tokenizer.

    `encode` adds no special tokens (the runtime lays out prompt and canvas itself); `eos_id` is
    the eos token, else the sep token (BERT ends a sequence with [SEP]). With `vocab_size` (the
    model's), an id the model has no embedding for is the checkpoint's error, said at encode.
    """

    def __init__(self, tok: Any, eos_id: int | None = None, skip_special_tokens: bool = False,
                 vocab_size: int | None = None):
        self.tok = tok
        self.vocab_size = vocab_size
        self.skip_special_tokens = skip_special_tokens
        eos = eos_id
        if eos is None:
            eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        if eos is None:
            raise S3DSLError(
                "the tokenizer has neither an eos nor a sep token",
                hint="pass eos_id explicitly",
            )
        self.eos_id: int = int(eos)
        pad = tok.pad_token_id
        # a pad token added to the tokenizer but not to the model pads with EOS instead:
        # attention never reads padding, so any id with an embedding row does
        in_model = pad is not None and (vocab_size is None or 0 <= pad < vocab_size)
        self.pad_id: int = int(pad) if in_model else self.eos_id

    def encode(self, text: str) -> list[int]:
        """Ids of `text`; ValueError (the caller names the problem) where the tokenizer's own
        code fails on its files' settings or gives an id outside the model's vocabulary."""
        try:
            ids = list(self.tok.encode(text, add_special_tokens=False))
        except Exception as e:  # noqa: BLE001 - transformers' code on the checkpoint's files
            raise ValueError(f"the tokenizer fails: {type(e).__name__}: {first_line(e)}") from e
        if self.vocab_size is not None and ids and max(ids) >= self.vocab_size:
            raise ValueError(f"the tokenizer gives id {max(ids)}, outside the model's "
                             f"{self.vocab_size}-entry vocabulary")
        return ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(
            [int(i) for i in ids],
            skip_special_tokens=self.skip_special_tokens,
            clean_up_tokenization_spaces=False,
        )


def _vocab_size(model: torch.nn.Module) -> int:
    """The logits' last dimension (may exceed len(tokenizer): embeddings are often padded)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if isinstance(weight, torch.Tensor):
        return int(weight.shape[0])
    return int(model.config.vocab_size)


class HFMaskedLM:
    """A `transformers` model as a `MaskedLM`.

    Left padding is supported: with an attention mask, position ids count real tokens only (for
    models whose forward takes `position_ids`), so a padded row gives the logits of the unpadded
    one. `bidirectional=True` replaces the model's causal mask by a full 4D padding mask, which
    `transformers` 5.x passes through as-is to eager/SDPA attention (not to flash attention).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        name: str | None = None,
        mask_id: int | None = None,
        shifted_logits: bool = False,
        bidirectional: bool = False,
        eos_id: int | None = None,
    ):
        self.model = model.eval()
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.vocab_size = _vocab_size(model)
        self.tokenizer = HFTokenizer(tokenizer, eos_id=eos_id, vocab_size=self.vocab_size)
        mid = mask_id if mask_id is not None else tokenizer.mask_token_id
        if mid is None:
            raise S3DSLError(
                "the tokenizer has no mask token",
                hint="pass mask_id (LLaDA: 126336, Dream: 151666)",
            )
        # ids the runtime writes into canvases: each needs a row of the model's embedding
        for what, value in (("mask", mid), ("EOS", self.tokenizer.eos_id)):
            token_id(value, f"{self.name}: the {what} token id", self.vocab_size)
        self.mask_id = int(mid)
        self.shifted_logits = shifted_logits
        self.bidirectional = bidirectional
        params = inspect.signature(model.forward).parameters
        self._takes_position_ids = "position_ids" in params
        self._takes_use_cache = "use_cache" in params
        # the model class came with the checkpoint (trust_remote_code): its failures are not ours
        self.remote_code = type(model).__module__.startswith("transformers_modules")

    def forward(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        gen_length: int | None = None,
    ) -> torch.Tensor:
        """ids [B, L] long, attention_mask [B, L] bool (False = padding) -> logits [B, L, V].

        `gen_length` is unused: a transformers model attends the same way over prompt and answer.
        """
        ids = ids.to(self.device)  # a no-op when the runtime already placed it
        kwargs: dict[str, Any] = {}
        if self._takes_use_cache:
            kwargs["use_cache"] = False
        mask = None
        if attention_mask is not None:
            mask = attention_mask.to(device=ids.device, dtype=torch.bool)
            if self._takes_position_ids:
                kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        if self.bidirectional:
            kwargs["attention_mask"] = self._full_attention(ids, mask)
        elif mask is not None:
            kwargs["attention_mask"] = mask.long()
        with torch.no_grad():
            try:
                return self.model(input_ids=ids, **kwargs).logits
            except Exception as e:  # noqa: BLE001 - the checkpoint's own code failed, not s3dsl
                if not self.remote_code:
                    raise
                import transformers

                raise remote_code_error(self.name, e, transformers.__version__) from e

    def _full_attention(self, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Additive [B, 1, L, L] mask: every position sees every real token."""
        b, n = ids.shape
        keys = mask if mask is not None else torch.ones(b, n, dtype=torch.bool, device=ids.device)
        dtype = getattr(self.model, "dtype", torch.float32)
        dtype = dtype if dtype.is_floating_point else torch.float32
        blocked = torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=ids.device)
        zero = torch.zeros((), dtype=dtype, device=ids.device)
        return torch.where(keys[:, None, None, :], zero, blocked).expand(b, 1, n, n)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def _dtype(dtype: str | torch.dtype | None) -> torch.dtype | str | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise S3DSLError(f"unknown dtype '{dtype}'", hint="e.g. float32, bfloat16, float16, auto")
    return value


def remote_code_error(path: str, err: Exception, version: str) -> S3DSLError:
    """A checkpoint's own modeling code failing under this transformers: the user's to fix."""
    return S3DSLError(
        f"the model code shipped with '{path}' fails on transformers {version}: "
        f"{type(err).__name__}: {first_line(err, 300)}",
        hint="official LLaDA / Dream checkpoints load natively without it: --model DIR (no hf:); "
        "otherwise use the transformers version that code was written for",
    )


# A transformers config's fields that size the model it builds, checked before it builds one: a
# config.json asking for 10**12 layers would hang in the layers' construction, a negative or zero
# head count fails deep inside attention (getattr follows a config's aliases, e.g. GPT-2's n_layer)
SIZE_FIELDS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
               "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings")


def _check_sizes(config: Any, path: str) -> None:
    for name in SIZE_FIELDS:
        value = getattr(config, name, None)
        if value is not None:
            checked_size(value, f"{path}: config {name}", layers=name == "num_hidden_layers")


def _check_every_parameter_loaded(model: torch.nn.Module, loaded: dict, path: str) -> None:
    """transformers initialises a parameter the files lack at random and goes on (a warning
    table on the log): a damaged or partial checkpoint would then decode from noise. (Buffers a
    checkpoint may leave out, such as rotary frequencies, are not parameters.)"""
    reported = loaded.get("missing_keys") or ()
    if not reported:
        return
    parameters = dict(model.named_parameters())
    missing = [k for k in reported if k in parameters]
    if missing:
        raise S3DSLError(
            f"the weights of '{path}' lack {len(missing)} of the model's parameters (first: "
            f"{sorted(missing)[0]}): transformers would initialise them at random",
            hint="the checkpoint is damaged or partial, or its config.json describes another "
            "model",
        )


@contextmanager
def _reading(path: str, what: str, own_code: bool,
             file_errors: tuple[type[Exception], ...] = (OSError,)) -> Iterator[None]:
    """Inside: transformers reading a local checkpoint's `what`. No s3dsl code runs there, so
    whatever it raises is about the folder's files (or this transformers): one line exit 2 that
    names the folder, never a traceback. `own_code`: the checkpoint's shipped modeling code ran
    too (trust_remote_code); its failures other than `file_errors` get `remote_code_error`."""
    try:
        yield
    except S3DSLError:
        raise
    except Exception as e:  # noqa: BLE001 - transformers' code on the user's files, not s3dsl's
        import transformers

        if own_code and not isinstance(e, file_errors):
            raise remote_code_error(path, e, transformers.__version__) from e
        raise S3DSLError(
            f"cannot load the {what} of '{path}': {type(e).__name__}: {first_line(e, 300)}",
            hint="nothing is downloaded: pass a complete local checkpoint directory or a name "
            "already in the Hugging Face cache; models with custom code also need "
            "trust_remote_code; official LLaDA / Dream folders load natively with --model DIR "
            "(no hf:)",
        ) from e


def load_hf_model(
    path_or_name: str,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    mask_id: int | None = None,
    shifted_logits: bool = False,
    bidirectional: bool = False,
) -> HFMaskedLM:
    """Load a local `transformers` checkpoint (directory or cached hub name) as a `MaskedLM`.

    Picks `AutoModelForMaskedLM` when the config is a masked LM; `AutoModelForCausalLM` with
    `bidirectional=True`; else, with `trust_remote_code`, `AutoModel` (LLaDA and Dream ship their
    own modeling code whose `AutoModel` returns logits).
    """
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - transformers is an optional dependency
        raise S3DSLError("transformers is not installed", hint="pip install 's3dsl[hf]'") from e
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING

    common: dict[str, Any] = {"local_files_only": True}
    if trust_remote_code:
        common["trust_remote_code"] = True
    with _reading(path_or_name, "config and tokenizer", trust_remote_code, (OSError, ValueError)):
        config = transformers.AutoConfig.from_pretrained(path_or_name, **common)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path_or_name, **common)
    _check_sizes(config, path_or_name)
    auto_map = getattr(config, "auto_map", None) or {}
    if bidirectional:
        auto_cls = transformers.AutoModelForCausalLM
    elif type(config) in MODEL_FOR_MASKED_LM_MAPPING or "AutoModelForMaskedLM" in auto_map:
        auto_cls = transformers.AutoModelForMaskedLM
    elif trust_remote_code and "AutoModel" in auto_map:
        auto_cls = transformers.AutoModel
    else:
        raise S3DSLError(
            f"'{path_or_name}' ({type(config).__name__}) is not a masked LM",
            hint="use a masked LM, trust_remote_code for LLaDA/Dream, or bidirectional=True "
            "for a causal architecture trained bidirectionally",
        )
    kwargs = dict(common)
    if dtype is not None:
        kwargs["dtype"] = _dtype(dtype)
    with _reading(path_or_name, "weights", trust_remote_code and bool(auto_map)):
        model, loaded = auto_cls.from_pretrained(path_or_name, output_loading_info=True, **kwargs)
    _check_every_parameter_loaded(model, loaded, path_or_name)
    model.to(device)
    if mask_id is None and tokenizer.mask_token_id is None:
        mask_id = getattr(config, "mask_token_id", None)  # LLaDA declares it only here
    return HFMaskedLM(
        model,
        tokenizer,
        name=str(path_or_name),
        mask_id=mask_id,
        shifted_logits=shifted_logits,
        bidirectional=bidirectional,
    )
