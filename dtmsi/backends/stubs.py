"""Stub backends: each partition's plan rendered through the Jinja2 templates in
templates/c/ and templates/python/ into ``<stem>.h``, ``<stem>.c`` and ``<stem>.py``.

The templates get a :class:`~dtmsi.stubs.views.StubView` and only place its
strings (StrictUndefined: a misspelt field is an error, not an empty string);
every file is streamed into its staged output as it is rendered.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dtmsi.artifacts import Outputs
from dtmsi.diagnostics import DiagnosticSink
from dtmsi.resources import data_dir
from dtmsi.stubs.plan import StubPlan
from dtmsi.stubs.views import Sections, StubView

if TYPE_CHECKING:  # imported when a stub is rendered: a compile without stubs never needs Jinja
    import jinja2

# Output kinds a compile can be asked for (``--emit``) and the templates behind them.
STUB_FILES: dict[str, tuple[tuple[str, str], ...]] = {
    "c": (("c/msi.h.j2", ".h"), ("c/msi.c.j2", ".c")),
    "python": (("python/msi.py.j2", ".py"),),
}


@functools.cache
def fragment(name: str) -> str:
    """A template fragment that is code, not a template (the engines, the
    Python types): placed verbatim, with only ``{{ p }}``/``{{ P }}`` (the
    symbol prefixes) substituted. Jinja would lex ~2,500 lines of C and
    Python on every compile for those two names."""
    return (data_dir("templates") / name).read_text(encoding="utf-8")


def placed(name: str, prefix: str) -> str:
    return fragment(name).replace("{{ p }}", prefix).replace("{{ P }}", prefix.upper())


@functools.cache
def environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """The templates' compiled code, kept in dtmsi's cache: Jinja would
    otherwise compile them on every run (a tenth of a small compile)."""
    import jinja2

    from dtmsi import cache

    where = cache.directory()
    if where is None:
        return None
    templates = where / f"templates-jinja{jinja2.__version__}"
    try:
        templates.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(templates))


def render(plans: Sequence[StubPlan], languages: Sequence[str], outputs: Outputs, sink: DiagnosticSink) -> None:
    """Every plan's files in ``languages``. Every plan's functions are walked,
    whatever the languages: that is where their names are checked (E204);
    after an error nothing more is rendered."""
    for plan in plans:
        with Sections(plan, languages, sink) as sections:
            if sink.has_errors:
                continue
            view = StubView(plan, sections)
            context = {
                "plan": view,
                "sections": sections,
                "p": view.prefix,
                "P": view.upper,
                "engine_c": placed("c/engine.c.in", view.prefix),
                "engine_py": placed("python/engine.py.in", view.prefix),
                "types_py": placed("python/types.py.in", view.prefix),
            }
            for lang in languages:
                for template, suffix in STUB_FILES[lang]:
                    with outputs.open(plan.stem + suffix) as fh:
                        for chunk in environment().get_template(template).generate(context):
                            fh.write(chunk.encode("utf-8"))
