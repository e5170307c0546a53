"""The layout of tests/ (see CONTRIBUTING.md): folders mirror the package, helpers come from tests.helpers,
and every test file or test the docs and scripts name exists."""

from __future__ import annotations

import re

from tests.helpers import ROOT

TESTS = ROOT / "tests"
# the files that name tests by path (CI, the GPU check, the contributor guide, the benchmark notes)
NAMING = ["README.md", "CONTRIBUTING.md", "benchmarks/README.md", ".ci/run", *sorted(ROOT.glob("scripts/*.sh"))]
NOT_YET_WRITTEN = {"tests/methods/test_dora.py"}  # CONTRIBUTING's worked example of adding a method
TEST_PATH = re.compile(r"tests/[\w/]+\.py(?:::\w+)?")


def test_every_test_folder_mirrors_a_package_folder():
    folders = [p for p in TESTS.iterdir() if p.is_dir() and any(p.glob("test_*.py"))]
    assert folders, "no test folder found"
    for folder in folders:
        assert (ROOT / "src" / "samora" / folder.name / "__init__.py").is_file(), (
            f"tests/{folder.name}/ matches no package folder src/samora/{folder.name}/: put its tests in the"
            " folder of the package they test, or at the top of tests/ for the adapter library"
        )
        assert (folder / "__init__.py").is_file(), f"tests/{folder.name}/ needs an __init__.py (tests/ is a package)"


def test_helpers_come_from_tests_helpers_and_no_test_imports_a_conftest():
    importing = [
        str(path.relative_to(ROOT))
        for path in sorted(TESTS.rglob("*.py"))
        if re.search(r"^\s*(from|import) (tests\.)?conftest\b", path.read_text(encoding="utf-8"), flags=re.M)
    ]
    assert importing == [], "move plain helpers to tests/helpers.py; fixtures need no import"


def test_every_test_path_the_docs_and_scripts_name_exists():
    named = {
        (str(source), match)
        for source in NAMING
        for match in TEST_PATH.findall((ROOT / source).read_text(encoding="utf-8"))
    }
    assert any("tests/test_contract.py" in match for _, match in named)  # the pattern finds paths at all
    for source, match in sorted(named):
        path, _, test = match.partition("::")
        if path in NOT_YET_WRITTEN:
            continue
        assert (ROOT / path).is_file(), f"{source} names {path}, which does not exist"
        if test:
            assert f"def {test}(" in (ROOT / path).read_text(encoding="utf-8"), f"{source} names {match}"
