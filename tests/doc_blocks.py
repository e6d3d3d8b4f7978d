"""The code blocks of the README and of the documentation pages, and a shell session that runs them as a user
would (used by tests/test_doc_blocks.py).

The pages, in the order a reader meets them (:func:`doc_pages`): README.md, then every page of mkdocs.yml's nav
in nav order (a page of docs/, or a repository file the site includes: docs/hooks/included_pages.py).

A block is a fenced ```bash or ```python block. An HTML comment on the line right above the fence changes how the
test treats it (the pages show these comments only in their source):

- ``<!-- readme-test: skip CATEGORY: why -->``: not run. CATEGORY is one of :data:`SKIP_CATEGORIES` (the Quick
  start itself, which CI runs and which runs this test; downloads; a GPU; remote S3; a cloud cluster, registry or
  Kubernetes; ``duplicate``: the same block, character for character, runs on the page the reason names first).
- ``<!-- readme-test: background: why -->``: a long-running service (``berg-ray serve``). It runs in the
  background until its page ends, then gets SIGTERM.
- ``<!-- readme-test: driver: why -->``: a Python block run with the environment the service printed for Ray
  drivers (``export RAY_ADDRESS=... RAY_AUTH_MODE=...``), as a user pastes that line into the driver's terminal.

Bash blocks run in one shell session, as typed into one terminal: ``set -e -o pipefail``, and the exported
variables and working directory of a block carry over to the next. Python blocks run as scripts with the
session's ``python`` (the one on its PATH, so they need the Quick start's activation step) and must be
self-contained. The session goes on from page to page (files one page writes are there for the next). The one
rewrite is the HTTP port: ``127.0.0.1:8000`` and ``--port 8000`` become a free port, so
the test never depends on port 8000 being free on a shared machine.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SKIP_CATEGORIES = ("quick-start", "download", "gpu", "s3", "cluster", "duplicate")
DIRECTIVES = ("skip", "background", "driver")
README_PORT = 8000
SERVICE_READY = "berg-ray service ready at"
DRIVER_EXPORT = re.compile(r"^Ray drivers join its cluster with: export (.+)$", re.MULTILINE)
_DIRECTIVE = re.compile(r"^<!--\s*readme-test:\s*(\w[\w-]*)\s*(.*?)\s*-->$")
_FENCE = re.compile(r"^```(\S*)\s*$")
BLOCK_TIMEOUT_S = 600
SERVICE_START_TIMEOUT_S = 420
SERVICE_STOP_TIMEOUT_S = 120


def doc_pages(root: Path) -> list[str]:
    """The file (relative to ``root``) of every page: README.md, then each page of mkdocs.yml's nav in order."""
    included = included_pages(root)
    return ["README.md"] + [included.get(page, f"docs/{page}") for page in nav_pages(root)]


def nav_pages(root: Path) -> list[str]:
    """The pages of mkdocs.yml's nav (paths on the site, relative to docs/), in order."""
    return _nav_pages(yaml.safe_load((root / "mkdocs.yml").read_text())["nav"])


def _nav_pages(nav) -> list[str]:
    """The page paths of a MkDocs nav (a list of ``{title: page}`` or ``{title: [sub-nav]}``), in order."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    return [page for value in nav.values() for page in _nav_pages(value)]


def included_pages(root: Path) -> dict[str, str]:
    """The INCLUDED map of docs/hooks/included_pages.py (site page -> repository file), read without MkDocs."""
    hook = root / "docs" / "hooks" / "included_pages.py"
    for node in ast.parse(hook.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "INCLUDED":
            return ast.literal_eval(node.value)
    raise ValueError(f"{hook}: no INCLUDED map")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str  # the page's file, relative to the repository root: README.md, docs/..., cluster/README.md
    line: int  # 1-based line of the opening fence
    language: str  # "bash", "python", or "" and others (not code to run)
    code: str
    section: str  # the "## " heading it is under
    directive: str | None = None  # None, "skip", "background" or "driver"
    note: str = ""  # the text after the directive

    @property
    def runnable(self) -> bool:
        return self.language in ("bash", "python") and self.directive != "skip"

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}:{self.language}"

    @property
    def slug(self) -> str:
        """A file-name-safe unique name of the block."""
        return re.sub(r"[^A-Za-z0-9]+", "_", f"{self.page}_{self.line}")


def parse_page(text: str, page: str = "README.md") -> list[Block]:
    """Every fenced block of ``text`` with its section and directive; raises ValueError on a malformed page."""
    blocks, lines, section, index = [], text.splitlines(), "", 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = _FENCE.match(line)
        if not fence:
            index += 1
            continue
        end = next((j for j in range(index + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"{page}:{index + 1}: code fence is never closed")
        directive, note = _directive_above(lines, index, page)
        blocks.append(Block(page, index + 1, fence.group(1), "\n".join(lines[index + 1:end]) + "\n", section, directive,
                            note))
        index = end + 1
    return blocks


def _directive_above(lines: list[str], fence_index: int, page: str) -> tuple[str | None, str]:
    above = lines[fence_index - 1].strip() if fence_index > 0 else ""
    if "readme-test" not in above:
        return None, ""
    match = _DIRECTIVE.match(above)
    if not match or match.group(1) not in DIRECTIVES:
        raise ValueError(f"{page}:{fence_index}: malformed readme-test directive {above!r}; use one of "
                         f"{DIRECTIVES}")
    return match.group(1), match.group(2).lstrip(":").strip()


def with_port(code: str, port: int) -> str:
    """``code`` with the pages' HTTP port replaced by ``port``."""
    return code.replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{port}").replace(f"--port {README_PORT}",
                                                                                 f"--port {port}")


