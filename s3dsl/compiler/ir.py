"""The IR: a strategy with params resolved and arguments typed, ready for passes and execution."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from s3dsl.compiler.primitives import lookup
from s3dsl.spans import Span


@dataclass(frozen=True)
class Schedule:
    """When a stage of the step pipeline runs. Static parts are decided by the step counter."""

    at: str | None = None  # block_start | block_end | first_step | last_step
    every: int | None = None
    offset: int = 0
    when: Any = None  # a compiled runtime condition (per problem), or None
    when_text: str | None = None

    def fires(self, step: int, step_in_block: int, steps_per_block: int, steps: int) -> bool:
        if self.every is not None and step % self.every != self.offset % self.every:
            return False
        if self.at == "block_start":
            return step_in_block == 0
        if self.at == "block_end":
            return step_in_block == steps_per_block - 1
        if self.at == "first_step":
            return step == 0
        if self.at == "last_step":
            return step == steps - 1
        return True

    def describe(self) -> str:
        parts = []
        if self.at:
            parts.append(f"at={self.at}")
        if self.every is not None:
            parts.append(f"every={self.every}" + (f"+{self.offset}" if self.offset else ""))
        if self.when_text:
            parts.append(f'when="{self.when_text}"')
        return " ".join(parts)


@dataclass(frozen=True)
class VerifierSpec:
    """A weighted sum of built-in verifiers, each with its options."""

    name: str
    terms: tuple[tuple[float, str, tuple[tuple[str, Any], ...]], ...]

    def describe(self) -> str:
        out = []
        for weight, builtin, options in self.terms:
            opts = "".join(f", {k}={v}" for k, v in options)
            text = f"{builtin}({opts[2:]})" if opts else builtin
            out.append(text if weight == 1.0 else f"{weight:g}*{text}")
        return " + ".join(out)


@dataclass
class Op:
    """One stage. `n_in`/`n_out` are particles per problem (static), `group` the proposal-group
    size in force (from the last expand), `uid` a stable id that seeds the op's randomness."""

    name: str
    args: dict[str, Any]
    schedule: Schedule
    span: Span
    uid: int
    phase: str
    n_in: int = 1
    n_out: int = 1
    group: int = 1

    def describe(self) -> str:
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.args.items() if v is not None)
        sched = self.schedule.describe()
        return f"{self.name}({args})" + (f" [{sched}]" if sched else "")

    @property
    def needs_forward(self) -> bool:
        """Read off the primitive's lowering: the one place that says which stages run forwards."""
        prim = lookup(self.name)
        return prim is not None and prim.runs_forward(self.args)


def _show(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        inner = ", ".join(f"{k}={v}" for k, v in value[1].items())
        return f"{value[0]}({inner})"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class DecodeConfig:
    steps: int
    gen_length: int
    block_length: int
    temperature: float
    commit: str
    threshold: float
    # The official samplers' options (runtime/transition.py `Sampler`); the defaults are LLaDA's
    # generate() defaults, so a strategy that sets none of them decodes as before.
    schedule: str = "even"  # even (LLaDA) | linear (Dream's eps timesteps)
    eps: float = 1e-3
    top_p: float = 1.0  # 1 = off
    top_k: int = 0  # 0 = off
    alg_temp: float = 0.0
    tempered_confidence: bool = False
    cfg_scale: float = 0.0
    logits_eos_inf: bool = False
    confidence_eos_eot_inf: bool = False

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.num_blocks


@dataclass
class Program:
    name: str
    description: str
    params: dict[str, Any]
    decode: DecodeConfig
    verifiers: dict[str, VerifierSpec]
    init: list[Op]
    step: list[Op]
    final: list[Op]
    source_hash: str
    file: str = ""
    notes: list[str] = field(default_factory=list)
    # per-particle schedules (compiler/particle_schedules.py): schedule i > 0 is schedules[i - 1]
    schedules: tuple[DecodeConfig, ...] = ()

    def decode_of(self, schedule: int) -> DecodeConfig:
        return self.decode if schedule == 0 else self.schedules[schedule - 1]

    def ops(self) -> list[Op]:
        return [*self.init, *self.step, *self.final]
