"""The batched executor: all particles of all problems of a batch in single forward calls.

It runs a lowered plan (`s3dsl.compiler.lowered`): each stage's nodes say how. One mechanism
carries what the passes rewrote: a forward cache. Each particle row points (`slot`) at the
cached, already-reduced output of a forward pass over its current tokens.
- `forward cache=reuse` (forward-reuse): rows whose state is cached are free; without it a
  `drop-cache` node ends every stage;
- `gather cache=keep` (share-parent-forward): `expand` copies the slot to its k children;
- `forward dedup=yes`: identical states in one call are computed once (`torch.unique`);
- `forward chunk=memory budget`: a call is split into chunks that halve on out-of-memory;
- `forward positions=answer`: each problem's prompt is encoded once and its keys/values are
  shared by all its particles, whose forwards then run over the answer positions only;
- `static-step`: forward and commit fused into one fixed-shape, sync-free function;
- `captured-step`: the whole step as one such function (`runtime.captured_driver` runs it);
- `forward kv=prefix|dual` (opt-in, approximate): block KV caches (`kv_cache.py`); particles
  point at cache rows (`Population.kv_row`), moved by the same gathers.
Expand and resample move slots with the same gather as every other field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import TypeVar

import torch

from s3dsl.compiler import particle_schedules
from s3dsl.compiler.ir import DecodeConfig, Op, Program
from s3dsl.compiler.lowered import FINISH, Stage, StepPlan
from s3dsl.compiler.passes import Flags, lowered_for
from s3dsl.compiler.primitives import PRIMITIVES
from s3dsl.runtime import kv_cache, resampling, rng, static, transition
from s3dsl.runtime.cohorts import Cohorts
from s3dsl.runtime.engine import StepContext, drive
from s3dsl.runtime.forwards import BatchedForwards, Counters
from s3dsl.runtime.model import MaskedLM, PromptCachingLM
from s3dsl.runtime.population import COUNTERS, Population
from s3dsl.runtime.results import ProblemResult, problem_result
from s3dsl.runtime.scoring import (
    Extract,
    Match,
    ParticleOutcome,
    answers_of,
    build_verifier,
    candidates,
    clean_prediction,
    completion_text,
    encode_prompt,
    run_verifier,
)
from s3dsl.runtime.semantics import (
    arg,
    condition_env,
    finishing_context,
    problem_uniforms,
    search_snapshot,
    sequence_logprob,
    window_committed_logprob,
)
from s3dsl.tasks.base import Problem

T = TypeVar("T")

# What each primitive's batched semantics (`s3dsl.compiler.ops`) runs: read by name at each stage.
SEMANTICS = {prim.name: prim.batched for prim in PRIMITIVES}
# The runtime's tensor kernels, handed to the primitives (which import no runtime) as `kernels`.
KERNELS = SimpleNamespace(rng=rng, resampling=resampling, transition=transition)


class BatchedExecutor(BatchedForwards):
    """Runs a plan over a batch; implements `s3dsl.compiler.ops.base.Batch` for the primitives."""

    kernels = KERNELS

    def __init__(
        self,
        program: Program,
        model: MaskedLM,
        extract: Extract,
        seed: int,
        flags: Flags | None = None,
        match: Match | None = None,
        lowered: StepPlan | None = None,
    ):
        """`lowered` is the plan to run; without it, the plan `flags` stand for. From `flags`
        the executor takes only the sizes (rows per call, memory budget)."""
        self.program, self.model, self.extract, self.seed = program, model, extract, seed
        self.flags = flags or Flags()
        self.lowered = lowered or lowered_for(program, self.flags)
        self.stages = {stage.op.uid: stage for stage in self.lowered.stages()}
        self.stage: Stage = self.lowered.finish
        fused = self.lowered.nodes("static-step")
        forwards = self.lowered.nodes("forward") + fused
        self.prompt_mode = {str(n.get("positions")) for n in forwards if n.get("positions")}
        self.gen = program.decode.gen_length
        self.mask_id = model.mask_id
        self.device = model.device
        self.verifiers = {
            n: build_verifier(s, extract, match) for n, s in program.verifiers.items()
        }
        self.counters = Counters()
        self.block_kv: kv_cache.BlockKV | None = None
        self.chunk_rows: int | None = self.flags.chunk_rows  # rows a forward call takes (halved
        # on out-of-memory, and kept); None: sized from memory (`auto_chunk`)
        self._samplers: dict[DecodeConfig, transition.Sampler] = {}
        self._auto_chunks: dict[int, int] = {}  # positions per row -> rows per call (CPU)
        self.step_fn = static.denoise_step
        if any(n.get("compiled") == "yes" for n in fused):
            self.step_fn = static.compiled(static.denoise_step, self.device)
        self.captured = None  # whole steps captured as one function (runtime.captured)
        if self.lowered.has("captured-step"):
            from s3dsl.runtime.captured_driver import CapturedSteps, compiled

            on = any(n.get("compiled") == "yes" for n in self.lowered.nodes("captured-step"))
            self.captured = CapturedSteps(self, compiled(self.device) if on else None, on)

    # -- batches ---------------------------------------------------------------------------
    def run(
        self,
        problems: Sequence[Problem],
        batch_size: int = 8,
        progress: Callable[[int], None] | None = None,
    ) -> list[ProblemResult]:
        from s3dsl.runtime import overlap  # the overlap pass: micro-batches in flight

        if overlap.lanes_of(self) > 1 and len(problems) > batch_size:
            return overlap.run_lanes(self, problems, batch_size, progress)
        results: list[ProblemResult] = []
        for start in range(0, len(problems), batch_size):
            batch = list(problems[start : start + batch_size])
            results.extend(self.run_batch(batch))
            if progress is not None:
                progress(len(batch))
        return results

    def run_batch(self, batch: list[Problem]) -> list[ProblemResult]:
        """One batch through the engine, as cohorts (a count-changing `when=` stage splits it:
        s3dsl.runtime.cohorts)."""
        self.begin(batch)
        cohorts = Cohorts(self)
        drive(self.program, cohorts)
        return cohorts.results()

    def begin(self, batch: list[Problem]) -> None:
        tok = self.model.tokenizer
        prompts = [encode_prompt(p, tok) for p in batch]
        width = max(map(len, prompts)) + self.gen
        ids = torch.full((len(batch), width), tok.pad_id, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.bool)
        for b, prompt in enumerate(prompts):
            ids[b, width - self.gen - len(prompt) : width - self.gen] = torch.tensor(prompt)
            attn[b, width - self.gen - len(prompt) :] = True
        ids[:, -self.gen :] = self.mask_id
        B, dev = len(batch), self.device
        self.batch, self.attn = batch, attn.to(dev)
        self.root = torch.tensor([rng.root_key(self.seed, p.id) for p in batch])
        self.pop = Population.initial(ids.to(dev), self.root.to(dev), self.gen)
        self.cache: transition.Reduced | None = None
        self.prompts: object | None = None  # the model's prompt cache
        if self.uses_prompt_cache:
            cut = width - self.gen
            self.prompts = self.model.encode_prompt(ids[:, :cut].to(dev), self.attn[:, :cut])
            self.counters.prompt_encodes += B
        self.block_kv = kv_cache.for_plan(self.lowered, self.model, self.program.decode,
                                          self.attn, self.prompts, self.counters)
        for name, initial, _ in COUNTERS:  # nfe, accepted, ..., stopped: one entry per problem
            setattr(self, name, [initial] * B)
        # each problem's index in the batch as begun: its prompt cache and attention rows (a
        # cohort, s3dsl.runtime.cohorts, holds some of the problems)
        self.owner = torch.arange(B, device=dev)
        self.known_outcomes: list[list[ParticleOutcome]] | None = None
        if self.captured is not None:
            self.captured.begin()

    @property
    def uses_prompt_cache(self) -> bool:
        """The plan's forwards cover the answer only and the model can do it (exactly, unless the
        plan says approximate)."""
        cached = [mode for mode in self.prompt_mode if mode.startswith("answer")]
        if not cached or not isinstance(self.model, PromptCachingLM):
            return False
        return self.model.exact_prompt_cache or any("approximate" in m for m in cached)

    @property
    def n(self) -> int:
        return self.pop.rows // len(self.batch)

    def gen_tokens(self) -> torch.Tensor:
        return self.pop.tokens[:, -self.gen :]

    def problem_of(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.div(rows, self.n, rounding_mode="floor")

    def _after_op(self) -> None:
        if self.stage.has("drop-cache"):
            self.pop.slot.fill_(-1)
            self.cache = None

    # -- the primitives --------------------------------------------------------------------
    def apply(self, op: Op, ctx: StepContext) -> None:
        if self.captured_apply(op, ctx):
            return
        active = self.condition(op, ctx)
        if active is not None and not active.any():
            return
        self.run_op(op, ctx, active)

    def captured_apply(self, op: Op, ctx: StepContext) -> bool:
        """Whether captured steps ran `op` (with the rest of its step); before any other stage
        they hand the state back."""
        if self.captured is None:
            return False
        if self.captured.owns(op):
            self.known_outcomes = None
            self.captured.apply(op, ctx)
            return True
        self.captured.materialize()
        return False

    def condition(self, op: Op, ctx: StepContext) -> torch.Tensor | None:
        """Per problem of the batch, whether the op's `when=` holds (None: it has none)."""
        if op.schedule.when is None:
            return None
        n, beta = self.n, op.args.get("beta", 1.0)
        return torch.tensor([
            op.schedule.when.evaluate(condition_env(
                self.pop.logw[b * n : (b + 1) * n].tolist(),
                self.pop.score[b * n : (b + 1) * n].tolist(),
                self.pop.answers[b * n : (b + 1) * n], ctx, beta))
            for b in range(len(self.batch))
        ], dtype=torch.bool)

    def run_op(self, op: Op, ctx: StepContext, active: torch.Tensor | None) -> None:
        """Run one stage on the problems `active` marks (None: all of them)."""
        self.stage = self.stages[op.uid]
        self.known_outcomes = None  # the stage may change what they read
        SEMANTICS[op.name](self, op, ctx, active)
        self._after_op()

    def active_rows(self, active: torch.Tensor | None) -> torch.Tensor:
        if active is None:
            return torch.ones(self.pop.rows, dtype=torch.bool, device=self.device)
        return active.to(self.device).repeat_interleave(self.n)

    def commit(self, op: Op, ctx: StepContext, rows: torch.Tensor | slice, window: torch.Tensor,
               w0: int, decode: DecodeConfig | None = None) -> None:
        """Propose and commit on `rows` (indices, or `slice(None)`: every row) from their
        log-probs over positions [w0, block_end), with their schedule's settings (`decode`;
        default: the program's). Only the window's positions are read and written."""
        d, pop, gen = decode or self.program.decode, self.pop, self.gen
        everyone, be = isinstance(rows, slice), ctx.block_end
        lo = pop.tokens.shape[1] - gen + w0
        # every row: views of the window, written in place (fewer ops than index and put back)
        tokens = (pop.tokens.narrow(1, lo, be - w0) if everyone
                  else pop.tokens[rows, lo : lo + be - w0])
        x0, commit, x0_logp = transition.propose_window(
            window, tokens, pop.key if everyone else pop.key[rows], mask_id=self.mask_id, w0=w0,
            steps_left=ctx.steps_left, step=ctx.step,
            temperature=arg(op, "temperature", d.temperature), rule=arg(op, "rule", d.commit),
            threshold=arg(op, "threshold", d.threshold),
            sampler=self.sampler(d))
        logp = (pop.commit_logp.narrow(1, w0, be - w0) if everyone
                else pop.commit_logp[rows, w0:be])
        if everyone:  # written through the views, in place
            torch.where(commit, x0, tokens, out=tokens)
            torch.where(commit, x0_logp, logp, out=logp)
            window_committed_logprob(x0_logp, commit, gen, w0, out=pop.step_logp)
            pop.slot.fill_(-1)
            self.cache = None  # no row points into it: the next forward needs no lookups
            return
        pop.tokens[rows, lo : lo + be - w0] = torch.where(commit, x0, tokens)
        pop.commit_logp[rows, w0:be] = torch.where(commit, x0_logp, logp)
        pop.step_logp[rows] = window_committed_logprob(x0_logp, commit, gen, w0)
        pop.slot[rows] = -1

    def sampler(self, decode: DecodeConfig) -> transition.Sampler:
        """The decode settings' `Sampler`, made once per settings (every commit asks)."""
        found = self._samplers.get(decode)
        if found is None:
            found = self._samplers[decode] = transition.sampler_of(decode, self.model)
        return found

    def finish_rows(self, ctx: StepContext, rows: torch.Tensor) -> None:
        """Commit every mask of `rows` in one step (`stop`), with a forward of those rows only
        that leaves every other row's cached forward in place."""
        w0, _ = transition.window_bounds(self.gen_tokens()[rows], self.mask_id, self.gen)
        owners = self.problem_of(rows)
        for b in owners.tolist():
            self.nfe[b] += 1
        reduced = self.forward(self.pop.tokens[rows], owners, w0, self.gen)
        self.commit(FINISH, finishing_context(ctx, self.gen), rows, reduced.window_logp, w0)

    def reach(self, ctx: StepContext) -> int:
        """The window a scoring forward keeps, so the next denoise of every schedule reuses it."""
        if not self.program.schedules:
            return ctx.next_block_end
        return particle_schedules.reach(self.program.schedules, ctx, self.program.decode)

    def problem_uniforms(self, b: int, op: Op, ctx: StepContext, count: int) -> torch.Tensor:
        return problem_uniforms(int(self.root[b]), op, ctx, count)

    def static_denoise(self, op: Op, ctx: StepContext) -> None:
        """All rows in fixed-size chunks through `static.denoise_step`: no host sync."""
        static.run_denoise(self, op, ctx)

    def score_rows(self, verifier_name: str, w1: int) -> torch.Tensor:
        pop, gen = self.pop, self.gen_tokens()
        masked = gen == self.mask_id
        need = masked.any(dim=1)
        rows = pop.every_row() if bool(need.all()) else need.nonzero().squeeze(1)
        clean_tok = clean_logp = None
        if rows.shape[0]:
            # a row outside `need` has no mask: the window over all rows is that of `need`
            w0 = transition.first_true(masked[:, :w1].any(dim=0), w1)
            in_order = self.ensure_forward(need, w1, w0, rows)
            cache = self.cache
            if in_order:
                clean_tok, clean_logp = cache.clean_tok, cache.clean_logp
            elif rows.shape[0] == pop.rows:
                clean_tok, clean_logp = cache.clean_tok[pop.slot], cache.clean_logp[pop.slot]
            else:
                slots = pop.slot[rows]
                clean_tok, clean_logp = gen.clone(), pop.commit_logp.clone()
                clean_tok[rows] = cache.clean_tok[slots]
                clean_logp[rows] = cache.clean_logp[slots]
        tok, lp, fill = clean_prediction(gen, pop.commit_logp, clean_tok, clean_logp, self.mask_id)
        n = self.n  # rows are problem-major: n per problem
        cands = candidates([p.prompt for p in self.batch for _ in range(n)], tok, lp, fill,
                           self.model.tokenizer)  # (it reads them on the host)
        pop.answers = answers_of(cands, self.extract)
        gold = [p.answer for p in self.batch for _ in range(n)]
        return self.verify(verifier_name, cands, gold).to(self.device)

    def verify(self, name: str, cands: list, gold: Sequence[str]) -> torch.Tensor:
        """Scores of the named verifier, on the host (the overlap pass may send them elsewhere)."""
        return run_verifier(self.verifiers[name], cands, gold)

    def finish(self, ctx: StepContext) -> None:
        self.known_outcomes = None
        last = finishing_context(ctx, self.gen)
        if (self.gen_tokens() == self.mask_id).any():
            self.stage = self.lowered.finish
            SEMANTICS["denoise"](self, FINISH, last, None)
            self._after_op()

    def active_problems(self, active: torch.Tensor | None) -> list[int]:
        return [b for b in range(len(self.batch)) if active is None or bool(active[b])]

    # -- results ---------------------------------------------------------------------------
    def outcomes(self) -> list[list[ParticleOutcome]]:
        """Per problem, its particles as results read them: decoded text, answer, NLL, score.
        Kept until the next stage, so `select` and `results` decode the population once."""
        if self.known_outcomes is None:
            self.known_outcomes = self._read_outcomes()
        return self.known_outcomes

    def _read_outcomes(self) -> list[list[ParticleOutcome]]:
        tokens = self.gen_tokens().tolist()
        nll = (-sequence_logprob(self.pop.commit_logp)).tolist()
        scores, logw = self.pop.score.tolist(), self.pop.logw.tolist()
        out: list[list[ParticleOutcome]] = [[] for _ in self.batch]
        for r, tok in enumerate(tokens):
            text, _ = completion_text(tok, self.model.tokenizer)
            outcome = ParticleOutcome(text, self.extract(text), nll[r], scores[r], tok,
                                      logw=logw[r])
            out[r // self.n].append(outcome)
        return out

    def results(self) -> list[ProblemResult]:
        if self.captured is not None:
            self.captured.materialize()
        return [
            problem_result(
                self.batch[b],
                outs,
                self.chosen[b],
                self.nfe[b],
                self.accepted[b],
                self.proposed[b],
                self.resamples[b],
                self.min_ess[b],
            )
            for b, outs in enumerate(self.outcomes())
        ]

    def snapshot(self) -> list[dict]:
        """Per problem, where the search stands now (s3dsl.trace records it after each step)."""
        if self.captured is not None:
            self.captured.materialize()
        scores, n = self.pop.score.tolist(), self.n
        return [search_snapshot(p.id, scores[b * n : (b + 1) * n],
                                self.pop.answers[b * n : (b + 1) * n], self.last_ess[b],
                                self.resamples[b], self.remasks[b], self.accepted[b],
                                self.proposed[b], self.nfe[b]) for b, p in enumerate(self.batch)]
