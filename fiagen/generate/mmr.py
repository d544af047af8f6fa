"""MMR, multi-modal reconstruction: which cached variant of a frame is the target side I_t.

Precompute stores per frame the original and, when reconstructors ran, its autoencoder (AE) and
super-resolution (SR) reconstructions. Online, I_t is AE with p=0.3, SR with p=0.2, the original with
p=0.5 (docs/method.md §2.1). A variant that a row does not have (no reconstructor ran, or it failed on
that frame) is replaced by the original, so a draw never fails; the fallback is reported as such.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from fiagen.generate.draws import pick

RECONS = ("ae", "sr", "original")
FULL_PROBS = (("ae", 0.3), ("sr", 0.2), ("original", 0.5))
# The paper's "w/o SR" / "w/o AE" ablations: the removed variant's share goes to the original.
NO_SR_PROBS = (("ae", 0.3), ("original", 0.7))
NO_AE_PROBS = (("sr", 0.2), ("original", 0.8))
ORIGINAL_ONLY = (("original", 1.0),)


def draw_recon(rng: np.random.Generator, probs: tuple[tuple[str, float], ...]) -> str:
    """The variant MMR asks for, by one uniform draw over (name, probability) pairs."""
    return pick(rng, probs)


def available_recon(drawn: str, available: Collection[str]) -> str:
    """The variant actually used: the drawn one when the row has it, else the original."""
    return drawn if drawn == "original" or drawn in available else "original"
