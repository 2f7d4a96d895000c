"""The one exception type for mistakes a user can make.

The CLI prints its message as a single line and exits with status 2, so every
message names the bad value and what would have been valid.
"""


class PreimageError(ValueError):
    """A bad model, layer, channel, weights file, target, image or setting."""


def suggest(value, valid, limit=12):
    """'valid: a, b, c' with the closest matches first, for error messages."""
    import difflib

    valid = list(valid)
    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=5, cutoff=0.5)
    rest = [str(v) for v in valid if str(v) not in close]
    shown = close + rest[: max(0, limit - len(close))]
    more = len(valid) - len(shown)
    text = ", ".join(shown)
    if more > 0:
        text += f", ... ({more} more)"
    return text
