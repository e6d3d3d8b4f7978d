"""The fused Triton recurrent step (berg_ray/model/kernels/recurrent_triton.py) and its switch, on CPU.

Correctness runs the kernels under Triton's interpreter in a subprocess (TRITON_INTERPRET=1 must be set before the
kernel module is imported and must not leak into other tests; recurrent_interpreter_cases.py) against
``Recurrent._step``'s torch form, at the model's real slot and channel sizes and 1-2 videos. Register spills, which
the interpreter cannot show, come from compiling both kernels for sm_90 (H100/H200) with the wheel's ptxas.
"""

from __future__ import annotations

import pytest
import torch

from berg_ray.model import device_plan

from .support import run_interpreter_cases


@pytest.fixture(scope="module")
def interpreted() -> dict:
    """The interpreter cases' differences from the torch step (one subprocess for all cases, ~70 s on 1 core)."""
    return run_interpreter_cases("recurrent_interpreter_cases")


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize("case", ["step", "frames", "gpu_launch"])
def test_interpreted_step_matches_the_torch_step_in_float32(interpreted, case):
    """``step``: Recurrent._step with kernels="triton" (inter-group matmul, both kernels, all 32 slots);
    ``frames``: the kernels over 3 frames of 2 videos, hidden and cell fed back; ``gpu_launch``: the default
    tiles (several position and key blocks). Hidden states and cell to float32 rounding (of the largest value)."""
    assert interpreted[f"{case}_hidden"] <= 1e-5 and interpreted[f"{case}_cell"] <= 1e-5


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_interpreted_state_moves_between_frames(interpreted):
    """The multi-frame case is not trivially equal: the hidden state changes from frame to frame."""
    assert interpreted["frames_moved"] > 0.1


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_interpreted_kernels_read_float16_activations(interpreted):
    """float16 recurrent input and hidden state are upcast on load: the same result as on the upcast values (the
    hidden output rounded to float16), and close to the float32 step."""
    assert interpreted["float16_vs_upcast_hidden"] <= 1e-5 and interpreted["float16_vs_upcast_cell"] <= 1e-5
    assert interpreted["float16_vs_float32_hidden"] <= 2e-3


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize("state_type", ["fp32", "bf16"])
@pytest.mark.parametrize("kernel", ["conv_qkv", "attention_lstm"])
def test_kernels_compile_for_sm90_without_register_spills(kernel, state_type):
    """triton.compile for an H100/H200 (sm_90) on this CPU machine; ptxas's report must show no spills, and the
    float32 products are IEEE FMAs (no TF32, no tensor-core mma)."""
    pytest.importorskip("triton", reason="triton is not installed (the test extra installs it)")
    from berg_ray.model.kernels import recurrent_triton
    from berg_ray.model.kernels.compile_check import SM90, compile_for, register_use

    launch = recurrent_triton.DEFAULT_LAUNCH
    function = {"conv_qkv": recurrent_triton.conv_qkv_kernel,
                "attention_lstm": recurrent_triton.attention_lstm_kernel}[kernel]
    warps = {"conv_qkv": launch.conv_warps, "attention_lstm": launch.attention_warps}[kernel]
    compiled = compile_for(function, recurrent_triton.kernel_signatures(state_type)[kernel],
                           recurrent_triton.kernel_constexprs(launch)[kernel], SM90, num_warps=warps, num_stages=1)
    use = register_use(compiled, SM90)
    ptx = compiled.asm["ptx"]
    assert "tf32" not in ptx and "mma" not in ptx and "fma.rn.f32" in ptx
    assert use.spills == 0 and use.stack_frame == 0, use.log
    assert use.registers <= 255


def test_triton_step_only_when_chosen_and_not_recorded():
    x = torch.zeros(2)
    assert device_plan.triton_step("triton", x) and not device_plan.triton_step("torch", x)
    recorded = torch.zeros(2, requires_grad=True)
    assert not device_plan.triton_step("triton", recorded)
    with torch.no_grad():
        assert device_plan.triton_step("triton", recorded)


