"""Repeated options read in one pass, before argparse sees the rest.

argparse looks for the next option among the indexes of every option at
each option it meets: quadratic in their number, so 1,000 ``-q`` cost it
~35 ms, the whole growth of a 1,000-queue check (docs/performance.md).
"""

import argparse


def gather_repeated(actions, args):
    """(args for argparse, {action: [values after the first]}).

    The first occurrence of each repeatable single-value option (-q,
    --expect) stays for argparse, which so still judges it (its
    mutually exclusive group, a usage error); the later ones are taken out
    here, converted by the option's type and checked against its choices.
    Any form not read exactly as argparse would (an abbreviation, a missing
    or dash-led value, combined short flags, a value its type or choices
    refuse) leaves everything to argparse, errors included.
    """
    strings = {}
    for action in actions:
        if isinstance(action, argparse._AppendAction) and action.nargs is None:
            strings.update((option, action) for option in action.option_strings)
    gathered, rest, index = {}, [], 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        start = index
        option, _, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        action = strings.get(option)
        if action is None and arg[:2] in strings and not arg.startswith("--"):
            action, value = strings[arg[:2]], arg[2:]  # -qNAME
        elif action is not None and "=" not in arg:
            index += 1
            if index >= len(args) or args[index].startswith("-"):
                return args, {}
            value = args[index]
        elif action is None and arg.startswith("--") and any(
                s.startswith(option) for s in strings):
            return args, {}  # an abbreviation: argparse decides
        index += 1
        if action is None:
            rest.append(arg)
        elif action not in gathered:
            gathered[action] = []
            rest += args[start:index]  # the first: argparse's
        else:
            try:
                value = action.type(value) if action.type else value
            except Exception:
                return args, {}
            if action.choices is not None and value not in action.choices:
                return args, {}
            gathered[action].append(value)
    return rest, gathered


def parse(parser, parse_args, args, namespace=None):
    """``parse_args`` (argparse's) on ``args`` with the repeats gathered,
    their values appended after the first in the order given."""
    rest, gathered = gather_repeated(parser._actions, args)
    parsed = parse_args(rest, namespace)
    for action, values in gathered.items():
        first = getattr(parsed, action.dest, None)
        if not isinstance(first, list) or len(first) != 1:
            return parse_args(args, namespace)  # e.g. -vqNAME: argparse read more
        setattr(parsed, action.dest, first + values)
    return parsed
