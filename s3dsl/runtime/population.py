"""Particle and problem state, declared once: the reference's `Particle` and `ProblemState` and
the batched `Population` and per-problem counters are all derived from `STATE` and `COUNTERS`.

Batched rows are laid out problem-major: problem b owns rows [b*n, (b+1)*n). Every per-particle
field is a tensor with one row per particle, so expand and resample are one index gather over
all fields, with no host copy: a field of host values (the extracted answers) travels as ids on
the device into a table kept on the host. Adding a field is one `StateField` here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, make_dataclass
from typing import Any

import numpy as np
import torch

from s3dsl.shape_constants import shape_constant


@dataclass(frozen=True)
class StateField:
    """One per-particle field. `shape` per particle: "" one value, "tokens" [L] (the prompt and
    the generated positions), "gen" [G]. `initial` None: the caller gives it."""

    name: str  # the batched name (Population attribute)
    dtype: torch.dtype | None  # None: host values (batched: ids into a table, see storage)
    initial: Any
    doc: str
    shape: str = ""
    particle: str = ""  # the reference Particle's name, if it differs
    batched_only: bool = False  # meaningful only in the batched executor (the forward cache)

    def __post_init__(self) -> None:
        if not self.particle:
            object.__setattr__(self, "particle", self.name)

    def storage(self) -> list[tuple[str, Any, Any]]:
        """The Population's dataclass fields for it: the tensor, or host values as ids (0 is
        None) into a table shared by every gather."""
        if self.dtype is not None:
            return [(self.name, torch.Tensor, field())]
        return [(f"{self.particle}_id", torch.Tensor, field()),
                (f"{self.particle}_table", list, field(default_factory=lambda: [None]))]


STATE: tuple[StateField, ...] = (
    StateField("tokens", torch.long, None, "prompt (left-padded when batched) + generated tokens",
               "tokens", particle="ids"),
    StateField("commit_logp", torch.float32, 0.0,
               "log-prob of each committed token when committed; 0 if masked", "gen",
               particle="logp"),
    StateField("key", torch.int64, None, "the particle's random key"),
    StateField("logw", torch.float64, 0.0, "SMC log-weight"),
    StateField("step_logp", torch.float64, 0.0, "log-prob of what the last denoise committed"),
    StateField("score", torch.float64, math.nan, "the last verifier score (nan: not scored)"),
    StateField("prev_score", torch.float64, math.nan, "the score before it (weight by=diff)"),
    StateField("best_score", torch.float64, -math.inf, "the best score so far (weight by=max)"),
    StateField("answers", None, None, "answer extracted from the last scored clean prediction",
               particle="answer"),
    StateField("stratum", torch.long, 0, "stratum label (stratify)"),
    StateField("group", torch.long, 0, "index of the parent in the last expand"),
    StateField("sched", torch.long, 0, "its decode schedule: Program.decode_of(schedule)",
               particle="schedule"),
    StateField("slot", torch.long, -1, "row of the forward cache holding this state, -1: none",
               batched_only=True),
    StateField("kv_row", torch.long, -1, "row of the block KV cache (kv_cache.py) it reads",
               batched_only=True),
)

# The Population's tensor fields by how `gather` treats them: several values per row, and one
# value per row (stacked by dtype and gathered together). Host-value tables are shared as they are.
_WIDE = tuple(f.name for f in STATE if f.dtype is not None and f.shape)
_NARROW = tuple(f.name if f.dtype is not None else f"{f.particle}_id"
                for f in STATE if not f.shape)

# Per-problem counters and results: a field of the reference's ProblemState, a list in the
# executor (one entry per problem of the batch).
COUNTERS: tuple[tuple[str, Any, str], ...] = (
    ("nfe", 0, "forward rows spent on the problem"),
    ("accepted", 0, "mh-accept proposals accepted"),
    ("proposed", 0, "mh-accept proposals made"),
    ("resamples", 0, "resample applications"),
    ("min_ess", None, "the smallest ESS at a resample"),
    ("chosen", 0, "index of the selected particle"),
    ("last_ess", None, "ESS of the latest resample (for traces)"),
    ("remasks", 0, "remask applications (for traces)"),
    ("stopped", False, "a `stop` fired: finished, and no stage may reopen it"),
)


def _particle_type(f: StateField) -> Any:
    if f.shape:
        return torch.Tensor
    if f.dtype is None:
        return str | None
    return float if f.dtype.is_floating_point else int


def _particle_default(f: StateField) -> Any:
    if f.shape or (f.initial is None and f.dtype is not None):
        return field()  # required: the caller gives it
    return field(default=f.initial)


class _PopulationOps:
    @classmethod
    def initial(cls, tokens: torch.Tensor, keys: torch.Tensor, gen: int) -> Population:
        """One particle per problem: the prompt and `gen` masks, nothing committed or scored."""
        rows, dev = tokens.shape[0], tokens.device
        given = {"tokens": tokens, "key": keys.clone()}
        values: dict[str, Any] = {}
        for f in STATE:
            if f.name in given:
                values[f.name] = given[f.name]
            elif f.dtype is None:
                values[f"{f.particle}_id"] = torch.zeros(rows, dtype=torch.long, device=dev)
            else:
                shape = (rows, gen) if f.shape == "gen" else (rows,)
                values[f.name] = torch.full(shape, f.initial, dtype=f.dtype, device=dev)
        return cls(**values)

    @property
    def rows(self) -> int:
        return self.tokens.shape[0]

    def every_row(self) -> torch.Tensor:
        """0..rows-1 (a shared constant: never write into it)."""
        rows, dev = self.tokens.shape[0], self.tokens.device
        return shape_constant(("population.rows", rows, dev),
                              lambda: torch.arange(rows, device=dev))

    def gather(self, index: torch.Tensor) -> Population:
        """The population of rows `index` (repeats allowed): expand and resample. Tensor fields
        are gathered on their device; host-value tables are shared (ids index into them).

        One-value fields of one dtype and device are stacked and gathered in one go (three tensor
        ops instead of one per field); each comes back as its own row of the result, so a write
        into one field never reaches another. Which field is which comes from STATE, read once
        (`_WIDE`, `_NARROW`), not per call: expand and resample gather at every step."""
        fields = vars(self)
        out = dict(fields)  # the host tables are shared; every tensor field is replaced below
        at = {index.device: index}  # the index on each device a field lives on

        def index_on(device: torch.device) -> torch.Tensor:
            found = at.get(device)
            if found is None:  # (not `setdefault`: its default would be made every time)
                found = at[device] = index.to(device)
            return found

        for name in _WIDE:
            value = fields[name]
            out[name] = value.index_select(0, index_on(value.device))
        groups: dict[tuple[torch.dtype, torch.device], list[str]] = {}
        for name in _NARROW:
            value = fields[name]
            groups.setdefault((value.dtype, value.device), []).append(name)
        for (_, device), names in groups.items():
            where = index_on(device)
            values = [fields[name] for name in names]
            if len(values) == 1:
                out[names[0]] = values[0].index_select(0, where)
            else:
                out.update(zip(names, torch.stack(values).index_select(1, where).unbind(0)))
        gathered = object.__new__(type(self))  # every field is set: the dataclass's __init__
        gathered.__dict__.update(out)  # would only assign them again, one by one
        return gathered


def _host_values(f: StateField) -> property:
    """`pop.answers`: the host values of a `dtype=None` field, read through its ids; setting it
    rebuilds the table."""
    ids, table = f"{f.particle}_id", f"{f.particle}_table"

    def get(pop: Any) -> list:
        return [getattr(pop, table)[i] for i in getattr(pop, ids).tolist()]

    def put(pop: Any, values: list) -> None:
        index: dict = {None: 0}
        found = [index.setdefault(v, len(index)) for v in values]
        setattr(pop, table, list(index))
        # (through numpy: a third of torch.tensor's cost on a list, the same values)
        ids_now = torch.from_numpy(np.array(found, dtype=np.int64))
        setattr(pop, ids, ids_now.to(getattr(pop, ids).device))

    return property(get, put, doc=f.doc)


# Every particle of every problem in a batch, one row per particle, on the device.
Population = make_dataclass(
    "Population",
    sorted((spec for f in STATE for spec in f.storage()), key=lambda spec: spec[1] is list),
    bases=(_PopulationOps,),
    namespace={"__module__": __name__, **{f.name: _host_values(f) for f in STATE
                                          if f.dtype is None}},
)
Population.__doc__ = "The batched state: " + "; ".join(f"{f.name}: {f.doc}" for f in STATE)

# One particle of the reference interpreter (its required fields, tokens to key, come first).
Particle = make_dataclass(
    "Particle",
    [(f.particle, _particle_type(f), _particle_default(f)) for f in STATE if not f.batched_only],
    namespace={"__module__": __name__},
)
Particle.__doc__ = "One particle: " + "; ".join(
    f"{f.particle}: {f.doc}" for f in STATE if not f.batched_only
)

# One problem of the reference interpreter: its particles, its root key and its counters.
ProblemState = make_dataclass(
    "ProblemState",
    [("problem", Any), ("particles", list), ("key", int),
     *[(name, Any, field(default=initial)) for name, initial, _ in COUNTERS]],
    namespace={"__module__": __name__},
)
