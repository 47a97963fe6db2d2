"""s3dsl: a declarative language and compiler for test-time search on diffusion language models.

Data flows text -> AST (`s3dsl.dsl`) -> IR and plan (`s3dsl.compiler`) -> run (`s3dsl.runtime`)
-> report (`s3dsl.report`).
"""

__version__ = "0.1.0"
