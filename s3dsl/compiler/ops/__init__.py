"""The primitives, one module each (see `base` for what a module declares).

Adding a primitive: a module here with its `PRIMITIVE` and batched semantics, its entry in
`MODULES`, a method of the reference interpreter (`s3dsl.runtime.reference`), its section of
docs/primitives.md, and its tests.
"""

from s3dsl.compiler.ops import (
    denoise,
    expand,
    mh_accept,
    prune,
    remask,
    resample,
    score,
    select,
    stop,
    stratify,
    weight,
)

MODULES = (expand, denoise, score, stratify, resample, prune, weight, mh_accept, remask, stop,
           select)
PRIMITIVES = tuple(module.PRIMITIVE for module in MODULES)
