"""The one exception type user-facing code raises for bad input; the CLI prints it as one line."""


class UniqaError(ValueError):
    """Bad input (config, file, column, value). The message names the bad value and, where known,
    the valid options. The CLI prints it as ``error: <message>`` and exits 2, never a traceback."""
