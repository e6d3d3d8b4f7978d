"""The Triton feed-forward glue (berg_ray/model/kernels/glue_triton.py) and its switch, on CPU.

Correctness runs the kernels under Triton's interpreter in a subprocess (TRITON_INTERPRET=1 must be set before the
kernel module is imported and must not leak into other tests; glue_interpreter_cases.py) against the torch ops,
and the whole core on the accelerators' plan with kernels "triton" vs "torch". Register spills come from compiling
the kernels for sm_90 (H100/H200) with the wheel's ptxas.
"""

from __future__ import annotations

import pytest
import torch

from berg_ray.model import device_plan

from .support import run_interpreter_cases


def run_cases(*args: str) -> dict:
    """The interpreter cases' differences from the torch path (one subprocess)."""
    return run_interpreter_cases("glue_interpreter_cases", *args)


@pytest.fixture(scope="module")
def interpreted() -> dict:
    return run_cases()


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize("case", ["gelu_float32", "gelu_contiguous_input"])
def test_interpreted_gelu_padding_matches_torch_in_float32(interpreted, case):
    """[history, GELU(x)] from a channels-last or contiguous x and a strided history slice, to float32 rounding
    (relative to max(|value|, 1): see glue_interpreter_cases.unit_scaled); the history frames bit for bit."""
    assert interpreted[case] <= 1e-6
    assert interpreted["gelu_channels_last_out"] == 1.0 and interpreted["gelu_history_exact"] == 1.0


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_interpreted_gelu_padding_in_float16(interpreted):
    """Half inputs are computed in float32 and rounded once, as torch's half GELU: within a float16 ulp of it."""
    assert interpreted["gelu_float16"] <= 2 ** -10
    assert interpreted["gelu_float16_vs_float32"] <= 2e-3


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize("case", ["pool2_slots1", "pool2_slots2", "pool1_slots4", "pool2_partial", "pool2_float16"])
def test_interpreted_pool_interleave_matches_torch(interpreted, case):
    """Pooling (2x2 and none) fused with the group interleave, 1-4 slots, a partial row block, float16: the same
    sums in the same order as avg_pool2d, so equal to float32 (or float16) rounding."""
    assert interpreted[case] <= 1e-6


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_interpreted_core_with_glue_kernels_matches_the_torch_plan():
    """The fixture's core, 1 video x 3 frames in 2 chunks (history carried), on the accelerators' plan computed on
    CPU: kernels "triton" vs "torch" agree to float32 rounding of the output's scale."""
    assert run_cases("--model")["model_core_output"] <= 1e-5


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("pool", [1, 2])
def test_glue_kernels_compile_for_sm90_without_register_spills(dtype, pool):
    """triton.compile for an H100/H200 (sm_90) on this CPU machine; ptxas's report must show no spills."""
    pytest.importorskip("triton", reason="triton is not installed (the test extra installs it)")
    from berg_ray.model.kernels.compile_check import SM90, compile_for, register_use
    from berg_ray.model.kernels import glue_triton

    launch = glue_triton.DEFAULT_LAUNCH
    signatures, constexprs = glue_triton.kernel_signatures(dtype), glue_triton.kernel_constexprs(launch, pool=pool)
    kernels = {"gelu_padded": glue_triton.gelu_padded_kernel, "pool_interleave": glue_triton.pool_interleave_kernel}
    for name, kernel in kernels.items():
        compiled = compile_for(kernel, signatures[name], constexprs[name], SM90, num_warps=launch.num_warps,
                               num_stages=1)
        use = register_use(compiled, SM90)
        assert use.spills == 0 and use.stack_frame == 0, (name, use.log)
        assert use.registers <= 255


def test_glue_switch_follows_kernels_and_autograd():
    x = torch.zeros(2, requires_grad=True)
    assert device_plan.triton_glue("triton", x.detach())
    assert not device_plan.triton_glue("torch", x.detach())
    assert not device_plan.triton_glue("triton", x)  # recorded: the kernels have no backward pass

