"""YAML rules (Falco's shape) evaluated with rule-engine: see README "Rules"."""

from monitor.rules.alert import Alert
from monitor.rules.loader import RuleSources, check, load
from monitor.rules.problems import Problem, RulesError
from monitor.rules.ruleset import CompiledRule, RuleSet

__all__ = ["Alert", "CompiledRule", "Problem", "RuleSet", "RuleSources", "RulesError", "check", "load"]
