"""The batched executor's side of captured steps: state in, chunks, buffers, counters out.

A captured step (`s3dsl.runtime.captured`) runs over the problems of a batch in chunks of whole
problems (a step is problem-local except for the forward, so any chunking gives the same tokens).
Same-shape chunks replay one compiled graph, and a replayed graph may write its outputs into the
memory of the previous replay (CUDA graphs do): each chunk's outputs are copied into the step's
preallocated buffers right after its call, before the next chunk runs. What the host reports
(ESS, the answers of the last scored predictions) stays on the device until a report asks for it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from s3dsl.compiler.ir import Op
from s3dsl.runtime import captured, transition
from s3dsl.runtime.engine import StepContext
from s3dsl.runtime.scoring import completion_text
from s3dsl.verifiers.tensor import tensor_scorer

StepFn = Callable[..., dict]


def compiled(device: torch.device) -> StepFn:
    """`captured.run_step` under torch.compile(fullgraph=True) (CUDA graphs on a GPU). One graph
    per step shape (block, first step, last step): the recompile limit is raised to fit."""
    import torch._dynamo.config as dynamo_config

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
    mode = "reduce-overhead" if device.type == "cuda" else None
    return torch.compile(captured.run_step, fullgraph=True, dynamic=False, mode=mode)


class CapturedSteps:
    """Runs the step pipeline of `executor` (a BatchedExecutor) as captured steps."""

    def __init__(self, executor, step_fn: StepFn | None = None, replays: bool = False):
        """`replays`: the step function may reuse its output memory across calls (a compiled
        graph), so outputs are always copied into fresh buffers."""
        self.ex = executor
        program = executor.program
        self.uids = {op.uid for op in program.step}
        self.scorers = {}
        for op in program.step:
            if op.name == "score":
                spec = program.verifiers[op.args["verifier"]]
                scorer = tensor_scorer(spec.terms)
                assert scorer is not None, spec.describe()
                self.scorers[op.args["verifier"]] = scorer
        self.step_fn: StepFn = step_fn or captured.run_step
        self.replays = replays
        self.chunk_cap: int | None = None  # problems per chunk after an out-of-memory halving
        self.begin()

    def begin(self) -> None:
        self.done_step: int | None = None
        self.window: captured.Window | None | str = "unknown"
        self.answer_tok: torch.Tensor | None = None  # the last scored clean predictions
        self.base_answers: list = []  # answers before the first captured step...
        self.origin: torch.Tensor | None = None  # ...and the row each row descends from
        self.pending_answers = False
        self.ess_log: list[torch.Tensor] = []

    def owns(self, op: Op) -> bool:
        return op.uid in self.uids

    def apply(self, op: Op, ctx: StepContext) -> None:
        """The first stage of a step that the engine applies runs the whole step."""
        if self.done_step == ctx.step:
            return
        self.done_step = ctx.step
        stages = [s for s in self.ex.lowered.step
                  if s.op.schedule.fires(ctx.step, ctx.step_in_block, ctx.steps_per_block,
                                         ctx.steps)]
        self.run(stages, ctx)

    # -- one step --------------------------------------------------------------------------
    def run(self, stages, ctx: StepContext) -> None:
        ex = self.ex
        pop, problems = ex.pop, len(ex.batch)
        if self.window == "unknown":
            self.window = self._adopt_cache()
        planned = captured.plan_step(
            stages, ctx, ex.program.decode, self.window, pop.rows // problems, self.scorers,
            transition.sampler_of(ex.program.decode, ex.model),
        )
        state = self._state()
        dev = ex.device
        width = pop.tokens.shape[1]
        prompt_len = ex.prompt_positions(width)
        shape = captured.Shape(ex.gen, prompt_len, ex.mask_id, ex.model.shifted_logits,
                               getattr(ex.model.tokenizer, "eos_id", None))
        step = torch.tensor(ctx.step, device=dev)
        steps_left = torch.tensor(ctx.steps_left, device=dev)
        budget = ex.chunk_rows or ex.auto_chunk(ex.chunk_length(width))
        per_chunk = max(1, min(problems, budget // planned.peak, self.chunk_cap or problems))
        while True:
            try:
                out, chunks = self._chunks(state, planned, shape, step, steps_left, per_chunk)
                break
            except torch.OutOfMemoryError:
                if per_chunk == 1:
                    raise
                per_chunk = self.chunk_cap = max(1, per_chunk // 2)
                ex.counters.oom_halvings += 1
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
        self._write_back(out, planned)
        paid = sum(planned.forwards)
        ex.counters.forward_rows += paid * problems
        ex.counters.forward_calls += chunks * len(planned.forwards)
        ex.nfe = [k + paid for k in ex.nfe]
        ex.resamples = [k + planned.resamples for k in ex.resamples]
        self.ess_log += [out[f"ess{i}"] for i in range(planned.resamples)]

    def _call(self, state, planned, shape, step, steps_left, problem0: int) -> dict:
        if self.replays and step.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the previous replay's outputs are copied
        first = torch.tensor(problem0, device=step.device)
        return self.step_fn(self.ex.model_logits, state, planned.ops, shape, step, steps_left,
                            first)

    def _chunks(self, state, planned, shape, step, steps_left, per_chunk: int):
        """Run the step over chunks of `per_chunk` problems, each chunk's outputs copied into
        whole-batch buffers at once (none with a single chunk of an eager step)."""
        problems = state["root"].shape[0]
        starts = list(range(0, problems, per_chunk))
        if len(starts) == 1 and not self.replays:
            return self._call(state, planned, shape, step, steps_left, 0), 1
        buffers: dict[str, torch.Tensor] = {}
        for b0 in starts:
            b1 = min(problems, b0 + per_chunk)
            part = _problem_slice(state, b0, b1, problems)
            out = self._call(part, planned, shape, step, steps_left, b0)
            for name, value in out.items():
                per = value.shape[0] // (b1 - b0)
                if name not in buffers:
                    buffers[name] = value.new_empty((per * problems, *value.shape[1:]))
                if name == "slot":  # cache rows are problem-major: point into the whole buffer
                    value = value + b0 * (out["window"].shape[0] // (b1 - b0))
                buffers[name][b0 * per : b1 * per].copy_(value)
        return buffers, len(starts)

    def _state(self) -> dict[str, torch.Tensor]:
        ex = self.ex
        pop = ex.pop
        state = {name: getattr(pop, name) for name in captured.ROW_FIELDS}
        state["root"] = ex.root.to(ex.device, torch.int64)
        if self.window is not None and ex.cache is not None:
            c = ex.cache
            state.update(window=c.window_logp, clean_tok=c.clean_tok, clean_logp=c.clean_logp,
                         slot=pop.slot)
        if self.answer_tok is not None:
            state["answer_tok"] = self.answer_tok
        else:
            state["origin"] = torch.arange(pop.rows, device=ex.device)
        return state

    def _adopt_cache(self) -> captured.Window | None:
        """At a batch's first captured step: the eager stages' forward cache, if every row has
        one (one host sync per batch), gathered problem-major (row r at cache row r)."""
        ex = self.ex
        self.base_answers = list(ex.pop.answers)
        c = ex.cache
        if c is None or not bool((ex.pop.slot >= 0).all()):
            ex.cache = None
            ex.pop.slot.fill_(-1)
            return None
        slot = ex.pop.slot
        ex.cache = transition.Reduced(c.clean_tok[slot], c.clean_logp[slot],
                                      c.window_logp[slot], c.w0, c.w1)
        ex.pop.slot = torch.arange(ex.pop.rows, device=ex.device)
        return captured.Window(c.w0, c.w1)

    def _write_back(self, out: dict[str, torch.Tensor], planned: captured.Planned) -> None:
        ex = self.ex
        pop = ex.pop
        for name in captured.ROW_FIELDS:
            setattr(pop, name, out[name])
        rows = pop.rows
        self.window = planned.cache
        if planned.cache is not None:
            w = planned.cache
            ex.cache = transition.Reduced(out["clean_tok"], out["clean_logp"], out["window"],
                                          w.w0, w.w1)
            pop.slot = out["slot"]
        else:
            ex.cache = None
            pop.slot = torch.full((rows,), -1, dtype=torch.long, device=ex.device)
        if "answer_tok" in out:
            self.answer_tok, self.origin = out["answer_tok"], None
        else:
            self.origin = out["origin"] if self.origin is None else self.origin[out["origin"]]
        pop.answers = [None] * rows  # until a report asks (materialize)
        self.pending_answers = True

    # -- what reports read -----------------------------------------------------------------
    def materialize(self) -> None:
        """ESS per resample and the answers of the last scored predictions, onto the host."""
        ex = self.ex
        for ess in self.ess_log:
            for b, value in enumerate(ess.tolist()):
                ex.min_ess[b] = value if ex.min_ess[b] is None else min(ex.min_ess[b], value)
                ex.last_ess[b] = value
        self.ess_log = []
        if not self.pending_answers:
            return
        if self.answer_tok is not None:
            tok = ex.model.tokenizer
            ex.pop.answers = [ex.extract(completion_text(t, tok)[0])
                              for t in self.answer_tok.tolist()]
        elif self.origin is not None:
            ex.pop.answers = [self.base_answers[i] for i in self.origin.tolist()]
        self.pending_answers = False


def _problem_slice(state: dict, b0: int, b1: int, problems: int) -> dict:
    """The state of problems [b0, b1): rows and cache rows are problem-major."""
    out = {}
    rows = state["tokens"].shape[0] // problems
    for name, value in state.items():
        if name == "root":
            out[name] = value[b0:b1]
        elif name in captured.CACHE_FIELDS:
            per = value.shape[0] // problems
            out[name] = value[b0 * per : b1 * per]
        elif name == "slot":
            per = state["window"].shape[0] // problems
            out[name] = value[b0 * rows : b1 * rows] - b0 * per
        else:
            out[name] = value[b0 * rows : b1 * rows]
    return out
