"""Hypothesis strategies for hostile input to s3dsl: strategy files in both forms (valid, mutated,
and the hostile shapes of issue 12), `--set` flags, run options, data files and database files.

Shared by `tests/test_fuzz.py` (about 1,000 cases in CI) and `benchmarks/fuzz.py` (10,000+). Each
strategy draws a `Case`; `run_case` (in fuzz_cases.py) drives it through the code path a user's
command takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hypothesis import strategies as st

COMMIT_RULES = ("confidence", "margin", "entropy", "random", "threshold")
METHODS = ("multinomial", "systematic", "stratified", "residual", "ssp", "topk")
VERIFIERS = ("v", "confidence", "task-default", "arith-heuristic", "oracle", "nope")


@dataclass(frozen=True)
class Case:
    """One input: `kind` says which code path it takes (strategy, flags, options, data, db)."""

    kind: str
    data: bytes = b""
    filename: str = "case.yaml"
    overrides: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    batch_size: int = 8


# -- valid strategies -----------------------------------------------------------------------------

small_float = st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0, -1.0, 1e6, -1e6, 1e-300, 1e7])
param_ref = st.sampled_from(["${k}", "${b}", "${k * 2}", "${k // 2}", "${max(k, 1)}"])


def _arg(name: str) -> st.SearchStrategy[str]:
    """`key=value` texts for one primitive's arguments, mostly valid."""
    values = {
        "k": st.one_of(st.integers(1, 6).map(str), st.just("${k}")),
        "n": st.one_of(st.integers(1, 8).map(str), st.just("${k}")),
        "rule": st.sampled_from(COMMIT_RULES),
        "temperature": small_float.map(str),
        "threshold": st.sampled_from(["0.5", "0.9", "1.5", "0", "1e-300"]),
        "verifier": st.sampled_from(VERIFIERS),
        "strata": st.integers(1, 4).map(str),
        "by": st.sampled_from(["score", "answer", "vote", "logprob", "confidence", "random"]),
        "method": st.sampled_from(METHODS),
        "beta": st.one_of(st.sampled_from(["0.5", "1.0", "1e-9", "1e6"]), st.just("${b}")),
        "weights": st.sampled_from(["auto", "score", "logw"]),
        "within": st.sampled_from(["none", "strata"]),
        "scale": small_float.map(str),
        "target": st.sampled_from(["power(2.0)", "tilted(v, 0.5)", "power", "power(-1e6)",
                                   "tilted(v, 1e-9)", "power(1e6)"]),
        "count": st.sampled_from(["0", "1", "3", "9223372036854775807"]),
        "fraction": st.sampled_from(["0.0", "0.25", "1.0"]),
        "every": st.sampled_from(["1", "2", "3", "9223372036854775807"]),
        "at": st.sampled_from(["block_start", "block_end", "first_step", "last_step"]),
        "when": st.sampled_from(['"ess < 0.5"', '"step >= 2 and max_score > 0"', '"n > 1"']),
    }
    return values[name].map(lambda v: f"{name}={v}")


STAGE_ARGS = {
    "expand": ("k",),
    "denoise": ("rule", "temperature", "threshold"),
    "score": ("verifier",),
    "stratify": ("strata", "by"),
    "resample": ("n", "method", "beta", "weights", "within", "when", "every"),
    "weight": ("by", "scale", "when"),
    "mh-accept": ("target",),
    "remask": ("by", "count", "fraction", "at"),
    "select": ("by",),
}


@st.composite
def stage(draw, names: tuple[str, ...]) -> str:
    name = draw(st.sampled_from(names))
    keys = draw(st.lists(st.sampled_from(STAGE_ARGS[name]), unique=True, max_size=3))
    required = {"score": "verifier", "mh-accept": "target"}.get(name)
    if required and required not in keys and draw(st.integers(0, 9)):
        keys.insert(0, required)
    args = [draw(_arg(key)) for key in keys]
    if name in ("expand", "resample") and not any(a.startswith(("k=", "n=")) for a in args):
        args.insert(0, str(draw(st.integers(1, 6))))
    return f"{name}({', '.join(args)})" if args else name


