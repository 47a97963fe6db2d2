"""s3dsl as an lm-evaluation-harness model: any strategy file on any generation task.

    lm_eval --model s3dsl --model_args strategy=s3,model=PATH,particles=8 --tasks gsm8k

(`pip install 's3dsl[lmeval]'`; how plain `lm_eval` finds the model: lmeval_autoload.py and
docs/lm-eval.md; `s3dsl-lm-eval` is the same command with the model registered in-process).
lm-eval formats the prompts, s3dsl runs the strategy on them and returns the chosen particle's
completion, cut at the task's stop sequences, and lm-eval extracts and scores the answer.
`model_args` keys: `strategy` (file or built-in name), `model` (as `s3dsl run --model`),
`verifier` (what `task-default` means in the strategy; default `math-heuristic`), `extractor`
(the answer particles vote on), `gen_length` (default: the task's `max_gen_toks`), `seed`,
`opt_level`, `device`, `threads`, `trust_remote_code`, `stats` (a JSONL file of per-request
statistics), the checkpoint options of `s3dsl run` (`chat`, `system`, `dtype`, `mask_id`: use
`chat=false` with lm-eval's `--apply_chat_template`, so the template is applied once),
`mc_samples`, `mc_batch`, `mc_cfg`, `greedy_check` (log-likelihood requests:
lmeval_likelihood.py); every other key is a strategy param, as with `--set`.
Forwards and search statistics are logged and returned by `get_model_info`, which lm-eval writes
into the results' `config`. Sampling options in `gen_kwargs` (temperature, do_sample) are not
used: the strategy file decides how to sample.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM

from s3dsl.errors import S3DSLError
from s3dsl.integrations.lmeval_likelihood import (
    ElboScorer,
    encode_pair,
    request_generator,
    rolling_windows,
)
from s3dsl.session import model_max_length
from s3dsl.tasks.base import Problem

log = logging.getLogger("lm_eval.models.s3dsl")  # shown by lm-eval's own log setup
NAME = "s3dsl"
DEFAULT_GEN_LENGTH = 256  # lm-eval's own default for max_gen_toks


def prompt_id(context: str, repeat: int = 0) -> str:
    """A stable problem id from the prompt text and its repeat number, so that a prompt's random
    streams do not depend on the order or batch lm-eval sends it in."""
    return f"{hashlib.sha256(context.encode()).hexdigest()[:16]}-{repeat}"


def answer_extractor(name: str) -> Callable[[str], str | None]:
    """`final` (default): a `\\boxed{}` or stated answer, else the whole stripped text;
    `final-number`: GSM8K-style numbers; or any `--extractor` name of `s3dsl run`."""
    from s3dsl.tasks.answers import final_answer, final_number
    from s3dsl.tasks.data import get_extractor

    if name == "final":
        return lambda text: final_answer(text) or (text.strip() or None)
    if name == "final-number":
        return final_number
    return get_extractor(name)


def cut_at_stops(text: str, until: list[str]) -> str:
    """The text before the first of the task's stop sequences."""
    cut = len(text)
    for stop in until:
        if stop:
            at = text.find(stop)
            if 0 <= at < cut:
                cut = at
    return text[:cut]


def _until(gen_kwargs: dict) -> list[str]:
    until = gen_kwargs.get("until") or []
    return [until] if isinstance(until, str) else list(until)


def _batch_size(value: Any) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):  # "auto" and friends: the executor chunks by memory itself
        return 8


