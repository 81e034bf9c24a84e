"""Checks that a backend printed what examples/backends/README.md shows as its sample output.

Usage: python3 check_sample.py README.md BACKEND_OUTPUT_FILE "Sample output (Python"

The third argument is how the line before the sample block begins.

run.sh runs it on the output of both backends, so the README's sample cannot drift from what the
backends print. Fields that differ on every run are masked first: event ids (py-<uuid>,
js-<uuid>), call durations in microseconds, the sidecar's address and the backend's name. Exits 1
with a diff when they differ.
"""

import difflib
import re
import sys

def sample(readme: str, intro: str) -> str:
    """The text of the first fenced block after the line beginning with intro."""
    lines = readme.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(intro)), None)
    if start is None:
        raise SystemExit(f"no line beginning with {intro!r} in the README")
    fence = next(i for i in range(start, len(lines)) if lines[i].startswith("```"))
    end = next(i for i in range(fence + 1, len(lines)) if lines[i].startswith("```"))
    return "\n".join(lines[fence + 1 : end])


def normalise(text: str) -> list[str]:
    """The lines of text with what differs on every run masked."""
    rules = [
        (r"\b(py|js)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<event-id>"),
        (r" +\d+ us\b", " <n> us"),
        (r"127\.0\.0\.1:\d+", "<addr>"),
        (r"^(python|node) backend:", "<backend> backend:"),
    ]
    out = []
    for line in text.strip("\n").splitlines():
        for pattern, replacement in rules:
            line = re.sub(pattern, replacement, line)
        out.append(line.rstrip())
    return out


def main() -> int:
    readme_path, output_path, intro = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(readme_path, encoding="utf-8") as f:
        want = normalise(sample(f.read(), intro))
    with open(output_path, encoding="utf-8") as f:
        got = normalise(f.read())
    if want == got:
        print(f"{output_path}: matches the sample in {readme_path}")
        return 0
    print(f"{output_path} differs from the sample output in {readme_path} (masked: event ids, "
          "durations, addresses); update the README's sample:", file=sys.stderr)
    sys.stderr.writelines(line + "\n" for line in difflib.unified_diff(
        want, got, "README sample", "backend output", lineterm=""))
    return 1


if __name__ == "__main__":
    sys.exit(main())
