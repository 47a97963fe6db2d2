"""The compiler's signatures as plain records for the schema generator (`s3dsl schema`).

Read from the same tables the compiler checks against (`primitives.PRIMITIVES`, the decode
defaults, the verifier registry), so the schema cannot drift from the compiler.
"""

from __future__ import annotations

from s3dsl.compiler import primitives as prims
from s3dsl.compiler.values import MAX_MAGNITUDE, POSITIVE
from s3dsl.dsl.schema import ArgSpec, Signatures, StageSpec, signature_json_schema


def _arg(prim: prims.Primitive, p: prims.Param) -> ArgSpec:
    kind, low, high = p.kind, p.low, p.high
    if kind == "float":  # the compiler's bound on every real number (values.number)
        low = -MAX_MAGNITUDE if low is None else low
        high = MAX_MAGNITUDE if high is None else high
    return ArgSpec(p.name, kind, p.choices, low, high, p.default is prims.REQUIRED,
                   doc=p.doc, low_exclusive=(prim.name, p.name) in POSITIVE)


def signatures() -> Signatures:
    from s3dsl.compiler.build import DECODE_DEFAULTS, TASK_VERIFIER
    from s3dsl.verifiers.registry import VERIFIERS, option_names

    stages = tuple(
        StageSpec(p.name, p.doc, tuple(_arg(p, a) for a in p.params), p.aliases, p.phases,
                  takes_when=p.takes_when)
        for p in prims.PRIMITIVES
    )
    schedule = (
        ArgSpec("at", "choice", prims.AT_CHOICES, doc="a point of each block or of decoding"),
        ArgSpec("every", "int", low=1, doc="steps where step % every == offset"),
        ArgSpec("offset", "int", low=0, doc="with every"),
        ArgSpec("when", "str", doc="a runtime condition, e.g. \"ess < 0.5\""),
    )
    lengths = "a positive integer (0 or null: the default)"
    decode_kinds = {
        "steps": ArgSpec("steps", "int", low=0, nullable=True, doc=lengths),
        "gen_length": ArgSpec("gen_length", "int", low=0, nullable=True, doc=lengths),
        "block_length": ArgSpec("block_length", "int", low=0, nullable=True, doc=lengths),
        "temperature": ArgSpec("temperature", "float", low=0.0, high=MAX_MAGNITUDE),
        "commit": ArgSpec("commit", "choice", prims.COMMIT_RULES),
        "threshold": ArgSpec("threshold", "float"),
    }
    decode = tuple(decode_kinds.get(k, ArgSpec(k, "any")) for k in DECODE_DEFAULTS)
    verifiers = {name: (doc, tuple(option_names(factory)))
                 for name, (factory, doc) in VERIFIERS.items()}
    denoise = prims.lookup("denoise")
    needs = (denoise.name, *denoise.aliases) if denoise else ("denoise",)
    return Signatures(stages, schedule, decode, verifiers, TASK_VERIFIER, needs)


def compiler_schema() -> dict:
    """The JSON Schema of YAML strategy files, as the compiler reads them."""
    return signature_json_schema(signatures())
