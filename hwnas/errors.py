"""The one exception type the CLI turns into a one-line message and exit status 2."""

from __future__ import annotations


class HwnasError(Exception):
    """A user-facing error: bad input, unreachable device, impossible request.

    The message is one line that names the file/field/thing at fault.
    """

    exit_code = 2
