"""The paper's Table 6a switches for the pseudo-fake recipe: names only, for every layer (fiagen.generate
builds the recipes).

full: FIA-USA, a superset of SBI (its random affine and elastic deformation of the blended-in side and
mask apply to every recipe, docs/method.md §2.3b); no_mtms: hull mask only; no_sr / no_ae: MMR without that
reconstruction; no_affine: full without SBI's spatial step; sbi: SBI's augmentation alone (hull of 81 or
68 points, no reconstructions, SBI's T).
"""

ABLATIONS = ("full", "no_mtms", "no_sr", "no_ae", "no_affine", "sbi")
