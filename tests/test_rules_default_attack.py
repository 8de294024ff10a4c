"""The default rules' ATT&CK tagging, and README's table of the techniques they cover."""

from __future__ import annotations

import re

import yaml

from tests.monitor_proc import REPO

DEFAULT_RULES = REPO / "rules" / "default.yaml"
TECHNIQUE = re.compile(r"^(T\d{4}(\.\d{3})?|TA\d{4})$")


def _rules() -> list[dict[str, object]]:
    return [item for item in yaml.safe_load(DEFAULT_RULES.read_text()) if "rule" in item]


def test_every_default_rule_has_a_tactic_and_a_technique() -> None:
    for rule in _rules():
        tags = [str(t) for t in rule["tags"]]  # type: ignore[attr-defined]
        assert any(t.startswith("mitre_") for t in tags), rule["rule"]
        assert any(TECHNIQUE.match(t) for t in tags), rule["rule"]


def test_readme_lists_every_technique_and_rule() -> None:
    """README's ATT&CK table: one row per technique, naming the rules tagged with it."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## ATT&CK coverage", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and TECHNIQUE.match(cells[0]):
            rows[cells[0]] = cells[1]
    for rule in _rules():
        for tag in rule["tags"]:  # type: ignore[attr-defined]
            if TECHNIQUE.match(str(tag)) and not str(tag).startswith("TA"):
                assert str(tag) in rows, f"{tag} ({rule['rule']}) missing from README"
                assert str(rule["rule"]) in rows[str(tag)], f"{rule['rule']} missing from {tag}'s row"
