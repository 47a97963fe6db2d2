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
from typing import TypeVar

import torch

from s3dsl.compiler.ir import Op, Program
from s3dsl.compiler.lowered import FINISH, Stage, StepPlan
from s3dsl.compiler.passes import Flags, lowered_for
from s3dsl.runtime import kv_cache, resampling, rng, static, transition
from s3dsl.runtime.cohorts import Cohorts
from s3dsl.runtime.engine import StepContext, drive
from s3dsl.runtime.forwards import BatchedForwards, Counters
from s3dsl.runtime.model import MaskedLM, PromptCachingLM
from s3dsl.runtime.per_schedule import PerScheduleDenoise
from s3dsl.runtime.population import Population
from s3dsl.runtime.results import ProblemResult, problem_result
from s3dsl.runtime.scoring import (
    Extract,
    Match,
    ParticleOutcome,
    answers_of,
    build_verifier,
    candidates,
    choose,
    clean_prediction,
    completion_text,
    encode_prompt,
    run_verifier,
)
from s3dsl.runtime.semantics import (
    arg,
    committed_logprob,
    condition_env,
    finishing_context,
    imh_chain,
    problem_uniforms,
    prune_survivors,
    remask_positions,
    resample_logweights,
    resample_logweights_rows,
    score_strata,
    sequence_logprob,
    weight_update,
)
from s3dsl.tasks.base import Problem

T = TypeVar("T")


