#!/usr/bin/env python3
"""Writes enforcer(8) in roff from the command definitions themselves.

    enforcer --experimental-dump-help | python3 scripts/manpage.py dist/enforcer.8.extra VERSION > enforcer.8

The NAME, SYNOPSIS, DESCRIPTION and COMMANDS sections come from the JSON that the argument
parser dumps (every command's abstract, discussion and options), so the page cannot drift
from the binary; the hand-written sections in the extra file (EXAMPLES, FILES, EXIT STATUS,
SEE ALSO) follow them as they are.
"""
import json
import sys


def roff(text):
    """Text as roff reads it: a leading dot or quote escaped, backslashes doubled."""
    lines = []
    for line in text.replace("\\", "\\e").split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def flag_names(argument):
    names = []
    for name in argument.get("names", []):
        names.append(("-" if name["kind"] == "short" else "--") + name["name"])
    return names


def describe_arguments(arguments):
    out = []
    for argument in arguments:
        if not argument.get("shouldDisplay", True):
            continue
        names = flag_names(argument)
        if names and names[-1] in ("--help", "--version"):
            continue
        value = argument.get("valueName", "")
        if argument["kind"] == "positional":
            head = "\\fI" + value.upper() + "\\fR"
        elif argument["kind"] == "option":
            head = ", ".join("\\fB" + roff(n) + "\\fR" for n in names) + " \\fI" + value.upper() + "\\fR"
        else:
            head = ", ".join("\\fB" + roff(n) + "\\fR" for n in names)
        out.append(".TP\n" + head + "\n" + roff(argument.get("abstract", "")))
        if argument.get("discussion"):
            out.append(roff(argument["discussion"]))
    return out


def commands(command, path):
    """Every command under `command`, depth first, with its full name."""
    for sub in command.get("subcommands", []):
        if sub["commandName"] == "help" or not sub.get("shouldDisplay", True):
            continue
        full = path + [sub["commandName"]]
        yield full, sub
        yield from commands(sub, full)


def main():
    extra_path, version = sys.argv[1], sys.argv[2]
    root = json.load(sys.stdin)["command"]
    page = [
        '.TH ENFORCER 8 "" "enforcer %s" "System Administration"' % roff(version),
        ".SH NAME",
        "enforcer \\- " + roff(root["abstract"]),
        ".SH SYNOPSIS",
        "\\fBenforcer\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        roff(root.get("discussion", "")),
        ".SH COMMANDS",
    ]
    for path, command in commands(root, []):
        if command.get("subcommands"):
            page.append(".SS " + roff(" ".join(["enforcer"] + path)) + " \\fICOMMAND\\fR")
            page.append(roff(command.get("abstract", "")))
            continue
        page.append(".SS " + roff(" ".join(["enforcer"] + path)))
        page.append(roff(command.get("abstract", "")))
        if command.get("discussion"):
            page.append(".PP\n" + roff(command["discussion"]))
        page.extend(describe_arguments(command.get("arguments", [])))
    with open(extra_path, encoding="utf-8") as extra:
        page.append(extra.read().rstrip("\n"))
    print("\n".join(page))


main()
