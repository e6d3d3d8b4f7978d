"""Pure-PyTorch implementation of the Wang et al. (Nature 2025) network: no file IO, no Ray, no device choice."""
