"""Ray Serve application of the Wang et al. (Nature 2025) model: ingress -> batched shared core -> readout heads.

``build_app`` (the YAML ``import_path`` target) lives in :mod:`berg_ray.serve.app`, the HTTP client in
:mod:`berg_ray.serve.client`; neither is imported here so that ``import berg_ray.serve.client`` stays light.
"""