def _loader_options(loader: Callable, options: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint options given (chat=false, dtype=bf16, ...), as `s3dsl run` takes them;
    one the model loader does not know is the user's error."""
    import inspect

    given = {k: v for k, v in options.items() if v is not None}
    known = inspect.signature(loader).parameters
    for key in given:
        if key not in known:
            raise S3DSLError(f"model_args: '{key}' is not supported by this s3dsl's model loader")
    return given


def _device(device: str | None) -> str:
    """lm-eval's `--device` defaults to cuda; without one, run on the CPU (and say so)."""
    import torch

    name = (device or "cpu").split(":")[0]
    if name == "cuda" and not torch.cuda.is_available():
        log.warning("s3dsl: no CUDA device is available; running on the CPU")
        return "cpu"
    return name


class S3DSLLM(LM):
    """An lm-eval `LM` whose `generate_until` runs an s3dsl strategy."""

    def __init__(
        self,
        strategy: str = "s3",
        model: str = "arith",
        verifier: str = "math-heuristic",
        extractor: str = "final",
        gen_length: int | None = None,
        seed: int = 0,
        opt_level: int = 2,
        batch_size: int | str = 8,
        device: str | None = None,
        threads: int | None = None,
        trust_remote_code: bool = False,
        stats: str | None = None,
        max_batch_size: int | None = None,
        chat: bool | None = None,
        system: str | None = None,
        dtype: str | None = None,
        mask_id: int | None = None,
        mc_samples: int = 128,
        mc_batch: int = 32,
        mc_cfg: float = 0.0,
        greedy_check: bool = False,
        **params: Any,
    ):
        super().__init__()
        from s3dsl.catalog import resolve_strategy
        from s3dsl.cli.app import load_any_model, set_threads

        checkpoint = {"chat": chat, "system": system, "dtype": dtype, "mask_id": mask_id}

        set_threads(threads)
        self.strategy_path = resolve_strategy(str(strategy))
        self.verifier = str(verifier)
        self.extract = answer_extractor(str(extractor))
        self.gen_length = int(gen_length) if gen_length is not None else None
        self.seed, self.opt_level = int(seed), int(opt_level)
        self.batch = _batch_size(batch_size)
        self.overrides = {k: str(v) for k, v in params.items()}
        self.stats_path = Path(stats) if stats else None
        self.mc_samples, self.mc_batch, self.mc_cfg = int(mc_samples), int(mc_batch), float(mc_cfg)
        self.greedy_check = str(greedy_check).lower() in ("true", "1", "yes")
        self.lm = load_any_model(str(model), _device(device), bool(trust_remote_code),
                                 **_loader_options(load_any_model, checkpoint))
        self.model_label = str(model)
        self.totals: dict[str, Any] = {"requests": 0, "forwards": 0, "wall_s": 0.0,
                                       "resamples": 0, "accepted": 0, "proposed": 0,
                                       "distinct_answers": 0, "counters": {}, "plans": {}}
        self._seen: dict[str, int] = {}

    # --- lm-eval's interface -------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        by_length: dict[int, list[int]] = {}
        for i, req in enumerate(requests):
            gen_kwargs = req.args[1] if len(req.args) > 1 else {}
            length = self.gen_length or int(gen_kwargs.get("max_gen_toks", DEFAULT_GEN_LENGTH))
            by_length.setdefault(length, []).append(i)
        out: list[str] = [""] * len(requests)
        for length, indices in by_length.items():
            texts = self._run([requests[i] for i in indices], length)
            for i, text in zip(indices, texts):
                out[i] = text
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(log p(continuation | context), greedy) per request: a Monte-Carlo ELBO estimate of
        `mc_samples` masked forwards (lmeval_likelihood.py); the context is cut from the left
        to fit the model."""
        scorer, out = self._scorer(), []
        start = time.perf_counter()
        for req in requests:
            context, continuation = req.args[0], req.args[1]
            head, tail = encode_pair(self.lm.tokenizer, context, continuation)
            head = self._fit(head, tail)
            gen = request_generator(self.seed, context, continuation)
            greedy = self.greedy_check and scorer.greedy(head, tail)
            out.append((scorer.elbo(head, tail, gen), bool(greedy)))
        self._record_likelihood("loglikelihood", len(requests), scorer, start)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """log p(text), the ELBO estimates of windows that cover the text once each."""
        scorer, out = self._scorer(), []
        start = time.perf_counter()
        for req in requests:
            text = req.args[0]
            ids = encode_pair(self.lm.tokenizer, "", text)[1]
            gen = request_generator(self.seed, "", text)
            out.append(sum(scorer.elbo(head, tail, gen)
                           for head, tail in rolling_windows(ids, model_max_length(self.lm))))
        self._record_likelihood("loglikelihood_rolling", len(requests), scorer, start)
        return out

    def apply_chat_template(self, chat_history: list[dict[str, str]],
                            add_generation_prompt: bool = True) -> str:
        """`--apply_chat_template`: the checkpoint's own template, rendered as text."""
        tok = getattr(self.lm.tokenizer, "tok", self.lm.tokenizer)  # transformers' behind hf:
        if not getattr(tok, "chat_template", None):
            raise S3DSLError(f"--apply_chat_template: model '{self.model_label}' has no chat "
                             "template", None, "leave --apply_chat_template off")
        return tok.apply_chat_template(chat_history, tokenize=False,
                                       add_generation_prompt=add_generation_prompt)

    @property
    def tokenizer_name(self) -> str:
        return self.model_label.replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        tok = getattr(self.lm.tokenizer, "tok", self.lm.tokenizer)
        return getattr(tok, "chat_template", None) if chat_template else None

    def get_model_info(self) -> dict:
        """Merged into lm-eval's results `config`: what ran and what it cost."""
        n = max(self.totals["requests"], 1)
        return {"s3dsl": {
            "strategy": str(self.strategy_path), "model": self.model_label,
            "model_parameters": int(self.lm.num_parameters()), "verifier": self.verifier,
            "params": self.overrides, "seed": self.seed, "opt_level": self.opt_level,
            "requests": self.totals["requests"], "forwards": self.totals["forwards"],
            "forwards_per_request": self.totals["forwards"] / n,
            "wall_s": round(self.totals["wall_s"], 3),
            "resamples_per_request": self.totals["resamples"] / n,
            "distinct_answers_per_request": self.totals["distinct_answers"] / n,
            "mh_accepted": self.totals["accepted"], "mh_proposed": self.totals["proposed"],
            "likelihood_requests": self.totals.get("likelihood_requests", 0),
            "likelihood_forwards": self.totals.get("likelihood_forwards", 0),
            "mc_samples": self.mc_samples, "mc_cfg": self.mc_cfg,
            "counters": self.totals["counters"],
            "plans": self.totals["plans"],
        }}

    # --- log-likelihoods -------------------------------------------------------------------
    def _scorer(self) -> ElboScorer:
        return ElboScorer(self.lm, self.mc_samples, self.mc_batch, self.seed, self.mc_cfg)

    def _fit(self, head: list[int], tail: list[int]) -> list[int]:
        limit = model_max_length(self.lm)
        if limit is None or len(head) + len(tail) <= limit:
            return head
        if len(tail) > limit:
            raise S3DSLError(f"loglikelihood: a continuation of {len(tail):,} tokens does not "
                             f"fit model {self.model_label} ({limit:,} positions)")
        return head[len(head) + len(tail) - limit:]

    def _record_likelihood(self, kind: str, n: int, scorer: ElboScorer, start: float) -> None:
        t = self.totals
        t["likelihood_requests"] = t.get("likelihood_requests", 0) + n
        t["likelihood_forwards"] = t.get("likelihood_forwards", 0) + scorer.forwards
        wall = time.perf_counter() - start
        t["wall_s"] += wall
        log.info("s3dsl %s on %d requests: %d forwards (%d Monte-Carlo samples a request%s), "
                 "%.2f s", kind, n, scorer.forwards, self.mc_samples,
                 ", greedy check" if self.greedy_check and kind == "loglikelihood" else "", wall)

    # --- the run ---------------------------------------------------------------------------
    def _problem(self, context: str) -> Problem:
        """The request as a problem; its id numbers the repeats of one prompt."""
        k = self._seen.get(context, 0)
        self._seen[context] = k + 1
        return Problem(id=prompt_id(context, k), prompt=context, answer="")

    def _run(self, requests: list, gen_length: int) -> list[str]:
        from s3dsl.session import execute, planned

        the_plan = planned(self.strategy_path, self.overrides, gen_length, self.verifier,
                           self.opt_level)
        program = the_plan.program
        builtins = {b.replace("_", "-").lower() for spec in program.verifiers.values()
                    for _, b, _ in spec.terms}
        if "oracle" in builtins:
            raise S3DSLError("the oracle verifier needs gold answers, which lm-eval does not give")
        problems = [self._problem(req.args[0]) for req in requests]
        start = time.perf_counter()
        results, counters = execute(the_plan, self.lm, problems, self.extract,
                                    lambda prediction, answer: False, self.seed, self.batch)
        wall = time.perf_counter() - start
        texts = [cut_at_stops(r.completion, _until(req.args[1] if len(req.args) > 1 else {}))
                 for r, req in zip(results, requests)]
        self._record(program, the_plan, results, counters, wall, requests, texts)
        return texts

    def _record(self, program, the_plan, results, counters, wall, requests, texts) -> None:
        forwards = sum(r.nfe for r in results)
        t = self.totals
        t["requests"] += len(results)
        t["forwards"] += forwards
        t["wall_s"] += wall
        for r in results:
            t["resamples"] += r.resamples
            t["accepted"] += r.accepted
            t["proposed"] += r.proposed
            t["distinct_answers"] += len({p.answer for p in r.particles})
        for key, value in (counters.__dict__ if counters else {}).items():
            if isinstance(value, (int, float)):
                t["counters"][key] = t["counters"].get(key, 0) + value
        t["plans"][str(program.decode.gen_length)] = {
            "predicted_forwards_per_problem": the_plan.cost.forwards,
            "steps": program.decode.steps, "params": dict(program.params),
        }
        log.info("s3dsl %s on %d requests (gen_length %d): %d forwards (%.1f per request, "
                 "plan bound %d), %.2f s", program.name, len(results), program.decode.gen_length,
                 forwards, forwards / max(len(results), 1), the_plan.cost.forwards, wall)
        if self.stats_path is None:
            return
        self.stats_path.parent.mkdir(parents=True, exist_ok=True)
        with self.stats_path.open("a", encoding="utf-8") as f:
            for r, req, text in zip(results, requests, texts):
                f.write(json.dumps({
                    "task": getattr(req, "task_name", None), "doc_id": getattr(req, "doc_id", None),
                    "strategy": program.name, "forwards": r.nfe, "score": r.score,
                    "answer": r.prediction, "completion": text,
                    "particle_answers": [p.answer for p in r.particles],
                    "distinct_answers": len({p.answer for p in r.particles}),
                    "accepted": r.accepted, "proposed": r.proposed,
                    "resamples": r.resamples, "min_ess": r.min_ess,
                }) + "\n")


def register() -> None:
    """Make `--model s3dsl` known to lm-eval (idempotent; lm-eval's own models stay)."""
    import lm_eval.models  # noqa: F401  (registers the built-in models first)
    from lm_eval.api.registry import model_registry

    if NAME not in model_registry:
        model_registry.register(NAME, target=S3DSLLM)


register()


def main() -> None:
    """`s3dsl-lm-eval ...`: lm-eval's own command line, with `--model s3dsl` registered."""
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
