"""Rendering the notebook reports: papermill execution → HTML without code → reports/<kind>/<name>.html.

The executed notebook is kept beside the HTML (``<name>.ipynb``). A failed run still writes the
executed notebook, with the error in it, and raises :class:`errors.ReportFailed`; no HTML is written
then, so a broken report is never sent.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from ccanalytics.core import clock, rutext, timeutil
from ccanalytics.core.errors import ConfigError, InvalidArgument, ReportFailed

# kind -> (notebook, Russian title)
KINDS: dict[str, tuple[str, str]] = {
    "daily": ("daily_report.ipynb", "Ежедневный отчёт колл-центра"),
    "problems": ("problem_calls.ipynb", "Разбор проблемных звонков"),
    "ab": ("ab_test_readout.ipynb", "Результаты A/B-теста"),
    "cost": ("cost_review.ipynb", "Обзор стоимости звонков"),
    "weekly": ("weekly_summary.ipynb", "Недельная сводка колл-центра"),
}
EXECUTION_TIMEOUT_S = 600
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.@-]+")
_ENV_LOCK = threading.Lock()

_PAGE = """<!DOCTYPE html>
<html lang="ru"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Roboto, Arial, sans-serif; max-width: 1000px; margin: 16px auto;
       padding: 0 12px; color: #212121; }}
h1 {{ font-size: 24px; }} h2 {{ font-size: 19px; margin-top: 28px; border-bottom: 1px solid #e0e0e0; }}
img {{ max-width: 100%; height: auto; }} a {{ color: #1565c0; }}
.jp-OutputPrompt, .jp-InputPrompt, .prompt {{ display: none; }}
pre {{ white-space: pre-wrap; background: #fafafa; padding: 6px; }}
</style></head>
<body>
{body}
<p style="color:#9e9e9e;font-size:11px;margin-top:32px">{kind} · сформировано {generated} (время — Киев)</p>
</body></html>
"""


@dataclass(frozen=True)
class Rendered:
    kind: str
    name: str
    html_path: Path
    notebook_path: Path
    seconds: float

    @property
    def html_bytes(self) -> int:
        return self.html_path.stat().st_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "html": str(self.html_path),
            "notebook": str(self.notebook_path),
            "seconds": round(self.seconds, 2),
            "html_bytes": self.html_bytes,
        }


def notebooks_dir() -> Path:
    """The ``notebooks/`` directory: beside the package in a checkout, or packaged as
    ``ccanalytics/notebooks`` in a wheel."""
    here = Path(__file__).resolve().parents[1]  # the ccanalytics package
    for candidate in (here.parent / "notebooks", here / "notebooks"):
        if (candidate / KINDS["daily"][0]).is_file():
            return candidate
    raise ConfigError(f"cannot find the notebooks/ directory next to {here}")


def notebook_source(kind: str) -> Path:
    """The notebook of a report kind."""
    if kind not in KINDS:
        raise InvalidArgument(f"unknown report kind {kind!r}; one of: {', '.join(KINDS)}")
    path = notebooks_dir() / KINDS[kind][0]
    if not path.is_file():
        raise ConfigError(f"notebook {path} is missing from the installation")
    return path


def render(
    kind: str,
    name: str,
    parameters: Mapping[str, Any],
    out_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: int = EXECUTION_TIMEOUT_S,
    title: str | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    folder: str | None = None,
) -> Rendered:
    """Execute the ``kind`` notebook with ``parameters`` and write ``<out_dir>/<kind>/<name>.html``
    and ``.ipynb`` (``<out_dir>/<kind>/<folder>/…`` with ``folder``, e.g. a tenant's own reports).
    ``env`` adds environment variables for the notebook's kernel (e.g. the database URL the caller
    uses), never written into the notebook. ``title``: the page's title (default: the kind's title and
    the name); ``tz``: the business time zone of the footer's time."""
    import papermill  # lazy: papermill

    source = notebook_source(kind)
    name = _SAFE_NAME.sub("_", name).strip("._") or kind  # a file name: never a path
    target = Path(out_dir) / kind
    if folder:
        target /= _SAFE_NAME.sub("_", folder).strip("._") or "_"  # one folder: never a path
    target.mkdir(parents=True, exist_ok=True)
    notebook_path = target / f"{name}.ipynb"
    html_path = target / f"{name}.html"
    started = time.perf_counter()
    with _ENV_LOCK:  # the kernel inherits os.environ: one render at a time may change it (scheduler threads)
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            papermill.execute_notebook(
                str(source),
                str(notebook_path),
                parameters=dict(parameters),
                kernel_name="python3",
                cwd=str(source.parent),
                progress_bar=False,
                log_output=False,
                request_save_on_cell_execute=False,
                execution_timeout=timeout_s,
            )
        except Exception as exc:  # noqa: BLE001 — papermill's execution error or a dead kernel: the notebook says which
            raise ReportFailed(kind, notebook_path, _error_summary(notebook_path, exc)) from None
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    html = to_html(notebook_path, title=title or f"{KINDS[kind][1]} — {name}", kind=kind, tz=tz)
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(html_path)
    return Rendered(kind, name, html_path, notebook_path, time.perf_counter() - started)


def to_html(notebook_path: Path, *, title: str, kind: str, tz: str = timeutil.DEFAULT_TZ) -> str:
    """The executed notebook as a standalone HTML page without code cells or prompts; its footer names
    the report in Russian and when it was made, in the business time zone ``tz``."""
    import nbformat  # lazy: nbformat
    from nbconvert import HTMLExporter  # lazy: nbconvert

    nb = nbformat.read(str(notebook_path), as_version=4)
    nb.cells = [
        c
        for c in nb.cells
        if "parameters" not in c.metadata.get("tags", []) and "injected-parameters" not in c.metadata.get("tags", [])
    ]
    exporter = HTMLExporter(template_name="basic")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    generated = rutext.datetime_(clock.now().astimezone(timeutil.zone(tz)))
    label = KINDS[kind][1] if kind in KINDS else "Отчёт"
    return _PAGE.format(title=escape(title), body=body, kind=escape(label), generated=escape(generated))


def _error_summary(notebook_path: Path, exc: Exception) -> str:
    """The first error recorded in the executed notebook (ename: evalue), else the exception."""
    try:
        nb = json.loads(notebook_path.read_text(encoding="utf-8"))
        for cell in nb.get("cells", []):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    return f"{out.get('ename')}: {out.get('evalue')}"
    except (OSError, ValueError):
        pass
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
