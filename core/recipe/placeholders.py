"""Placeholders in `launch.argv` / `launch.args`: the one grammar both validation and rendering use.

`str.format` would walk attributes and indexes (`{python.__class__.__mro__}`) and crash on
`{run_dir.foo}`, so text is parsed here instead: `{name}` with a name from PLACEHOLDERS expands,
`{{` and `}}` are literal braces, anything else is an error. The set lives in the recipe layer so
the validator can check a recipe without importing the launch layer that fills the values.
"""

from __future__ import annotations

PLACEHOLDERS: frozenset[str] = frozenset({
    "ds_config", "run_dir", "output_dir", "master_port", "nproc", "python", "recipe_dir", "run_id",
    "visible_devices",
})

# Which launch field each backend fills with placeholders; the other backends never read them.
FILLED_FIELD: dict[str, str] = {"command": "argv", "deepspeed": "args", "torchrun": "args"}


class PlaceholderError(ValueError):
    """Text that is not literal characters and known `{name}`s; the message is user-facing."""


def parse(text: str) -> list[tuple[bool, str]]:
    """The text as (is_placeholder, literal text or placeholder name) pieces, in order."""
    pieces: list[tuple[bool, str]] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "{" and text.startswith("{{", i) or c == "}" and text.startswith("}}", i):
            literal.append(c)
            i += 2
        elif c == "{":
            end = text.find("}", i + 1)
            if end == -1:
                raise PlaceholderError(f"unbalanced '{{' in {text!r} (write '{{{{' for a literal brace)")
            name = text[i + 1:end]
            if name not in PLACEHOLDERS:
                raise PlaceholderError(f"unknown placeholder {text[i:end + 1]!r}")
            if literal:
                pieces.append((False, "".join(literal)))
                literal = []
            pieces.append((True, name))
            i = end + 1
        elif c == "}":
            raise PlaceholderError(f"unbalanced '}}' in {text!r} (write '}}}}' for a literal brace)")
        else:
            literal.append(c)
            i += 1
    if literal:
        pieces.append((False, "".join(literal)))
    return pieces


def check(text: str) -> str | None:
    """The problem with this text as a placeholder template, or None."""
    try:
        parse(text)
    except PlaceholderError as exc:
        return str(exc)
    return None


def fill(text: str, values: dict[str, str]) -> str:
    return "".join(values[part] if is_name else part for is_name, part in parse(text))


def template_problems(backend: str, argv: list[str] | None, args: list[str]) -> list[tuple[str, int, str, str]]:
    """(field, index, text, problem) for each bad template in the field this backend fills."""
    field = FILLED_FIELD.get(backend)
    if field is None:
        return []
    items = (argv or []) if field == "argv" else args
    return [(field, i, text, msg) for i, text in enumerate(items) if (msg := check(text)) is not None]
