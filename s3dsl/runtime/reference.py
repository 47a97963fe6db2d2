"""The reference interpreter: the readable specification of every primitive.

One method per primitive, named after it; the per-problem math it shares with the batched
executor (e.g. `weight_update`, `imh_chain`) is defined in the primitive's own module
(`s3dsl.compiler.ops`).

One particle at a time, one forward pass per particle per stage that needs one, no batching, no
caching. `--opt-level 0` runs it; the batched executor must give the same tokens at the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from s3dsl.compiler.ir import Op, Program
from s3dsl.compiler.lowered import FINISH
from s3dsl.compiler.ops.mh_accept import imh_chain
from s3dsl.compiler.ops.prune import prune_survivors
from s3dsl.compiler.ops.remask import remask_positions
from s3dsl.compiler.ops.resample import resample_logweights
from s3dsl.compiler.ops.select import choose
from s3dsl.compiler.ops.stratify import score_strata
from s3dsl.compiler.ops.weight import weight_update
from s3dsl.runtime import resampling, rng, transition
from s3dsl.runtime.engine import StepContext, drive, step_contexts
from s3dsl.runtime.model import MaskedLM, forward_logits
from s3dsl.runtime.population import Particle, ProblemState
from s3dsl.runtime.results import ProblemResult, problem_result
from s3dsl.runtime.scoring import (
    Extract,
    Match,
    ParticleOutcome,
    build_verifier,
    candidates,
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
    problem_uniforms,
    search_snapshot,
    sequence_logprob,
)
from s3dsl.tasks.base import Problem


class ReferenceInterpreter:
    def __init__(
        self,
        program: Program,
        model: MaskedLM,
        extract: Extract,
        seed: int,
        match: Match | None = None,
    ):
        self.program, self.model, self.extract, self.seed = program, model, extract, seed
        self.gen = program.decode.gen_length
        # every schedule's own step contexts, walked in full: a particle of schedule i at the
        # program's step t is at contexts[i][t] (past its last step: done)
        self.contexts = [list(step_contexts(program.decode_of(i)))
                         for i in range(len(program.schedules) + 1)]
        self.verifiers = {
            n: build_verifier(s, extract, match) for n, s in program.verifiers.items()
        }

    # -- the model -------------------------------------------------------------------------
    def forward(self, state: ProblemState, p: Particle, w0: int, w1: int) -> transition.Reduced:
        state.nfe += 1
        ids = p.ids.unsqueeze(0).to(self.model.device)
        logits = forward_logits(self.model, ids, torch.ones_like(ids, dtype=torch.bool), self.gen)
        return transition.reduce_logits(
            logits, logits.shape[1] - self.gen, self.model.shifted_logits, w0, w1
        )

    def masked(self, p: Particle) -> torch.Tensor:
        return p.ids[-self.gen :] == self.model.mask_id

    # -- the primitives --------------------------------------------------------------------
    def expand(self, s: ProblemState, op: Op, ctx: StepContext) -> None:
        schedules = op.args.get("schedules")
        s.particles = [
            replace(p, key=rng.mix_int(p.key, op.uid, ctx.step, j), group=i,
                    schedule=schedules[j % len(schedules)] if schedules else p.schedule)
            for i, p in enumerate(s.particles)
            for j in range(op.args["k"])
        ]

    def denoise(self, s: ProblemState, op: Op, step_ctx: StepContext) -> None:
        for p in s.particles:
            p.step_logp = 0.0
            d, ctx = self.program.decode, step_ctx
            if op is not FINISH:  # the finishing commit is the same for every particle
                d = self.program.decode_of(p.schedule)
                mine = self.contexts[p.schedule]
                if step_ctx.step >= len(mine):
                    continue  # its schedule is done
                ctx = mine[step_ctx.step]
            masked = self.masked(p)[: ctx.block_end].nonzero()
            if len(masked) == 0:
                continue
            w0 = int(masked[0])
            red = self.forward(s, p, w0, ctx.block_end)
            gen, commit, x0_logp = transition.propose_and_commit(
                red.window_logp.cpu(),
                p.ids[-self.gen :].unsqueeze(0),
                torch.tensor([p.key]),
                mask_id=self.model.mask_id,
                w0=w0,
                block_end=ctx.block_end,
                steps_left=ctx.steps_left,
                step=ctx.step,
                temperature=arg(op, "temperature", d.temperature),
                rule=arg(op, "rule", d.commit),
                threshold=arg(op, "threshold", d.threshold),
                sampler=transition.sampler_of(d, self.model),
            )
            p.ids = torch.cat([p.ids[: -self.gen], gen[0]])
            p.logp = torch.where(commit[0], x0_logp[0], p.logp)
            p.step_logp = float(committed_logprob(x0_logp, commit)[0])

    def score_particles(self, s: ProblemState, verifier_name: str) -> list[float]:
        toks, lps, fills = [], [], []
        for p in s.particles:
            red = self.forward(s, p, self.gen, self.gen) if self.masked(p).any() else None
            tok, lp, fill = clean_prediction(
                p.ids[-self.gen :],
                p.logp,
                None if red is None else red.clean_tok[0].cpu(),
                None if red is None else red.clean_logp[0].cpu(),
                self.model.mask_id,
            )
            toks.append(tok), lps.append(lp), fills.append(fill)
        cands = candidates(
            [s.problem.prompt] * len(toks),
            torch.stack(toks),
            torch.stack(lps),
            torch.stack(fills),
            self.model.tokenizer,
        )
        for p, c in zip(s.particles, cands):
            p.answer = self.extract(c.completion)
        gold = [s.problem.answer] * len(cands)
        return run_verifier(self.verifiers[verifier_name], cands, gold).tolist()

    def score(self, s: ProblemState, op: Op, ctx: StepContext) -> None:
        for p, value in zip(s.particles, self.score_particles(s, op.args["verifier"])):
            p.prev_score, p.score = p.score, value
            p.best_score = max(p.best_score, value)

    def stratify(self, s: ProblemState, op: Op, ctx: StepContext) -> None:
        if op.args["by"] == "answer":
            seen: dict[str | None, int] = {}
            for p in s.particles:
                p.stratum = seen.setdefault(p.answer, len(seen))
            return
        scores = torch.tensor([p.score for p in s.particles], dtype=torch.float64)
        for p, label in zip(s.particles, score_strata(scores, op.args["strata"]).tolist()):
            p.stratum = label

    def resample(self, s: ProblemState, op: Op, ctx: StepContext) -> None:
        logw = resample_logweights(
            [p.score for p in s.particles], [p.logw for p in s.particles], op.args
        )
        weights = resampling.normalize(logw)
        s.resamples += 1
        ess = resampling.ess(weights)
        s.min_ess = ess if s.min_ess is None else min(s.min_ess, ess)
        s.last_ess = ess
        u = problem_uniforms(s.key, op, ctx, 2 * len(s.particles) + op.args["n"] + 2)
        strata = None
        if op.args["within"] == "strata":
            strata = torch.tensor([p.stratum for p in s.particles])
        ancestors = resampling.resample(weights, op.args["n"], op.args["method"], u, strata)
        s.particles = [
            replace(
                s.particles[a], logw=0.0, key=rng.mix_int(s.particles[a].key, op.uid, ctx.step, i)
            )
            for i, a in enumerate(ancestors.tolist())
        ]

    def prune(self, s: ProblemState, op: Op, ctx: StepContext) -> None:
        keep = prune_survivors([p.score for p in s.particles], op.args["n"])
        s.particles = [s.particles[i] for i in keep]

    def weight(self, s: ProblemState, op: Op, ctx: StepContext) -> None:
        for p in s.particles:
            values = [p.logw, p.step_logp, p.score, p.prev_score, p.best_score]
            tensors = [torch.tensor(v, dtype=torch.float64) for v in values]
            p.logw = float(weight_update(*tensors, op.args))

    def mh_accept(self, s: ProblemState, op: Op, ctx: StepContext) -> None:
        kind, targs = op.args["target"]
        if kind == "tilted":
            values = self.score_particles(s, targs["verifier"])
        else:
            values = [float(sequence_logprob(p.logp)) for p in s.particles]
        k = op.group
        u = problem_uniforms(s.key, op, ctx, len(s.particles))
        survivors = []
        for g in range(len(s.particles) // k):
            idx, accepted = imh_chain(
                values[g * k : (g + 1) * k], kind, targs, u[g * k : (g + 1) * k]
            )
            survivors.append(s.particles[g * k + idx])
            s.accepted += accepted
            s.proposed += k - 1
        s.particles = survivors

    def remask(self, s: ProblemState, op: Op, ctx: StepContext) -> None:
        if s.stopped:
            return
        s.remasks += 1
        for p in s.particles:
            committed = ~self.masked(p)
            chosen = remask_positions(
                committed.unsqueeze(0), p.logp.unsqueeze(0), torch.tensor([p.key]), op, ctx, rng
            )[0]
            gen = torch.where(chosen, self.model.mask_id, p.ids[-self.gen :])
            p.ids = torch.cat([p.ids[: -self.gen], gen])
            p.logp = torch.where(chosen, 0.0, p.logp)

    def stop(self, s: ProblemState, op: Op, ctx: StepContext) -> None:
        """Finish the problem as the engine's finish does (every mask committed in one step);
        with nothing masked left, its particles need no later forward."""
        s.stopped = True
        self.denoise(s, FINISH, finishing_context(ctx, self.gen))

    def select(self, s: ProblemState, op: Op, ctx: StepContext) -> None:
        s.chosen = choose(self.outcomes(s), op.args["by"])

    # -- driving ---------------------------------------------------------------------------
    def outcomes(self, s: ProblemState) -> list[ParticleOutcome]:
        out = []
        for p in s.particles:
            tokens = p.ids[-self.gen :].tolist()
            text, _ = completion_text(tokens, self.model.tokenizer)
            nll = -float(sequence_logprob(p.logp))
            out.append(ParticleOutcome(text, self.extract(text), nll, p.score, tokens, p.logw))
        return out

    def run(self, problems: Sequence[Problem], progress=None) -> list[ProblemResult]:
        results = []
        for problem in problems:
            self.states = [self.initial_state(problem)]
            drive(self.program, self, None)
            results.append(self.result(self.states[0]))
            if progress is not None:
                progress(1)
        return results

    def initial_state(self, problem: Problem) -> ProblemState:
        tok = self.model.tokenizer
        ids = torch.tensor(encode_prompt(problem, tok) + [self.model.mask_id] * self.gen)
        key = rng.root_key(self.seed, problem.id)
        particle = Particle(ids, torch.zeros(self.gen), key)
        return ProblemState(problem, [particle], key)

    def apply(self, op: Op, ctx: StepContext) -> None:
        method = getattr(self, op.name.replace("-", "_"))
        for s in self.states:
            env = condition_env([p.logw for p in s.particles], [p.score for p in s.particles],
                                [p.answer for p in s.particles], ctx, op.args.get("beta", 1.0))
            if op.schedule.when is None or op.schedule.when.evaluate(env):
                method(s, op, ctx)

    def finish(self, ctx: StepContext) -> None:
        last = finishing_context(ctx, self.gen)
        if any(self.masked(p).any() for s in self.states for p in s.particles):
            for s in self.states:
                self.denoise(s, FINISH, last)

    def result(self, s: ProblemState) -> ProblemResult:
        return problem_result(
            s.problem,
            self.outcomes(s),
            s.chosen,
            s.nfe,
            s.accepted,
            s.proposed,
            s.resamples,
            s.min_ess,
        )

    def snapshot(self) -> list[dict]:
        """Per problem, where the search stands now (s3dsl.trace records it after each step)."""
        return [search_snapshot(s.problem.id, [p.score for p in s.particles],
                                [p.answer for p in s.particles], s.last_ess, s.resamples,
                                s.remasks, s.accepted, s.proposed, s.nfe) for s in self.states]
