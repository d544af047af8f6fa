"""Training: backbone + AFFS + FPN + head, the RCR losses, the SAM loop, checkpoints."""
