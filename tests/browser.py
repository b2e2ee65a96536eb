"""The browser the tests drive: Debian's chromium by default (`./run install` installs it), or
the one PAYCTL_BROWSER names (GitHub's ubuntu-24.04 runners ship Google Chrome, while their
`chromium` package is a snap wrapper that does not run there)."""

from __future__ import annotations

import os
import shutil

BROWSER = os.environ.get("PAYCTL_BROWSER") or shutil.which("chromium") or "/usr/bin/chromium"
