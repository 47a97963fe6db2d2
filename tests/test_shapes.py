"""Plan nodes carry tensor shapes, and the executor's tensors stay within them."""

from __future__ import annotations

import pytest
import torch

from s3dsl.catalog import builtin_strategies
from s3dsl.compiler.explain import explain_lines
from s3dsl.compiler.nodes import tensor_shapes
from s3dsl.compiler.passes import plan
from s3dsl.runtime.executor import BatchedExecutor
from s3dsl.session import compile_file
from s3dsl.tasks.registry import get_task

ARITH = get_task("arith")
SMALL = {"gen_length": "16", "steps": "16"}


def builtin(name: str):
    return compile_file(builtin_strategies()[name], SMALL, ARITH.gen_length, ARITH.default_verifier)


def test_explain_prints_rows_positions_and_vocab_of_every_node():
    text = "\n".join(explain_lines(plan(builtin("s3"), 2)))
    block = builtin("s3").decode.block_length
    assert f"tokens [<=B*16, 16] + prompt cache -> log-probs [<=B*16, <={block}, V]" in text
    assert "weights [B, 16] -> ancestors [B, 4]" in text
    assert "rows [B*4] -> [B*16]" in text and "select by=vote   : [B, 4] -> [B]" in text
    assert "tokens [<=B*16, P+16]" in text.split("pass batch")[0]  # before the prompt cache


class Recording(BatchedExecutor):
    """Records every forward's rows and window against the shapes its plan node promises."""

    def forward(self, ids, owners, w0, w1, *rest):
        reduced = super().forward(ids, owners, w0, w1, *rest)
        node = self.stage.node("forward")
        shapes = node.get("shapes")
        self.seen.append((self.stage.op.name, ids.shape[0], reduced.window_logp.shape[1],
                          len(self.batch) * shapes.n_in, shapes.window(node.get("window"))))
        assert reduced.window_logp.shape[2] == self.model.vocab_size
        return reduced


@pytest.mark.parametrize("name", ["s3", "imh", "remdm", "beam", "adaptive"])
@pytest.mark.parametrize("level", [1, 2])
def test_forwards_stay_within_their_static_shapes(name, level, tiny_model, arith_problems):
    the_plan = plan(builtin(name), level)
    assert all(tensor_shapes(n) for s in the_plan.lowered.stages() for n in s.nodes
               if n.kind != "drop-cache")
    executor = Recording(the_plan.program, tiny_model, ARITH.extract_answer, 3, the_plan.flags,
                         lowered=the_plan.lowered)
    executor.seen = []
    with torch.inference_mode():
        executor.run(arith_problems[:2])
    assert executor.seen
    for stage, rows, window, max_rows, max_window in executor.seen:
        assert rows <= max_rows and window <= max_window, (stage, rows, window)
