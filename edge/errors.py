"""Errors a station engineer can act on: one line, naming the file, the key and what was expected."""


class InputError(Exception):
    """Bad input from the user (config, model, image, URI). The CLI prints it on one line, exit 2."""

    def __init__(self, where: str, key: str | None, message: str):
        self.where, self.key, self.message = where, key, message
        super().__init__(self.line())

    def line(self) -> str:
        key = f" {self.key}:" if self.key else ""
        return f"{self.where}:{key} {self.message}"


class SourceError(Exception):
    """A frame source failed at run time (camera gone, unreadable file)."""