def pipeline(names: tuple[str, ...], low: int, high: int) -> st.SearchStrategy[str]:
    return st.lists(stage(names), min_size=low, max_size=high).map(" | ".join)


@st.composite
def strategy_parts(draw) -> dict:
    """The pieces of a mostly valid strategy, rendered by `as_yaml` or `as_text`."""
    step = draw(pipeline(tuple(STAGE_ARGS)[:-1], 0, 4))
    if draw(st.booleans()):
        step = "denoise" + (" | " + step if step else "")
    decode = {}
    if draw(st.booleans()):
        decode["steps"] = draw(st.sampled_from(["8", "4", "${gen_length}", "3", "16"]))
    if draw(st.booleans()):
        decode["block_length"] = draw(st.sampled_from(["8", "4", "${gen_length // 2}", "3"]))
    if draw(st.booleans()):
        decode["temperature"] = draw(small_float.map(str))
    if draw(st.booleans()):
        decode["commit"] = draw(st.sampled_from(COMMIT_RULES + ("origin", "low_confidence")))
    if draw(st.integers(0, 3)) == 0:  # the official samplers' options
        key = draw(st.sampled_from(["schedule", "eps", "top_p", "top_k", "alg_temp", "cfg_scale",
                                    "tempered_confidence", "logits_eos_inf"]))
        decode[key] = draw(st.sampled_from(["linear", "even", "0", "1", "0.5", "1e-300", "1e6",
                                            "-1", "true", "9223372036854775807"]))
    return {
        "name": draw(st.sampled_from(["fz", "s3-like", "x_1"])),
        "params": {"k": str(draw(st.integers(1, 4))), "b": draw(st.sampled_from(["0.5", "1.0"]))},
        "decode": decode,
        "verifier": draw(st.sampled_from(["confidence", "task-default", "arith-heuristic",
                                          "confidence + 0.5 * arith-heuristic"])),
        "init": draw(pipeline(("expand",), 0, 2)),
        "step": step,
        "final": draw(pipeline(("score", "select"), 0, 2)),
    }


def as_yaml(parts: dict) -> str:
    lines = [f"name: {parts['name']}", "params:"]
    lines += [f"  {k}: {v}" for k, v in parts["params"].items()]
    if parts["decode"]:
        lines.append("decode:")
        lines += [f"  {k}: {_yaml_scalar(v)}" for k, v in parts["decode"].items()]
    lines += ["verifiers:", f"  v: {parts['verifier']}", "program:"]
    for key in ("init", "step", "final"):
        if parts[key]:
            lines.append(f"  {key}: {_yaml_scalar(parts[key])}")
    return "\n".join(lines) + "\n"


def _yaml_scalar(text: str) -> str:
    return json.dumps(text) if any(c in text for c in "{}[]#:,'\"") else text


def as_text(parts: dict) -> str:
    lines = [f"strategy {parts['name']}"]
    lines += [f"param {k} = {v}" for k, v in parts["params"].items()]
    lines += [f"decode {k} = {v}" for k, v in parts["decode"].items()]
    lines.append(f"verifier v = {parts['verifier']}")
    lines += [f"{key}: {parts[key]}" for key in ("init", "step", "final") if parts[key]]
    return "\n".join(lines) + "\n"


@st.composite
def valid_strategy(draw) -> Case:
    parts = draw(strategy_parts())
    if draw(st.booleans()):
        return Case("strategy", as_yaml(parts).encode(), "case.yaml")
    return Case("strategy", as_text(parts).encode(), "case.s3")


# -- hostile snippets and mutations ------------------------------------------------------------