class BatchedExecutor(BatchedForwards, PerScheduleDenoise):
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
        self._chunk: int | None = self.flags.chunk_rows
        self._step_fn = static.denoise_step
        if any(n.get("compiled") == "yes" for n in fused):
            self._step_fn = static.compiled(static.denoise_step, self.device)
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
        self.nfe = [0] * B
        self.accepted, self.proposed, self.resamples = [0] * B, [0] * B, [0] * B
        self.min_ess: list[float | None] = [None] * B
        self.chosen = [0] * B
        self.last_ess: list[float | None] = [None] * B  # of the latest resample (for traces)
        self.remasks = [0] * B  # remask applications (for traces)
        self.stopped = [False] * B  # a `stop` fired: finished, and no stage may reopen it
        # each problem's index in the batch as begun: its prompt cache and attention rows (a
        # cohort, s3dsl.runtime.cohorts, holds some of the problems)
        self.owner = torch.arange(B, device=dev)
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
        getattr(self, "op_" + op.name.replace("-", "_"))(op, ctx, active)
        self._after_op()

    def active_rows(self, active: torch.Tensor | None) -> torch.Tensor:
        if active is None:
            return torch.ones(self.pop.rows, dtype=torch.bool, device=self.device)
        return active.to(self.device).repeat_interleave(self.n)

    def op_expand(self, op: Op, ctx: StepContext, active) -> None:
        k, n = op.args["k"], self.n
        index = torch.arange(self.pop.rows, device=self.device).repeat_interleave(k)
        pop = self.pop.gather(index)
        child = torch.arange(len(index), device=self.device) % k
        pop.key = rng.mix(pop.key, op.uid, ctx.step, child)
        pop.group = index % n
        if op.args.get("schedules"):  # child j follows schedule j mod m
            table = torch.tensor(op.args["schedules"], device=self.device)
            pop.sched = table[child % len(table)]
        gather = self.stage.node("gather")
        if gather is None or gather.get("cache") != "keep":
            pop.slot.fill_(-1)
        self.pop = pop

    def op_denoise(self, op: Op, ctx: StepContext, active) -> None:
        if self.stage.has("static-step"):
            self._static_denoise(op, ctx)
            return
        if self.program.schedules and op is not FINISH:
            self.denoise_per_schedule(op, ctx)
            return
        gen = self.gen_tokens()
        need = (gen[:, : ctx.block_end] == self.mask_id).any(dim=1)
        self.pop.step_logp.zero_()
        if not need.any():
            return
        self.ensure_forward(need, ctx.block_end)
        rows = need.nonzero().squeeze(1)
        w0, _ = transition.window_bounds(gen[rows], self.mask_id, ctx.block_end)
        c = self.cache
        window = c.window_logp[self.pop.slot[rows]][:, w0 - c.w0 : ctx.block_end - c.w0]
        self._commit(op, ctx, rows, window, w0)

    def _commit(self, op: Op, ctx: StepContext, rows: torch.Tensor, window: torch.Tensor,
                w0: int, decode=None) -> None:
        """Propose and commit on `rows` from their log-probs over positions [w0, block_end),
        with their schedule's settings (`decode`; default: the program's)."""
        d, gen = decode or self.program.decode, self.gen_tokens()
        new, commit, x0_logp = transition.propose_and_commit(
            window,
            gen[rows],
            self.pop.key[rows],
            mask_id=self.mask_id,
            w0=w0,
            block_end=ctx.block_end,
            steps_left=ctx.steps_left,
            step=ctx.step,
            temperature=arg(op, "temperature", d.temperature),
            rule=arg(op, "rule", d.commit),
            threshold=arg(op, "threshold", d.threshold),
            sampler=transition.sampler_of(d, self.model),
        )
        self.pop.tokens[rows, -self.gen :] = new
        self.pop.commit_logp[rows] = torch.where(commit, x0_logp, self.pop.commit_logp[rows])
        self.pop.step_logp[rows] = committed_logprob(x0_logp, commit)
        self.pop.slot[rows] = -1

    def _static_denoise(self, op: Op, ctx: StepContext) -> None:
        """All rows in fixed-size chunks through `static.denoise_step`: no host sync."""
        d, pop, rows = self.program.decode, self.pop, self.pop.rows
        spec = static.StepSpec(
            w0=ctx.block_end - d.block_length,
            block_end=ctx.block_end,
            temperature=float(arg(op, "temperature", d.temperature)),
            rule=arg(op, "rule", d.commit),
            threshold=float(arg(op, "threshold", d.threshold)),
            sampler=transition.sampler_of(d, self.model),
        )
        prompt_len = self._prompt_positions(pop.tokens.shape[1])
        owners = torch.arange(rows, device=self.device) // self.n
        step = torch.tensor(ctx.step, device=self.device)
        steps_left = torch.tensor(ctx.steps_left, device=self.device)
        outs = self._in_chunks(
            rows,
            pop.tokens.shape[1] - prompt_len,
            lambda part: self._step_fn(
                self._logits,
                pop.tokens[part],
                owners[part],
                pop.key[part],
                pop.commit_logp[part],
                step,
                steps_left,
                gen=self.gen,
                prompt_len=prompt_len,
                mask_id=self.mask_id,
                shifted=self.model.shifted_logits,
                spec=spec,
            ),
        )
        pop.tokens, pop.commit_logp, pop.step_logp = (torch.cat(t) for t in zip(*outs))
        pop.slot.fill_(-1)
        self.counters.forward_rows += rows
        self.counters.positions += rows * (pop.tokens.shape[1] if self.prompts is None
                                           else self.gen)
        self.nfe = [k + self.n for k in self.nfe]

    def score_rows(self, verifier_name: str, w1: int) -> torch.Tensor:
        gen = self.gen_tokens()
        need = (gen == self.mask_id).any(dim=1)
        clean_tok, clean_logp = gen.clone(), self.pop.commit_logp.clone()
        if need.any():
            self.ensure_forward(need, w1)
            slots = self.pop.slot[need]
            clean_tok[need] = self.cache.clean_tok[slots]
            clean_logp[need] = self.cache.clean_logp[slots]
        tok, lp, fill = clean_prediction(
            gen, self.pop.commit_logp, clean_tok, clean_logp, self.mask_id
        )
        owners = self.problem_of(torch.arange(self.pop.rows)).tolist()
        cands = candidates(
            [self.batch[b].prompt for b in owners],
            tok.cpu(),
            lp.cpu(),
            fill.cpu(),
            self.model.tokenizer,
        )
        self.pop.answers = answers_of(cands, self.extract)
        gold = [self.batch[b].answer for b in owners]
        return self.verify(verifier_name, cands, gold).to(self.device)

    def verify(self, name: str, cands: list, gold: Sequence[str]) -> torch.Tensor:
        """Scores of the named verifier, on the host (the overlap pass may send them elsewhere)."""
        return run_verifier(self.verifiers[name], cands, gold)

    def op_score(self, op: Op, ctx: StepContext, active) -> None:
        values = self.score_rows(op.args["verifier"], self.reach(ctx))
        pop = self.pop
        pop.prev_score, pop.score = pop.score, values
        pop.best_score = torch.maximum(pop.best_score, values)

    def op_stratify(self, op: Op, ctx: StepContext, active) -> None:
        n = self.n
        for b in self._active_problems(active):
            sl = slice(b * n, (b + 1) * n)
            if op.args["by"] == "answer":
                seen: dict = {}
                labels = [seen.setdefault(a, len(seen)) for a in self.pop.answers[sl]]
                self.pop.stratum[sl] = torch.tensor(labels, device=self.device)
            else:
                self.pop.stratum[sl] = score_strata(self.pop.score[sl].cpu(), op.args["strata"]).to(
                    self.device
                )

    def op_resample(self, op: Op, ctx: StepContext, active) -> None:
        n_in, n_out = self.n, op.args["n"]
        batched = (
            op.args["method"] in resampling.ROW_METHODS
            and op.args["within"] != "strata"
            and (active is None or n_out == n_in)
        )
        if batched:
            idx, moved = self.resample_all(op, ctx, active)
        else:
            idx, moved = self.resample_each(op, ctx, active)
        pop = self.pop.gather(idx)
        slot_in_problem = torch.arange(len(idx), device=self.device) % n_out
        new_keys = rng.mix(pop.key, op.uid, ctx.step, slot_in_problem)
        pop.key = torch.where(moved, new_keys, pop.key)
        pop.logw = torch.where(moved, torch.zeros_like(pop.logw), pop.logw)
        self.pop = pop

    def resample_all(self, op: Op, ctx: StepContext, active) -> tuple[torch.Tensor, torch.Tensor]:
        """Every problem at once (row schemes, no strata): the same ancestors as one problem at a
        time, from the same per-problem uniforms, in a few [B, n] tensor ops."""
        B, n_in, n_out = len(self.batch), self.n, op.args["n"]
        logw = resample_logweights_rows(
            self.pop.score.cpu().view(B, n_in), self.pop.logw.cpu().view(B, n_in), op.args
        )
        weights = resampling.normalize_rows(logw)
        keys = rng.mix(self.root.to(torch.int64), op.uid, ctx.step)
        u = rng.uniform(keys, 0, (2 * n_in + n_out + 2,))
        ancestors = resampling.resample_rows(weights, n_out, op.args["method"], u)
        ancestors = ancestors + (torch.arange(B) * n_in).view(B, 1)
        live = torch.ones(B, dtype=torch.bool) if active is None else active.cpu().bool()
        if not bool(live.all()):  # a finished problem keeps its rows (then n_out == n_in)
            own = torch.arange(B * n_in).view(B, n_in)
            ancestors = torch.where(live.view(B, 1), ancestors, own)
        for b, ess in enumerate(resampling.ess_rows(weights).tolist()):
            if bool(live[b]):
                self.resamples[b] += 1
                self.min_ess[b] = ess if self.min_ess[b] is None else min(self.min_ess[b], ess)
                self.last_ess[b] = ess
        moved = live.view(B, 1).expand(B, n_out).reshape(-1)
        return ancestors.reshape(-1).to(self.device), moved.to(self.device)

    def resample_each(self, op: Op, ctx: StepContext, active) -> tuple[torch.Tensor, torch.Tensor]:
        """One problem at a time: strata, and schemes with no row form (residual, ssp, topk)."""
        n_in, n_out = self.n, op.args["n"]
        index, fresh = [], []
        for b in range(len(self.batch)):
            sl = slice(b * n_in, (b + 1) * n_in)
            if active is not None and not bool(active[b]):
                index.append(torch.arange(sl.start, sl.stop))
                fresh.append(torch.zeros(n_in, dtype=torch.bool))
                continue
            logw = resample_logweights(
                self.pop.score[sl].tolist(), self.pop.logw[sl].tolist(), op.args
            )
            weights = resampling.normalize(logw)
            self.resamples[b] += 1
            ess = resampling.ess(weights)
            self.min_ess[b] = ess if self.min_ess[b] is None else min(self.min_ess[b], ess)
            self.last_ess[b] = ess
            u = problem_uniforms(int(self.root[b]), op, ctx, 2 * n_in + n_out + 2)
            strata = self.pop.stratum[sl].cpu() if op.args["within"] == "strata" else None
            ancestors = resampling.resample(weights, n_out, op.args["method"], u, strata)
            index.append(ancestors + sl.start)
            fresh.append(torch.ones(n_out, dtype=torch.bool))
        return torch.cat(index).to(self.device), torch.cat(fresh).to(self.device)

    def op_prune(self, op: Op, ctx: StepContext, active) -> None:
        n, scores = self.n, self.pop.score.tolist()
        keep = [b * n + i for b in range(len(self.batch))
                for i in prune_survivors(scores[b * n : (b + 1) * n], op.args["n"])]
        self.pop = self.pop.gather(torch.tensor(keep, device=self.device))

    def op_weight(self, op: Op, ctx: StepContext, active) -> None:
        pop = self.pop
        new = weight_update(
            pop.logw, pop.step_logp, pop.score, pop.prev_score, pop.best_score, op.args
        )
        pop.logw = torch.where(self.active_rows(active), new, pop.logw)

    def op_mh_accept(self, op: Op, ctx: StepContext, active) -> None:
        kind, targs = op.args["target"]
        if kind == "tilted":
            values = self.score_rows(targs["verifier"], self.reach(ctx)).tolist()
        else:
            values = sequence_logprob(self.pop.commit_logp).tolist()
        n, k = self.n, op.group
        keep = []
        for b in range(len(self.batch)):
            u = problem_uniforms(int(self.root[b]), op, ctx, n)
            for g in range(n // k):
                lo = b * n + g * k
                idx, accepted = imh_chain(values[lo : lo + k], kind, targs, u[g * k : (g + 1) * k])
                keep.append(lo + idx)
                self.accepted[b] += accepted
                self.proposed[b] += k - 1
        self.pop = self.pop.gather(torch.tensor(keep, device=self.device))

    def op_remask(self, op: Op, ctx: StepContext, active) -> None:
        pop = self.pop
        gen = self.gen_tokens()
        stopped = torch.tensor(self.stopped, device=self.device).repeat_interleave(self.n)
        live = self.active_rows(active) & ~stopped
        committed = (gen != self.mask_id) & live.unsqueeze(1)
        chosen = remask_positions(committed, pop.commit_logp, pop.key, op, ctx)
        for b in self._active_problems(active):
            self.remasks[b] += not self.stopped[b]
        pop.tokens[:, -self.gen :] = torch.where(chosen, self.mask_id, gen)
        pop.commit_logp = torch.where(chosen, torch.zeros_like(pop.commit_logp), pop.commit_logp)
        pop.slot[chosen.any(dim=1)] = -1

    def op_stop(self, op: Op, ctx: StepContext, active) -> None:
        """Finish the problems whose condition holds, as `finish` does, with a forward of their
        masked rows only that leaves every other row's cached forward in place."""
        for b in self._active_problems(active):
            self.stopped[b] = True
        live = self.active_rows(active)
        gen = self.gen_tokens()
        self.pop.step_logp[live] = 0.0
        rows = (live & (gen == self.mask_id).any(dim=1)).nonzero().squeeze(1)
        if len(rows) == 0:
            return
        w0, _ = transition.window_bounds(gen[rows], self.mask_id, self.gen)
        owners = self.problem_of(rows)
        for b in owners.tolist():
            self.nfe[b] += 1
        reduced = self.forward(self.pop.tokens[rows], owners, w0, self.gen)
        self._commit(FINISH, finishing_context(ctx, self.gen), rows, reduced.window_logp, w0)

    def op_select(self, op: Op, ctx: StepContext, active) -> None:
        outcomes = self.outcomes()
        for b in self._active_problems(active):
            self.chosen[b] = choose(outcomes[b], op.args["by"])

    def finish(self, ctx: StepContext) -> None:
        last = finishing_context(ctx, self.gen)
        if (self.gen_tokens() == self.mask_id).any():
            self.stage = self.lowered.finish
            self.op_denoise(FINISH, last, None)
            self._after_op()

    def _active_problems(self, active) -> list[int]:
        return [b for b in range(len(self.batch)) if active is None or bool(active[b])]

    # -- results ---------------------------------------------------------------------------
    def outcomes(self) -> list[list[ParticleOutcome]]:
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
        from s3dsl.runtime.semantics import search_snapshot

        if self.captured is not None:
            self.captured.materialize()
        scores, n = self.pop.score.tolist(), self.n
        return [search_snapshot(p.id, scores[b * n : (b + 1) * n],
                                self.pop.answers[b * n : (b + 1) * n], self.last_ess[b],
                                self.resamples[b], self.remasks[b], self.accepted[b],
                                self.proposed[b], self.nfe[b]) for b, p in enumerate(self.batch)]
