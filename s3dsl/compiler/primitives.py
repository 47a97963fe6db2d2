"""The primitives' signatures and static semantics: the language/IR layer of each primitive.

Each `Primitive` says which arguments it takes (types, defaults, ranges), what facts about the
population it needs and provides (e.g. `resample` needs scores or weights), how it changes the
particle count, and what it lowers to: the plan nodes (`s3dsl.compiler.nodes`) that say which
forwards, commits, host calls and gathers it runs. "Needs a forward" is read off those nodes and
nowhere else. The runtime piece of each primitive is a method of the batched executor
(`s3dsl.runtime.executor`) and one of the reference interpreter (`s3dsl.runtime.reference`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from s3dsl.compiler.nodes import Node, forward

REQUIRED = object()

COMMIT_RULES = ("confidence", "margin", "entropy", "random", "threshold")
RESAMPLE_METHODS = ("multinomial", "systematic", "stratified", "residual", "ssp", "topk")
SCHEDULE_KEYS = ("at", "every", "offset", "when")
STOPPED_ROWS = "masked, of problems it stops"  # `stop`'s forward: only where its condition holds
AT_CHOICES = ("block_start", "block_end", "first_step", "last_step")
# Names a `when` condition may use, per problem, at the time the stage runs.
# ess: of the log-weights; score_ess: of exp(score / beta), beta the stage's (1 where it has none);
# agreement: share of particles holding the most common extracted answer (0 before any score);
# n_answers: distinct extracted answers. n, step, block and steps are known to the compiler.
CONDITION_NAMES = ("ess", "score_ess", "step", "block", "steps", "n", "max_score", "mean_score",
                   "agreement", "n_answers")


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
    lower: Callable[[dict], tuple[Node, ...]] = field(default=lambda args: ())
    changes_tokens: bool = False
    phases: tuple[str, ...] = ("init", "step", "final")
    count: Callable[[int, dict, int], int] = field(default=lambda n, args, group: n)
    # may run under a per-problem runtime condition (`when=`); every primitive does: a stage that
    # changes the count under one splits the batch by problem (s3dsl.compiler.branches)
    takes_when: bool = True

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def runs_forward(self, args: dict) -> bool:
        """Whether a stage with these arguments runs a model forward (read off its nodes)."""
        return any(node.kind == "forward" for node in self.lower(args))

    @property
    def forward(self) -> bool:
        """Whether the stage runs a forward with its default arguments."""
        defaults = {p.name: None if p.default is REQUIRED else p.default for p in self.params}
        return self.runs_forward(defaults)


def _resample_count(n: int, args: dict, group: int) -> int:
    return int(args["n"])


def _mh_nodes(args: dict) -> tuple[Node, ...]:
    target = args.get("target")
    chain = Node.of("resample", method="imh chain per group", keep="1 per group", cache="carry")
    if isinstance(target, tuple) and target[0] == "tilted":
        verifier = target[1]["verifier"]
        return (
            forward("with masks", "first mask..next block end"),
            Node.of("host", call=f"verifier {verifier}", on="clean prediction"),
            chain,
        )
    return (Node.of("reduce", value="log q = sum of committed log-probs"), chain)


PRIMITIVES: tuple[Primitive, ...] = (
    Primitive(
        "expand",
        "Every particle becomes k children that differ only in their sampling noise onwards.",
        (Param("k", "int", low=1, high=4096, doc="children per particle"),
         Param("schedules", "schedules", None,
               doc="init only: child j decodes with schedule j mod m, a list of "
                   "schedule(block_length=, steps=, commit=, temperature=, threshold=) or "
                   "block lengths")),
        provides=frozenset({"groups"}),
        clears=frozenset({"strata"}),
        lower=lambda args: (Node.of("gather", index=f"every row x{args.get('k')}", cache="drop"),),
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
        lower=lambda args: (
            forward("masked in block", "first mask..block end"),
            Node.of("commit", rule=args.get("rule") or "decode",
                    temperature=args.get("temperature"), threshold=args.get("threshold")),
        ),
        changes_tokens=True,
        phases=("step",),
    ),
    Primitive(
        "score",
        "Score each particle's clean prediction (masks filled by argmax) with a verifier.",
        (Param("verifier", "verifier", doc="a verifier declared in `verifiers:` or a built-in"),),
        provides=frozenset({"scores"}),
        lower=lambda args: (
            forward("with masks", "first mask..next block end"),
            Node.of("host", call=f"verifier {args.get('verifier')}", on="clean prediction"),
        ),
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
        lower=lambda args: (Node.of("host", call=f"strata by={args.get('by')}"),),
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
        lower=lambda args: (
            Node.of("resample", n=args.get("n"), method=args.get("method"),
                    weights=args.get("weights"), within=args.get("within"), cache="carry"),
        ),
        count=_resample_count,
    ),
    Primitive(
        "prune",
        "Keep the n best-scoring particles per problem (ties: the earlier); no copies.",
        (
            Param("n", "int", low=1, high=4096, doc="survivors per problem (all, if fewer)"),
            Param("by", "choice", "score", ("score",), doc="what ranks the particles"),
        ),
        needs=(frozenset({"scores"}),),
        clears=frozenset({"groups", "strata"}),
        lower=lambda args: (
            Node.of("resample", n=args.get("n"), method="best n by score", cache="carry"),
        ),
        count=lambda n, args, group: min(n, int(args["n"])),
    ),
    Primitive(
        "weight",
        "Update SMC log-weights: log-probs of this step's commits, or potentials of scores.",
        (
            Param("by", "choice", "logprob", ("logprob", "score", "diff", "max")),
            Param("scale", "float", 1.0, doc="multiplies the increment (lambda of FK potentials)"),
        ),
        provides=frozenset({"logw"}),
        lower=lambda args: (
            Node.of("update", field="logw", by=args.get("by"), scale=args.get("scale")),
        ),
    ),
    Primitive(
        "mh-accept",
        "Independent Metropolis-Hastings over each group of proposals; one survivor per group.",
        (Param("target", "target", doc="power(alpha) or tilted(verifier, beta)"),),
        aliases=("mh", "imh"),
        needs=(frozenset({"groups"}),),
        clears=frozenset({"groups", "strata"}),
        lower=_mh_nodes,
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
        lower=lambda args: (
            Node.of("update", field="tokens", by=args.get("by"), count=args.get("count"),
                    fraction=args.get("fraction")),
        ),
        changes_tokens=True,
        phases=("step",),
    ),
    Primitive(
        "stop",
        "Finish the problem now: every mask committed in one step; no more forwards for it.",
        (),
        # The finishing forward runs only where the condition holds; the cost model counts it
        # at every point it may fire (a bound), the run reports what it spent.
        lower=lambda args: (
            forward(STOPPED_ROWS, "first mask..end"),
            Node.of("commit", rule="confidence", temperature=0.0, steps="1 (all masks)"),
        ),
        changes_tokens=True,
        phases=("step",),
    ),
    Primitive(
        "select",
        "The final answer per problem: best score, majority vote (NLL breaks ties), or log-prob.",
        (Param("by", "choice", "vote", ("score", "vote", "logprob")),),
        lower=lambda args: (Node.of("select", by=args.get("by")),),
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
