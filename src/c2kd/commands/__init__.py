"""The commands: the top layer. Each module turns one area's library code into ``c2kd`` commands (typer
options, messages, exit codes) and has a ``register(app)`` function; nothing below imports from here.
Heavy imports stay inside the command functions, so that ``c2kd --help`` starts fast."""
