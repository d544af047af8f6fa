"""Online FIA-USA: masks (MTMS), reconstruction choice (MMR), transforms, blending (RAC), datasets."""
