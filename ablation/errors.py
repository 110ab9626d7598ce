"""Errors a user can cause and fix; the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class AblationError(Exception):
    """Bad input: a config key, a value, a file or a directory, named in the message."""


class ConfigError(AblationError, ValueError):
    """A config or search-space value is invalid (message names the key path and allowed values)."""


class DataError(AblationError, FileNotFoundError):
    """A data set's files are missing or unreadable (message says where they were looked for)."""


class NonFiniteLossError(AblationError, FloatingPointError):
    """Training produced a NaN/inf loss (message names the epoch and step)."""