@dataclass
class Outcome:
    """What one block did."""

    returncode: int
    output: str
    seconds: float


@dataclass
class Service:
    """A background block that is running (or was)."""

    block: Block
    process: subprocess.Popen
    log: Path
    driver_env: dict[str, str] = field(default_factory=dict)
    stopped: Outcome | None = None


class ShellSession:
    """One terminal: a working directory and environment that bash blocks change, plus background services."""

    def __init__(self, cwd: Path, env: dict[str, str], port: int, scratch: Path) -> None:
        self.cwd, self.env, self.port, self.scratch = cwd, dict(env), port, scratch
        self.services: list[Service] = []
        self.outcomes: dict[str, Outcome] = {}  # by the block's name
        scratch.mkdir(parents=True, exist_ok=True)

    def run(self, block: Block) -> Outcome:
        """Run one runnable block; stops services of an earlier page first."""
        self.stop_services(keep_page=block.page)
        if block.directive == "background":
            return self._start_service(block)
        if block.language == "bash":
            return self._run_bash(block)
        return self._run_python(block)

    def _script(self, block: Block) -> Path:
        path = self.scratch / f"block_{block.slug}.{'sh' if block.language == 'bash' else 'py'}"
        path.write_text(with_port(block.code, self.port))
        return path

    def _run_bash(self, block: Block) -> Outcome:
        state = self.scratch / f"state_{block.slug}"
        wrapper = (f"trap 'env -0 > {shlex.quote(str(state))}.env; pwd > {shlex.quote(str(state))}.cwd' EXIT\n"
                   f"set -e -o pipefail\nsource {shlex.quote(str(self._script(block)))}\n")
        outcome = self._call(["bash", "-c", wrapper], self.env)
        if Path(f"{state}.env").is_file():
            entries = Path(f"{state}.env").read_bytes().split(b"\0")
            self.env = dict(e.decode().split("=", 1) for e in entries if b"=" in e)
            for name in ("_", "SHLVL", "PWD", "OLDPWD"):
                self.env.pop(name, None)
            self.cwd = Path(Path(f"{state}.cwd").read_text().strip())
        return outcome

    def _run_python(self, block: Block) -> Outcome:
        env = dict(self.env)
        if block.directive == "driver":
            running = [s for s in self.services if s.stopped is None and s.driver_env]
            if not running:
                return Outcome(1, "no running service printed a Ray driver environment", 0.0)
            env.update(running[-1].driver_env)
        return self._call(["bash", "-c", f"python {shlex.quote(str(self._script(block)))}"], env)

    def _call(self, argv: list[str], env: dict[str, str]) -> Outcome:
        start = time.perf_counter()
        try:
            done = subprocess.run(argv, cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=BLOCK_TIMEOUT_S, start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            return Outcome(124, f"timed out after {BLOCK_TIMEOUT_S} s\n{exc.output or ''}", BLOCK_TIMEOUT_S)
        return Outcome(done.returncode, done.stdout, time.perf_counter() - start)

    def _start_service(self, block: Block) -> Outcome:
        log = self.scratch / f"service_{block.slug}.log"
        start = time.perf_counter()
        with open(log, "w") as sink:
            process = subprocess.Popen(["bash", "-e", str(self._script(block))], cwd=self.cwd, env=self.env,
                                       stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        service = Service(block, process, log)
        self.services.append(service)
        while time.perf_counter() - start < SERVICE_START_TIMEOUT_S:
            text = log.read_text()
            if SERVICE_READY in text and DRIVER_EXPORT.search(text):
                service.driver_env = dict(v.split("=", 1) for v in shlex.split(DRIVER_EXPORT.search(text).group(1)))
                return Outcome(0, text, time.perf_counter() - start)
            if process.poll() is not None:
                return Outcome(process.returncode or 1, f"the service exited before it was ready\n{text}",
                               time.perf_counter() - start)
            time.sleep(0.5)
        return Outcome(124, f"not ready after {SERVICE_START_TIMEOUT_S} s\n{log.read_text()}", SERVICE_START_TIMEOUT_S)

    def stop_services(self, keep_page: str | None = None) -> None:
        """SIGTERM every running service not of ``keep_page`` (as Ctrl-C in its terminal) and wait for it.

        The signal goes to the commands the block's shell is running (a Ray driver leaves the shell's process
        group), then the shell exits with their status.
        """
        for service in self.services:
            if service.stopped is not None or service.block.page == keep_page:
                continue
            start, pid = time.perf_counter(), service.process.pid
            for child in _children(pid):
                os.kill(child, signal.SIGTERM)
            try:
                code = service.process.wait(timeout=SERVICE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                for child in [*_children(pid), pid]:
                    os.kill(child, signal.SIGKILL)
                service.process.wait()
                service.stopped = Outcome(124, f"did not stop within {SERVICE_STOP_TIMEOUT_S} s\n"
                                               f"{service.log.read_text()}", SERVICE_STOP_TIMEOUT_S)
                continue
            service.stopped = Outcome(code, service.log.read_text(), time.perf_counter() - start)


def _children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # the task ended meanwhile
            continue
    return children
