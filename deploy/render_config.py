"""Render a configuration template: every ``${NAME}`` is replaced by the environment variable NAME.

    python deploy/render_config.py prometheus/alertmanager.yml.tmpl /etc/alertmanager/alertmanager.yml

Only the ``${NAME}`` form is replaced (Alertmanager's own ``{{ … }}`` templates are left alone). A
variable that is not set stops the rendering with exit code 2 and the names of all missing
variables; an empty value is allowed. The output is written atomically. Used by the
``alertmanager-config`` service of deploy/docker-compose.yml; the same as ``envsubst`` but strict.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, env: Mapping[str, str]) -> str:
    missing = sorted({name for name in VARIABLE.findall(template) if name not in env})
    if missing:
        raise KeyError(", ".join(missing))
    return VARIABLE.sub(lambda m: env[m.group(1)], template)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: render_config.py TEMPLATE OUTPUT", file=sys.stderr)
        return 2
    source, target = Path(argv[0]), Path(argv[1])
    try:
        text = render(source.read_text(encoding="utf-8"), os.environ)
    except KeyError as exc:
        print(f"Error: {source}: environment variables not set: {exc.args[0]}", file=sys.stderr)
        return 2
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent, delete=False) as out:
        out.write(text)
    os.chmod(out.name, 0o644)  # read by Alertmanager's own user; the volume is private to the two containers
    os.replace(out.name, target)
    print(f"rendered {source} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
