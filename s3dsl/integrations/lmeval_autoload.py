"""Plain `lm_eval --model s3dsl`: register s3dsl's entry point when lm-eval loads its models.

No lm-eval release on PyPI (0.4.13 is the newest) loads models from outside its own source
tree: `--model NAME` is looked up in the table of `lm_eval/models/__init__.py` only. Upstream's
plugin change (EleutherAI/lm-evaluation-harness#4013) discovers the `lm_eval.models` entry-point
group, which s3dsl declares in pyproject.toml; until a release has it, this module stands in.

It is run at interpreter start by `s3dsl_lm_eval.pth`, which setup.py installs at the top of
site-packages: a `.pth` import line is a workaround, not an lm-eval API (see docs/lm-eval.md).
The `.pth` loads this file by path as `_s3dsl_lmeval_autoload`, not as
`s3dsl.integrations.lmeval_autoload`: importing it through the package would put the installed
`s3dsl` in `sys.modules` before the interpreter adds the working directory to `sys.path`, and a
source tree run from its own folder (a second checkout, benchmarks/mutants.py's mutated copy)
would then silently import the installed package instead of itself.
So that every other program pays nothing for it, it imports only the standard library and does
one thing: when `lm_eval.models` has run (lm-eval has just filled its model registry), it adds
s3dsl's own `lm_eval.models` entry points to that registry as lazy placeholders, the form
lm-eval's `Registry` already loads. s3dsl, torch and the model are imported only when
`--model s3dsl` is asked for. An lm-eval with native discovery (`load_plugins`) is left alone.
"""

from __future__ import annotations

import sys

WATCHED = "lm_eval.models"  # the module whose import registers lm-eval's own models
GROUP = "lm_eval.models"  # the entry-point group (upstream's name for it)
DISTRIBUTION = "s3dsl"


def own_entry_points() -> list:
    """s3dsl's entry points in the group (another package's are its own business)."""
    from importlib import metadata  # here, not at interpreter start: it costs ~10 ms

    return [ep for ep in metadata.entry_points(group=GROUP)
            if ep.dist is not None and _normal(ep.dist.name) == DISTRIBUTION]


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def register_entry_points() -> list[str]:
    """Add s3dsl's models to lm-eval's registry unless lm-eval discovers entry points itself;
    names lm-eval already has are kept. Returns the names added."""
    registry = sys.modules.get("lm_eval.api.registry")
    if registry is None or hasattr(registry, "load_plugins"):
        return []  # lm-eval discovers entry points itself
    if not hasattr(registry, "model_registry"):
        return []  # before 0.4.10 the registry held no lazy entries (the extra needs 0.4.10)
    added = []
    for ep in own_entry_points():
        if ep.name not in registry.model_registry:
            registry.model_registry.register(ep.name, target=ep)
            added.append(ep.name)
    return added


class _AfterImport:
    """A meta path finder that finds nothing itself: it wraps the real loader of `WATCHED` so that
    `register_entry_points` runs right after that module's body, then steps aside."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != WATCHED:
            return None
        import importlib.util

        if self in sys.meta_path:  # this finder, whichever copy of the module made it
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the finders after this one
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_body = spec.loader.exec_module

        def exec_module(module):
            run_body(module)
            try:
                register_entry_points()
            except Exception as err:  # noqa: BLE001 - never break lm-eval over s3dsl
                print(f"s3dsl: could not register with lm-eval ({err})", file=sys.stderr)

        spec.loader.exec_module = exec_module  # this module's own loader instance only
        return spec


_HOOK = _AfterImport()


def install() -> None:
    """Watch for lm-eval's models module (or register now if it is already imported)."""
    if WATCHED in sys.modules:
        register_entry_points()
    elif _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def uninstall() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


install()
