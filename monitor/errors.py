"""Errors that end a command with one clear line and exit status 2."""


class UserError(Exception):
    """Something the operator can fix: bad config, missing privilege, missing bpffs."""

    exit_code = 2


class ConfigError(UserError):
    """A config file or --set override that is not valid, with its file and dotted key."""
