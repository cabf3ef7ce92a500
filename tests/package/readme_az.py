#!/usr/bin/env python3
"""Every `az` command README.md gives, run with the real Azure CLI and no login.

    tests/package/readme_az.py AZ [README]

AZ is the `az` executable (tests/package/readme_az.sh installs the pinned azure-cli and passes
it). The commands are taken from the README's ```sh blocks automatically: each line that starts
with `az` (continuation lines joined) and each `$(az ...)` inside any line, so a command added
to the README is covered without touching this file. Each runs in bash, in an empty folder
with stand-ins for the files the README names (*.pem, *.pfx, *.zip), with the README's own
variable assignments and placeholders for variables set from other commands, with a fresh
config folder (no login, no telemetry, no extension installs) and no stdin. Each must fail
only with the CLI's "Please run 'az login'" error: an argument error (exit code 2,
"unrecognized arguments", "the following arguments are required", "not a valid value", ...)
means the README's command is wrong. Prints one line per command and a cargo-style
`test result:` line that scripts/test.sh adds to its total.
"""

import concurrent.futures
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

LOGIN_ERROR = "Please run 'az login'"
ARGUMENT_ERRORS = (
    "unrecognized arguments",
    "the following arguments are required",
    "invalid choice",
    "is not a valid value",
    "is misspelled or not recognized",
    "expected one argument",
    "usage error",
    "not allowed with argument",
)
# Stand-in for the output of a nested `$(az ...)`: the CLI validates values only after login,
# so any non-empty word will do.
NESTED_PLACEHOLDER = "/subscriptions/00000000-0000-0000-0000-000000000000/placeholder"


def blocks(readme):
    """The bodies of the ```sh / ```bash fences."""
    out, body, inside = [], [], False
    for line in readme.splitlines():
        fence = line.strip()
        if not inside and re.fullmatch(r"```(sh|bash|shell)", fence):
            inside, body = True, []
        elif inside and fence == "```":
            inside = False
            out.append(body)
        elif inside:
            body.append(line)
    return out


def logical_lines(body):
    """Lines with backslash continuations joined and comments dropped."""
    out, current = [], ""
    for raw in body:
        line = raw.rstrip()
        if not current and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            out.append(current.strip())
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


def substitutions(line):
    """The texts inside each top-level or nested `$( ... )`, outermost first."""
    found, i = [], 0
    while True:
        start = line.find("$(", i)
        if start < 0:
            return found
        depth, j = 0, start + 1
        while j < len(line):
            if line[j] == "(":
                depth += 1
            elif line[j] == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        inner = line[start + 2 : j]
        found.append(inner)
        found.extend(substitutions(inner))
        i = j + 1


def replace_nested_az(command):
    """`command` with every `$(az ...)` inside it replaced by a placeholder word."""
    for inner in substitutions(command):
        if inner.lstrip().startswith("az "):
            command = command.replace("$(" + inner + ")", NESTED_PLACEHOLDER)
    return command


def extract(readme):
    """(commands, assignments): every az invocation, and the plain variable assignments."""
    commands, assignments, assigned_from_commands = [], [], set()
    for body in blocks(readme):
        for line in logical_lines(body):
            if line.startswith("az "):
                commands.append(line)
            for inner in substitutions(line):
                if inner.lstrip().startswith("az "):
                    commands.append(inner.strip())
            m = re.match(r"^([A-Z_][A-Z0-9_]*)=\$\(", line)
            if m:
                assigned_from_commands.add(m.group(1))
            elif re.match(r"^([A-Z_][A-Z0-9_]*=\S+\s*)+$", line):
                assignments.append(line)
    unique = list(dict.fromkeys(commands))
    return unique, assignments, sorted(assigned_from_commands)


