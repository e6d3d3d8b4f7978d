"""Compile a Triton kernel for a CUDA GPU on any machine (no GPU needed) and read its register use and spills.

Triton's wheel ships ``ptxas``: ``triton.compile`` with a CUDA ``GPUTarget`` lowers a kernel to PTX and a cubin
without a driver. Register spills (local-memory traffic the interpreter cannot show) are read from ``ptxas -v``
run on the kernel's PTX with the options Triton itself uses for the target.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget

SM90 = GPUTarget("cuda", 90, 32)  # H100 / H200


@dataclass(frozen=True)
class RegisterUse:
    """ptxas's resource report of one compiled kernel (bytes per thread)."""

    registers: int
    spill_stores: int
    spill_loads: int
    stack_frame: int
    log: str

    @property
    def spills(self) -> int:
        return self.spill_stores + self.spill_loads


def compile_for(kernel, signature: dict[str, str], constexprs: dict[str, object], target: GPUTarget = SM90,
                **options):
    """``triton.compile`` of ``kernel`` for ``target``; ``signature`` maps every argument to its type ("*fp32",
    "i32", ... or "constexpr"), ``options`` are launch options (num_warps, num_stages)."""
    source = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=target, options=options)


def register_use(compiled, target: GPUTarget = SM90) -> RegisterUse:
    """Run ptxas -v on a compiled kernel's PTX for ``target`` and parse registers and spill bytes."""
    from triton.backends.nvidia import compiler

    arch = compiler.sm_arch_from_capability(target.arch)
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / "kernel.ptx"
        ptx.write_text(compiled.asm["ptx"])
        done = subprocess.run([_ptxas(compiler, target.arch), "-v", "--regAllocOptLevel=2", f"--gpu-name={arch}",
                               str(ptx), "-o", str(Path(tmp) / "kernel.cubin")], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ptxas failed for {arch}: {done.stderr.strip()}")
    log = done.stderr

    def number(pattern: str) -> int:
        found = re.search(pattern, log)
        if found is None:
            raise RuntimeError(f"ptxas -v printed no {pattern!r}: {log}")
        return int(found.group(1))

    return RegisterUse(registers=number(r"Used (\d+) registers"), spill_stores=number(r"(\d+) bytes spill stores"),
                       spill_loads=number(r"(\d+) bytes spill loads"), stack_frame=number(r"(\d+) bytes stack frame"),
                       log=log)


def _ptxas(compiler, arch: int) -> str:
    """Path of the ptxas Triton uses for ``arch`` (its helper's signature changed across Triton versions)."""
    try:
        tool = compiler.get_ptxas(arch)
    except TypeError:
        tool = compiler.get_ptxas()
    return getattr(tool, "path", tool)