@st.composite
def hostile(draw) -> str:
    """The shapes issue 12 found, sized at random: deep nesting, huge numbers, aliases, tags,
    control characters, markup, surrogate escapes, mappings where scalars belong."""
    n = draw(st.one_of(st.integers(1, 60), st.integers(60, 3000)))
    return draw(st.sampled_from([
        "[" * n + "]" * n, "(" * n + "1" + ")" * n, "${" + "(" * n + "1" + ")" * n + "}",
        "${" + "1+" * n + "1}", "not " * n + "ess", "-" * n + "1", "1" + "0" * n,
        "${" + "9" * n + " / 3}", "!!int abc", "!!float abc", "!!int ''", "!!binary aGk=", "!foo x",
        "&a [*a]", "*a", "&a x", "\x00", "\x07", "\x1b[31m", '"\\ud800"', "[/]", "[bold]x[/b]",
        "\u2028", "\ufeff", "\t", "\r", ".nan", ".inf", "-.inf", "-1", "0", "1e400", "100000000",
        "{a: 1}", "{o}", "[1, [2]]", "oracle(extract=1)", "a" * n * 10, "${k * " * n + "1",
        "\"" + "x" * n, "|\n  " + "denoise\n  " * 3, "&b [" + ", ".join(["x"] * 9) + "]",
        "${1e308 * 10}", "${9223372036854775807 + 1}", "power(.nan)", "{confidence: .nan}",
    ]))


LAUGHS = "".join(
    f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 9) + "]\n" for i in range(9)
)


@st.composite
def mutated_strategy(draw) -> Case:
    """A valid file (generated, or a built-in) with a few edits: hostile snippets put in, text
    cut out or repeated, bytes that are not UTF-8."""
    parts = draw(strategy_parts())
    yaml_form = draw(st.booleans())
    text = as_yaml(parts) if yaml_form else as_text(parts)
    if draw(st.integers(0, 9)) == 0:
        text = text.replace("params:\n", "params:\n" + LAUGHS) if yaml_form else text
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "replace", "delete", "repeat", "text"]))
        if op == "insert":
            text = text[:at] + draw(hostile()) + text[at:]
        elif op == "replace":
            end = min(len(text), at + draw(st.integers(1, 12)))
            text = text[:at] + draw(hostile()) + text[end:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif op == "repeat":
            text = text[:at] + text[at:at + 30] * draw(st.integers(2, 200)) + text[at:]
        else:
            text = text[:at] + draw(st.text(max_size=8)) + text[at:]
    data = text.encode("utf-8", "surrogatepass")  # a raw lone surrogate is not UTF-8
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=3)) + data[at:]
    name = "case.yaml" if yaml_form != (draw(st.integers(0, 19)) == 0) else "case.s3"
    return Case("strategy", data, name)


# -- flags, options, data and databases ----------------------------------------------------------

flag_value = st.one_of(
    st.sampled_from(["0", "-1", "1", "8", "nan", "inf", "-inf", "1e400", "100000000", "abc", "",
                     "true", "2.5", "1" + "0" * 5000, "0x10", " 4 "]),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=6),
)


@st.composite
def flags(draw) -> Case:
    keys = st.sampled_from(["k", "b", "steps", "gen_length", "block_length", "temperature",
                            "commit", "threshold", "nope", ""])
    overrides = draw(st.dictionaries(keys, flag_value, max_size=3))
    return Case("flags", as_yaml(draw(strategy_parts())).encode(), "case.yaml", overrides)


@st.composite
def run_options(draw) -> Case:
    seed = draw(st.one_of(st.integers(0, 10), st.integers(-(2**70), 2**70)))
    batch = draw(st.one_of(st.integers(-2, 16), st.integers(-(2**40), 2**40)))
    return Case("options", seed=seed, batch_size=batch)


record_value = st.one_of(st.text(max_size=12), st.integers(-(2**70), 2**70), st.floats(),
                         st.none(), st.booleans(), st.lists(st.integers(), max_size=2))


