"""`MaskedLM` over a `transformers` model: any `AutoModelForMaskedLM` (BERT-like), a
trust-remote-code mask predictor (LLaDA, Dream: `AutoModel` returning logits), or a
causal-architecture checkpoint (e.g. Llama) run with full bidirectional attention.

Nothing is ever downloaded: every load passes `local_files_only=True`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from s3dsl.errors import S3DSLError


class HFTokenizer:
    """The runtime's `Tokenizer` over a `transformers` tokenizer.

    `encode` adds no special tokens (the runtime lays out prompt and canvas itself); `eos_id` is
    the eos token, else the sep token (BERT ends a sequence with [SEP]).
    """

    def __init__(self, tok: Any, eos_id: int | None = None, skip_special_tokens: bool = False):
        self.tok = tok
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
        self.pad_id: int = int(tok.pad_token_id) if tok.pad_token_id is not None else self.eos_id

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

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
        self.tokenizer = HFTokenizer(tokenizer, eos_id=eos_id)
        mid = mask_id if mask_id is not None else tokenizer.mask_token_id
        if mid is None:
            raise S3DSLError(
                "the tokenizer has no mask token",
                hint="pass mask_id (LLaDA: 126336, Dream: 151666)",
            )
        self.mask_id = int(mid)
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.vocab_size = _vocab_size(model)
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
    first = (str(err).splitlines() or [""])[0]
    return S3DSLError(
        f"the model code shipped with '{path}' fails on transformers {version}: "
        f"{type(err).__name__}: {first}",
        hint="official LLaDA / Dream checkpoints load natively without it: --model DIR (no hf:); "
        "otherwise use the transformers version that code was written for",
    )


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
    try:
        config = transformers.AutoConfig.from_pretrained(path_or_name, **common)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path_or_name, **common)
    except (ImportError, AttributeError, KeyError, TypeError) as e:  # a hub model's own code
        if not trust_remote_code:
            raise
        raise remote_code_error(path_or_name, e, transformers.__version__) from e
    except (OSError, ValueError) as e:
        raise S3DSLError(
            f"cannot load a local model from '{path_or_name}': {str(e).splitlines()[0]}",
            hint="nothing is downloaded: pass a local directory or a name already in the "
            "Hugging Face cache; models with custom code also need trust_remote_code; official "
            "LLaDA / Dream folders load natively with --model DIR (no hf:)",
        ) from e

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
    try:
        model = auto_cls.from_pretrained(path_or_name, **kwargs)
    except OSError as e:
        raise S3DSLError(
            f"cannot load the weights of '{path_or_name}': {str(e).splitlines()[0]}",
            hint="nothing is downloaded: the checkpoint must be complete on disk",
        ) from e
    except Exception as e:  # noqa: BLE001 - the checkpoint's own code failed, not s3dsl
        if not (trust_remote_code and auto_map):
            raise
        raise remote_code_error(path_or_name, e, transformers.__version__) from e
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
