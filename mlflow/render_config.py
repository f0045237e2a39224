"""Render a config template from the environment: ``render_config.py TEMPLATE OUTPUT``.

``${NAME}`` becomes the variable's value and ``${NAME|url}`` its URL-encoded value (for
passwords inside database URIs). A missing or empty variable is an error, so a forgotten
secret stops the start instead of producing a half-configured server. ``%`` is doubled
because MLflow reads the file with configparser, whose interpolation treats ``%`` specially.
The output is written with mode 0600: it holds the database password.
"""

from __future__ import annotations

import os
import re
import sys
from urllib.parse import quote

PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(\|url)?\}")


def render(text: str, environ: dict[str, str]) -> str:
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name, filter_ = match.group(1), match.group(2)
        value = environ.get(name, "")
        if not value:
            missing.append(name)
            return ""
        if filter_:
            value = quote(value, safe="")
        return value.replace("%", "%%")

    # Comment lines may mention placeholders as documentation; render only the settings.
    out = [
        line if line.lstrip().startswith("#") else PLACEHOLDER.sub(substitute, line)
        for line in text.splitlines(keepends=True)
    ]
    if missing:
        raise SystemExit(
            f"render_config: unset or empty variables: {', '.join(sorted(set(missing)))}"
        )
    return "".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: render_config.py TEMPLATE OUTPUT", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        rendered = render(f.read(), dict(os.environ))
    fd = os.open(argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
