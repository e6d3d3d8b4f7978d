"""Fused GPU kernels (Triton) of the model's hot paths, used when ``kernels="triton"`` (berg_ray.model.device_plan).

Nothing here is imported by ``import berg_ray``: each kernel module imports Triton and is loaded only when a model
runs with Triton kernels, or by the interpreter tests on CPU.
"""
