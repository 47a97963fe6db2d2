"""Math answer equivalence through `math-verify` (`\\frac{1}{2}` == `0.5`, `(3, \\pi/2)` ...).

A plain normalized match is tried first (cheap, and right for numbers and identical strings);
`math-verify` decides the rest. It is an optional dependency: without it a non-identical answer
stops the run with a one-line error that says how to install it, rather than silently scoring
every such answer wrong.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from s3dsl.errors import S3DSLError
from s3dsl.tasks.data import normalized_match

_WRAPPERS = re.compile(r"^\$+|\$+$|^\\\(|\\\)$|^\\\[|\\\]$")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
PARSE_TIMEOUT_S = 5


def clean_answer(text: str) -> str:
    """Strip math delimiters, `\\text{}` wrappers, `\\!`, a trailing period and spaces."""
    text = text.strip().rstrip(".").strip()
    text = _WRAPPERS.sub("", text).strip()
    text = _TEXT.sub(r"\1", text).replace("\\!", "").replace("\\$", "")
    return " ".join(text.split())


def _math_verify():
    try:
        import math_verify
    except ImportError:
        raise S3DSLError(
            "scoring math answers needs the 'math-verify' package",
            hint="pip install 's3dsl[math]'",
        ) from None
    return math_verify


def _timeout() -> int | None:
    # math-verify's timeouts use SIGALRM, which only the main thread may set
    return PARSE_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=8192)
def _parsed(text: str) -> tuple:
    mv = _math_verify()
    return tuple(mv.parse("\\boxed{" + text + "}", parsing_timeout=_timeout()))


@lru_cache(maxsize=8192)
def math_equal(prediction: str | None, gold: str) -> bool:
    """True when the predicted answer is mathematically the gold one."""
    if prediction is None:
        return False
    pred, ref = clean_answer(prediction), clean_answer(gold)
    if not pred:
        return False
    if normalized_match(pred, ref) or pred.replace(" ", "") == ref.replace(" ", ""):
        return True
    mv = _math_verify()
    g, p = _parsed(ref), _parsed(pred)
    return bool(g) and bool(p) and bool(mv.verify(list(g), list(p), timeout_seconds=_timeout()))
