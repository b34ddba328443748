"""The repository stands on its own: a clone anywhere sets up, runs, tests and benchmarks with nothing beside it."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests import confine
from tests.helpers import REPO

#: spelled in pieces so that this file does not match itself
SIBLING_REFERENCES = re.compile("|".join((
    re.escape("../" + "shared"),             # the reference shelf the project was first written beside
    "ABOOK" + "_SHARED",                     # the variable that used to point there
    r"\bREPO\.parent\b",                     # Python: a path built from the clone's parent
    r"\$\{?(ROOT|HERE)\}?/\.\.(/\.\.)?/",    # shell: $ROOT/../x, $HERE/../../x
)))


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


#: the two files that name the ways out in order to refuse them
GUARDS = frozenset({"tests/confine.py", "tests/test_standalone.py"})


def test_no_tracked_file_points_outside_the_repository() -> None:
    offenders = []
    for rel in sorted(set(tracked_files()) - GUARDS):
        try:
            text = (REPO / rel).read_text("utf-8")
        except (UnicodeDecodeError, IsADirectoryError):
            continue  # binary corpora and pictures
        for n, line in enumerate(text.splitlines(), 1):
            if SIBLING_REFERENCES.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "tracked files point outside the repository:\n" + "\n".join(offenders)


def test_the_pattern_catches_each_way_out() -> None:
    """The check above is only as good as its pattern: each spelling that once broke a clone is caught."""
    for line in ("see ../" + "shared/SPEC.md", "KIT=${ABOOK" + "_SHARED:-x}", 'CORPUS = REPO.parent / "x"',
                 'python3 "$ROOT/../x/gen.py"', 'bash "${HERE}/../../kit/run.sh"'):
        assert SIBLING_REFERENCES.search(line), line
    for line in ('REPO / "bench" / "gen_directory.py"', 'python3 "$HERE/gen_directory.py"', "cd ..", "a/../b"):
        assert not SIBLING_REFERENCES.search(line), line


@pytest.mark.skipif(not confine.ACTIVE, reason="the clone sits in a shared root: its siblings are not ours")
def test_reading_beside_the_repository_is_refused(tmp_path) -> None:
    """The audit hook refuses a path beside the clone, and records it so the session fails even if swallowed."""
    sibling = REPO.parent / ("not-" + REPO.name)
    before = len(confine.violations)
    with pytest.raises(confine.OutsideRepository):
        open(sibling / "SPEC.md")
    with pytest.raises(confine.OutsideRepository):
        subprocess.run(["cat", str(sibling / "x")])
    assert confine.violations[before:] == [str(sibling / "SPEC.md"), str(sibling / "x")]
    del confine.violations[before:]  # refused on purpose: not a failure of the session
    open(REPO / "README.md").close()   # inside: allowed
    (tmp_path / "f").write_text("x")   # elsewhere: allowed
