"""What a run returns: one record per problem, plus the run's totals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from s3dsl.runtime.scoring import ParticleOutcome


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

    def to_json(self) -> dict:
        d = asdict(self)
        d["particles"] = [asdict(p) for p in self.particles]
        return d
