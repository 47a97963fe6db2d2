"""The tokenizer of a checkpoint directory, with its chat template: no remote code, no network.

`tokenizer.json` is read by transformers' fast tokenizer whatever class `tokenizer_config.json`
names (LLaDA: `PreTrainedTokenizerFast`; Dream: a remote-code `DreamTokenizer`); a Qwen2-style
directory with only `vocab.json` + `merges.txt` gets `Qwen2TokenizerFast`. Special tokens and the
`chat_template` come from `tokenizer_config.json`. With chat on, a prompt is rendered exactly as
`apply_chat_template([...], add_generation_prompt=True)` renders it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s3dsl.errors import S3DSLError, first_line
from s3dsl.models.folder_files import read_json_object


def load_fast_tokenizer(directory: Path) -> Any:
    """transformers' fast tokenizer of a local directory, without its `tokenizer_class`."""
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - transformers is an optional dependency
        raise S3DSLError(
            "reading a checkpoint's tokenizer needs transformers", hint="pip install 's3dsl[hf]'"
        ) from e
    if (directory / "tokenizer.json").is_file():
        cls = transformers.PreTrainedTokenizerFast
    elif (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        cls = transformers.Qwen2TokenizerFast
    else:
        raise S3DSLError(
            f"'{directory}' has no tokenizer (neither tokenizer.json nor vocab.json + merges.txt)",
            hint="copy the checkpoint's tokenizer files into the directory",
        )
    if (directory / "tokenizer_config.json").is_file():
        read_json_object(directory / "tokenizer_config.json")  # (transformers assumes an object)
    try:
        tok = cls.from_pretrained(str(directory), local_files_only=True)
        tok.decode(tok.encode("1 + 2 =", add_special_tokens=False))  # a value that breaks only
        return tok  # when text is encoded fails here, at load, not in the middle of a run
    except Exception as e:  # noqa: BLE001 - only transformers' parsing of the folder's files
        # runs here, and the tokenizers library raises bare Exceptions for malformed JSON
        raise S3DSLError(
            f"cannot read the tokenizer in '{directory}': {type(e).__name__}: {first_line(e)}",
            hint="the tokenizer files are damaged or not in transformers' format",
        ) from e


class HubTokenizer:
    """The runtime's `Tokenizer` for a checkpoint; `encode_prompt` applies the chat template.

    `end_ids` are the ids that end a completion (EOS and, for instruct models, end-of-turn):
    `decode` stops at the first of them and drops special tokens.
    """

    def __init__(
        self,
        tok: Any,
        eos_id: int,
        end_ids: tuple[int, ...] = (),
        chat: bool | None = None,
        system: str | None = None,
    ):
        self.tok = tok
        self.eos_id = int(eos_id)
        self.end_ids = tuple(dict.fromkeys((self.eos_id, *end_ids)))
        self.pad_id = int(tok.pad_token_id) if tok.pad_token_id is not None else self.eos_id
        has_template = bool(getattr(tok, "chat_template", None))
        if chat and not has_template:
            raise S3DSLError(
                "--chat: the checkpoint's tokenizer has no chat template",
                hint="add chat_template to tokenizer_config.json, or use --no-chat",
            )
        self.chat = has_template if chat is None else chat
        self.system = system
        if self.chat:  # a template that cannot render fails here, not at the first problem
            try:
                self.encode_prompt("1 + 2 =")
            except Exception as e:  # noqa: BLE001 - only transformers' Jinja rendering runs here
                raise S3DSLError(
                    f"the tokenizer's chat template cannot be rendered: {type(e).__name__}: "
                    f"{first_line(e)}",
                    hint="fix chat_template in tokenizer_config.json, or use --no-chat",
                ) from e

    def __len__(self) -> int:
        return len(self.tok)

    def messages(self, text: str) -> list[dict[str, str]]:
        out = [{"role": "system", "content": self.system}] if self.system else []
        return [*out, {"role": "user", "content": text}]

    def encode_prompt(self, text: str) -> list[int]:
        """The ids a problem's prompt is conditioned on: chat-templated, or the plain text."""
        if not self.chat:
            return self.encode(text)
        rendered = self.tok.apply_chat_template(
            self.messages(text), add_generation_prompt=True, tokenize=False
        )
        return list(self.tok.encode(rendered, add_special_tokens=False))

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        ids = [int(i) for i in ids]
        for i, t in enumerate(ids):
            if t in self.end_ids:
                ids = ids[:i]
                break
        return self.tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
