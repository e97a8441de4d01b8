"""`pip check` for the project's virtualenv, less the one gap the lock leaves on purpose.

The lock drops timm, which unstructured-inference requires only for layout models this product
never loads, and installs OpenCV as opencv-python-headless where unstructured-inference names
opencv-python (packaging/lock/overrides.txt says why). pip check reports those two lines; any
other line is a real inconsistency and fails the check.
"""

from __future__ import annotations

import subprocess
import sys

EXPECTED = {
    "unstructured-inference 1.6.14 requires timm, which is not installed.",
    # The same cv2 is installed as opencv-python-headless (no X11 or OpenGL needed).
    "unstructured-inference 1.6.14 requires opencv-python, which is not installed.",
}


def main() -> int:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = {line.strip() for line in result.stdout.splitlines() if line.strip()}
    problems = sorted(lines - EXPECTED - {"No broken requirements found."})
    if problems:
        print("pip check found requirements the lock does not explain:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(
        "pip check: consistent (timm and opencv-python left out on purpose: see lock/overrides.txt)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
