"""The harness's small exception tree; each says what the user must do."""

from __future__ import annotations


class HarnessError(Exception):
    """A run could not be made (exit code 2): the message says what to fix."""

    exit_code = 2


class StackError(HarnessError):
    """The stack could not be started, checked or stopped."""


class FaultError(HarnessError):
    """Toxiproxy refused or could not be reached."""
