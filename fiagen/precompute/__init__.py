"""Offline precompute: video sampling, faces and landmarks, reconstructions, shards, the Ray plan."""
