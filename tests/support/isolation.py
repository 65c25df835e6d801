"""What importing a module drags in: the SDK and its adapters talk HTTP only, so importing
them must load nothing of the server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable


def import_in_fresh_process(
    modules: Iterable[str], forbidden: Iterable[str]
) -> subprocess.CompletedProcess[str]:
    """Import ``modules`` in a fresh interpreter, which prints the sorted list of the
    ``forbidden`` top-level packages that were loaded (``[]`` for none)."""
    code = "\n".join(
        [
            "import sys",
            *(f"import {module}" for module in modules),
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(forbidden)!r}))",
        ]
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
