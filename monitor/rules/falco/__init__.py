"""Falco's rule language for ringwatch: parsed as libsinsp parses it, lowered to the rule engine."""