@st.composite
def data_file(draw) -> Case:
    """JSONL: records valid and not, strings with U+2028/U+0085, deep nesting, not JSON."""
    lines = []
    for i in range(draw(st.integers(0, 4))):
        shape = draw(st.integers(0, 5))
        if shape <= 2:
            prompt = draw(st.text(alphabet="0123456789+-*=() \u2028\u0085\u00e9", max_size=30))
            record = {"id": i, "prompt": prompt, "answer": draw(st.text("0123456789", max_size=3))}
            if shape == 2:
                record[draw(st.sampled_from(["id", "prompt", "answer", "target"]))] = draw(
                    record_value)
            lines.append(json.dumps(record, ensure_ascii=draw(st.booleans())))
        elif shape == 3:
            n = draw(st.integers(1, 200_000))
            lines.append("[" * n + "]" * n)
        elif shape == 4:
            lines.append(draw(st.text(max_size=20)))
        else:
            lines.append("")
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        data += b"\xff\xfe"
    return Case("data", data, "case.jsonl")


@st.composite
def db_file(draw) -> Case:
    """An existing --db file: empty, random bytes, another program's SQLite schema, or ours."""
    shape = draw(st.sampled_from(["empty", "bytes", "foreign", "ours", "missing"]))
    payload = draw(st.binary(max_size=64)) if shape == "bytes" else b""
    return Case("db", payload, shape)


# -- model folders: official LLaDA / Dream layouts and the shipped format, one file changed ----

CHECKPOINT_FILES = {  # what each layout's folder holds (benchmarks/fuzz.py builds them)
    "llada": ("config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
              "tokenizer.json", "tokenizer_config.json"),
    "dream": ("config.json", "model.safetensors.index.json", "model-00002-of-00002.safetensors",
              "tokenizer.json", "tokenizer_config.json", "generation_config.json"),
    "native": ("config.json", "model.safetensors"),
    "hf-bert": ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "vocab.txt"),  # loaded through transformers: --model hf:DIR
}
json_value = st.one_of(
    st.none(), st.booleans(), st.text(max_size=6), st.lists(st.integers(-2, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
    st.sampled_from([0, -1, 1, 2, 3, 7, 31, 2**31, 2**63, 10**30, 0.5, -0.0, 1e308, 1e-320,
                     float("nan"), float("inf"), "32", "llada", "Dream"]),
)
CHECKPOINT_CHANGES = ("delete", "bytes", "truncate", "root", "set", "drop", "nested", "tensor")


@st.composite
def checkpoint(draw) -> Case:
    """A model folder with one file changed: deleted, random bytes, truncated, a JSON file whose
    root is not an object, a key set to a hostile value or dropped (`key` picks one of the
    file's keys, `nested` one inside a value), a safetensors file with one tensor changed."""
    layout = draw(st.sampled_from(tuple(CHECKPOINT_FILES)))
    name = draw(st.sampled_from(CHECKPOINT_FILES[layout]))
    change = draw(st.sampled_from(CHECKPOINT_CHANGES))
    detail = {
        "layout": layout, "file": name, "change": change,
        "key": str(draw(st.integers(0, 60))),
        "value": json.dumps(draw(json_value)),
        "fraction": str(draw(st.sampled_from([0.0, 0.01, 0.3, 0.9, 0.999]))),
        "tensor": draw(st.sampled_from(["shape", "dtype", "rename", "drop", "extra", "nan"])),
    }
    payload = draw(st.binary(max_size=64)) if change == "bytes" else b""
    return Case("checkpoint", payload, name, detail)


def any_case() -> st.SearchStrategy[Case]:
    """The mix the benchmark draws from: mostly strategy files, valid and mutated."""
    return st.one_of(
        mutated_strategy(), mutated_strategy(), mutated_strategy(), valid_strategy(),
        valid_strategy(), valid_strategy(), flags(), run_options(), data_file(), db_file(),
        checkpoint(),
    )
