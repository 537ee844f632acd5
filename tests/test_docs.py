"""The docs cannot drift: docs/cli.md is what tools/cli_docs.py makes of the parsers, every
relative link of README.md and docs/*.md points to a file that exists (and, into a Markdown
page, to a heading it has), and the README stays the short front door."""

import importlib.util
import re
import unicodedata

from conftest import ROOT

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _cli_docs():
    spec = importlib.util.spec_from_file_location("cli_docs", ROOT / "tools" / "cli_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_reference_is_generated_from_the_parsers():
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert _cli_docs().render() == committed, (
        "docs/cli.md is out of date: run python tools/cli_docs.py and commit it")


def test_cli_reference_has_every_command():
    text = (ROOT / "docs" / "cli.md").read_text()
    for heading in ("## hwnas", "### hwnas search", "#### hwnas device add",
                    "#### hwnas supernet train", "### hwnas retrain"):
        assert f"\n{heading}\n" in text, heading
    assert "`--train-budget K`" in text


def _slug(heading: str) -> str:
    """Python-Markdown's toc slugify, as MkDocs uses it."""
    text = re.sub(r"<[^>]+>", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(m.group(1).strip()) for m in re.finditer(r"(?m)^#{1,6}\s+(.+?)\s*#*$", text)}


def _links(page):
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (http:, mailto:) or an anchor of the same page
        yield target


def test_relative_links_point_to_existing_files():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in _links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve()
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_readme_is_the_front_door():
    text = (ROOT / "README.md").read_text()
    assert text.count("\n") <= 250
    # what a newcomer needs without leaving the README: set-up, the Pi walkthrough and its steps
    for step in ("hwnas device add", "hwnas device check", "hwnas profile", "hwnas predictor",
                 "hwnas search", "hwnas retrain", "hwnas view", "hwnas demo"):
        assert step in text, step
    for page in ("docs/benchmarks.md", "docs/index.md", "docs/cli.md", "docs/pi.md"):
        assert f"]({page}" in text, page
