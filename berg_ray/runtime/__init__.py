"""The process runtime under the model: which torch device (``device``), which numeric precision and autocast
(``precision``), and the CPU threads, OpenMP wait policy and heap of every process berg_ray owns (``threads``).

Device-specific choices of the model's layers live in ``berg_ray.model.device_plan``; this package decides only
what the process runs on.
"""
