"""berg_ray: the Wang et al. (Nature 2025) mouse visual cortex foundation model at cluster scale."""
