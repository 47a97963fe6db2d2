"""Everything about the package is in pyproject.toml except what it cannot declare: the packages
(found here: every folder under s3dsl/, as namespace packages, so a new subpackage such as
s3dsl.compiler.ops cannot be left out of the wheel and the weights' data folders are packages
rather than "would be ignored"; plus s3dsl.strategies, mapped to strategies/ in pyproject), and
one file, `s3dsl_lm_eval.pth`, installed at the top of site-packages (as setuptools installs its own
`distutils-precedence.pth`) so that plain `lm_eval --model s3dsl` finds s3dsl's model. lm-eval
releases up to 0.4.13 load no plugins; why this is needed and what it does:
docs/lm-eval.md and s3dsl/integrations/lmeval_autoload.py.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

PTH = Path("s3dsl", "integrations", "s3dsl_lm_eval.pth")


class BuildPyWithPth(build_py):
    """build_py, plus the .pth file at the root of what gets installed: the wheel's purelib
    (a normal build) or the editable wheel itself (`pip install -e .`)."""

    def run(self) -> None:
        super().run()
        self.copy_file(str(PTH), str(Path(self._pth_root(), PTH.name)), preserve_mode=False)

    def _pth_root(self) -> str:
        if getattr(self, "editable_mode", False):  # setuptools' editable_wheel: files written
            return self.get_finalized_command("install").install_lib  # here go in the wheel
        return self.build_lib


PACKAGES = [*find_namespace_packages(include=["s3dsl", "s3dsl.*"]), "s3dsl.strategies"]

setup(packages=PACKAGES, cmdclass={"build_py": BuildPyWithPth})