def make_stand_ins(commands, folder):
    """Creates every relative *.pem / *.pfx / *.zip path the commands name."""
    for command in commands:
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        for word in words:
            for token in re.split(r"[\s\"'=]", word):
                if re.search(r"\.(pem|pfx|p12|zip)$", token) and not token.startswith(("/", "$")):
                    path = os.path.join(folder, token)
                    if os.path.exists(path):
                        continue
                    os.makedirs(os.path.dirname(path) or folder, exist_ok=True)
                    key = os.path.join(folder, "stand-in.key")
                    if token.endswith(".pem"):
                        subprocess.run(
                            ["openssl", "req", "-x509", "-newkey", "ec",
                             "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                             "-out", path, "-subj", "/CN=stand-in", "-days", "1"],
                            check=True, capture_output=True)
                    elif token.endswith((".pfx", ".p12")):
                        pem = os.path.join(folder, "stand-in.pem")
                        subprocess.run(
                            ["openssl", "req", "-x509", "-newkey", "ec",
                             "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                             "-out", pem, "-subj", "/CN=stand-in", "-days", "1"],
                            check=True, capture_output=True)
                        subprocess.run(
                            ["openssl", "pkcs12", "-export", "-in", pem, "-inkey", key,
                             "-out", path, "-passout", "pass:"],
                            check=True, capture_output=True)
                    else:
                        import zipfile
                        with zipfile.ZipFile(path, "w") as z:
                            z.writestr("host.json", "{}")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    az = os.path.abspath(sys.argv[1])
    readme_path = sys.argv[2] if len(sys.argv) > 2 else "README.md"
    with open(readme_path, encoding="utf-8") as f:
        commands, assignments, from_commands = extract(f.read())

    started = time.monotonic()
    passed = failed = 0
    print(f"{len(commands)} az commands in {readme_path}")
    if len(commands) < 15:
        print(f"test readme_az::the_readme_gives_its_az_commands ... FAILED: "
              f"found {len(commands)}, expected at least 15 (did the extraction break?)")
        failed += 1

    with tempfile.TemporaryDirectory(prefix="readme-az-") as work:
        config = os.path.join(work, ".azure")
        os.makedirs(config)
        folder = os.path.join(work, "app")
        os.makedirs(folder)
        make_stand_ins(commands, folder)
        bin_dir = os.path.dirname(az)
        env = {
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": work,
            "LANG": "C.UTF-8",
            "AZURE_CONFIG_DIR": config,
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
            "AZURE_CORE_NO_COLOR": "true",
            "AZURE_CORE_SURVEY_MESSAGE": "false",
            "AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",
            "AZURE_CORE_DISABLE_CONFIRM_PROMPT": "true",
        }
        preamble = "".join(f"{a}\n" for a in assignments)
        preamble += "".join(f"{v}={shlex.quote(NESTED_PLACEHOLDER)}\n" for v in from_commands)
        def run(numbered):
            n, command = numbered
            words = []
            for w in command.split()[1:]:
                if not re.fullmatch(r"[a-z][a-z0-9-]*", w):
                    break
                words.append(w)
            label = f"readme_az::{n:02d}_" + ("_".join(words).replace("-", "_") or "az")
            script = preamble + "set -u\n" + replace_nested_az(command) + "\n"
            # A config folder of its own: two CLIs writing one profile race.
            own = dict(env, AZURE_CONFIG_DIR=os.path.join(config, f"{n:02d}"))
            os.makedirs(own["AZURE_CONFIG_DIR"])
            try:
                r = subprocess.run(["bash", "-c", script], cwd=folder, env=own,
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                   timeout=120)
                code, output = r.returncode, r.stdout + r.stderr
            except subprocess.TimeoutExpired:
                code, output = None, "timed out after 120 s"
            problems = []
            if code == 0:
                problems.append("succeeded without a login")
            if code == 2:
                problems.append("exit code 2 (argument error)")
            if code is None:
                problems.append(output)
            for phrase in ARGUMENT_ERRORS:
                if phrase in output:
                    problems.append(f"said '{phrase}'")
            # `az login` itself is the one command that cannot ask for a login: offline it
            # fails reaching Microsoft Entra; only its arguments are checked.
            if LOGIN_ERROR not in output and words[:1] != ["login"]:
                problems.append("did not ask for 'az login'")
            return label, command, problems, output

        # Two at a time: each `az` start is a second or two of Python imports.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for label, command, problems, output in pool.map(run, enumerate(commands, 1)):
                if problems:
                    failed += 1
                    print(f"test {label} ... FAILED: {'; '.join(problems)}")
                    print(f"    command: {command}")
                    for line in output.strip().splitlines()[-8:]:
                        print(f"    | {line}")
                else:
                    passed += 1
                    print(f"test {label} ... ok")

    status = "ok" if failed == 0 else "FAILED"
    print(f"\ntest result: {status}. {passed} passed; {failed} failed; 0 ignored; 0 measured; "
          f"0 filtered out; finished in {time.monotonic() - started:.0f}s")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
