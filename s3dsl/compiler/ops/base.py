"""What a primitive module declares: its signature, its facts, its lowering, its batched semantics.

Each primitive is one module of this package holding a `PRIMITIVE` (signature and checks, the
facts it needs and provides, its particle count, the plan nodes it lowers to) and the batched
semantics the executor runs for it (`PRIMITIVE.batched`). "Needs a forward" is read off the
plan nodes and nowhere else.

The compiler imports these modules, so they import no runtime: the batched semantics are written
against `Batch`, what the runtime's executor hands them (its population, its forward machinery and
its tensor kernels). The reference interpreter (`s3dsl.runtime.reference`) stays the independent,
readable specification; it calls the per-problem math these modules define.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from s3dsl.compiler.nodes import Node

if TYPE_CHECKING:
    from s3dsl.compiler.ir import Op, Program
    from s3dsl.compiler.lowered import Stage
    from s3dsl.compiler.schedule import StepContext

REQUIRED = object()

SCHEDULE_KEYS = ("at", "every", "offset", "when")
AT_CHOICES = ("block_start", "block_end", "first_step", "last_step")
# Names a `when` condition may use, per problem, at the time the stage runs.
# ess: of the log-weights; score_ess: of exp(score / beta), beta the stage's (1 where it has none);
# agreement: share of particles holding the most common extracted answer (0 before any score);
# n_answers: distinct extracted answers. n, step, block and steps are known to the compiler.
CONDITION_NAMES = ("ess", "score_ess", "step", "block", "steps", "n", "max_score", "mean_score",
                   "agreement", "n_answers")


class Batch(Protocol):
    """What a primitive's batched semantics may use: the executor running it.

    Rows are problem-major (problem b owns rows [b*n, (b+1)*n)); `active` (per problem, or None
    for all) is the stage's `when=` condition. `kernels` holds the runtime's tensor kernels
    (`rng`, `resampling`, `transition`), handed in so that this package imports no runtime.
    """

    program: Program
    pop: Any  # s3dsl.runtime.population.Population
    batch: list
    root: torch.Tensor  # [B] int64 root key per problem
    gen: int
    mask_id: int
    device: Any
    stage: Stage
    kernels: Any
    cache: Any  # the forward cache (s3dsl.runtime.transition.Reduced) or None
    nfe: list[int]
    accepted: list[int]
    proposed: list[int]
    resamples: list[int]
    min_ess: list[float | None]
    last_ess: list[float | None]
    remasks: list[int]
    stopped: list[bool]
    chosen: list[int]

    @property
    def n(self) -> int: ...

    def gen_tokens(self) -> torch.Tensor: ...
    def active_rows(self, active: torch.Tensor | None) -> torch.Tensor: ...
    def active_problems(self, active: torch.Tensor | None) -> list[int]: ...
    def problem_of(self, rows: torch.Tensor) -> torch.Tensor: ...
    def reach(self, ctx: StepContext) -> int: ...
    def problem_uniforms(self, b: int, op: Op, ctx: StepContext, count: int) -> torch.Tensor: ...
    def ensure_forward(self, need: torch.Tensor, w1: int, w0: int | None = None,
                       rows: torch.Tensor | None = None) -> None: ...
    def forward(self, ids: torch.Tensor, owners: torch.Tensor, w0: int, w1: int,
                src_rows: torch.Tensor | None = None) -> Any: ...
    def commit(self, op: Op, ctx: StepContext, rows: torch.Tensor | slice, window: torch.Tensor,
               w0: int, decode: Any = None) -> None: ...
    def finish_rows(self, ctx: StepContext, rows: torch.Tensor) -> None: ...
    def static_denoise(self, op: Op, ctx: StepContext) -> None: ...
    def score_rows(self, verifier_name: str, w1: int) -> torch.Tensor: ...
    def outcomes(self) -> list[list]: ...


Semantics = Callable[[Batch, "Op", "StepContext", "torch.Tensor | None"], None]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # int | float | str | bool | verifier | target | choice
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    doc: str = ""


def _no_semantics(ex: Batch, op: Op, ctx: StepContext, active: Any) -> None:
    raise NotImplementedError(f"{op.name} has no batched semantics")


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
    # needs that depend on the arguments (e.g. resample(weights=score) needs scores)
    needs_of_args: Callable[[dict], Sequence[frozenset[str]]] = field(default=lambda args: ())
    # the proposal-group size after the stage (None: unchanged; `groups` in clears: 1)
    regroup: Callable[[dict], int] | None = None
    uses_group: bool = False  # reads the proposal-group size in force (op.group)
    batched: Semantics = _no_semantics  # what the batched executor runs for it
    # its batched semantics honour `active` (a `when=` that holds for some problems only masks
    # the others; a stage without it splits the batch: s3dsl.runtime.cohorts)
    masks_problems: bool = False

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def needs_for(self, args: dict) -> tuple[frozenset[str], ...]:
        """What a stage needs, given its arguments."""
        return (*self.needs, *self.needs_of_args(args))

    def runs_forward(self, args: dict) -> bool:
        """Whether a stage with these arguments runs a model forward (read off its nodes)."""
        return any(node.kind == "forward" for node in self.lower(args))

    @property
    def forward(self) -> bool:
        """Whether the stage runs a forward with its default arguments."""
        defaults = {p.name: None if p.default is REQUIRED else p.default for p in self.params}
        return self.runs_forward(defaults)


def sequence_logprob(commit_logp: torch.Tensor) -> torch.Tensor:
    """log q(x) of each row (or of one particle): the float64 sum of its committed tokens'
    log-probs. Both interpreters call this, so nll, `select(by=logprob)` and power targets agree
    bit for bit."""
    return commit_logp.double().sum(dim=-1)


def committed_logprob(x0_logp: torch.Tensor, commit: torch.Tensor) -> torch.Tensor:
    """The float64 log-prob of what one denoise step committed, per row (`weight(by=logprob)`)."""
    return torch.where(commit, x0_logp.double(), 0.0).sum(dim=-1)


def window_committed_logprob(x0_logp: torch.Tensor, commit: torch.Tensor, gen: int, w0: int,
                             out: torch.Tensor | None = None) -> torch.Tensor:
    """`committed_logprob` of a step that touched only the window [w0, w0 + W) of `gen`
    positions, with the same bits: a float sum's rounding follows its length, so the window is
    laid into the whole region first (float32 where, then copied into float64: the same numbers
    as converting first). `out`: a [R] float64 tensor to write the sums into."""
    full = torch.zeros((x0_logp.shape[0], gen), dtype=torch.float64, device=x0_logp.device)
    full.narrow(1, w0, x0_logp.shape[1]).copy_(torch.where(commit, x0_logp, 0.0))
    return full.sum(dim=-1) if out is None else torch.sum(full, dim=-1, out=out)


def arg(op: Op, name: str, default: Any) -> Any:
    """An op argument, or the decode default when the strategy left it unset."""
    value = op.args.get(name)
    return default if value is None else value
