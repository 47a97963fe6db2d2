"""The primitives' signatures and static semantics: the language/IR layer of each primitive.

Each `Primitive` says which arguments it takes (types, defaults, ranges), what facts about the
population it needs and provides (e.g. `resample` needs scores or weights), how it changes the
particle count, and whether it runs a model forward pass. The runtime piece of each primitive
lives in `s3dsl.runtime.ops` (batched) and `s3dsl.runtime.reference` (the specification).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REQUIRED = object()

COMMIT_RULES = ("confidence", "margin", "entropy", "random", "threshold")
RESAMPLE_METHODS = ("multinomial", "systematic", "stratified", "residual", "ssp", "topk")
SCHEDULE_KEYS = ("at", "every", "offset", "when")
AT_CHOICES = ("block_start", "block_end", "first_step", "last_step")
# Names a `when` condition may use, per problem, at the time the stage runs.
CONDITION_NAMES = ("ess", "step", "block", "steps", "n", "max_score", "mean_score")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # int | float | str | bool | verifier | target | choice
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    doc: str = ""


@dataclass(frozen=True)
class Primitive:
    name: str
    doc: str
    params: tuple[Param, ...] = ()
    aliases: tuple[str, ...] = ()
    needs: tuple[frozenset[str], ...] = ()  # each entry: at least one of these facts must hold
    provides: frozenset[str] = frozenset()
    clears: frozenset[str] = frozenset()
    forward: bool = False  # runs a model forward pass on rows whose state has none cached
    changes_tokens: bool = False
    phases: tuple[str, ...] = ("init", "step", "final")
    count: Callable[[int, dict, int], int] = field(default=lambda n, args, group: n)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _resample_count(n: int, args: dict, group: int) -> int:
    return int(args["n"])


PRIMITIVES: tuple[Primitive, ...] = (
    Primitive(
        "expand",
        "Every particle becomes k children that differ only in their sampling noise onwards.",
        (Param("k", "int", low=1, high=4096, doc="children per particle"),),
        provides=frozenset({"groups"}),
        clears=frozenset({"strata"}),
        count=lambda n, args, group: n * int(args["k"]),
    ),
    Primitive(
        "denoise",
        "One base transition: a forward pass, a Gumbel-max proposal, commit positions by rule.",
        (
            Param("rule", "choice", None, COMMIT_RULES, doc="commit rule; default: decode.commit"),
            Param("temperature", "float", None, low=0.0, doc="default: decode.temperature"),
            Param("threshold", "float", None, low=0.0, high=1.0, doc="for rule=threshold"),
        ),
        aliases=("unmask",),
        provides=frozenset({"logprobs"}),
        forward=True,
        changes_tokens=True,
        phases=("step",),
    ),
    Primitive(
        "score",
        "Score each particle's clean prediction (masks filled by argmax) with a verifier.",
        (Param("verifier", "verifier", doc="a verifier declared in `verifiers:` or a built-in"),),
        provides=frozenset({"scores"}),
        forward=True,
    ),
    Primitive(
        "stratify",
        "Assign strata (score quantile bins, or equal answers) for resample(within=strata).",
        (
            Param("strata", "int", 4, low=1, high=4096, doc="number of score bins"),
            Param("by", "choice", "score", ("score", "answer")),
        ),
        needs=(frozenset({"scores"}),),
        provides=frozenset({"strata"}),
        forward=False,
    ),
    Primitive(
        "resample",
        "Draw n survivors per problem with weights exp(score/beta) or exp(log-weight).",
        (
            Param("n", "int", low=1, high=4096, doc="survivors per problem"),
            Param("method", "choice", "systematic", RESAMPLE_METHODS),
            Param("beta", "float", 1.0, low=1e-9, doc="temperature of exp(score/beta)"),
            Param(
                "weights",
                "choice",
                "auto",
                ("auto", "score", "logw"),
                doc="auto: scores when scored, else log-weights",
            ),
            Param("within", "choice", "none", ("none", "strata")),
        ),
        needs=(frozenset({"scores", "logw"}),),
        clears=frozenset({"groups"}),
        count=_resample_count,
    ),
    Primitive(
        "weight",
        "Update SMC log-weights: log-probs of this step's commits, or potentials of scores.",
        (
            Param("by", "choice", "logprob", ("logprob", "score", "diff", "max")),
            Param("scale", "float", 1.0, doc="multiplies the increment (lambda of FK potentials)"),
        ),
        provides=frozenset({"logw"}),
    ),
    Primitive(
        "mh-accept",
        "Independent Metropolis-Hastings over each group of proposals; one survivor per group.",
        (Param("target", "target", doc="power(alpha) or tilted(verifier, beta)"),),
        aliases=("mh", "imh"),
        needs=(frozenset({"groups"}),),
        clears=frozenset({"groups", "strata"}),
        count=lambda n, args, group: n // max(group, 1),
    ),
    Primitive(
        "remask",
        "Re-mask committed tokens, least confident first (or at random).",
        (
            Param("by", "choice", "confidence", ("confidence", "random")),
            Param("count", "int", 0, low=0, doc="tokens per particle (0: use fraction)"),
            Param("fraction", "float", 0.0, low=0.0, high=1.0, doc="share of committed tokens"),
        ),
        aliases=("remask-by-confidence",),
        changes_tokens=True,
        phases=("step",),
    ),
    Primitive(
        "select",
        "The final answer per problem: best score, majority vote (NLL breaks ties), or log-prob.",
        (Param("by", "choice", "vote", ("score", "vote", "logprob")),),
        phases=("final",),
    ),
)

_BY_NAME: dict[str, Primitive] = {}
for _p in PRIMITIVES:
    for _name in (_p.name, *_p.aliases):
        _BY_NAME[_name] = _p


def canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def lookup(name: str) -> Primitive | None:
    return _BY_NAME.get(canonical(name))


def all_names() -> list[str]:
    return sorted(_BY_NAME)


def needs(prim: Primitive, args: dict) -> tuple[frozenset[str], ...]:
    """What a stage needs, given its arguments (resample's `weights` and `within` add needs)."""
    extra: list[frozenset[str]] = []
    if args.get("weights") == "score":
        extra.append(frozenset({"scores"}))
    if args.get("weights") == "logw":
        extra.append(frozenset({"logw"}))
    if prim.name == "weight" and args.get("by") in ("score", "diff", "max"):
        extra.append(frozenset({"scores"}))
    if args.get("within") == "strata":
        extra.append(frozenset({"strata"}))
    return (*prim.needs, *extra)
