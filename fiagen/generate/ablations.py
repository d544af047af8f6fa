"""The paper's Table 6a switches for the pseudo-fake recipe (names only; no heavy imports).

full: FIA-USA; no_mtms: hull mask only; no_sr / no_ae: MMR without that reconstruction;
sbi: SBI's augmentation alone (hull of 81 or 68 points, no reconstructions, SBI's T and affine).
"""

ABLATIONS = ("full", "no_mtms", "no_sr", "no_ae", "sbi")
