"""What a run returns: one record per problem, plus the run's totals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from s3dsl.runtime.scoring import ParticleOutcome
from s3dsl.tasks.base import Problem


@dataclass
class ProblemResult:
    id: str
    prompt: str
    answer: str
    prediction: str | None
    completion: str
    correct: bool
    nfe: int
    score: float | None
    particles: list[ParticleOutcome] = field(default_factory=list)
    accepted: int = 0
    proposed: int = 0
    resamples: int = 0
    min_ess: float | None = None
    chosen: int = 0  # index of the selected particle

    def to_json(self) -> dict:
        d = asdict(self)
        d["particles"] = [asdict(p) for p in self.particles]
        return d


def problem_result(problem: Problem, outcomes: list[ParticleOutcome], chosen: int, nfe: int,
                   accepted: int, proposed: int, resamples: int,
                   min_ess: float | None) -> ProblemResult:
    """A problem's record; `correct` is filled in by the session, which knows the task."""
    best = outcomes[chosen]
    return ProblemResult(
        id=problem.id, prompt=problem.prompt, answer=problem.answer, prediction=best.answer,
        completion=best.completion, correct=False, nfe=nfe,
        score=None if best.score != best.score else best.score, particles=outcomes,
        accepted=accepted, proposed=proposed, resamples=resamples, min_ess=min_ess,
        chosen=chosen,
    )
